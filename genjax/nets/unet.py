"""The DDPM U-Net (Ho et al. 2020), as a Flax Linen module.

The architecture is the TF reference's ``diffusion_tf/models/unet.py::model``
(github.com/hojonathanho/diffusion), which improved-diffusion's ``UNetModel`` and
score_sde's ``models/ddpm.py`` mirror: a PixelCNN++-style U-Net of wide-ResNet blocks with
group normalization, a sinusoidal time embedding added inside every residual block, and
single-head self-attention at chosen resolutions and in the middle. Its CIFAR-10
configuration (the defaults, on 32x32x3) has 35,746,307 parameters, the paper's 35.7M.

Additions over the reference, both from improved-diffusion: class conditioning (a label
embedding added to the time embedding) and a configurable output width (``2 * C`` for
learned-variance models). From latent diffusion (Rombach et al. 2022, Sec. 3.3; seed 003
eq. 47-48): with ``context_dim > 0`` the attention at ``attn_resolutions`` and in the middle is
a :class:`~genjax.nets.attention.SpatialTransformer` (Stable Diffusion 1.x's
``Transformer2DModel``: self-attention, cross-attention to ``context``, GEGLU feed-forward),
named ``down_{i}_transformer_{j}``, ``mid_transformer_1``, ``up_{i}_transformer_{j}``. With
``context_dim = 0`` (the default) the network, its parameters and its outputs are the
reference's. Optional, off by default (no parameters, the same outputs): the
noise-conditioning augmentation level of a cascade's super-resolution stage as a second
embedded scalar (``aug_cond``; Ho et al. 2021, Sec. 3.2), and a conditioning vector projected
into the time embedding (``emb_dim``; unCLIP's image embedding, Ramesh et al. 2022, Sec. 2.1).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.attention import SpatialTransformer
from genjax.nets.layers import (AttnBlock, Downsample, GroupNorm, ResBlock, Upsample,
                                _conv, _dense, _norm_kwargs, normal_init,
                                timestep_embedding)

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
    context_dim: width of the cross-attention context (0: no cross-attention, the
      reference U-Net). With it, ``context [B, L, context_dim]`` is required.
    num_heads: attention heads of the transformer blocks (context_dim > 0 only).
    head_dim: width of each head; -1: ``channels // num_heads`` (Stable Diffusion 1.x: 8 heads
      of ``channels / 8``).
    transformer_depth: BasicTransformerBlocks per SpatialTransformer.
    aug_cond: take ``aug_level`` [B], the noise-conditioning augmentation level of a cascaded
      super-resolution stage (Ho et al. 2021, Sec. 3.2), embedded like ``t`` (sinusoid, two
      dense layers ``aug_dense0/1``) and added to the time embedding. False: no parameters.
    emb_dim: width of a conditioning vector ``emb`` [B, emb_dim] projected by a dense layer
      (``emb_proj``) and added to the time embedding (unCLIP's decoder adds the CLIP image
      embedding so, Ramesh et al. 2022, Sec. 2.1). 0: no parameters.
    The options below serve published checkpoints whose layout differs numerically from the
    reference; their defaults are the reference, and :mod:`genjax.pretrained` sets them from a
    checkpoint's config.
    norm_groups: None (:func:`~genjax.nets.layers.num_groups` of each width) or one GroupNorm
      group count for every norm (diffusers' ``norm_num_groups``).
    norm_eps: GroupNorm epsilon (diffusers' ``norm_eps``; the reference's 1e-6).
    downsample_padding: "same" (TF, the reference; diffusers' ``downsample_padding=0``) or
      "symmetric" (one pixel on each side: diffusers' ``downsample_padding=1``).
    attn_head_dim: None (single-head attention, the reference) or the width of each head
      (diffusers' ``attention_head_dim``).
    temb_flip_sin_to_cos: cosines first in the time embedding (diffusers' ``flip_sin_to_cos``).
    temb_freq_shift: the ``s`` of the time embedding's frequencies (diffusers' ``freq_shift``;
      1 in the reference).
    remat: rematerialise each ResBlock and attention block in the backward pass
      (``nn.remat``): the same function and parameter names, less activation memory, more
      compute.

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
  context_dim: int = 0
  num_heads: int = 8
  head_dim: int = -1
  transformer_depth: int = 1

  def _check_context(self, b: int, context: Optional[Array], mask: Optional[Array]) -> None:
    if self.context_dim <= 0:
      if context is not None or mask is not None:
        raise ValueError("UNet: a context was given but context_dim=0 (no cross-attention); "
                         "set context_dim to the context's width, or pass context=None.")
      return
    if context is None or context.ndim != 3 or context.shape[0] != b \
        or context.shape[-1] != self.context_dim:
      raise ValueError(f"UNet: context_dim={self.context_dim} needs context [B={b}, L, "
                       f"{self.context_dim}], got "
                       f"{None if context is None else tuple(context.shape)}.")
    if mask is not None and tuple(mask.shape) != tuple(context.shape[:2]):
      raise ValueError(f"UNet: context_mask must have shape [B, L] = "
                       f"{tuple(context.shape[:2])}, got {tuple(mask.shape)}.")
  aug_cond: bool = False
  emb_dim: int = 0

  def _check_extra(self, b: int, aug_level: Optional[Array], emb: Optional[Array]) -> None:
    """Clear errors for the optional augmentation level and conditioning vector."""
    if self.aug_cond:
      if aug_level is None:
        raise ValueError("UNet: aug_cond=True needs aug_level [B] (the noise-conditioning "
                         "augmentation level; 0 for a clean condition).")
      if aug_level.ndim > 1 or (aug_level.ndim == 1 and aug_level.shape[0] != b):
        raise ValueError(f"UNet: aug_level must be a scalar or have shape [B] = [{b}], got "
                         f"{aug_level.shape}.")
    elif aug_level is not None:
      raise ValueError("UNet: aug_level was given but aug_cond=False; set aug_cond=True.")
    if self.emb_dim:
      if emb is None or emb.shape != (b, self.emb_dim):
        raise ValueError(f"UNet: emb_dim={self.emb_dim} needs emb of shape [B, emb_dim] = "
                         f"[{b}, {self.emb_dim}], got "
                         f"{None if emb is None else emb.shape}.")
    elif emb is not None:
      raise ValueError("UNet: emb was given but emb_dim=0; set emb_dim to its width.")
  norm_groups: Optional[int] = None
  norm_eps: float = 1e-6
  downsample_padding: str = "same"
  attn_head_dim: Optional[int] = None
  temb_flip_sin_to_cos: bool = False
  temb_freq_shift: float = 1.0
  remat: bool = False

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
               train: bool = False, context: Optional[Array] = None,
               context_mask: Optional[Array] = None, aug_level: Optional[Array] = None,
               emb: Optional[Array] = None, down_residuals: Optional[Sequence[Array]] = None,
               mid_residual: Optional[Array] = None, conv_in_residual: Optional[Array] = None,
               encoder_only: bool = False):
    """Predict the noise (or another target) for noisy images ``x`` at times ``t``.

    Args:
      x: [B, H, W, C] noisy images, NHWC; H and W divisible by ``2^(len(ch_mult)-1)``.
      t: [B] or scalar timesteps, int or float, embedded as given. Discrete timesteps are
        zero-based (``t in {0..T-1}``; index t is the paper's step t+1).
      y: [B] int class labels in ``{0..num_classes}`` (``num_classes`` = no label); must
        be given iff ``num_classes > 0``.
      train: enable dropout (needs ``rngs={"dropout": key}`` in ``apply``).
      context: [B, L, context_dim] cross-attention context (``context_dim > 0`` only).
      context_mask: [B, L], 1 for real tokens, 0 for padding (optional).
      aug_level: [B] or scalar augmentation levels; given iff ``aug_cond``.
      emb: [B, emb_dim] conditioning vectors; given iff ``emb_dim > 0``.
      down_residuals: optional residuals added to the skip activations (one per skip, in the
        order the down path makes them: ``conv_in``, each down ResBlock, each Downsample), as a
        ControlNet's zero convolutions give them (:class:`genjax.nets.controlnet.ControlNet`).
      mid_residual: optional residual added to the middle block's output.
      conv_in_residual: optional [B, H, W, ch] added to ``conv_in``'s output (a ControlNet's
        encoded control map, ``x + Z(c)`` of its eq. 50).
      encoder_only: stop after the middle block and return ``(skips, middle output)``: a list
        of the skip activations and the [B, h, w, c] middle output (a ControlNet's trainable
        copy; the up path and the output layers are then not built).
      Without them the network is exactly the plain U-Net.

    Returns:
      [B, H, W, out_channels or C], in x's dtype.
    """
    x = jnp.asarray(x)
    t = jnp.asarray(t)
    y = None if y is None else jnp.asarray(y)
    self._check_inputs(x, t, y)
    context = None if context is None else jnp.asarray(context)
    context_mask = None if context_mask is None else jnp.asarray(context_mask)
    self._check_context(x.shape[0], context, context_mask)
    b, _, _, c_in = x.shape
    aug_level = None if aug_level is None else jnp.asarray(aug_level)
    self._check_extra(b, aug_level, emb)
    t = jnp.reshape(t, (-1,))  # a scalar t (one per sampler step) is embedded once
    dt = self.dtype
    num_levels = len(self.ch_mult)

    # 1. Time (and class) embedding.
    if self.temb_flip_sin_to_cos or self.temb_freq_shift != 1.0:
      temb = timestep_embedding(t, self.ch, flip_sin_to_cos=self.temb_flip_sin_to_cos,
                                freq_shift=self.temb_freq_shift)
    else:
      temb = timestep_embedding(t, self.ch)
    temb = _dense(4 * self.ch, dtype=dt, name="temb_dense0")(temb)
    temb = _dense(4 * self.ch, dtype=dt, name="temb_dense1")(nn.silu(temb))
    if self.num_classes > 0:
      temb = temb + nn.Embed(self.num_classes + 1, 4 * self.ch, dtype=dt,
                             param_dtype=jnp.float32, embedding_init=normal_init(1.0),
                             name="label_emb")(y)
    if self.aug_cond:  # Ho et al. 2021, Sec. 3.2: the level s as a second embedded scalar
      aemb = timestep_embedding(jnp.reshape(aug_level, (-1,)), self.ch)
      aemb = _dense(4 * self.ch, dtype=dt, name="aug_dense0")(aemb)
      temb = temb + _dense(4 * self.ch, dtype=dt, name="aug_dense1")(nn.silu(aemb))
    if self.emb_dim:
      temb = temb + _dense(4 * self.ch, dtype=dt, name="emb_proj")(jnp.asarray(emb).astype(dt))

    norm = {} if self.norm_groups is None else {"norm_groups": self.norm_groups}
    if self.norm_eps != 1e-6:
      norm["norm_eps"] = self.norm_eps
    attn_kw = dict(norm, **({} if self.attn_head_dim is None else {"head_dim": self.attn_head_dim}))
    down_kw = {} if self.downsample_padding == "same" else {"padding": self.downsample_padding}

    # nn.remat keeps the block's parameter names; `train` (argument 3, after self) is static.
    Res = nn.remat(ResBlock, static_argnums=(3,)) if self.remat else ResBlock
    Attn = nn.remat(AttnBlock) if self.remat else AttnBlock
    Transformer = nn.remat(SpatialTransformer) if self.remat else SpatialTransformer

    def attn(h, name):
      """The reference's AttnBlock, or with a context a SpatialTransformer."""
      if self.context_dim <= 0:
        return Attn(dtype=dt, name=name.replace("transformer", "attn"), **attn_kw)(h)
      return Transformer(self.num_heads, None if self.head_dim < 0 else self.head_dim,
                         self.transformer_depth, dtype=dt,
                         name=name)(h, context.astype(dt), context_mask)

    def res(h, out_ch, name):
      return Res(out_ch, dropout=self.dropout, dtype=dt, name=name, **norm)(h, temb, train)

    # 2. Downsampling path; hs holds the skip activations.
    hs = [_conv(self.ch, dtype=dt, name="conv_in")(x.astype(dt))]
    if conv_in_residual is not None:
      hs[0] = hs[0] + conv_in_residual.astype(hs[0].dtype)
    for i in range(num_levels):
      for j in range(self.num_res_blocks):
        h = res(hs[-1], self.ch * self.ch_mult[i], f"down_{i}_block_{j}")
        if h.shape[1] in self.attn_resolutions:
          h = attn(h, f"down_{i}_transformer_{j}")
        hs.append(h)
      if i != num_levels - 1:
        hs.append(Downsample(self.resamp_with_conv, dtype=dt, name=f"down_{i}_downsample",
                             **down_kw)(hs[-1]))

    # 3. Middle.
    h = hs[-1]
    if down_residuals is not None:  # ControlNet (Zhang et al. 2023): y_c = F(x) + Z(F_c(...))
      if len(down_residuals) != len(hs):  # on the skips only, as diffusers' UNet2DConditionModel
        raise ValueError(f"UNet: down_residuals must hold one residual per skip ({len(hs)}), "
                         f"got {len(down_residuals)}.")
      hs = [s + r.astype(s.dtype) for s, r in zip(hs, down_residuals)]
    h = res(h, None, "mid_block_1")
    h = attn(h, "mid_transformer_1")
    h = res(h, None, "mid_block_2")
    if encoder_only:
      return hs, h
    if mid_residual is not None:
      h = h + mid_residual.astype(h.dtype)

    # 4. Upsampling path, consuming the skips in reverse.
    for i in reversed(range(num_levels)):
      for j in range(self.num_res_blocks + 1):
        h = res(jnp.concatenate([h, hs.pop()], axis=-1), self.ch * self.ch_mult[i],
                f"up_{i}_block_{j}")
        if h.shape[1] in self.attn_resolutions:
          h = attn(h, f"up_{i}_transformer_{j}")
      if i != 0:
        h = Upsample(self.resamp_with_conv, dtype=dt, name=f"up_{i}_upsample")(h)
    assert not hs

    # 5. Output.
    h = nn.silu(GroupNorm(dtype=dt, name="norm_out",
                          **_norm_kwargs(self.norm_groups, self.norm_eps))(h))
    h = _conv(self.out_channels or c_in, zero=True, dtype=dt, name="conv_out")(h)
    return h.astype(x.dtype)
