"""DCGAN generator and discriminator (Radford et al. 2016), with a stateless batch normalization.

Architecture guidelines of Radford et al. 2016 sec. 3: strided convolutions in D and fractionally
strided (transposed) convolutions in G, no pooling and no hidden dense layers, batch normalization
in both nets except G's output layer and D's input layer, ReLU in G with Tanh at the output,
LeakyReLU (slope 0.2) in D; weights from N(0, 0.02).

Batch normalization without state (:class:`BatchStatNorm`). Both nets normalise with the
statistics of the batch they are given, never with running averages, so the module has no
``batch_stats`` collection and the trainer's params-only pytree is all there is:

* Training: statistics of the current batch, as DCGAN does (D sees its real and its generated
  batch in separate calls, as in the DCGAN reference code). Under the trainer's global-view
  ``jax.jit`` the batch is sharded over the devices and ``jnp.mean`` over the batch axis is a
  cross-device reduction that XLA inserts, so the statistics are those of the *global* batch:
  the result does not depend on the number of devices (tests/gan/test_nets.py checks 1 vs 8).
* Sampling: ``G(z, ref_size=R)`` takes its statistics from the first ``R`` rows only (a fixed
  reference batch of noise, as in reference batch normalization, Salimans et al. 2016 sec. 3.4).
  Each sample is then a deterministic function of its own ``z`` and of the (EMA) weights, not of
  the other samples, and the statistics always match the weights in use, which running averages
  collected with the raw training weights would not for the EMA weights.

``norm="layer"`` (normalization over H, W, C of each example) and ``norm="none"`` are the
per-example alternatives; a WGAN-GP or R1 critic needs one of them, because its penalty
differentiates each output with respect to its own input only (Gulrajani et al. 2017 sec. 4).

Call convention: ``G.apply({"params": p}, z [B, Z], train, ref_size=None) -> [B, H, W, C]`` in
[-1, 1]; ``D.apply({"params": p}, x [B, H, W, C], train) -> [B]`` logits.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import normal_init

Array = jax.Array
NORMS = ("batch", "layer", "none")


def _dcgan_init():
  return normal_init(0.02)


class BatchStatNorm(nn.Module):
  """Batch normalization with the statistics of the batch it is given (no running averages).

  ``y = (x - mean) / sqrt(var + eps) * scale + bias`` with the mean and (biased) variance over
  every axis but the last, of all rows (``ref_size=None``) or of the first ``ref_size`` rows.
  Statistics in float32. ``scale ~ N(1, 0.02)`` and ``bias = 0`` (DCGAN's initialization).

  Attributes:
    epsilon: added to the variance.
  """

  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: Array, ref_size: Optional[int] = None) -> Array:
    """Args: x [B, ..., C]; ref_size: rows that give the statistics (None: all).
    Returns: [B, ..., C]."""
    c = x.shape[-1]
    scale = self.param("scale", lambda k, s: 1.0 + normal_init(0.02)(k, s), (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    xs = x if ref_size is None else x[:ref_size]
    axes = tuple(range(x.ndim - 1))
    xf = xs.astype(jnp.float32)
    mean = jnp.mean(xf, axis=axes)
    var = jnp.maximum(jnp.mean(jnp.square(xf), axis=axes) - jnp.square(mean), 0.0)
    mul = jax.lax.rsqrt(var + self.epsilon) * scale
    return (x.astype(jnp.float32) * mul + (bias - mean * mul)).astype(x.dtype)


class _Norm(nn.Module):
  """``batch`` (:class:`BatchStatNorm`), ``layer`` (per example over H, W, C) or ``none``."""

  kind: str

  @nn.compact
  def __call__(self, x: Array, ref_size: Optional[int] = None) -> Array:
    if self.kind == "batch":
      return BatchStatNorm()(x, ref_size)
    if self.kind == "layer":
      return nn.LayerNorm(reduction_axes=tuple(range(1, x.ndim)), feature_axes=-1)(x)
    return x


def _num_stages(shape: Sequence[int], base_size: int, who: str) -> int:
  if len(shape) != 3 or shape[0] != shape[1]:
    raise ValueError(f"{who}: images must be square [H, H, C]; got {tuple(shape)}.")
  ratio = shape[0] / base_size
  n = int(round(math.log2(ratio))) if ratio >= 1 else -1
  if n < 1 or base_size * 2 ** n != shape[0]:
    raise ValueError(f"{who}: image side {shape[0]} must be base_size={base_size} times a power "
                     f"of 2 (>= 2); e.g. base_size=2 or 4 for 8x8, 4 for 32x32.")
  return n


def _check_norm(norm: str, who: str) -> None:
  if norm not in NORMS:
    raise ValueError(f"{who}: unknown norm {norm!r}; use one of {NORMS}.")


class DCGANGenerator(nn.Module):
  """DCGAN generator: dense projection to ``base_size^2`` maps, then transposed convolutions.

  ``z -> dense -> [base, base, ch 2^(n-1)] -> norm, ReLU -> (ConvT 4x4/2 -> norm -> ReLU) x (n-1)
  -> ConvT 4x4/2 to C channels -> tanh``, with ``n = log2(H / base_size)`` upsamplings.

  Attributes:
    out_shape: [H, W, C] of the images (H = W = base_size 2^n).
    ch: channels of the last hidden layer (doubling towards the input).
    base_size: side of the first feature map.
    norm: "batch" (stateless, see the module docstring), "layer" or "none".
    dtype: compute dtype (parameters float32).

  Example:
    >>> g = DCGANGenerator((8, 8, 1), ch=16, base_size=2)
    >>> p = g.init(jax.random.key(0), jnp.zeros([4, 100]))["params"]
    >>> g.apply({"params": p}, jnp.zeros([4, 100])).shape
    (4, 8, 8, 1)
  """

  out_shape: Sequence[int]
  ch: int = 64
  base_size: int = 4
  norm: str = "batch"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: Array, train: bool = False, ref_size: Optional[int] = None) -> Array:
    """Args:
      z: [B, Z] noise.
      train: unused (batch statistics are always the batch's; kept for the call convention).
      ref_size: with ``norm="batch"``, take the statistics from the first ``ref_size`` rows.

    Returns:
      [B, H, W, C] images in [-1, 1].
    """
    del train
    _check_norm(self.norm, "DCGANGenerator")
    n = _num_stages(self.out_shape, self.base_size, "DCGANGenerator")
    h, _, c = self.out_shape
    b = z.shape[0]
    width = self.ch * 2 ** (n - 1)
    x = nn.Dense(self.base_size * self.base_size * width, kernel_init=_dcgan_init(),
                 dtype=self.dtype, name="project")(z.reshape(b, -1).astype(self.dtype))
    x = x.reshape(b, self.base_size, self.base_size, width)
    x = nn.relu(_Norm(self.norm, name="norm_project")(x, ref_size))
    for i in range(n - 1):
      x = nn.ConvTranspose(self.ch * 2 ** (n - 2 - i), (4, 4), strides=(2, 2), padding="SAME",
                           kernel_init=_dcgan_init(), dtype=self.dtype, name=f"up_{i}")(x)
      x = nn.relu(_Norm(self.norm, name=f"norm_{i}")(x, ref_size))
    x = nn.ConvTranspose(c, (4, 4), strides=(2, 2), padding="SAME", kernel_init=_dcgan_init(),
                         dtype=self.dtype, name="up_out")(x)
    return jnp.tanh(x).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
  """DCGAN discriminator: strided convolutions with LeakyReLU(0.2), then one logit.

  ``x -> Conv 4x4/2 (ch) -> LReLU -> (Conv 4x4/2 (ch 2^i) -> norm -> LReLU) x (n-1) -> flatten
  -> dense(1)``; no normalization on the input layer (Radford et al. 2016 sec. 3).

  Attributes:
    ch: channels of the first layer (doubling with depth).
    base_size: side of the last feature map.
    norm: "batch" (statistics of the batch given), "layer" (per example; use it for WGAN-GP and
      R1) or "none".
    leak: LeakyReLU slope.
    dtype: compute dtype.
  """

  ch: int = 64
  base_size: int = 4
  norm: str = "batch"
  leak: float = 0.2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    """Args: x [B, H, W, C] images; train: unused. Returns: [B] logits (float32)."""
    del train
    _check_norm(self.norm, "DCGANDiscriminator")
    n = _num_stages(x.shape[1:], self.base_size, "DCGANDiscriminator")
    h = x.astype(self.dtype)
    for i in range(n):
      h = nn.Conv(self.ch * 2 ** i, (4, 4), strides=(2, 2), padding="SAME",
                  kernel_init=_dcgan_init(), dtype=self.dtype, name=f"down_{i}")(h)
      if i > 0:
        h = _Norm(self.norm, name=f"norm_{i}")(h)
      h = nn.leaky_relu(h, self.leak)
    h = h.reshape(h.shape[0], -1)
    out = nn.Dense(1, kernel_init=_dcgan_init(), dtype=self.dtype, name="logit")(h)
    return out[:, 0].astype(jnp.float32)
