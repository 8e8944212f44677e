"""Building blocks of the DDPM U-Net (Ho et al. 2020), as Flax Linen modules.

The blocks mirror the TF reference ``diffusion_tf/models/unet.py`` of Ho et al.
(github.com/hojonathanho/diffusion), which improved-diffusion's ``unet.py`` and
score_sde's ``models/ddpm.py`` also follow. Parameter names follow the reference
(``norm1``, ``conv1``, ``temb_proj``, ``norm2``, ``conv2``, ``nin_shortcut``; ``q``, ``k``,
``v``, ``proj_out``), so a reference checkpoint maps onto them by renaming scopes only.

Initialization (the DDPM reference's, ``diffusion_tf/nn.py::default_init``): every kernel
is ``variance_scaling(1, "fan_avg", "uniform")`` and every bias zero, except the last
layer of each residual branch, which starts at exactly zero: ``conv2`` of a
:class:`ResBlock` and ``proj_out`` of an :class:`AttnBlock` (and ``conv_out`` of the
U-Net). The reference uses scale 1e-10 there; improved-diffusion's ``zero_module`` uses
exact zeros, and so do we. Every residual block is therefore the identity at
initialization, and a freshly initialized U-Net outputs zeros.

All modules take NHWC inputs. ``dtype`` is the compute dtype; parameters are always
float32 (``param_dtype``), so ``dtype=jnp.bfloat16`` gives mixed precision. Normalization
statistics and the attention softmax are computed in float32 whatever ``dtype`` is.

CPU compile time: random draws (initializers, dropout masks) are made flat and reshaped,
because XLA on CPU compiles threefry over N-D shapes several times slower (see
:func:`variance_scaling`, :class:`Dropout`).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any


def variance_scaling(scale: float, mode: str, distribution: str):
  """``jax.nn.initializers.variance_scaling`` (default axes), drawn as one flat vector.

  Same distribution as JAX's initializer (not the same numbers for a given key): kernels
  of shape ``[..., fan_in, fan_out]`` with receptive field ``prod(shape[:-2])``. Drawing
  ``prod(shape)`` values and reshaping, instead of drawing the N-D shape, makes XLA on CPU
  compile the random-number generator several times faster under JAX's default
  ``jax_threefry_partitionable=True`` (about 3.5x for 4-D conv kernels); a U-Net init
  has a hundred of them.

  Args:
    scale: variance scale (1.0 for the DDPM reference).
    mode: "fan_in", "fan_out" or "fan_avg".
    distribution: "uniform", "normal" or "truncated_normal".

  Returns:
    ``init(key, shape, dtype=float32) -> Array``.
  """
  if mode not in ("fan_in", "fan_out", "fan_avg"):
    raise ValueError(f"variance_scaling: unknown mode {mode!r}; use fan_in, fan_out or fan_avg.")
  if distribution not in ("uniform", "normal", "truncated_normal"):
    raise ValueError(f"variance_scaling: unknown distribution {distribution!r}; use uniform, "
                     "normal or truncated_normal.")

  def init(key, shape, dtype=jnp.float32):
    shape = tuple(shape)
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    fan_in = shape[-2] * receptive if len(shape) > 1 else shape[-1]
    fan_out = shape[-1] * receptive
    denom = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, denom)
    n = (math.prod(shape),)
    if distribution == "uniform":
      limit = math.sqrt(3.0 * variance)
      flat = jax.random.uniform(key, n, dtype, -limit, limit)
    elif distribution == "normal":
      flat = math.sqrt(variance) * jax.random.normal(key, n, dtype)
    else:  # truncated to [-2, 2] and rescaled to unit variance, as JAX's.
      flat = (math.sqrt(variance) / .87962566103423978) * jax.random.truncated_normal(
          key, -2.0, 2.0, n, dtype)
    return flat.reshape(shape)

  return init


def normal_init(stddev: float = 1.0):
  """N(0, stddev^2) initializer drawn flat (PyTorch ``nn.Embedding``'s default for 1.0)."""
  def init(key, shape, dtype=jnp.float32):
    return (stddev * jax.random.normal(key, (math.prod(shape),), dtype)).reshape(shape)
  return init


# The DDPM reference initializers (diffusion_tf/nn.py::default_init).
default_init = variance_scaling(1.0, "fan_avg", "uniform")
zeros_init = nn.initializers.zeros


class Dropout(nn.Module):
  """Inverted dropout (``flax.linen.Dropout`` semantics) with a flat random mask.

  Keeps each entry with probability ``1 - rate`` and scales kept entries by
  ``1 / (1 - rate)``. The mask is drawn as one flat vector and reshaped, which compiles
  about 8x faster on CPU than drawing the N-D shape (see :func:`variance_scaling`).
  Uses the ``"dropout"`` rng, only when ``deterministic=False`` and ``rate > 0``.

  Attributes:
    rate: drop probability in [0, 1].
  """

  rate: float

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    """Args: x [...]; deterministic: identity if True. Returns: [...] like x."""
    if deterministic or self.rate == 0.0:
      return x
    if self.rate >= 1.0:
      return jnp.zeros_like(x)
    keep_prob = 1.0 - self.rate
    keep = jax.random.bernoulli(self.make_rng("dropout"), keep_prob, (x.size,)).reshape(x.shape)
    return jnp.where(keep, x / jnp.asarray(keep_prob, x.dtype), jnp.zeros_like(x))


def timestep_embedding(
    t: Array,
    dim: int,
    max_period: float = 10000.0,
    *,
    flip_sin_to_cos: bool = False,
    freq_shift: float = 1.0,
) -> Array:
  """Sinusoidal embedding of (diffusion) time, as in DDPM and the Transformer.

  With ``half = dim // 2`` and ``k = 0..half-1``::

    freq_k = exp(-log(max_period) * k / (half - freq_shift))
    emb    = [sin(t * freq), cos(t * freq)]        (flip_sin_to_cos=False)
             [cos(t * freq), sin(t * freq)]        (flip_sin_to_cos=True)

  followed by one zero column if ``dim`` is odd. The defaults (``freq_shift=1``,
  sine first) are the DDPM reference's ``get_timestep_embedding`` (Ho et al. 2020,
  Sec. 4 / Appendix B, "Transformer sinusoidal position embedding" of Vaswani et al.
  2017, Sec. 3.5, as in tensor2tensor). ``flip_sin_to_cos=True, freq_shift=0`` is
  improved-diffusion's ``timestep_embedding`` (Nichol & Dhariwal 2021). The two
  parameters have the meaning of diffusers' ``get_timestep_embedding``.

  Discrete timesteps are zero-based (``t in {0..T-1}``, index t is the paper's step t+1);
  the value is embedded as given, ints and floats alike. Continuous-time models whose
  ``t`` lies in [eps, 1] should scale it first (score_sde feeds ``999 * t`` for VP SDEs),
  because frequencies as low as ``1 / max_period`` barely move over [0, 1].

  Args:
    t: [...] timesteps, int or float; any batch shape (usually [B]).
    dim: embedding width (>= 2; >= 4 when ``freq_shift=1``).
    max_period: the longest period, in units of ``t``.
    flip_sin_to_cos: put the cosines first.
    freq_shift: the ``s`` in ``k / (half - s)``; 1 for DDPM, 0 for improved-diffusion.

  Returns:
    [..., dim] float32 embedding.

  Example:
    >>> timestep_embedding(jnp.array([0, 10, 999]), 128).shape
    (3, 128)
  """
  half = dim // 2
  if half < 1 or half - freq_shift <= 0:
    raise ValueError(
        f"timestep_embedding: dim={dim} is too small for freq_shift={freq_shift}; "
        f"need dim // 2 > freq_shift (use dim >= 4 for the DDPM default).")
  t = jnp.asarray(t)
  exponent = -math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - freq_shift)
  args = t.astype(jnp.float32)[..., None] * jnp.exp(exponent)
  first, second = (jnp.cos(args), jnp.sin(args)) if flip_sin_to_cos else (jnp.sin(args),
                                                                          jnp.cos(args))
  emb = jnp.concatenate([first, second], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, [(0, 0)] * (emb.ndim - 1) + [(0, 1)])
  return emb


