"""unCLIP's decoder P(x | z_i, y) (Ramesh et al. 2022, "Hierarchical Text-Conditional Image
Generation with CLIP Latents", Sec. 2.1; seed 003 Sec. 2.6.2, eq. 49 ``P(x|y) = P(x|z_i, y)
P(z_i|y)``): the pieces that condition a diffusion U-Net on a CLIP image embedding.

The paper modifies GLIDE's text-conditional U-Net in two ways, both here:

1. "projecting and adding CLIP embeddings to the existing timestep embedding": the U-Net's
   ``emb_dim`` input (:class:`genjax.nets.unet.UNet`, a dense projection of ``z_i`` added to the
   time embedding);
2. "projecting CLIP embeddings into four extra tokens of context that are concatenated to the
   sequence of outputs from the GLIDE text encoder": :class:`EmbeddingTokens`, whose tokens are
   the first part of the cross-attention context (:func:`decoder_context`), optionally followed
   by the caption's token features.

Classifier-free guidance (Sec. 2.1): "randomly setting the CLIP embeddings to zero (or a learned
embedding) 10% of the time, and randomly dropping the text caption 50% of the time during
training" (:func:`drop_decoder_condition`; the zero embedding, which no unit-norm CLIP embedding
equals, and the empty caption are the null conditions). The two are dropped independently.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["EmbeddingTokens", "decoder_context", "decoder_null", "drop_decoder_condition"]


class EmbeddingTokens(nn.Module):
  """``z_i [B, E] -> [B, num_tokens, width]``: a CLIP embedding projected into extra context
  tokens (Ramesh et al. 2022, Sec. 2.1: four tokens), one dense layer and a reshape.

  A zero embedding (the dropped condition) gives the tokens' biases only.
  """
  num_tokens: int = 4
  width: int = 64

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    if z.ndim != 2:
      raise ValueError(f"EmbeddingTokens: z must be [B, E], got shape {z.shape}.")
    h = nn.Dense(self.num_tokens * self.width, name="proj")(z)
    return h.reshape(z.shape[0], self.num_tokens, self.width)


def decoder_context(tokens: jax.Array, caption: Optional[jax.Array] = None,
                    caption_mask: Optional[jax.Array] = None):
  """The decoder's cross-attention context: the embedding's tokens, then the caption's.

  Args:
    tokens: ``[B, K, D]`` from :class:`EmbeddingTokens`.
    caption: optional ``[B, L, D]`` token features of the caption (the text encoder's last
      hidden states).
    caption_mask: ``[B, L]``, 1 for real caption tokens, 0 for padding (with ``caption``).

  Returns:
    ``(context [B, K (+ L), D], mask [B, K (+ L)])``; the embedding's tokens are never masked.
  """
  b, k = tokens.shape[:2]
  ones = jnp.ones((b, k), jnp.bool_)
  if caption is None:
    return tokens, ones
  if caption.shape[0] != b or caption.shape[-1] != tokens.shape[-1]:
    raise ValueError(f"decoder_context: caption features {caption.shape} do not match the "
                     f"embedding tokens {tokens.shape} (same batch and width needed).")
  mask = (jnp.ones(caption.shape[:2], jnp.bool_) if caption_mask is None
          else jnp.asarray(caption_mask).astype(jnp.bool_))
  return (jnp.concatenate([tokens, caption.astype(tokens.dtype)], axis=1),
          jnp.concatenate([ones, mask], axis=1))


def drop_decoder_condition(key: jax.Array, cond: dict, null: dict, p_embed: float = 0.1,
                           p_caption: float = 0.5) -> dict:
  """unCLIP's decoder dropout for classifier-free guidance (Ramesh et al. 2022, Sec. 2.1; Ho &
  Salimans 2022, Algorithm 1): each example's embedding ``cond["zi"]`` becomes ``null["zi"]``
  (zero) with probability ``p_embed``, and, independently, its caption (every other entry of
  ``cond``: tokens, token features and their mask) becomes the null caption with probability
  ``p_caption``.

  Args:
    key: a PRNG key.
    cond: ``{"zi": [B, E], ...caption entries [B, ...]}``.
    null: the null condition, entries broadcastable to ``cond``'s.
    p_embed, p_caption: the drop probabilities (the paper: 0.1 and 0.5).

  Returns:
    ``cond`` with the dropped entries replaced, in its dtypes.
  """
  b = cond["zi"].shape[0]
  k_e, k_c = jax.random.split(key)
  drops = {"zi": jax.random.bernoulli(k_e, p_embed, (b,))}
  drop_c = jax.random.bernoulli(k_c, p_caption, (b,))

  def leaf(name, c):
    d = drops.get(name, drop_c)
    n = jnp.broadcast_to(jnp.asarray(null[name], c.dtype), c.shape)
    return jnp.where(d.reshape((b,) + (1,) * (c.ndim - 1)), n, c)

  return {k: leaf(k, v) for k, v in cond.items()}


def decoder_null(cond: dict, null: dict) -> dict:
  """The null condition of classifier-free guidance for ``cond``: every entry replaced by its
  ``null`` (the zero embedding, the empty caption's features and mask), broadcast to ``cond``'s
  shapes and dtypes. Guided sampling contrasts the full condition with it, ``(1 + w) eps(z_i, y)
  - w eps(0, empty)`` (Ho & Salimans 2022, eq. 6)."""
  return {k: jnp.broadcast_to(jnp.asarray(null[k], v.dtype), v.shape) for k, v in cond.items()}
