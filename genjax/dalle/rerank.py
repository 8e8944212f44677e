"""Reranking of generated candidates (Ramesh et al. 2021, Sec. 2.5: "we rerank the samples drawn
from the transformer using a pretrained contrastive model ... which assigns a score based on how
well the image matches the caption"; Fig. 9 varies the number of candidates N).

:func:`rerank` draws ``N`` candidates per caption and keeps the best under any scorer
``score_fn(images [M, ...], text [M, L]) -> [M]`` (higher is better). Scorers:

* :func:`clip_scorer`: the paper's, from a CLIP model's image and text embeddings
  (``genjax.metrics.clip_score``, w * max(cos, 0));
* any other function of (images, captions), e.g. an attribute classifier's caption adherence.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from genjax.metrics.clip_score import clip_score

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def rerank(sample_fn: Callable[[Array, Array], Array], score_fn: ScoreFn, key: Array,
           text: Array, num_candidates: int):
  """The best of ``num_candidates`` samples per caption.

  Args:
    sample_fn: ``(key, text [M, L]) -> images [M, ...]``, one sample per caption row.
    score_fn: ``(images [M, ...], text [M, L]) -> scores [M]``, higher is better.
    key: PRNG key.
    text: [B, L] captions (tokens).
    num_candidates: N >= 1.

  Returns:
    ``(best [B, ...], best_scores [B], scores [B, N])``.
  """
  if num_candidates < 1:
    raise ValueError(f"num_candidates must be >= 1, got {num_candidates}.")
  b = text.shape[0]
  rep = jnp.repeat(text, num_candidates, axis=0)             # caption b -> rows b N .. b N + N-1
  images = sample_fn(key, rep)
  scores = jnp.asarray(score_fn(images, rep)).reshape(b, num_candidates)
  best = jnp.argmax(scores, axis=1)
  idx = jnp.arange(b) * num_candidates + best
  return images[idx], scores[jnp.arange(b), best], scores


def clip_scorer(image_embed_fn: Callable[[Array], Array],
                text_embed_fn: Callable[[Array], Array], w: float = 100.0) -> ScoreFn:
  """The CLIP score ``w max(cos(E_img(x), E_txt(c)), 0)`` (Hessel et al. 2021, eq. 1) as a scorer,
  from a CLIP model's two towers (``images -> [M, D]``, ``tokens -> [M, D]``)."""
  def score(images, text):
    return clip_score(image_embed_fn(images), text_embed_fn(text), w)
  return score
