"""First-stage autoencoders of latent diffusion (Rombach et al. 2022, Sec. 3.1; Esser et al.
2021, VQGAN), as Flax Linen modules.

The topology is the one of taming-transformers' / latent-diffusion's
``ldm/modules/diffusionmodules/model.py::Encoder`` / ``Decoder`` (which diffusers'
``AutoencoderKL`` and ``VQModel`` re-implement):

* :class:`Encoder`: ``conv_in`` (3x3 to ``ch``); per level ``i`` ``num_res_blocks``
  :class:`ResnetBlock` s (no time embedding) to ``ch * ch_mult[i]`` channels, each followed by a
  single-head :class:`~genjax.nets.layers.AttnBlock` when the current height is in
  ``attn_resolutions``, then a stride-2 :class:`~genjax.nets.layers.Downsample` except at the
  last level; middle ResnetBlock - AttnBlock - ResnetBlock; ``norm_out``, swish, ``conv_out``
  to ``2 * z_channels`` (KL: mean and log-variance) or ``z_channels`` (VQ).
* :class:`Decoder`: ``conv_in`` from ``z_channels`` to ``ch * ch_mult[-1]``; the middle; per
  level (from the lowest resolution up) ``num_res_blocks + 1`` ResnetBlocks with attention as
  above and an :class:`~genjax.nets.layers.Upsample` except at level 0; ``norm_out``, swish,
  ``conv_out`` to the image channels.
* :class:`FirstStage`: the encoder, ``quant_conv`` (1x1, ``2 z -> 2 embed_dim`` for KL,
  ``z -> embed_dim`` for VQ), for VQ a codebook ``quantize/embedding [num_codes, embed_dim]``,
  ``post_quant_conv`` (1x1, ``embed_dim -> z``) and the decoder. The downsampling factor is
  ``f = 2^(len(ch_mult) - 1)``.

Parameter names (``encoder/down_{i}_block_{j}/{norm1,conv1,norm2,conv2,nin_shortcut}``,
``encoder/down_{i}_downsample/conv``, ``encoder/mid_block_1``, ``encoder/mid_attn_1/{norm,q,k,
v,proj_out}``, ``decoder/up_{i}_block_{j}``, ``decoder/up_{i}_upsample/conv``, ``norm_out``,
``conv_out``, ``quant_conv``, ``post_quant_conv``) follow taming's scopes with ``.`` as ``_``;
``i`` is the resolution level (taming's ``up[i]``; diffusers' ``up_blocks[L - 1 - i]``).
GroupNorm has 32 groups for the reference widths (fewer for narrow layers,
:func:`~genjax.nets.layers.num_groups`) and eps 1e-6, as the reference.

:class:`PatchDiscriminator` is pix2pix's ``NLayerDiscriminator`` (Isola et al. 2017), the
PatchGAN of VQGAN, with GroupNorm in place of BatchNorm so that it keeps no running statistics.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import AttnBlock, Downsample, GroupNorm, Upsample, _conv, _dense
from genjax.nets.layers import Dropout

Array = jax.Array


class ResnetBlock(nn.Module):
  """taming's ``ResnetBlock`` without a time embedding:
  ``x + conv2(dropout(swish(norm2(conv1(swish(norm1(x)))))))``, with a 1x1 ``nin_shortcut``
  when the channel count changes."""

  out_ch: Optional[int] = None
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    """Args: x [B, H, W, C]. Returns: [B, H, W, out_ch]."""
    c = x.shape[-1]
    out = self.out_ch or c
    h = _conv(out, dtype=self.dtype, name="conv1")(nn.swish(GroupNorm(dtype=self.dtype,
                                                                       name="norm1")(x)))
    h = nn.swish(GroupNorm(dtype=self.dtype, name="norm2")(h))
    h = Dropout(self.dropout)(h, deterministic=not train)
    h = _conv(out, dtype=self.dtype, name="conv2")(h)
    if c != out:
      x = _dense(out, dtype=self.dtype, name="nin_shortcut")(x)
    return x.astype(h.dtype) + h


class Encoder(nn.Module):
  """taming's ``Encoder``: ``[B, H, W, C] -> [B, H/f, W/f, out_channels]``."""

  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 4, 4)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = ()
  out_channels: int = 8
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    dt = self.dtype
    h = _conv(self.ch, dtype=dt, name="conv_in")(x.astype(dt))
    for i, mult in enumerate(self.ch_mult):
      for j in range(self.num_res_blocks):
        h = ResnetBlock(self.ch * mult, self.dropout, dt, name=f"down_{i}_block_{j}")(h, train)
        if h.shape[1] in self.attn_resolutions:
          h = AttnBlock(dtype=dt, name=f"down_{i}_attn_{j}")(h)
      if i != len(self.ch_mult) - 1:
        h = Downsample(True, dtype=dt, name=f"down_{i}_downsample")(h)
    h = ResnetBlock(None, self.dropout, dt, name="mid_block_1")(h, train)
    h = AttnBlock(dtype=dt, name="mid_attn_1")(h)
    h = ResnetBlock(None, self.dropout, dt, name="mid_block_2")(h, train)
    h = nn.swish(GroupNorm(dtype=dt, name="norm_out")(h))
    return _conv(self.out_channels, dtype=dt, name="conv_out")(h)