def num_groups(channels: int, max_groups: int = 32, min_group_size: int = 4) -> int:
  """Number of GroupNorm groups for ``channels``: the largest divisor of ``channels`` that is
  at most ``max_groups`` and leaves at least ``min_group_size`` channels per group.

  32 groups for the reference widths (C >= 128), as ``tf.contrib.layers.group_norm`` and
  improved-diffusion's ``GroupNorm32``; fewer for narrow layers, as score_sde's
  ``min(C // 4, 32)``. Groups of a single channel must be avoided: the time embedding
  enters a :class:`ResBlock` as a per-channel shift just before ``norm2``, and a group of
  one channel subtracts exactly that shift, so the block would ignore ``t`` (and ``y``).

  Example: ``num_groups(128) == 32``, ``num_groups(32) == 8``, ``num_groups(16) == 4``,
  ``num_groups(48) == 12``, ``num_groups(3) == 1``.
  """
  if channels < 1:
    raise ValueError(f"num_groups: channels must be positive, got {channels}.")
  for g in range(max(1, min(max_groups, channels // min_group_size)), 0, -1):
    if channels % g == 0:
      return g
  return 1


class GroupNorm(nn.Module):
  """Group normalization (Wu & He 2018) over H, W and the channels of each group.

  The group count is :func:`num_groups` of the channel count: 32 (the DDPM reference's
  ``tf.contrib.layers.group_norm`` default) or, for narrow layers, fewer groups of at
  least ``min_group_size`` channels. Statistics are taken in float32 in one pass
  (``E[x^2] - E[x]^2``), and the normalization and the affine ``scale``/``bias`` are
  folded into a single per-(example, channel) multiply-add, which is what makes this
  cheap under XLA on CPU.

  Attributes:
    max_groups: upper bound on the group count.
    min_group_size: lower bound on the channels per group (when the channels allow).
    epsilon: added to the variance (1e-6 as in the reference).
    dtype: output dtype (None: the input's).
  """

  max_groups: int = 32
  min_group_size: int = 4
  epsilon: float = 1e-6
  dtype: Optional[Dtype] = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Args: x [B, ..., C]. Returns: [B, ..., C] normalized, in ``dtype``."""
    c = x.shape[-1]
    g = num_groups(c, self.max_groups, self.min_group_size)
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    b = x.shape[0]
    xf = x.astype(jnp.float32).reshape(b, -1, g, c // g)
    mean = jnp.mean(xf, axis=(1, 3))  # [B, G]
    mean_sq = jnp.mean(jnp.square(xf), axis=(1, 3))
    var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)
    inv = jax.lax.rsqrt(var + self.epsilon)
    # Per-(example, channel) multiplier and offset: y = x * mul + add.
    mul = jnp.repeat(inv, c // g, axis=-1) * scale  # [B, C]
    add = bias - jnp.repeat(mean, c // g, axis=-1) * mul
    shape = (b,) + (1,) * (x.ndim - 2) + (c,)
    dtype = self.dtype or x.dtype
    y = x.astype(dtype) * mul.reshape(shape).astype(dtype) + add.reshape(shape).astype(dtype)
    return y


def _norm_kwargs(groups: Optional[int], eps: float) -> dict:
  """GroupNorm arguments for a fixed group count and epsilon; ``{}`` (the defaults) when
  ``groups`` is None and ``eps`` is the default 1e-6."""
  kw = {} if eps == 1e-6 else {"epsilon": eps}
  if groups is not None:
    kw.update(max_groups=groups, min_group_size=1)
  return kw


def _conv(features: int, kernel: int = 3, stride: int = 1, *, zero: bool = False,
          dtype: Dtype = jnp.float32, name: Optional[str] = None) -> nn.Conv:
  """A NHWC conv with 'SAME' padding (TF's: the extra row/column of a stride-2 conv is at
  the bottom/right) and the reference initialization."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME",
                 kernel_init=zeros_init if zero else default_init, bias_init=zeros_init,
                 dtype=dtype, param_dtype=jnp.float32, name=name)


def _dense(features: int, *, zero: bool = False, dtype: Dtype = jnp.float32,
           name: Optional[str] = None) -> nn.Dense:
  """A dense (or "network in network" 1x1 conv) layer with the reference initialization."""
  return nn.Dense(features, kernel_init=zeros_init if zero else default_init,
                  bias_init=zeros_init, dtype=dtype, param_dtype=jnp.float32, name=name)


class ResBlock(nn.Module):
  """The DDPM residual block (reference ``resnet_block``).

  ``h = conv1(silu(norm1(x))) + temb_proj(silu(temb))``;
  ``h = conv2(dropout(silu(norm2(h))))`` (``conv2`` zero-initialized);
  returns ``shortcut(x) + h``, where ``shortcut`` is the identity when the channel count is
  unchanged and otherwise a 1x1 conv (``nin_shortcut``), or a 3x3 conv
  (``conv_shortcut``) if ``conv_shortcut=True``.

  Attributes:
    out_ch: output channels (None: same as input).
    dropout: dropout rate before ``conv2``; uses the ``"dropout"`` rng when ``train``.
    conv_shortcut: use a 3x3 instead of a 1x1 conv on the skip path when channels change.
    dtype: compute dtype.
    norm_groups: None (the default: :func:`num_groups` of the width) or a fixed GroupNorm
      group count for every norm of the block (diffusers' ``norm_num_groups``).
    norm_eps: the GroupNorm epsilon (1e-6, the reference's; diffusers' ``norm_eps``).
  """

  out_ch: Optional[int] = None
  dropout: float = 0.0
  conv_shortcut: bool = False
  dtype: Dtype = jnp.float32
  norm_groups: Optional[int] = None
  norm_eps: float = 1e-6

  @nn.compact
  def __call__(self, x: Array, temb: Array, train: bool = False) -> Array:
    """Args: x [B, H, W, C]; temb [B, D] time (and class) embedding; train enables dropout.

    Returns: [B, H, W, out_ch].
    """
    c = x.shape[-1]
    out_ch = self.out_ch or c
    norm = _norm_kwargs(self.norm_groups, self.norm_eps)
    h = nn.silu(GroupNorm(dtype=self.dtype, name="norm1", **norm)(x))
    h = _conv(out_ch, dtype=self.dtype, name="conv1")(h)
    h = h + _dense(out_ch, dtype=self.dtype, name="temb_proj")(nn.silu(temb))[:, None, None, :]
    h = nn.silu(GroupNorm(dtype=self.dtype, name="norm2", **norm)(h))
    h = Dropout(self.dropout)(h, deterministic=not train)
    h = _conv(out_ch, zero=True, dtype=self.dtype, name="conv2")(h)
    if c != out_ch:
      if self.conv_shortcut:
        x = _conv(out_ch, dtype=self.dtype, name="conv_shortcut")(x)
      else:
        x = _dense(out_ch, dtype=self.dtype, name="nin_shortcut")(x)
    return x.astype(h.dtype) + h


class AttnBlock(nn.Module):
  """Single-head self-attention over the H*W positions (reference ``attn_block``).

  ``h = norm(x)``; ``q, k, v`` are 1x1 projections of ``h``;
  ``w = softmax(q k^T / sqrt(C))`` over the H*W keys; returns
  ``x + proj_out(w v)`` with ``proj_out`` zero-initialized (Ho et al. 2020, Appendix B;
  the self-attention of Wang et al. 2018 / SAGAN with a residual connection).

  With ``head_dim`` set, the same projections are split into ``C / head_dim`` heads, each with
  its own softmax scaled by ``head_dim^-1/2`` (diffusers' ``UNet2DModel`` with an
  ``attention_head_dim``); the parameters are the same.

  Attributes:
    dtype: compute dtype (the logits and softmax are float32).
    norm_groups: None (:func:`num_groups` of the width) or a fixed GroupNorm group count.
    norm_eps: the GroupNorm epsilon.
    head_dim: None (one head of width C, the reference) or the width of each head.
  """

  dtype: Dtype = jnp.float32
  norm_groups: Optional[int] = None
  norm_eps: float = 1e-6
  head_dim: Optional[int] = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Args: x [B, H, W, C]. Returns: [B, H, W, C]."""
    b, hh, ww, c = x.shape
    h = GroupNorm(dtype=self.dtype, name="norm", **_norm_kwargs(self.norm_groups, self.norm_eps))(x)
    q = _dense(c, dtype=self.dtype, name="q")(h).reshape(b, hh * ww, c)
    k = _dense(c, dtype=self.dtype, name="k")(h).reshape(b, hh * ww, c)
    v = _dense(c, dtype=self.dtype, name="v")(h).reshape(b, hh * ww, c)
    if self.head_dim is None or self.head_dim == c:
      logits = jnp.einsum("bqc,bkc->bqk", q, k, preferred_element_type=jnp.float32)
      w = jax.nn.softmax(logits * (c ** -0.5), axis=-1).astype(self.dtype)
      h = jnp.einsum("bqk,bkc->bqc", w, v).reshape(b, hh, ww, c)
    else:
      if c % self.head_dim:
        raise ValueError(f"AttnBlock: width {c} is not divisible by head_dim {self.head_dim}.")
      nh = c // self.head_dim
      q, k, v = (a.reshape(b, hh * ww, nh, self.head_dim) for a in (q, k, v))
      logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
      w = jax.nn.softmax(logits * (self.head_dim ** -0.5), axis=-1).astype(self.dtype)
      h = jnp.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, hh, ww, c)
    h = _dense(c, zero=True, dtype=self.dtype, name="proj_out")(h)
    return x.astype(h.dtype) + h


class Downsample(nn.Module):
  """Halve H and W: a stride-2 3x3 conv (``with_conv``) or 2x2 average pooling.

  The conv pads like TF's 'SAME' (one extra row/column at the bottom/right), as in the
  DDPM reference (and diffusers' ``downsample_padding=0``); ``padding="symmetric"`` pads one
  on each side, as improved-diffusion and diffusers' default ``downsample_padding=1``.

  Attributes:
    with_conv: conv (True) or average pooling (False).
    dtype: compute dtype.
    padding: "same" (TF) or "symmetric" (PyTorch ``padding=1``) for the conv.
  """

  with_conv: bool = True
  dtype: Dtype = jnp.float32
  padding: str = "same"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Args: x [B, H, W, C], H and W even. Returns: [B, H/2, W/2, C]."""
    if self.with_conv:
      if self.padding == "symmetric":
        return nn.Conv(x.shape[-1], (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                       kernel_init=default_init, bias_init=zeros_init, dtype=self.dtype,
                       param_dtype=jnp.float32, name="conv")(x)
      if self.padding != "same":
        raise ValueError(
            f"Downsample: padding must be 'same' or 'symmetric', got {self.padding!r}.")
      return _conv(x.shape[-1], stride=2, dtype=self.dtype, name="conv")(x)
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class Upsample(nn.Module):
  """Double H and W by nearest-neighbour repetition, then (``with_conv``) a 3x3 conv.

  Attributes:
    with_conv: follow the repetition with a conv.
    dtype: compute dtype.
  """

  with_conv: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Args: x [B, H, W, C]. Returns: [B, 2H, 2W, C]."""
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)
    if self.with_conv:
      x = _conv(c, dtype=self.dtype, name="conv")(x)
    return x
