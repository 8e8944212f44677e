"""A frozen copy of genjax.nets.unet before cross-attention was added (the reference for the
bitwise test). The DDPM U-Net (Ho et al. 2020), as a Flax Linen module.

The architecture is the TF reference's ``diffusion_tf/models/unet.py::model``
(github.com/hojonathanho/diffusion), which improved-diffusion's ``UNetModel`` and
score_sde's ``models/ddpm.py`` mirror: a PixelCNN++-style U-Net of wide-ResNet blocks with
group normalization, a sinusoidal time embedding added inside every residual block, and
single-head self-attention at chosen resolutions and in the middle. Its CIFAR-10
configuration (the defaults, on 32x32x3) has 35,746,307 parameters, the paper's 35.7M.

Additions over the reference, both from improved-diffusion: class conditioning (a label
embedding added to the time embedding) and a configurable output width (``2 * C`` for
learned-variance models).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import (AttnBlock, Downsample, GroupNorm, ResBlock, Upsample,
                                _conv, _dense, normal_init, timestep_embedding)

Array = jax.Array


class UNet(nn.Module):
  """The DDPM U-Net: ``eps_theta(x_t, t[, y])``.

  Layout for ``L = len(ch_mult)`` levels and ``N = num_res_blocks`` (the reference's):

  * time embedding: ``dense1(silu(dense0(sinusoid(t, ch))))``, width ``4 * ch``, plus
    ``label_emb(y)`` when ``num_classes > 0``;
  * ``conv_in`` (3x3 to ``ch``);
  * down level ``i``: ``N`` :class:`ResBlock` s to ``ch * ch_mult[i]`` channels, each followed
    by an :class:`AttnBlock` when the current height is in ``attn_resolutions``; then a
    :class:`Downsample` except at the last level;
  * middle: ResBlock, AttnBlock, ResBlock (attention here at every resolution);
  * up level ``i`` (reversed): ``N + 1`` ResBlocks on the concatenation with the matching
    skip activation, attention as above, then an :class:`Upsample` except at level 0;
  * ``conv_out(silu(norm_out(h)))``, zero-initialized.

  Parameters are named as the reference's variable scopes with ``/`` replaced by ``_``
  (``down_1_block_0``, ``mid_attn_1``, ``up_2_upsample``, ``temb_dense0``, ...).

  Attributes:
    ch: base channel count.
    ch_mult: channel multiplier of each resolution level; the input is downsampled
      ``len(ch_mult) - 1`` times.
    num_res_blocks: residual blocks per level on the way down (one more on the way up).
    attn_resolutions: heights (in pixels) at which self-attention follows each ResBlock,
      e.g. ``(16,)`` on 32x32 inputs. Each must be a height that the network visits.
    dropout: dropout rate inside the ResBlocks (used when ``train=True``).
    num_classes: number of class labels; 0 for an unconditional model. With
      ``num_classes > 0`` there are ``num_classes + 1`` label embeddings, and the label
      ``num_classes`` means "no label" (classifier-free guidance).
    out_channels: output channels; None means the input's (learned-variance models use
      ``2 * C``: eps and the variance interpolation ``v``).
    resamp_with_conv: strided conv / nearest+conv resampling (True) or plain average
      pooling / nearest repetition (False).
    dtype: compute dtype; parameters are float32, so ``jnp.bfloat16`` is mixed precision.
      The output is cast back to the input's dtype.

  Example:
    >>> net = UNet(ch=32, ch_mult=(1, 2), attn_resolutions=(4,))
    >>> x, t = jnp.zeros([2, 8, 8, 1]), jnp.array([0, 999])
    >>> params = net.init(jax.random.key(0), x, t)["params"]
    >>> net.apply({"params": params}, x, t).shape
    (2, 8, 8, 1)
  """

  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.1
  num_classes: int = 0
  out_channels: Optional[int] = None
  resamp_with_conv: bool = True
  dtype: Any = jnp.float32

  def _check_inputs(self, x: Array, t: Array, y: Optional[Array]) -> None:
    """Raise a clear ValueError for inputs the network cannot take."""
    if x.ndim != 4:
      raise ValueError(
          f"UNet: x must be an NHWC batch [B, H, W, C], got shape {x.shape}. "
          "Add a batch axis (x[None]) or a channel axis (x[..., None]).")
    b, hh, ww, _ = x.shape
    factor = 2 ** (len(self.ch_mult) - 1)
    if hh % factor or ww % factor:
      raise ValueError(
          f"UNet: input size {hh}x{ww} is not divisible by 2^(len(ch_mult)-1) = {factor} "
          f"(ch_mult={tuple(self.ch_mult)} downsamples {len(self.ch_mult) - 1} times). "
          "Pad or resize the images, or use a shorter ch_mult.")
    visited = [hh // 2 ** i for i in range(len(self.ch_mult))]
    unreachable = [r for r in self.attn_resolutions if r not in visited]
    if unreachable:
      raise ValueError(
          f"UNet: attn_resolutions {tuple(self.attn_resolutions)} contains {unreachable}, "
          f"but on {hh}x{ww} inputs with ch_mult={tuple(self.ch_mult)} the feature maps "
          f"have heights {visited}. Pick attn_resolutions among these (or () for none).")
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != b):
      raise ValueError(
          f"UNet: t must be a scalar or have shape [B] = [{b}], got shape {t.shape}.")
    if self.num_classes > 0:
      if y is None:
        raise ValueError(
            f"UNet: num_classes={self.num_classes} needs labels y [B]; for unconditional "
            f"outputs pass the null label, y = jnp.full([B], {self.num_classes}).")
      if y.shape != (b,):
        raise ValueError(f"UNet: y must have shape [B] = [{b}], got {y.shape}.")
    elif y is not None:
      raise ValueError(
          "UNet: labels y were given but num_classes=0 (an unconditional model would "
          "ignore them). Set num_classes, or pass y=None.")

  @nn.compact
  def __call__(self, x: Array, t: Array, y: Optional[Array] = None,
               train: bool = False) -> Array:
    """Predict the noise (or another target) for noisy images ``x`` at times ``t``.

    Args:
      x: [B, H, W, C] noisy images, NHWC; H and W divisible by ``2^(len(ch_mult)-1)``.
      t: [B] or scalar timesteps, int or float, embedded as given. Discrete timesteps are
        zero-based (``t in {0..T-1}``; index t is the paper's step t+1).
      y: [B] int class labels in ``{0..num_classes}`` (``num_classes`` = no label); must
        be given iff ``num_classes > 0``.
      train: enable dropout (needs ``rngs={"dropout": key}`` in ``apply``).

    Returns:
      [B, H, W, out_channels or C], in x's dtype.
    """
    x = jnp.asarray(x)
    t = jnp.asarray(t)
    y = None if y is None else jnp.asarray(y)
    self._check_inputs(x, t, y)
    b, _, _, c_in = x.shape
    t = jnp.reshape(t, (-1,))  # a scalar t (one per sampler step) is embedded once
    dt = self.dtype
    num_levels = len(self.ch_mult)

    # 1. Time (and class) embedding.
    temb = timestep_embedding(t, self.ch)
    temb = _dense(4 * self.ch, dtype=dt, name="temb_dense0")(temb)
    temb = _dense(4 * self.ch, dtype=dt, name="temb_dense1")(nn.silu(temb))
    if self.num_classes > 0:
      temb = temb + nn.Embed(self.num_classes + 1, 4 * self.ch, dtype=dt,
                             param_dtype=jnp.float32, embedding_init=normal_init(1.0),
                             name="label_emb")(y)

    def res(h, out_ch, name):
      return ResBlock(out_ch, dropout=self.dropout, dtype=dt, name=name)(h, temb, train)

    # 2. Downsampling path; hs holds the skip activations.
    hs = [_conv(self.ch, dtype=dt, name="conv_in")(x.astype(dt))]
    for i in range(num_levels):
      for j in range(self.num_res_blocks):
        h = res(hs[-1], self.ch * self.ch_mult[i], f"down_{i}_block_{j}")
        if h.shape[1] in self.attn_resolutions:
          h = AttnBlock(dtype=dt, name=f"down_{i}_attn_{j}")(h)
        hs.append(h)
      if i != num_levels - 1:
        hs.append(Downsample(self.resamp_with_conv, dtype=dt, name=f"down_{i}_downsample")(hs[-1]))

    # 3. Middle.
    h = hs[-1]
    h = res(h, None, "mid_block_1")
    h = AttnBlock(dtype=dt, name="mid_attn_1")(h)
    h = res(h, None, "mid_block_2")

    # 4. Upsampling path, consuming the skips in reverse.
    for i in reversed(range(num_levels)):
      for j in range(self.num_res_blocks + 1):
        h = res(jnp.concatenate([h, hs.pop()], axis=-1), self.ch * self.ch_mult[i],
                f"up_{i}_block_{j}")
        if h.shape[1] in self.attn_resolutions:
          h = AttnBlock(dtype=dt, name=f"up_{i}_attn_{j}")(h)
      if i != 0:
        h = Upsample(self.resamp_with_conv, dtype=dt, name=f"up_{i}_upsample")(h)
    assert not hs

    # 5. Output.
    h = nn.silu(GroupNorm(dtype=dt, name="norm_out")(h))
    h = _conv(self.out_channels or c_in, zero=True, dtype=dt, name="conv_out")(h)
    return h.astype(x.dtype)
