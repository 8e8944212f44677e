"""CLIP's symmetric InfoNCE (Radford et al. 2021, Fig. 3) against a hand computation, and the
clipped temperature (Sec. 2.5)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.clip import losses


def test_infonce_matches_a_hand_computation_on_3x3():
  s = np.array([[2.0, 0.5, -1.0],
                [0.0, 1.0, 0.3],
                [1.5, -0.5, 0.8]])
  # Rows: image i against every text; the pair is the diagonal.
  rows = [-(s[i, i] - math.log(sum(math.exp(v) for v in s[i]))) for i in range(3)]
  cols = [-(s[j, j] - math.log(sum(math.exp(s[i, j]) for i in range(3)))) for j in range(3)]
  want = (sum(rows) / 3 + sum(cols) / 3) / 2
  with jax.enable_x64(True):
    loss, m = losses.infonce_loss(jnp.asarray(s))
    assert loss.dtype == jnp.float64
    np.testing.assert_allclose(float(loss), want, rtol=1e-14)
    np.testing.assert_allclose(float(m["loss_i2t"]), sum(rows) / 3, rtol=1e-14)
    np.testing.assert_allclose(float(m["loss_t2i"]), sum(cols) / 3, rtol=1e-14)
  assert float(m["acc_i2t"]) == pytest.approx(2 / 3)  # row 2 prefers text 0
  assert float(m["acc_t2i"]) == pytest.approx(1.0)
  torch = pytest.importorskip("torch")
  t = torch.tensor(s)
  ref = (torch.nn.functional.cross_entropy(t, torch.arange(3))
         + torch.nn.functional.cross_entropy(t.T, torch.arange(3))) / 2
  np.testing.assert_allclose(float(loss), float(ref), rtol=1e-6)
  with pytest.raises(ValueError, match="square"):
    losses.infonce_loss(jnp.zeros((2, 3)))


def test_logits_are_scaled_cosines_with_the_temperature_clipped_at_100():
  img = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]])
  txt = np.array([[1.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
  cos = (img / np.linalg.norm(img, axis=1, keepdims=True)) @ (
      txt / np.linalg.norm(txt, axis=1, keepdims=True)).T
  with jax.enable_x64(True):
    for t, scale in ((losses.INIT_LOGIT_SCALE, 1 / 0.07), (math.log(50.0), 50.0),
                     (math.log(1e4), 100.0), (-3.0, 1.0)):
      got = np.asarray(losses.clip_logits(jnp.asarray(img), jnp.asarray(txt), jnp.asarray(t)))
      np.testing.assert_allclose(got, scale * cos, rtol=1e-12)
  assert float(losses.clamp_logit_scale(jnp.asarray(10.0))) == pytest.approx(math.log(100.0))
  # No gradient pushes the scale past the clip.
  g = jax.grad(lambda t: jnp.sum(losses.clip_logits(jnp.asarray(img, jnp.float32),
                                                    jnp.asarray(txt, jnp.float32), t)))
  assert float(g(jnp.asarray(6.0))) == 0.0 and float(g(jnp.asarray(2.0))) != 0.0
