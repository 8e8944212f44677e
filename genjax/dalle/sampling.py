"""Autoregressive sampling of DALL-E's image tokens: temperature, top-k and top-p filtering,
and the one-``lax.scan`` sampler over token positions with a key-value cache.

* :func:`top_k_filter`: keep the k largest logits (Fan et al. 2018), the others to -inf;
* :func:`top_p_filter`: nucleus sampling (Holtzman et al. 2020, eq. 3): keep the smallest set of
  tokens, by decreasing probability, whose total probability reaches p;
* :func:`sample_tokens`: one ``lax.scan`` over the positions of ``[caption; image]``: at
  position p the transformer step writes p's keys and values into the cache and returns the
  logits of token p + 1, which is drawn when it is an image token (the caption is given).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def top_k_filter(logits: Array, k: int) -> Array:
  """Logits outside the ``k`` largest (per row, last axis) set to -inf; ``k <= 0`` keeps all.
  Ties at the k-th value are all kept (as ``transformers``' ``TopKLogitsWarper``)."""
  if k <= 0 or k >= logits.shape[-1]:
    return logits
  kth = jax.lax.top_k(logits, k)[0][..., -1:]
  return jnp.where(logits < kth, -jnp.inf, logits)


def top_p_filter(logits: Array, p: float) -> Array:
  """Nucleus filtering (Holtzman et al. 2020, Sec. 3.1, eq. 3) over the last axis.

  Keeps the smallest set V(p) of highest-probability tokens with ``sum_{V(p)} P >= p`` (the
  top token always); the rest to -inf. ``p >= 1`` keeps all.
  """
  if p >= 1.0:
    return logits
  order = jnp.argsort(-logits, axis=-1)
  sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
  probs = jax.nn.softmax(sorted_logits, axis=-1)
  before = jnp.cumsum(probs, axis=-1) - probs          # mass of the tokens ranked above
  keep_sorted = before < p                              # the top token has before = 0
  keep = jnp.zeros_like(keep_sorted)
  keep = jnp.put_along_axis(keep, order, keep_sorted, axis=-1, inplace=False)
  return jnp.where(keep, logits, -jnp.inf)


def filter_logits(logits: Array, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> Array:
  """``logits / temperature``, then top-k, then top-p (the order of ``transformers``)."""
  if temperature <= 0:
    raise ValueError(f"temperature must be > 0, got {temperature}.")
  return top_p_filter(top_k_filter(logits / temperature, top_k), top_p)


StepFn = Callable[[Array, Array, dict], tuple[tuple[Array, Array], dict]]


def sample_tokens(step_fn: StepFn, cache: dict, key: Array, text: Array, num_image_tokens: int,
                  temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  image_logits_fn: Optional[Callable[[Array], Array]] = None) -> Array:
  """Draws image tokens after each caption, one position at a time, as one ``lax.scan``.

  Args:
    step_fn: ``(token [B], pos, cache) -> ((text_logits, image_logits [B, K]), cache)``, the
      transformer's cached step (:meth:`genjax.nets.dalle_transformer.DalleTransformer.step`).
    cache: the empty cache.
    key: PRNG key; position p's draw uses ``fold_in(key, p)``.
    text: [B, L] int caption tokens.
    num_image_tokens: N.
    temperature, top_k, top_p: see :func:`filter_logits`.
    image_logits_fn: optional transform of the image logits before filtering (e.g. a mask).

  Returns:
    [B, N] int32 image tokens.
  """
  b, l = text.shape
  t = l + num_image_tokens
  seq = jnp.concatenate([text.astype(jnp.int32), jnp.zeros((b, num_image_tokens), jnp.int32)], 1)

  def body(carry, p):
    seq, cache = carry
    tok = jax.lax.dynamic_index_in_dim(seq, p, axis=1, keepdims=False)
    (_, logits), cache = step_fn(tok, p, cache)
    if image_logits_fn is not None:
      logits = image_logits_fn(logits)
    logits = filter_logits(logits.astype(jnp.float32), temperature, top_k, top_p)
    new = jax.random.categorical(jax.random.fold_in(key, p), logits).astype(jnp.int32)
    old = jax.lax.dynamic_index_in_dim(seq, p + 1, axis=1, keepdims=False)
    new = jnp.where(p + 1 >= l, new, old)                 # the caption is given, not drawn
    seq = jax.lax.dynamic_update_slice_in_dim(seq, new[:, None], p + 1, axis=1)
    return (seq, cache), None

  (seq, _), _ = jax.lax.scan(body, (seq, cache), jnp.arange(t - 1))
  return seq[:, l:]


def sample_tokens_uncached(logits_fn: Callable[[Array], Array], key: Array, text: Array,
                           num_image_tokens: int, temperature: float = 1.0, top_k: int = 0,
                           top_p: float = 1.0) -> Array:
  """The same draws as :func:`sample_tokens`, recomputing the whole sequence at every position
  (``logits_fn(tokens [B, T]) -> image_logits [B, T, K]``): the reference for the cache."""
  b, l = text.shape
  t = l + num_image_tokens
  seq = jnp.concatenate([text.astype(jnp.int32), jnp.zeros((b, num_image_tokens), jnp.int32)], 1)

  def body(seq, p):
    logits = jax.lax.dynamic_index_in_dim(logits_fn(seq), p, axis=1, keepdims=False)
    logits = filter_logits(logits.astype(jnp.float32), temperature, top_k, top_p)
    new = jax.random.categorical(jax.random.fold_in(key, p), logits).astype(jnp.int32)
    seq = jax.lax.dynamic_update_slice_in_dim(seq, new[:, None], p + 1, axis=1)
    return seq, None

  seq, _ = jax.lax.scan(body, seq, jnp.arange(l - 1, t - 1))
  return seq[:, l:]
