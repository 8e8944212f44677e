"""ControlNet (Zhang et al. 2023, "Adding Conditional Control to Text-to-Image Diffusion
Models"), as a Flax Linen module beside the DDPM U-Net.

For a network block ``F_theta`` ControlNet freezes ``theta``, clones it into a trainable copy
``theta_c`` and joins the two through convolutions initialised to zero (the paper's eq. 1-2;
seed 003 eq. 50):

    y_c = F(x; theta) + Z(F(x + Z(c; theta_z1); theta_c); theta_z2).

Here the block is the U-Net's whole encoder and middle block, as in the paper's Stable
Diffusion ControlNet (its Fig. 3) and diffusers' ``ControlNetModel``: :class:`ControlNet`
repeats the :class:`~genjax.nets.unet.UNet`'s time embedding, ``conv_in``, down path and middle
block under the same parameter names (so that :func:`init_from_base` copies the base's weights
into it), adds a small condition encoder for the control map whose last convolution is ``Z(c;
theta_z1)`` (zero-initialised, added after ``conv_in``), and returns one 1x1 zero convolution of
every skip activation and one of the middle block's output. The base U-Net adds them through its
``down_residuals`` / ``mid_residual`` arguments. Because every ``Z`` starts at zero, ControlNet
+ base equals the base exactly at initialisation, whatever the condition; the zero convolutions'
own gradients (input features times the upstream gradient) are not zero, so training moves
them first.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import AttnBlock, Downsample, ResBlock, _conv, _dense, normal_init, \
    timestep_embedding
from genjax.nets.unet import UNet

Array = jax.Array

# The parameter collections ControlNet shares with the U-Net (copied by init_from_base).
_SHARED_PREFIXES = ("temb_dense", "label_emb", "conv_in", "down_", "mid_")


class ControlNet(UNet):
  """The trainable copy of a :class:`UNet`'s encoder and middle block, with zero convolutions.

  Attributes:
    (every UNet attribute): must equal the base U-Net's, so that the copy has its shapes.
    hint_channels: widths of the condition encoder's conv layers (diffusers'
      ``conditioning_embedding_out_channels``: (16, 32, 96, 256) for Stable Diffusion).
    hint_downsample: the factor by which the condition encoder downsamples the control map (a
      power of two; 1 for a pixel-space base whose control map has the image's size, 8 for a
      latent base with a first stage of factor 8). Needs ``log2(factor) < len(hint_channels)``.

  Call: ``downs, mid = controlnet.apply({"params": p}, x, t, y, control=c)`` with ``c`` a
  control map ``[B, H * f, W * f, C_c]`` for ``x`` of ``[B, H, W, C]``; ``downs`` holds one
  residual per skip (in the order the U-Net makes them) and ``mid`` the middle residual.
  """

  hint_channels: Sequence[int] = (16, 32)
  hint_downsample: int = 1

  def _hint(self, control: Array) -> Array:
    """The condition encoder (diffusers' ``ControlNetConditioningEmbedding``): conv-SiLU pairs,
    stride 2 where it downsamples, then the zero convolution Z(c; theta_z1) to ``ch``."""
    dt = self.dtype
    n_down = int(round(math.log2(self.hint_downsample)))
    chans = list(self.hint_channels)
    h = nn.silu(_conv(chans[0], dtype=dt, name="hint_conv_in")(control.astype(dt)))
    for i in range(len(chans) - 1):
      h = nn.silu(_conv(chans[i], dtype=dt, name=f"hint_block_{i}_a")(h))
      h = nn.silu(_conv(chans[i + 1], stride=2 if i < n_down else 1, dtype=dt,
                        name=f"hint_block_{i}_b")(h))
    return _conv(self.ch, zero=True, dtype=dt, name="hint_conv_out")(h)

  def _check_control(self, x: Array, control: Array) -> None:
    f = self.hint_downsample
    if f < 1 or f & (f - 1) or int(round(math.log2(f))) >= len(self.hint_channels):
      raise ValueError(f"ControlNet: hint_downsample={f} must be a power of two below "
                       f"2^len(hint_channels) = {2 ** len(self.hint_channels)}.")
    if control.ndim != 4 or control.shape[0] != x.shape[0] or \
        tuple(control.shape[1:3]) != (x.shape[1] * f, x.shape[2] * f):
      raise ValueError(
          f"ControlNet: the control map must be [B, H*{f}, W*{f}, C] = [{x.shape[0]}, "
          f"{x.shape[1] * f}, {x.shape[2] * f}, C] for x of shape {tuple(x.shape)}, got "
          f"{tuple(control.shape)}.")

  @nn.compact
  def __call__(self, x: Array, t: Array, y: Optional[Array] = None, train: bool = False,
               control: Optional[Array] = None):
    """The residuals ControlNet adds to the base U-Net for noisy ``x`` at ``t`` and ``control``.

    Args:
      x: [B, H, W, C] noisy inputs (the base U-Net's).
      t: [B] or scalar timesteps, as the base takes them.
      y: [B] labels iff ``num_classes > 0`` (the base's).
      train: dropout in the trainable copy's ResBlocks.
      control: [B, H * hint_downsample, W * hint_downsample, C_c] control map.

    Returns:
      ``(downs, mid)``: a list of [B, h_k, w_k, c_k] residuals, one per skip activation, and
      the [B, h, w, c] middle residual, in the compute dtype.
    """
    if control is None:
      raise ValueError("ControlNet needs a control map (control=[B, H, W, C]).")
    x = jnp.asarray(x)
    t = jnp.asarray(t)
    control = jnp.asarray(control)
    y = None if y is None else jnp.asarray(y)
    self._check_inputs(x, t, y)
    self._check_control(x, control)
    t = jnp.reshape(t, (-1,))
    dt = self.dtype
    num_levels = len(self.ch_mult)

    # 1. Time (and class) embedding: the copy of the base's.
    temb = timestep_embedding(t, self.ch)
    temb = _dense(4 * self.ch, dtype=dt, name="temb_dense0")(temb)
    temb = _dense(4 * self.ch, dtype=dt, name="temb_dense1")(nn.silu(temb))
    if self.num_classes > 0:
      temb = temb + nn.Embed(self.num_classes + 1, 4 * self.ch, dtype=dt,
                             param_dtype=jnp.float32, embedding_init=normal_init(1.0),
                             name="label_emb")(y)

    def res(h, out_ch, name):
      return ResBlock(out_ch, dropout=self.dropout, dtype=dt, name=name)(h, temb, train)

    # 2. x + Z(c; theta_z1) after conv_in, then the copied down path.
    h = _conv(self.ch, dtype=dt, name="conv_in")(x.astype(dt)) + self._hint(control)
    hs = [h]
    for i in range(num_levels):
      for j in range(self.num_res_blocks):
        h = res(hs[-1], self.ch * self.ch_mult[i], f"down_{i}_block_{j}")
        if h.shape[1] in self.attn_resolutions:
          h = AttnBlock(dtype=dt, name=f"down_{i}_attn_{j}")(h)
        hs.append(h)
      if i != num_levels - 1:
        hs.append(Downsample(self.resamp_with_conv, dtype=dt, name=f"down_{i}_downsample")(hs[-1]))

    # 3. The copied middle block.
    h = res(hs[-1], None, "mid_block_1")
    h = AttnBlock(dtype=dt, name="mid_attn_1")(h)
    h = res(h, None, "mid_block_2")

    # 4. Z(.; theta_z2): one 1x1 zero convolution per skip and one for the middle.
    downs = [_conv(s.shape[-1], kernel=1, zero=True, dtype=dt, name=f"zero_conv_{k}")(s)
             for k, s in enumerate(hs)]
    mid = _conv(h.shape[-1], kernel=1, zero=True, dtype=dt, name="zero_conv_mid")(h)
    return downs, mid


def controlnet_like(unet: UNet, hint_channels: Sequence[int] = (16, 32),
                    hint_downsample: int = 1) -> ControlNet:
  """The :class:`ControlNet` whose trainable copy has ``unet``'s architecture."""
  import dataclasses
  fields = {f.name: getattr(unet, f.name) for f in dataclasses.fields(UNet)
            if f.name not in ("parent", "name")}
  return ControlNet(**fields, hint_channels=tuple(hint_channels), hint_downsample=hint_downsample)


def is_shared(name: str) -> bool:
  """Whether the top-level parameter collection ``name`` is a copy of the base's."""
  return name.startswith(_SHARED_PREFIXES)


def init_from_base(control_params, base_params):
  """ControlNet's parameters with the trainable copy set to the base U-Net's weights.

  Every top-level collection ControlNet shares with the base (time embedding, label embedding,
  ``conv_in``, the down path and the middle block) is taken from ``base_params``; the
  condition encoder and the zero convolutions keep their initialisation (the zero convs: 0).

  Raises:
    ValueError: the base lacks a collection or has other shapes (another architecture).
  """
  out = dict(control_params)
  for name, sub in control_params.items():
    if not is_shared(name):
      continue
    if name not in base_params:
      raise ValueError(f"init_from_base: the base U-Net has no parameters {name!r}; the "
                       "ControlNet's architecture must be the base's.")
    got = jax.tree.map(jnp.shape, base_params[name])
    want = jax.tree.map(jnp.shape, sub)
    if got != want:
      raise ValueError(f"init_from_base: {name!r} has shapes {got} in the base but {want} in "
                       "the ControlNet; the ControlNet's architecture must be the base's.")
    out[name] = jax.tree.map(jnp.asarray, base_params[name])
  return out
