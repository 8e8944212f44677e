"""A gated PixelCNN over a grid of discrete codes (van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders"), the autoregressive prior of VQ-VAE / VQ-VAE-2.

The network has a vertical stack (everything above the current row) and a horizontal stack
(everything to the left in the current row), which together see every earlier position in
raster order and nothing else: no blind spot. Causality comes from masked convolution
kernels (Flax's ``nn.Conv(mask=...)``):

* vertical ``k x k`` kernel: rows below the centre are zero; in the first layer the centre
  row is zero too, so the vertical stack at row i sees only rows < i from then on;
* horizontal ``1 x k`` kernel: columns right of the centre are zero; in the first layer the
  centre column is zero too (mask "A"), afterwards it is kept (mask "B");
* the vertical stack feeds the horizontal one through a 1x1 convolution at the same position.

Each layer is gated: ``tanh(W_f * v + c_f) * sigmoid(W_g * v + c_g)`` (eq. 2 and 4 of the
paper), where ``c`` is the conditioning: a class label embedding and/or a spatial map (e.g.
the VQ-VAE-2 top codes, upsampled, for the bottom prior). The horizontal stack is residual.

Example:
  >>> net = GatedPixelCNN(num_codes=16, hidden=32, num_layers=3)
  >>> codes = jnp.zeros([2, 4, 4], jnp.int32)
  >>> p = net.init(jax.random.key(0), codes)["params"]
  >>> net.apply({"params": p}, codes).shape
  (2, 4, 4, 16)
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nets.layers import variance_scaling

Array = jax.Array
_kernel_init = variance_scaling(1.0, "fan_in", "truncated_normal")


def vertical_mask(kernel_size: int, in_features: int, out_features: int,
                  mask_center: bool) -> np.ndarray:
  """[k, k, in, out] mask of the vertical stack: rows below the centre (and the centre row if
  ``mask_center``) are zero."""
  m = np.ones((kernel_size, kernel_size, in_features, out_features), np.float32)
  c = kernel_size // 2
  m[c + 1:] = 0.0
  if mask_center:
    m[c] = 0.0
  return m


def horizontal_mask(kernel_size: int, in_features: int, out_features: int,
                    mask_center: bool) -> np.ndarray:
  """[1, k, in, out] mask of the horizontal stack: columns right of the centre (and the centre
  if ``mask_center``, mask "A") are zero."""
  m = np.ones((1, kernel_size, in_features, out_features), np.float32)
  c = kernel_size // 2
  m[:, c + 1:] = 0.0
  if mask_center:
    m[:, c] = 0.0
  return m


class _MaskedConv(nn.Module):
  features: int
  kernel_size: int
  vertical: bool
  mask_center: bool

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    fn = vertical_mask if self.vertical else horizontal_mask
    mask = fn(k, x.shape[-1], self.features, self.mask_center)
    shape = (k, k) if self.vertical else (1, k)
    return nn.Conv(self.features, shape, padding="SAME", mask=jnp.asarray(mask),
                   kernel_init=_kernel_init, name="conv")(x)


def _conv1x1(features: int, name: str) -> nn.Conv:
  return nn.Conv(features, (1, 1), kernel_init=_kernel_init, name=name)


class GatedPixelCNN(nn.Module):
  """Logits of p(c_ij | c_<ij, conditioning) for a [B, H, W] grid of integer codes.

  Attributes:
    num_codes: K, the number of values each position takes (the codebook size).
    hidden: channels of both stacks.
    num_layers: gated layers after the first (masked, type-A) layer.
    kernel_size: odd kernel size of the masked convolutions.
    num_classes: class labels for conditioning (0: unconditional).
    cond_hidden: channels of the small (non-causal) network applied to a spatial
      conditioning map; used only when ``cond`` is given.
  """

  num_codes: int = 512
  hidden: int = 64
  num_layers: int = 6
  kernel_size: int = 3
  num_classes: int = 0
  cond_hidden: int = 64

  @nn.compact
  def __call__(self, codes: Array, cond: Optional[Array] = None, y: Optional[Array] = None,
               train: bool = False) -> Array:
    """Args:
      codes: [B, H, W] int codes in ``{0..K-1}``.
      cond: optional [B, H, W, C] float conditioning map (fully observed, e.g. the
        upsampled top-level codes of VQ-VAE-2).
      y: optional [B] int class labels (needs ``num_classes > 0``).
      train: unused (no dropout).

    Returns:
      [B, H, W, K] logits; position (i, j) depends only on codes before it in raster order.
    """
    del train
    if codes.ndim != 3:
      raise ValueError(f"GatedPixelCNN: codes must be [B, H, W] ints, got shape {codes.shape}.")
    if self.kernel_size % 2 != 1:
      raise ValueError(f"GatedPixelCNN: kernel_size must be odd, got {self.kernel_size}.")
    if (y is not None) != (self.num_classes > 0):
      raise ValueError("GatedPixelCNN: pass labels y exactly when num_classes > 0.")
    f, k = self.hidden, self.kernel_size
    x = nn.Embed(self.num_codes, f, name="embed")(codes)

    c = None
    if cond is not None:
      if cond.shape[:3] != codes.shape:
        raise ValueError(f"GatedPixelCNN: cond {cond.shape} must be [B, H, W, C] with "
                         f"[B, H, W] = {codes.shape}.")
      c = nn.Conv(self.cond_hidden, (3, 3), padding="SAME", kernel_init=_kernel_init,
                  name="cond_in")(cond)
      c = nn.Conv(self.cond_hidden, (3, 3), padding="SAME", kernel_init=_kernel_init,
                  name="cond_mid")(nn.elu(c))
    if y is not None:
      yemb = nn.Embed(self.num_classes, f, name="label_embed")(y)[:, None, None, :]

    def condition(name):
      out = 0.0
      if c is not None:
        out = out + _conv1x1(2 * f, f"{name}_cond")(c)
      if y is not None:
        out = out + nn.Dense(2 * f, name=f"{name}_label")(yemb)
      return out

    def gate(a):
      val, g = jnp.split(a, 2, axis=-1)
      return jnp.tanh(val) * nn.sigmoid(g)

    # Layer 0: type-A masks, so that no position sees its own code.
    v = _MaskedConv(2 * f, k, True, True, name="v_0")(x)
    h = _MaskedConv(2 * f, k, False, True, name="h_0")(x)
    h = h + _conv1x1(2 * f, "v2h_0")(v)
    cond0 = condition("layer_0")
    v, h = gate(v + cond0), gate(h + cond0)
    for i in range(1, self.num_layers + 1):
      v_feat = _MaskedConv(2 * f, k, True, False, name=f"v_{i}")(v)
      h_feat = _MaskedConv(2 * f, k, False, False, name=f"h_{i}")(h)
      h_feat = h_feat + _conv1x1(2 * f, f"v2h_{i}")(v_feat)
      ci = condition(f"layer_{i}")
      v = gate(v_feat + ci)
      h = h + _conv1x1(f, f"h_res_{i}")(gate(h_feat + ci))
    out = _conv1x1(f, "out_hidden")(nn.elu(h))
    return _conv1x1(self.num_codes, "out")(nn.elu(out))