class Decoder(nn.Module):
  """taming's ``Decoder``: ``[B, h, w, z_channels] -> [B, h f, w f, out_channels]``."""

  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 4, 4)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = ()
  out_channels: int = 3
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: Array, train: bool = False) -> Array:
    dt = self.dtype
    h = _conv(self.ch * self.ch_mult[-1], dtype=dt, name="conv_in")(z.astype(dt))
    h = ResnetBlock(None, self.dropout, dt, name="mid_block_1")(h, train)
    h = AttnBlock(dtype=dt, name="mid_attn_1")(h)
    h = ResnetBlock(None, self.dropout, dt, name="mid_block_2")(h, train)
    for i in reversed(range(len(self.ch_mult))):
      for j in range(self.num_res_blocks + 1):
        h = ResnetBlock(self.ch * self.ch_mult[i], self.dropout, dt,
                        name=f"up_{i}_block_{j}")(h, train)
        if h.shape[1] in self.attn_resolutions:
          h = AttnBlock(dtype=dt, name=f"up_{i}_attn_{j}")(h)
      if i != 0:
        h = Upsample(True, dtype=dt, name=f"up_{i}_upsample")(h)
    h = nn.swish(GroupNorm(dtype=dt, name="norm_out")(h))
    return _conv(self.out_channels, dtype=dt, name="conv_out")(h)


REGULARIZERS = ("kl", "vq")


