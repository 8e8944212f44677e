"""ControlNet (Zhang et al. 2023, "Adding Conditional Control to Text-to-Image Diffusion
Models"), as a Flax Linen module beside the DDPM U-Net.

For a network block ``F_theta`` ControlNet freezes ``theta``, clones it into a trainable copy
``theta_c`` and joins the two through convolutions initialised to zero (the paper's eq. 1-2;
seed 003 eq. 50):

    y_c = F(x; theta) + Z(F(x + Z(c; theta_z1); theta_c); theta_z2).

Here the block is the U-Net's whole encoder and middle block, as in the paper's Stable
Diffusion ControlNet (its Fig. 3) and diffusers' ``ControlNetModel``: :class:`ControlNet`
runs the base :class:`~genjax.nets.unet.UNet` itself as its trainable copy
(``encoder_only=True``: time, label, text and other embeddings, ``conv_in``, down path and
middle block, under the base's parameter names in ``params["trainable_copy"]``, so that
:func:`init_from_base` copies the base's weights into it and every option of the base, e.g.
cross-attention, is copied too), adds a small condition encoder for the control map whose last
convolution is ``Z(c; theta_z1)`` (zero-initialised, added after ``conv_in``), and returns one
1x1 zero convolution of every skip activation and one of the middle block's output. The base U-Net adds them through its
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

from genjax.nets.layers import _conv
from genjax.nets.unet import UNet

Array = jax.Array

COPY = "trainable_copy"  # the collection of the copied encoder and middle block


class ControlNet(nn.Module):
  """The trainable copy of a :class:`UNet`'s encoder and middle block, with zero convolutions.

  Attributes:
    trainable_copy: the base U-Net (its architecture; the copy's parameters live under this
      name and are initialised from the base's by :func:`init_from_base`).
    hint_channels: widths of the condition encoder's conv layers (diffusers'
      ``conditioning_embedding_out_channels``: (16, 32, 96, 256) for Stable Diffusion).
    hint_downsample: the factor by which the condition encoder downsamples the control map (a
      power of two; 1 for a pixel-space base whose control map has the image's size, 8 for a
      latent base with a first stage of factor 8). Needs ``log2(factor) < len(hint_channels)``.
    dtype: compute dtype of the condition encoder and the zero convolutions.

  Call: ``downs, mid = controlnet.apply({"params": p}, x, t, y, control=c)`` with ``c`` a
  control map ``[B, H * f, W * f, C_c]`` for ``x`` of ``[B, H, W, C]``; ``downs`` holds one
  residual per skip (in the order the U-Net makes them) and ``mid`` the middle residual.
  Other keyword arguments (``context``, ``context_mask``, ``aug_level``, ``emb``) go to the
  copy as the base takes them.
  """

  trainable_copy: UNet
  hint_channels: Sequence[int] = (16, 32)
  hint_downsample: int = 1
  dtype: jnp.dtype = jnp.float32

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
    return _conv(self.trainable_copy.ch, zero=True, dtype=dt, name="hint_conv_out")(h)

  def _check_control(self, x: Array, control: Optional[Array]) -> None:
    if control is None:
      raise ValueError("ControlNet needs a control map (control=[B, H, W, C]).")
    f = self.hint_downsample
    if f < 1 or f & (f - 1) or int(round(math.log2(f))) >= len(self.hint_channels):
      raise ValueError(f"ControlNet: hint_downsample={f} must be a power of two below "
                       f"2^len(hint_channels) = {2 ** len(self.hint_channels)}.")
    if control.ndim != 4 or x.ndim != 4 or control.shape[0] != x.shape[0] or \
        tuple(control.shape[1:3]) != (x.shape[1] * f, x.shape[2] * f):
      raise ValueError(
          f"ControlNet: the control map must be [B, H*{f}, W*{f}, C] for x of shape "
          f"{tuple(x.shape)}, got {tuple(control.shape)}.")

  @nn.compact
  def __call__(self, x: Array, t: Array, y: Optional[Array] = None, train: bool = False,
               control: Optional[Array] = None, **base_kwargs):
    """The residuals ControlNet adds to the base U-Net for noisy ``x`` at ``t`` and ``control``.

    Args:
      x: [B, H, W, C] noisy inputs (the base U-Net's).
      t: [B] or scalar timesteps, as the base takes them.
      y: [B] labels iff the base has ``num_classes > 0``.
      train: dropout in the trainable copy's ResBlocks.
      control: [B, H * hint_downsample, W * hint_downsample, C_c] control map.
      **base_kwargs: the base's other inputs (``context``, ``aug_level``, ``emb``, ...).

    Returns:
      ``(downs, mid)``: a list of [B, h_k, w_k, c_k] residuals, one per skip activation, and
      the [B, h, w, c] middle residual, in the compute dtype.
    """
    x = jnp.asarray(x)
    control = None if control is None else jnp.asarray(control)
    self._check_control(x, control)
    dt = self.dtype
    # 1. x + Z(c; theta_z1) after conv_in, through the copied encoder and middle block.
    hint = self._hint(control)
    hs, h = self.trainable_copy(x, t, y, train, conv_in_residual=hint, encoder_only=True,
                                **base_kwargs)
    # 2. Z(.; theta_z2): one 1x1 zero convolution per skip and one for the middle.
    downs = [_conv(s.shape[-1], kernel=1, zero=True, dtype=dt, name=f"zero_conv_{k}")(s)
             for k, s in enumerate(hs)]
    mid = _conv(h.shape[-1], kernel=1, zero=True, dtype=dt, name="zero_conv_mid")(h)
    return downs, mid


def controlnet_like(unet: UNet, hint_channels: Sequence[int] = (16, 32),
                    hint_downsample: int = 1) -> ControlNet:
  """The :class:`ControlNet` whose trainable copy has ``unet``'s architecture."""
  return ControlNet(trainable_copy=unet.clone(parent=None), hint_channels=tuple(hint_channels),
                    hint_downsample=hint_downsample, dtype=unet.dtype)


def init_from_base(control_params, base_params):
  """ControlNet's parameters with the trainable copy set to the base U-Net's weights.

  Every collection of the copy (the embeddings, ``conv_in``, the down path and the middle
  block) is taken from ``base_params``; the condition encoder and the zero convolutions keep
  their initialisation (the zero convs: 0).

  Raises:
    ValueError: the base lacks a collection or has other shapes (another architecture).
  """
  out = dict(control_params)
  copy = {}
  for name, sub in control_params[COPY].items():
    if name not in base_params:
      raise ValueError(f"init_from_base: the base U-Net has no parameters {name!r}; the "
                       "ControlNet's architecture must be the base's.")
    got = jax.tree.map(jnp.shape, base_params[name])
    want = jax.tree.map(jnp.shape, sub)
    if got != want:
      raise ValueError(f"init_from_base: {name!r} has shapes {got} in the base but {want} in "
                       "the ControlNet; the ControlNet's architecture must be the base's.")
    copy[name] = jax.tree.map(jnp.asarray, base_params[name])
  out[COPY] = copy
  return out
