"""Cross-attention conditioning of latent diffusion (Rombach et al. 2022, Sec. 3.3, eq. 3; seed
003 eq. 47-48), in the layout of diffusers' ``Transformer2DModel`` / ``BasicTransformerBlock``
as Stable Diffusion 1.x uses them.

Seed eq. 47-48: ``Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V`` with
``Q = W_Q phi(z)`` from the image features and ``K = W_K tau(y)``, ``V = W_V tau(y)`` from the
condition's encoding; multi-head as in Vaswani et al. 2017 (each head of width ``d = head_dim``).

* :func:`dot_product_attention` - eq. 47 with a key mask (padded context tokens get weight 0);
* :class:`CrossAttention` - diffusers' ``Attention``: ``to_q``, ``to_k``, ``to_v`` (no bias),
  ``to_out`` (with bias); self-attention when no context is given;
* :class:`GEGLUFeedForward` - ``FeedForward(activation_fn="geglu")``: ``net_0_proj`` to
  ``2 * mult * dim``, ``h * gelu(gate)`` (exact GELU), ``net_2`` back to ``dim`` (Shazeer 2020);
* :class:`BasicTransformerBlock` - ``x + attn1(norm1(x))``; ``x + attn2(norm2(x), context)``;
  ``x + ff(norm3(x))`` (LayerNorm eps 1e-5);
* :class:`SpatialTransformer` - ``Transformer2DModel`` with ``use_linear_projection=False``:
  GroupNorm (32 groups, eps 1e-6) - ``proj_in`` (1x1) - ``depth`` blocks over the ``H W``
  tokens - ``proj_out`` (1x1, zero-initialized as in LDM) - outer residual.

Parameter names are diffusers' with ``.`` as ``_`` (``transformer_blocks_0/attn2/to_k``,
``ff/net_0_proj``, ``ff/net_2``), so a Stable Diffusion checkpoint maps on by renaming.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import GroupNorm, _dense, default_init

Array = jax.Array


def dot_product_attention(q: Array, k: Array, v: Array, mask: Optional[Array] = None) -> Array:
  """Multi-head ``softmax(Q K^T / sqrt(d)) V`` (seed 003 eq. 47; Vaswani et al. 2017 eq. 1).

  Args:
    q: [B, N, H, d] queries (H heads of width d).
    k: [B, M, H, d] keys.
    v: [B, M, H, d_v] values.
    mask: optional [B, M] (bool or 0/1): keys with 0 are left out (their weight is exactly 0).
      A row whose keys are all masked attends uniformly (never NaN).

  Returns:
    [B, N, H, d_v], in ``v``'s dtype; the logits and softmax are float32.
  """
  d = q.shape[-1]
  logits = jnp.einsum("bnhd,bmhd->bhnm", q, k, preferred_element_type=jnp.float32)
  logits = logits * (1.0 / jnp.sqrt(jnp.asarray(d, jnp.float32)))
  if mask is not None:
    keep = jnp.asarray(mask).astype(bool)[:, None, None, :]
    logits = jnp.where(keep, logits, jnp.finfo(jnp.float32).min)
  w = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bhnm,bmhd->bnhd", w, v)


class CrossAttention(nn.Module):
  """Multi-head attention of ``x`` to ``context`` (to itself when ``context`` is None).

  Attributes:
    num_heads: heads H.
    head_dim: width d of each head (inner width ``H d``).
    zero_out: zero-initialize ``to_out`` (the block then starts as the identity).
    dtype: compute dtype.
  """

  num_heads: int = 8
  head_dim: int = 64
  zero_out: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, context: Optional[Array] = None,
               mask: Optional[Array] = None) -> Array:
    """Args: x [B, N, D]; context [B, M, D_c] or None; mask [B, M] or None (context only).

    Returns: [B, N, D].
    """
    b, n, dim = x.shape
    ctx = x if context is None else context
    inner = self.num_heads * self.head_dim
    lin = lambda name: nn.Dense(inner, use_bias=False, kernel_init=default_init,
                                dtype=self.dtype, param_dtype=jnp.float32, name=name)
    q = lin("to_q")(x).reshape(b, n, self.num_heads, self.head_dim)
    k = lin("to_k")(ctx).reshape(b, ctx.shape[1], self.num_heads, self.head_dim)
    v = lin("to_v")(ctx).reshape(b, ctx.shape[1], self.num_heads, self.head_dim)
    h = dot_product_attention(q, k, v, mask if context is not None else None)
    return _dense(dim, zero=self.zero_out, dtype=self.dtype, name="to_out")(h.reshape(b, n, inner))


class GEGLUFeedForward(nn.Module):
  """diffusers' ``FeedForward(dim, mult=4, activation_fn="geglu")`` (Shazeer 2020)."""

  mult: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    dim = x.shape[-1]
    h, gate = jnp.split(_dense(2 * self.mult * dim, dtype=self.dtype, name="net_0_proj")(x), 2,
                        axis=-1)
    return _dense(dim, dtype=self.dtype, name="net_2")(h * nn.gelu(gate, approximate=False))


def _layer_norm(name: str, dtype) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32, name=name)


class BasicTransformerBlock(nn.Module):
  """Self-attention, cross-attention to the context, GEGLU feed-forward, each pre-LayerNorm
  with a residual (diffusers' ``BasicTransformerBlock``; LDM's ``BasicTransformerBlock``)."""

  num_heads: int = 8
  head_dim: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, context: Optional[Array] = None,
               mask: Optional[Array] = None) -> Array:
    """Args: x [B, N, D]; context [B, M, D_c] (None: attn2 is self-attention); mask [B, M]."""
    att = lambda name: CrossAttention(self.num_heads, self.head_dim, dtype=self.dtype, name=name)
    x = x + att("attn1")(_layer_norm("norm1", self.dtype)(x))
    x = x + att("attn2")(_layer_norm("norm2", self.dtype)(x), context, mask)
    x = x + GEGLUFeedForward(dtype=self.dtype, name="ff")(_layer_norm("norm3", self.dtype)(x))
    return x


class SpatialTransformer(nn.Module):
  """diffusers' ``Transformer2DModel`` (``use_linear_projection=False``) on NHWC features.

  Attributes:
    num_heads: heads.
    head_dim: width of each head; None: ``channels // num_heads``.
    depth: transformer blocks.
    dtype: compute dtype.
  """

  num_heads: int = 8
  head_dim: Optional[int] = None
  depth: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, context: Optional[Array] = None,
               mask: Optional[Array] = None) -> Array:
    """Args: x [B, H, W, C]; context [B, M, D_c]; mask [B, M]. Returns: [B, H, W, C]."""
    b, hh, ww, c = x.shape
    head_dim = self.head_dim or c // self.num_heads
    if head_dim < 1:
      raise ValueError(f"SpatialTransformer: {c} channels cannot make {self.num_heads} heads; "
                       "lower num_heads.")
    inner = self.num_heads * head_dim
    h = GroupNorm(dtype=self.dtype, name="norm")(x)
    h = _dense(inner, dtype=self.dtype, name="proj_in")(h).reshape(b, hh * ww, inner)
    for i in range(self.depth):
      h = BasicTransformerBlock(self.num_heads, head_dim, dtype=self.dtype,
                                name=f"transformer_blocks_{i}")(h, context, mask)
    h = _dense(c, zero=True, dtype=self.dtype, name="proj_out")(h.reshape(b, hh, ww, inner))
    return x.astype(h.dtype) + h


__all__ = ["BasicTransformerBlock", "CrossAttention", "GEGLUFeedForward", "SpatialTransformer",
           "dot_product_attention"]
