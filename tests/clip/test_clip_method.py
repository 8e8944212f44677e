"""CLIP's training pieces: the temperature clamp as an optax transformation, retrieval recall,
the zero-shot prompt ensembles and the CLIP score of images with a model's towers."""

import math

import jax.numpy as jnp
import numpy as np
import optax

from genjax import metrics
from genjax.clip.method import clamp_temperature, retrieval_recall, zero_shot_prompts


def test_the_optimizer_keeps_the_temperature_at_most_100():
  params = {"logit_scale": jnp.asarray(math.log(90.0)), "w": jnp.ones(3)}
  tx = optax.chain(optax.sgd(1.0), clamp_temperature())
  state = tx.init(params)
  grads = {"logit_scale": jnp.asarray(-5.0), "w": jnp.ones(3)}  # pushes t up by 5
  upd, state = tx.update(grads, state, params)
  new = optax.apply_updates(params, upd)
  np.testing.assert_allclose(float(new["logit_scale"]), math.log(100.0), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(new["w"]), 0.0)  # other params untouched by the clamp
  grads = {"logit_scale": jnp.asarray(0.5), "w": jnp.zeros(3)}  # inside the range: plain step
  new2 = optax.apply_updates(new, tx.update(grads, state, new)[0])
  np.testing.assert_allclose(float(new2["logit_scale"]), math.log(100.0) - 0.5, rtol=1e-6)


def test_retrieval_recall_counts_ranks_both_ways():
  sim = np.array([[0.9, 0.1, 0.0],
                  [0.8, 0.5, 0.0],    # image 1: its text ranks 2nd
                  [0.0, 0.6, 0.4]])   # image 2: its text ranks 2nd
  r = retrieval_recall(sim, ks=(1, 2))
  assert r["i2t_recall@1"] == 1 / 3 and r["i2t_recall@2"] == 1.0
  # Columns: text 0 -> image 0 first; text 1 -> image 2 above image 1; text 2 -> image 2.
  assert r["t2i_recall@1"] == 2 / 3 and r["t2i_recall@2"] == 1.0


def test_zero_shot_prompts_cover_the_grammar():
  from genjax.data import shapes_grammar as g
  caps, cls = zero_shot_prompts("colour")
  assert len(caps) == 2 * 8 * 5 * 9 and np.bincount(cls).tolist() == [90] * 8
  assert "a small red circle at the top left" in caps
  assert "a large white cross in the center" in caps
  for c in caps[:20]:
    assert g.parse_caption(c) is not None


def test_clip_score_of_images_with_towers():
  enc_i = lambda x: x.reshape(x.shape[0], -1)[:, :2]
  enc_t = lambda t: jnp.asarray(t[:, :2], jnp.float32)
  images = np.zeros((3, 2, 2, 1), np.float32)
  images[:, 0, 0, 0] = [1.0, 0.0, 1.0]
  images[:, 0, 1, 0] = [0.0, 1.0, 1.0]
  tokens = np.array([[1, 0], [1, 0], [0, 1]])
  s = metrics.clip_score_images(enc_i, enc_t, images, tokens, w=100.0, batch_size=2)
  np.testing.assert_allclose(s, [100.0, 0.0, 100 / math.sqrt(2)], rtol=1e-6)
