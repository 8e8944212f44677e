"""The Diffusion Transformer, DiT (Peebles & Xie 2023, "Scalable Diffusion Models with
Transformers"; seed 003 section 2.7.3), as a Flax Linen module.

The architecture follows the authors' ``facebookresearch/DiT/models.py``:

1. **Patchify**: a ``p x p`` conv with stride ``p`` turns ``[B, H, W, C]`` into ``N = HW / p^2``
   tokens of width ``hidden_size``, plus a fixed 2-D sine-cosine position embedding.
2. **Conditioning**: ``c = t_emb(t) + y_emb(y)``: a sinusoidal time embedding (256 frequencies,
   cosine first) through a 2-layer MLP, and a class embedding table with one extra row, the
   null label ``num_classes``, for classifier-free guidance (the label dropout itself is the
   diffusion method's ``cond_drop_prob``).
3. ``depth`` **adaLN-Zero blocks** (Sec. 3.2): from ``silu(c)`` a linear layer regresses
   ``shift, scale, gate`` for the attention and the MLP branch;
   ``x = x + gate_msa * Attn(LN(x) (1 + scale_msa) + shift_msa)``, the same for the MLP. The
   regression layer is zero-initialized, so every gate is 0 and each block is the identity at
   initialization.
4. **Final layer**: adaLN (shift, scale; zero-initialized) and a zero-initialized linear layer to
   ``p * p * out_channels``, then **unpatchify** back to ``[B, H, W, out_channels]``. At
   initialization the whole network outputs exactly zero.

It has the U-Net's call signature ``(x, t, y=None, train=False)``, so every genjax method that
takes a network by ``config.model.name`` can use it (``configs/dit.py``).

Text (or any sequence) conditioning, as latent diffusion's U-Net takes it (seed 003 eq. 47-48):
with ``context_dim > 0`` each block adds, after its self-attention, a cross-attention of the
tokens to ``context [B, L, context_dim]`` (``x = x + cross_attn(norm_cross(x), context)``, the
PixArt-alpha placement; ``cross_attn/to_out`` zero-initialized, so the network still starts at
exactly zero). With ``context_dim = 0`` (the default) the network is the paper's, parameters and
outputs unchanged.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nets.attention import CrossAttention
from genjax.nets.layers import timestep_embedding

Array = jax.Array

xavier = nn.initializers.xavier_uniform()
zeros = nn.initializers.zeros


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> np.ndarray:
  """The fixed 2-D sine-cosine position embedding of MAE / DiT (``get_2d_sincos_pos_embed``).

  Half of the channels embed the column index and half the row index, each with the 1-D
  embedding ``[sin(pos * omega), cos(pos * omega)]``, ``omega_k = 1 / 10000^(k / (dim / 4))``.

  Args:
    dim: embedding width, divisible by 4.
    grid_h: number of token rows.
    grid_w: number of token columns.

  Returns:
    float32 ``[grid_h * grid_w, dim]``, tokens in row-major (row, column) order.
  """
  if dim % 4:
    raise ValueError(f"DiT: hidden_size must be divisible by 4 for the 2-D position embedding, "
                     f"got {dim}.")
  omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))

  def embed_1d(pos):
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  cols, rows = np.meshgrid(np.arange(grid_w, dtype=np.float64), np.arange(grid_h, dtype=np.float64))
  # DiT: grid = meshgrid(grid_w, grid_h) and emb_h comes from grid[0] (the column index).
  return np.concatenate([embed_1d(cols), embed_1d(rows)], axis=1).astype(np.float32)


def patchify(x: Array, p: int) -> Array:
  """``[B, H, W, C] -> [B, (H/p)(W/p), p * p * C]``, patches in row-major order, each flattened
  as ``(row in patch, column in patch, channel)``."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: Array, p: int, h: int, w: int) -> Array:
  """The inverse of :func:`patchify`: ``[B, (h/p)(w/p), p * p * C] -> [B, h, w, C]`` (DiT's
  ``unpatchify``, in NHWC)."""
  b, n, d = tokens.shape
  c = d // (p * p)
  x = tokens.reshape(b, h // p, w // p, p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h, w, c)


def modulate(x: Array, shift: Array, scale: Array) -> Array:
  """adaLN: ``x (1 + scale) + shift`` with per-example ``shift, scale [B, D]`` over tokens."""
  return x * (1 + scale[:, None, :]) + shift[:, None, :]


class Attention(nn.Module):
  """Multi-head self-attention (timm's ``Attention``: one qkv projection with bias, then out)."""

  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b, n, d = x.shape
    if d % self.num_heads:
      raise ValueError(f"DiT: hidden_size {d} is not divisible by num_heads {self.num_heads}.")
    hd = d // self.num_heads
    qkv = nn.Dense(3 * d, kernel_init=xavier, bias_init=zeros, dtype=self.dtype, name="qkv")(x)
    q, k, v = jnp.split(qkv.reshape(b, n, 3, self.num_heads, hd), 3, axis=2)
    q, k, v = (a[:, :, 0] for a in (q, k, v))  # [B, N, heads, hd]
    logits = jnp.einsum("bnhd,bmhd->bhnm", q, k) / jnp.sqrt(jnp.asarray(hd, x.dtype))
    attn = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(x.dtype)
    out = jnp.einsum("bhnm,bmhd->bnhd", attn, v).reshape(b, n, d)
    return nn.Dense(d, kernel_init=xavier, bias_init=zeros, dtype=self.dtype, name="proj")(out)


class DiTBlock(nn.Module):
  """One adaLN-Zero transformer block (Peebles & Xie 2023, Sec. 3.2, Fig. 3)."""

  hidden_size: int
  num_heads: int
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32
  cross_attention: bool = False
  mlp_norm_eps: float = 1e-6

  @nn.compact
  def __call__(self, x: Array, c: Array, context: Optional[Array] = None,
               context_mask: Optional[Array] = None) -> Array:
    d = self.hidden_size
    mod = nn.Dense(6 * d, kernel_init=zeros, bias_init=zeros, dtype=self.dtype,
                   name="adaLN_modulation")(nn.silu(c))
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = jnp.split(mod, 6, axis=-1)
    norm = lambda name, eps=1e-6: nn.LayerNorm(epsilon=eps, use_scale=False, use_bias=False,
                                               dtype=self.dtype, name=name)
    h = modulate(norm("norm1")(x), shift_msa, scale_msa)
    x = x + gate_msa[:, None, :] * Attention(self.num_heads, dtype=self.dtype, name="attn")(h)
    if self.cross_attention:
      h = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm_cross")(x)
      x = x + CrossAttention(self.num_heads, d // self.num_heads, zero_out=True,
                             dtype=self.dtype, name="cross_attn")(h, context, context_mask)
    h = modulate(norm("norm2", self.mlp_norm_eps)(x), shift_mlp, scale_mlp)
    h = nn.Dense(int(d * self.mlp_ratio), kernel_init=xavier, bias_init=zeros, dtype=self.dtype,
                 name="mlp_fc1")(h)
    h = nn.Dense(d, kernel_init=xavier, bias_init=zeros, dtype=self.dtype,
                 name="mlp_fc2")(nn.gelu(h, approximate=True))
    return x + gate_mlp[:, None, :] * h


class DiT(nn.Module):
  """Diffusion Transformer: ``eps_theta(x_t, t[, y])`` on image (or latent) tensors.

  Configurations of the paper (Table 1): S (hidden 384, depth 12, heads 6), B (768, 12, 12),
  L (1024, 24, 16), XL (1152, 28, 16); patch size 2, 4 or 8 ("DiT-XL/2").

  Attributes:
    patch_size: p; the image height and width must be divisible by it.
    hidden_size: token width.
    depth: number of DiT blocks.
    num_heads: attention heads.
    mlp_ratio: MLP width / hidden_size.
    num_classes: class labels (0 = unconditional); label ``num_classes`` is the null label.
    out_channels: output channels; None means the input's (``2 C`` for a learned variance).
    dropout: unused by DiT (kept for config symmetry with the U-Net); must be 0.
    dtype: compute dtype (parameters are float32).
    context_dim: width of a cross-attention context (0: none, the paper's DiT).
    The two options below serve diffusers' ``DiTTransformer2DModel``, which differs from the
    authors' code there; the defaults are the authors'.
    temb_freq_shift: the ``s`` of the time embedding's frequencies ``k / (half - s)`` (0 in the
      authors' code; diffusers' ``CombinedTimestepLabelEmbeddings`` uses 1).
    mlp_norm_eps: epsilon of the LayerNorm before each MLP (1e-6; diffusers' ``norm_eps``,
      1e-5 by default).
    remat: rematerialise each DiT block in the backward pass (``nn.remat``): the same function
      and parameter names, less activation memory, more compute.
    class_embed_std: standard deviation of the label table's initialization (0.02 in the
      authors' code; see ``docs/latent.md`` for what it does to short trainings).
  """

  patch_size: int = 2
  hidden_size: int = 384
  depth: int = 12
  num_heads: int = 6
  mlp_ratio: float = 4.0
  num_classes: int = 0
  out_channels: Optional[int] = None
  dropout: float = 0.0
  dtype: Any = jnp.float32
  context_dim: int = 0
  temb_freq_shift: float = 0.0
  mlp_norm_eps: float = 1e-6
  remat: bool = False
  class_embed_std: float = 0.02

  def _check_inputs(self, x: Array, t: Array, y: Optional[Array]) -> None:
    if x.ndim != 4:
      raise ValueError(f"DiT: x must be an NHWC batch [B, H, W, C], got shape {x.shape}.")
    b, h, w, _ = x.shape
    if h % self.patch_size or w % self.patch_size:
      raise ValueError(f"DiT: image size {h}x{w} is not divisible by patch_size "
                       f"{self.patch_size}; pick a patch size that divides it.")
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != b):
      raise ValueError(f"DiT: t must be a scalar or have shape [B] = [{b}], got {t.shape}.")
    if self.num_classes > 0 and (y is None or y.shape != (b,)):
      raise ValueError(f"DiT: num_classes={self.num_classes} needs labels y of shape [{b}] "
                       f"(the null label {self.num_classes} for unconditional outputs).")
    if self.num_classes == 0 and y is not None:
      raise ValueError("DiT: labels y were given but num_classes=0; set num_classes or pass None.")
    if self.dropout:
      raise ValueError("DiT has no dropout (the paper uses none); set model.dropout=0.")

  @nn.compact
  def __call__(self, x: Array, t: Array, y: Optional[Array] = None,
               train: bool = False, context: Optional[Array] = None,
               context_mask: Optional[Array] = None) -> Array:
    """Args: x [B, H, W, C]; t [B] or scalar (zero-based discrete steps or continuous, embedded
    as given); y int [B] or None; train: unused (DiT has no dropout); context [B, L,
    context_dim] and context_mask [B, L] (1 = real token) when ``context_dim > 0``.

    Returns: [B, H, W, out_channels or C], in x's dtype.
    """
    del train
    x = jnp.asarray(x)
    t = jnp.asarray(t)
    y = None if y is None else jnp.asarray(y)
    self._check_inputs(x, t, y)
    b, h, w, c_in = x.shape
    if self.context_dim > 0:
      if context is None or context.ndim != 3 or context.shape[0] != b \
          or context.shape[-1] != self.context_dim:
        raise ValueError(f"DiT: context_dim={self.context_dim} needs context [B={b}, L, "
                         f"{self.context_dim}], got "
                         f"{None if context is None else tuple(jnp.shape(context))}.")
      context = jnp.asarray(context).astype(self.dtype)
    elif context is not None or context_mask is not None:
      raise ValueError("DiT: a context was given but context_dim=0; set context_dim or pass None.")
    p, d, dt = self.patch_size, self.hidden_size, self.dtype
    t = jnp.reshape(t, (-1,))  # a scalar t (one per sampler step) is embedded once

    # 1. Patch embedding (a p x p, stride p conv = a linear map of each flattened patch).
    tokens = nn.Dense(d, kernel_init=xavier, bias_init=zeros, dtype=dt,
                      name="x_embedder")(patchify(x.astype(dt), p))
    tokens = tokens + jnp.asarray(sincos_pos_embed_2d(d, h // p, w // p), dt)[None]

    # 2. Conditioning c = t_emb + y_emb.
    std = nn.initializers.normal(0.02)
    temb = timestep_embedding(t, 256, flip_sin_to_cos=True, freq_shift=self.temb_freq_shift)
    temb = nn.Dense(d, kernel_init=std, bias_init=zeros, dtype=dt, name="t_embedder_0")(temb)
    c = nn.Dense(d, kernel_init=std, bias_init=zeros, dtype=dt,
                 name="t_embedder_2")(nn.silu(temb))
    if self.num_classes > 0:
      c = c + nn.Embed(self.num_classes + 1, d,
                       embedding_init=nn.initializers.normal(self.class_embed_std), dtype=dt,
                       name="y_embedder")(y)

    # 3. adaLN-Zero blocks.
    Block = nn.remat(DiTBlock) if self.remat else DiTBlock
    for i in range(self.depth):
      tokens = Block(d, self.num_heads, self.mlp_ratio, dtype=dt,
                        cross_attention=self.context_dim > 0, mlp_norm_eps=self.mlp_norm_eps,
                        name=f"block_{i}")(tokens, c, context, context_mask)

    # 4. Final adaLN + zero linear, unpatchify.
    c_out = self.out_channels or c_in
    shift, scale = jnp.split(nn.Dense(2 * d, kernel_init=zeros, bias_init=zeros, dtype=dt,
                                      name="final_adaLN")(nn.silu(c)), 2, axis=-1)
    tokens = modulate(nn.LayerNorm(epsilon=1e-6, use_scale=False, use_bias=False, dtype=dt,
                                   name="final_norm")(tokens), shift, scale)
    tokens = nn.Dense(p * p * c_out, kernel_init=zeros, bias_init=zeros, dtype=dt,
                      name="final_linear")(tokens)
    return unpatchify(tokens, p, h, w).astype(x.dtype)
