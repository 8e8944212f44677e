"""Reranking keeps, per caption, the best of N candidates drawn for that caption."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.dalle import rerank


def _sample_fn(key, text):
  """Fake generator: image = caption's first token + noise, so candidates differ and carry
  their caption."""
  noise = jax.random.normal(key, (text.shape[0], 4, 4, 1))
  return text[:, :1, None, None].astype(jnp.float32) + noise


def test_rerank_keeps_the_best_candidate_of_each_caption():
  text = jnp.array([[1, 0], [5, 0], [9, 0]], jnp.int32)
  score = lambda images, t: -jnp.abs(jnp.mean(images, (1, 2, 3)) - t[:, 0])   # closest to caption
  best, best_scores, scores = rerank.rerank(_sample_fn, score, jax.random.key(0), text, 8)
  assert best.shape == (3, 4, 4, 1) and scores.shape == (3, 8)
  # every candidate of caption b was drawn for caption b
  rep = jnp.repeat(text, 8, 0)
  all_images = _sample_fn(jax.random.key(0), rep)
  np.testing.assert_allclose(np.asarray(scores).reshape(-1), np.asarray(score(all_images, rep)))
  # the kept one is the argmax, and it is at least as good as every other candidate
  np.testing.assert_allclose(np.asarray(best_scores), np.asarray(scores).max(1))
  np.testing.assert_allclose(np.asarray(score(best, text)), np.asarray(best_scores), rtol=1e-6)
  # and better on average than a single draw
  assert float(jnp.mean(best_scores)) > float(jnp.mean(scores[:, 0]))


def test_one_candidate_is_plain_sampling():
  text = jnp.array([[2, 0], [3, 0]], jnp.int32)
  best, _, _ = rerank.rerank(_sample_fn, lambda i, t: jnp.zeros(i.shape[0]), jax.random.key(1),
                             text, 1)
  np.testing.assert_array_equal(np.asarray(best), np.asarray(_sample_fn(jax.random.key(1), text)))
  with pytest.raises(ValueError, match="num_candidates"):
    rerank.rerank(_sample_fn, lambda i, t: jnp.zeros(i.shape[0]), jax.random.key(1), text, 0)


def test_clip_scorer_is_the_clip_score_of_the_embeddings():
  img_e = lambda x: x.reshape(x.shape[0], -1)[:, :3]
  txt_e = lambda t: t.astype(jnp.float32)
  s = rerank.clip_scorer(img_e, txt_e)
  x = jnp.array([[1.0, 0.0, 0.0, 7.0], [0.0, 1.0, 0.0, 7.0]]).reshape(2, 2, 2, 1)
  t = jnp.array([[1, 0, 0], [1, 0, 0]])
  np.testing.assert_allclose(np.asarray(s(x, t)), [100.0, 0.0], atol=1e-4)
