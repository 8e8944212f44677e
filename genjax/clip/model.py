"""The CLIP model (Radford et al. 2021): an image encoder and a text encoder with linear
projections into one embedding space and a learned log inverse temperature.

The image encoder is a small ResNet (Radford et al. 2021, Sec. 2.4 use ResNets and ViTs; here
residual blocks with group normalization, so the model has no batch statistics, and global
average pooling in place of the attention pooling of their modified ResNet). The text encoder is
:class:`genjax.nets.text.TextEncoder`, in the layout of transformers' ``CLIPTextModel``; its
pooled output (the final-LayerNorm feature at the EOS token) is projected, as in CLIP.

Example:
  >>> model = CLIP(ImageResNet(width=16), TextEncoder(...), embed_dim=32)
  >>> img, txt, t = model.apply({"params": params}, images, tokens)
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.clip.losses import INIT_LOGIT_SCALE

__all__ = ["CLIP", "ImageResNet"]


class _ResBlock(nn.Module):
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    groups = min(8, self.features)
    h = nn.Conv(self.features, (3, 3), (self.stride, self.stride), padding=1)(x)
    h = nn.silu(nn.GroupNorm(num_groups=groups)(h))
    h = nn.Conv(self.features, (3, 3), padding=1)(h)
    h = nn.GroupNorm(num_groups=groups)(h)
    if self.stride != 1 or x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), (self.stride, self.stride))(x)
    return nn.silu(x + h)


class ImageResNet(nn.Module):
  """A small ResNet image encoder: ``[B, H, W, C]`` in [-1, 1] -> ``[B, width * mult[-1]]``.

  Attributes:
    width: channels of the stem.
    mult: channel multiplier per stage; every stage after the first halves the resolution.
    blocks: residual blocks per stage.
  """
  width: int = 32
  mult: Sequence[int] = (1, 2, 4)
  blocks: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"ImageResNet: images must be [B, H, W, C], got shape {x.shape}.")
    h = nn.Conv(self.width, (3, 3), padding=1, name="stem")(x)
    for i, m in enumerate(self.mult):
      for j in range(self.blocks):
        h = _ResBlock(self.width * m, stride=2 if (i > 0 and j == 0) else 1)(h)
    return jnp.mean(h, axis=(1, 2))


class CLIP(nn.Module):
  """Image and text towers with projections and the logit scale (Radford et al. 2021, Fig. 3).

  Attributes:
    image_encoder: images -> features ``[B, F_i]``.
    text_encoder: tokens -> ``(last_hidden [B, L, D], pooled [B, D])``.
    embed_dim: width of the joint embedding space.
  """
  image_encoder: nn.Module
  text_encoder: nn.Module
  embed_dim: int = 64

  def setup(self):
    self.image_proj = nn.Dense(self.embed_dim, use_bias=False)
    self.text_proj = nn.Dense(self.embed_dim, use_bias=False)
    self.logit_scale = self.param("logit_scale", lambda _: jnp.asarray(INIT_LOGIT_SCALE,
                                                                       jnp.float32))

  def encode_image(self, images: jax.Array) -> jax.Array:
    """``[B, H, W, C] -> [B, embed_dim]`` (not normalised)."""
    return self.image_proj(self.image_encoder(images))

  def encode_text(self, tokens: jax.Array) -> jax.Array:
    """int ``[B, L] -> [B, embed_dim]`` (not normalised)."""
    return self.text_proj(self.text_encoder(tokens)[1])

  def text_hidden(self, tokens: jax.Array) -> jax.Array:
    """The text encoder's last hidden states ``[B, L, D]`` (Imagen's frozen conditioning)."""
    return self.text_encoder(tokens)[0]

  def __call__(self, images: jax.Array, tokens: jax.Array):
    """``(image embeddings [B, E], text embeddings [B, E], logit scale t)``."""
    return self.encode_image(images), self.encode_text(tokens), self.logit_scale
