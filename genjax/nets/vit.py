"""Vision-transformer pieces and the masked autoencoder's two networks (He et al. 2022, "Masked
Autoencoders Are Scalable Vision Learners", Sec. 3), as Flax Linen modules.

The layout follows the authors' ``facebookresearch/mae/models_mae.py``:

* :class:`Block`: a pre-LayerNorm transformer block, ``x + Attn(LN(x))``, ``x + MLP(LN(x))``
  (timm's ``Block``: one qkv projection with bias, GELU MLP of width ``mlp_ratio * dim``);
* :class:`MAEEncoder`: a linear patch embedding applied to the **visible patches only**, plus the
  fixed 2-D sine-cosine position embedding of each patch's own position, a learned [CLS] token,
  ``depth`` blocks and a final LayerNorm. Masked patches never enter it (Sec. 3, "MAE encoder");
* :class:`MAEDecoder`: a linear map of the encoded visible tokens to the decoder width, one
  shared learned mask token for every masked position, un-shuffling back to the patch order,
  the decoder's own fixed position embedding on the full set, ``depth`` narrow blocks and a
  linear prediction of each patch's pixels (Sec. 3, "MAE decoder", "Reconstruction target").

The masking itself and the loss are pure functions in :mod:`genjax.mae.masking`.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nets.dit import sincos_pos_embed_2d

Array = jax.Array

xavier = nn.initializers.xavier_uniform()
zeros = nn.initializers.zeros


class SelfAttention(nn.Module):
  """Multi-head self-attention with an optional boolean mask ``[..., N, N]`` (True: attend)."""

  num_heads: int

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None) -> Array:
    b, n, d = x.shape
    if d % self.num_heads:
      raise ValueError(f"width {d} is not divisible by num_heads {self.num_heads}.")
    hd = d // self.num_heads
    qkv = nn.Dense(3 * d, kernel_init=xavier, bias_init=zeros, name="qkv")(x)
    q, k, v = jnp.split(qkv.reshape(b, n, 3, self.num_heads, hd), 3, axis=2)
    q, k, v = (a[:, :, 0] for a in (q, k, v))  # [B, N, heads, hd]
    logits = jnp.einsum("bnhd,bmhd->bhnm", q, k) / np.sqrt(hd).astype(x.dtype)
    if mask is not None:
      logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    attn = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bhnm,bmhd->bnhd", attn, v).reshape(b, n, d)
    return nn.Dense(d, kernel_init=xavier, bias_init=zeros, name="proj")(out)


class Block(nn.Module):
  """Pre-LayerNorm transformer block (Vaswani et al. 2017 with the pre-LN of ViT)."""

  dim: int
  num_heads: int
  mlp_ratio: float = 4.0

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array] = None) -> Array:
    x = x + SelfAttention(self.num_heads, name="attn")(nn.LayerNorm(1e-6, name="norm1")(x), mask)
    h = nn.LayerNorm(1e-6, name="norm2")(x)
    h = nn.Dense(int(self.dim * self.mlp_ratio), kernel_init=xavier, bias_init=zeros,
                 name="fc1")(h)
    h = nn.Dense(self.dim, kernel_init=xavier, bias_init=zeros, name="fc2")(nn.gelu(h, False))
    return x + h


class MAEEncoder(nn.Module):
  """The MAE encoder: a ViT over the visible patches only.

  Attributes:
    grid: (h, w) patches per image.
    dim: token width.
    depth: number of blocks.
    num_heads: attention heads.
    mlp_ratio: MLP width over ``dim``.
  """

  grid: tuple[int, int]
  dim: int = 64
  depth: int = 4
  num_heads: int = 4
  mlp_ratio: float = 4.0

  @nn.compact
  def __call__(self, patches: Array, ids_keep: Optional[Array] = None) -> Array:
    """Encodes the kept patches.

    Args:
      patches: [B, N, P] all patches of the images (flattened pixels), N = h * w.
      ids_keep: [B, N_vis] int indices of the visible patches; None keeps all (no masking:
        what a linear probe sees).

    Returns:
      [B, 1 + N_vis, dim]: the [CLS] token then the visible tokens, after the final LayerNorm.
    """
    b, n, _ = patches.shape
    if n != self.grid[0] * self.grid[1]:
      raise ValueError(f"MAEEncoder: {n} patches, expected {self.grid[0]}x{self.grid[1]}.")
    pos = jnp.asarray(sincos_pos_embed_2d(self.dim, *self.grid), patches.dtype)  # [N, D]
    tok = nn.Dense(self.dim, kernel_init=xavier, bias_init=zeros, name="patch_embed")(patches)
    tok = tok + pos[None]
    if ids_keep is not None:
      tok = jnp.take_along_axis(tok, ids_keep[..., None], axis=1)   # visible patches only
    cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.dim))
    x = jnp.concatenate([jnp.broadcast_to(cls.astype(tok.dtype), (b, 1, self.dim)), tok], 1)
    for i in range(self.depth):
      x = Block(self.dim, self.num_heads, self.mlp_ratio, name=f"block{i}")(x)
    return nn.LayerNorm(1e-6, name="norm")(x)


class MAEDecoder(nn.Module):
  """The lightweight MAE decoder: encoded visible tokens + mask tokens -> pixels of every patch.

  Attributes:
    grid: (h, w) patches per image.
    patch_dim: pixels per patch, p * p * C (the prediction width).
    dim: decoder width.
    depth: number of blocks.
    num_heads: attention heads.
    mlp_ratio: MLP width over ``dim``.
  """

  grid: tuple[int, int]
  patch_dim: int
  dim: int = 32
  depth: int = 2
  num_heads: int = 4
  mlp_ratio: float = 4.0

  @nn.compact
  def __call__(self, latent: Array, ids_restore: Array) -> Array:
    """Predicts every patch.

    Args:
      latent: [B, 1 + N_vis, D_enc] the encoder's output ([CLS] first).
      ids_restore: [B, N] for each patch position, its index in the order (visible patches
        first, then masked) that the encoder saw; ``argsort`` of the shuffle.

    Returns:
      [B, N, patch_dim] predicted pixels of every patch in the original order.
    """
    b, n = ids_restore.shape
    x = nn.Dense(self.dim, kernel_init=xavier, bias_init=zeros, name="decoder_embed")(latent)
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.dim))
    n_vis = x.shape[1] - 1
    fill = jnp.broadcast_to(mask_token.astype(x.dtype), (b, n - n_vis, self.dim))
    tokens = jnp.concatenate([x[:, 1:], fill], axis=1)                      # shuffled order
    tokens = jnp.take_along_axis(tokens, ids_restore[..., None], axis=1)    # un-shuffle
    pos = jnp.asarray(sincos_pos_embed_2d(self.dim, *self.grid), x.dtype)
    x = jnp.concatenate([x[:, :1], tokens + pos[None]], axis=1)
    for i in range(self.depth):
      x = Block(self.dim, self.num_heads, self.mlp_ratio, name=f"block{i}")(x)
    x = nn.LayerNorm(1e-6, name="norm")(x)
    pred = nn.Dense(self.patch_dim, kernel_init=xavier, bias_init=zeros, name="pred")(x)
    return pred[:, 1:]
