"""A transformer text encoder in the layout of CLIP's (Radford et al. 2021, sec. 2.4).

:class:`TextEncoder` is the text tower of CLIP as transformers' ``CLIPTextModel`` builds it:

1. token embedding + learned position embedding;
2. ``depth`` pre-LayerNorm blocks: ``h = h + out_proj(attn(q_proj, k_proj, v_proj)(LN1(h)))``
   with causal multi-head self-attention (position ``i`` attends to ``j <= i`` only), then
   ``h = h + fc2(quick_gelu(fc1(LN2(h))))``, ``quick_gelu(x) = x * sigmoid(1.702 x)``;
3. a final LayerNorm: ``last_hidden [B, L, D]``; ``pooled [B, D]`` is ``last_hidden`` at the
   end-of-text token.

Padding is handled as CLIP handles it: by the causal mask alone. Pads follow EOS, so no
position up to EOS sees them, and the pooled feature does not depend on them; the hidden states
at pad positions are defined but meaningless (a cross-attention over ``last_hidden`` should
mask keys where ``tokens == PAD_ID``).

Pooling (``pooling``):

* ``"first_eos"`` (default): the first position whose token is ``eos_id`` (2, the EOS of
  ``genjax.text``); a row with no EOS pools at position 0. This is ``CLIPTextModel``'s rule
  when its config's ``eos_token_id != 2``.
* ``"argmax"``: the position of the largest token id (the first on ties), ``CLIPTextModel``'s
  legacy rule when ``eos_token_id == 2`` (OpenAI's CLIP vocabulary, where EOS is the largest
  id). With the ``genjax.text`` vocabulary EOS is *not* the largest id, so use "first_eos".

Parameter names mirror the ``CLIPTextModel`` state dict, so a converter is a renaming plus a
transpose of each linear weight (torch ``[out, in]`` -> Flax ``kernel [in, out]``)::

  text_model.embeddings.token_embedding.weight     -> token_embedding/embedding
  text_model.embeddings.position_embedding.weight  -> position_embedding/embedding
  text_model.encoder.layers.{i}.layer_norm1.weight -> layers_{i}/layer_norm1/scale (bias: bias)
  text_model.encoder.layers.{i}.self_attn.q_proj.weight -> layers_{i}/self_attn/q_proj/kernel
      (.T; likewise k_proj, v_proj, out_proj, and their .bias -> bias)
  text_model.encoder.layers.{i}.layer_norm2.*      -> layers_{i}/layer_norm2/*
  text_model.encoder.layers.{i}.mlp.fc1.weight     -> layers_{i}/mlp/fc1/kernel (.T; fc2 alike)
  text_model.final_layer_norm.*                    -> final_layer_norm/*

Example:
  >>> from genjax import text
  >>> enc = TextEncoder(vocab_size=text.vocab_size(), max_len=32)
  >>> tokens = text.tokenize(["a small red circle at the top left"], 32)
  >>> params = enc.init(jax.random.key(0), tokens)["params"]
  >>> hidden, pooled = enc.apply({"params": params}, tokens)
  >>> hidden.shape, pooled.shape
  ((1, 32, 256), (1, 256))
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any

POOLINGS = ("first_eos", "argmax")


def quick_gelu(x: Array) -> Array:
  """CLIP's activation ``x * sigmoid(1.702 x)`` (transformers' ``QuickGELUActivation``)."""
  return x * jax.nn.sigmoid(1.702 * x)


def causal_mask(length: int) -> Array:
  """[L, L] bool: ``mask[i, j] = j <= i`` (position i attends to positions up to itself)."""
  return jnp.tril(jnp.ones((length, length), bool))


def _dense(features: int, name: str, dtype: Dtype) -> nn.Dense:
  return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32,
                  kernel_init=nn.initializers.normal(0.02), name=name)


def _layer_norm(name: str, eps: float) -> nn.LayerNorm:
  # Statistics in float32 whatever the compute dtype.
  return nn.LayerNorm(epsilon=eps, dtype=jnp.float32, param_dtype=jnp.float32, name=name)


class CausalSelfAttention(nn.Module):
  """Multi-head self-attention with a causal mask (``CLIPAttention``'s layout).

  ``softmax(q k^T / sqrt(d_head) + mask) v`` per head (Vaswani et al. 2017, eq. 1), the
  softmax in float32; masked logits are set to the dtype's lowest value before it.
  """

  num_heads: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """[B, L, D] -> [B, L, D]."""
    b, length, d = x.shape
    if d % self.num_heads:
      raise ValueError(f"width {d} is not divisible by num_heads={self.num_heads}.")
    hd = d // self.num_heads
    split = lambda t: t.reshape(b, length, self.num_heads, hd)
    q = split(_dense(d, "q_proj", self.dtype)(x))
    k = split(_dense(d, "k_proj", self.dtype)(x))
    v = split(_dense(d, "v_proj", self.dtype)(x))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) * (hd ** -0.5)
    logits = jnp.where(causal_mask(length), logits, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, length, d)
    return _dense(d, "out_proj", self.dtype)(out)


class MLP(nn.Module):
  """``fc2(quick_gelu(fc1(x)))`` (``CLIPMLP`` with ``hidden_act="quick_gelu"``)."""

  hidden: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    h = quick_gelu(_dense(self.hidden, "fc1", self.dtype)(x))
    return _dense(x.shape[-1], "fc2", self.dtype)(h)


class EncoderLayer(nn.Module):
  """One pre-LayerNorm block (``CLIPEncoderLayer``)."""

  num_heads: int
  mlp_dim: int
  eps: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, h: Array) -> Array:
    a = _layer_norm("layer_norm1", self.eps)(h).astype(self.dtype)
    h = h + CausalSelfAttention(self.num_heads, self.dtype, name="self_attn")(a)
    m = _layer_norm("layer_norm2", self.eps)(h).astype(self.dtype)
    return h + MLP(self.mlp_dim, self.dtype, name="mlp")(m)


def pool_positions(tokens: Array, pooling: str = "first_eos", eos_id: int = 2) -> Array:
  """[B] int32 positions of the pooled feature (see the module docstring)."""
  if pooling == "first_eos":
    return jnp.argmax(tokens == eos_id, axis=-1).astype(jnp.int32)
  if pooling == "argmax":
    return jnp.argmax(tokens, axis=-1).astype(jnp.int32)
  raise ValueError(f"unknown pooling {pooling!r}; valid: {POOLINGS}.")


class TextEncoder(nn.Module):
  """CLIP's text transformer (``CLIPTextModel``): tokens -> (last_hidden, pooled).

  Attributes:
    vocab_size: number of token ids (``genjax.text.vocab_size()`` for the shapes captions).
    max_len: number of learned positions (``max_position_embeddings``); inputs may be shorter.
    width: D, the hidden size.
    depth: number of blocks.
    num_heads: attention heads (D must be divisible by it).
    mlp_dim: hidden size of the MLP (``intermediate_size``); default 4 D.
    eps: LayerNorm epsilon (``layer_norm_eps``).
    pooling: "first_eos" (default) or "argmax" (see the module docstring).
    eos_id: the end-of-text id for "first_eos" (2 in ``genjax.text``).
    dtype: compute dtype (parameters and LayerNorm/softmax stay float32).
  """

  vocab_size: int
  max_len: int = 32
  width: int = 256
  depth: int = 4
  num_heads: int = 4
  mlp_dim: int | None = None
  eps: float = 1e-5
  pooling: str = "first_eos"
  eos_id: int = 2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens: Array) -> tuple[Array, Array]:
    """Encodes token rows.

    Args:
      tokens: int [B, L] with L <= max_len (``genjax.text.tokenize``).

    Returns:
      ``(last_hidden [B, L, D], pooled [B, D])`` in the compute dtype (LayerNorm output
      cast).
    """
    if tokens.ndim != 2:
      raise ValueError(f"TextEncoder takes token ids [B, L]; got shape {tokens.shape}.")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"TextEncoder takes integer token ids; got {tokens.dtype}.")
    length = tokens.shape[1]
    if length > self.max_len:
      raise ValueError(f"token rows of length {length} exceed the encoder's max_len="
                       f"{self.max_len} positions.")
    if self.pooling not in POOLINGS:
      raise ValueError(f"unknown pooling {self.pooling!r}; valid: {POOLINGS}.")
    tok = nn.Embed(self.vocab_size, self.width, embedding_init=nn.initializers.normal(0.02),
                   param_dtype=jnp.float32, name="token_embedding")
    pos = nn.Embed(self.max_len, self.width, embedding_init=nn.initializers.normal(0.01),
                   param_dtype=jnp.float32, name="position_embedding")
    h = tok(tokens) + pos.embedding[None, :length]
    h = h.astype(self.dtype)
    for i in range(self.depth):
      h = EncoderLayer(self.num_heads, self.mlp_dim or 4 * self.width, self.eps, self.dtype,
                       name=f"layers_{i}")(h)
    h = _layer_norm("final_layer_norm", self.eps)(h).astype(self.dtype)
    idx = pool_positions(tokens, self.pooling, self.eos_id)
    pooled = jnp.take_along_axis(h, idx[:, None, None], axis=1)[:, 0]
    return h, pooled