class FirstStage(nn.Module):
  """A KL- or VQ-regularized autoencoder (LDM's ``AutoencoderKL`` / taming's ``VQModel``).

  Call it with ``method=``: :meth:`encode` (``x -> moments`` for KL, ``x -> h`` before
  quantization for VQ), :meth:`decode` (a latent of ``embed_dim`` channels -> image; for VQ the
  quantization is not inside: the method quantizes with the codebook :meth:`codebook` first) and
  ``__call__`` (encode + decode of the mean / unquantized latent, for ``init``).

  Attributes:
    ch, ch_mult, num_res_blocks, attn_resolutions, dropout: as :class:`Encoder` (f = 2^(L-1)).
    z_channels: channels between the encoder / decoder and the 1x1 convs.
    embed_dim: latent channels (what the diffusion model sees).
    out_channels: image channels.
    regularizer: "kl" or "vq".
    num_codes: VQ codebook size K.
    dtype: compute dtype.

  Example:
    >>> net = FirstStage(ch=32, ch_mult=(1, 2), z_channels=4, embed_dim=4, out_channels=1)
    >>> params = net.init(jax.random.key(0), jnp.zeros([1, 8, 8, 1]))["params"]
    >>> net.apply({"params": params}, jnp.zeros([2, 8, 8, 1]), method="encode").shape
    (2, 4, 4, 8)
  """

  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 4, 4)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = ()
  z_channels: int = 4
  embed_dim: int = 4
  out_channels: int = 3
  regularizer: str = "kl"
  num_codes: int = 256
  dropout: float = 0.0
  dtype: Any = jnp.float32

  def setup(self):
    if self.regularizer not in REGULARIZERS:
      raise ValueError(f"FirstStage: regularizer must be 'kl' or 'vq', got {self.regularizer!r}.")
    kl = self.regularizer == "kl"
    common = dict(ch=self.ch, ch_mult=tuple(self.ch_mult), num_res_blocks=self.num_res_blocks,
                  attn_resolutions=tuple(self.attn_resolutions), dropout=self.dropout,
                  dtype=self.dtype)
    self.encoder = Encoder(out_channels=(2 if kl else 1) * self.z_channels, **common)
    self.decoder = Decoder(out_channels=self.out_channels, **common)
    self.quant_conv = _dense((2 if kl else 1) * self.embed_dim, dtype=self.dtype)
    self.post_quant_conv = _dense(self.z_channels, dtype=self.dtype)
    if not kl:
      k = self.num_codes
      self.quantize = nn.Embed(k, self.embed_dim, embedding_init=nn.initializers.uniform(2.0 / k),
                               param_dtype=jnp.float32)

  @property
  def factor(self) -> int:
    """The downsampling factor f."""
    return 2 ** (len(self.ch_mult) - 1)

  def encode(self, x: Array, train: bool = False) -> Array:
    """[B, H, W, C] -> KL: moments [B, H/f, W/f, 2 embed_dim] (mean, log-variance);
    VQ: [B, H/f, W/f, embed_dim] before quantization."""
    return self.quant_conv(self.encoder(x, train))

  def decode(self, z: Array, train: bool = False) -> Array:
    """[B, h, w, embed_dim] (quantized for VQ) -> [B, h f, w f, out_channels]."""
    return self.decoder(self.post_quant_conv(z), train)

  def codebook(self) -> Array:
    """The VQ codebook [num_codes, embed_dim]."""
    return self.quantize.embedding

  def __call__(self, x: Array, train: bool = False) -> Array:
    h = self.encode(x, train)
    if self.regularizer == "kl":
      h = h[..., :self.embed_dim]
    else:
      h = h + 0.0 * jnp.sum(self.codebook())  # creates the codebook at init
    return self.decode(h, train)


class PatchDiscriminator(nn.Module):
  """PatchGAN (pix2pix's ``NLayerDiscriminator``; VQGAN's discriminator): one real/fake logit per
  overlapping patch.

  ``conv4x4/2 (ndf) - lrelu``; for ``n = 1..n_layers-1`` ``conv4x4/2 (ndf min(2^n, 8)) - norm -
  lrelu``; ``conv4x4/1 (ndf min(2^n_layers, 8)) - norm - lrelu``; ``conv4x4/1 (1)``. Weights
  N(0, 0.02) as the reference's ``weights_init``; GroupNorm instead of BatchNorm (no running
  statistics, so a pure function of its params).

  Attributes:
    ndf: base width.
    n_layers: stride-2 convs (3 for 256x256 in VQGAN; 1-2 for 8x8-32x32 images).
  """

  ndf: int = 64
  n_layers: int = 3

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Args: x [B, H, W, C] in [-1, 1]. Returns: [B, h, w] patch logits."""
    init = nn.initializers.normal(0.02)
    conv = lambda f, s, name: nn.Conv(f, (4, 4), (s, s), padding=((1, 1), (1, 1)),
                                      kernel_init=init, name=name)
    h = nn.leaky_relu(conv(self.ndf, 2, "conv_0")(x), 0.2)
    for n in range(1, self.n_layers + 1):
      stride = 2 if n < self.n_layers else 1
      h = conv(self.ndf * min(2 ** n, 8), stride, f"conv_{n}")(h)
      h = nn.leaky_relu(GroupNorm(name=f"norm_{n}")(h), 0.2)
    return conv(1, 1, "conv_out")(h)[..., 0]
