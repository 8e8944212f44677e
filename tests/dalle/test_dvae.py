"""DALL-E's discrete VAE: the Gumbel-softmax relaxation, the KL to the uniform prior, the
schedules, and training end to end through the CLI."""

import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.dalle import gumbel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gumbel_softmax_approaches_one_hot_as_tau_goes_to_zero():
  logits = jnp.array([[1.0, 0.5, -1.0, 2.0]] * 2000)
  key = jax.random.key(0)
  gaps = []
  for tau in (1.0, 0.3, 0.1, 0.01, 0.001):
    y = np.asarray(gumbel.gumbel_softmax(key, logits, tau))
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
    gaps.append(float(np.mean(1.0 - y.max(-1))))           # distance from a one-hot
  assert all(a > b for a, b in zip(gaps, gaps[1:]))
  assert gaps[-1] < 1e-3
  # with the same noise, the limit is the one-hot of argmax(logits + g) (the Gumbel-max trick)
  y = np.asarray(gumbel.gumbel_softmax(key, logits, 1e-3))
  g = np.asarray(jax.random.gumbel(key, logits.shape, logits.dtype))
  np.testing.assert_array_equal(y.argmax(-1), (np.asarray(logits) + g).argmax(-1))


def test_gumbel_softmax_expectation_is_the_softmax():
  logits = jnp.array([0.3, -1.2, 1.5, 0.0, 0.7])
  n = 200_000
  y = gumbel.gumbel_softmax(jax.random.key(1), jnp.broadcast_to(logits, (n, 5)), 0.01)
  mean = np.asarray(jnp.mean(y, 0))
  p = np.asarray(jax.nn.softmax(logits))
  se = np.sqrt(p * (1 - p) / n)
  np.testing.assert_array_less(np.abs(mean - p), 5 * se + 1e-4)
  # the straight-through hard samples are exact one-hots with the same expectation
  h = gumbel.gumbel_softmax(jax.random.key(2), jnp.broadcast_to(logits, (n, 5)), 1.0, hard=True)
  h = np.asarray(h)
  np.testing.assert_array_equal(np.sort(h, -1)[:, :-1], 0.0)
  np.testing.assert_array_less(np.abs(h.mean(0) - p), 5 * se)


def test_gumbel_softmax_keeps_dtype_and_hard_passes_relaxed_gradient():
  logits = jnp.array([[0.2, 0.1, -0.3]], jnp.bfloat16)
  assert gumbel.gumbel_softmax(jax.random.key(0), logits, 0.5).dtype == jnp.bfloat16
  lg = jnp.array([[0.2, 0.1, -0.3]])
  w = jnp.array([1.0, 2.0, 3.0])
  f = lambda hard: jax.grad(lambda l: jnp.sum(gumbel.gumbel_softmax(jax.random.key(3), l, 0.5,
                                                                    hard) * w))(lg)
  np.testing.assert_allclose(np.asarray(f(True)), np.asarray(f(False)), rtol=1e-6)


def test_kl_to_uniform_matches_closed_form_and_torch():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(4, 3, 7)) * 2
  with jax.enable_x64(True):
    got = np.asarray(gumbel.kl_to_uniform(jnp.asarray(logits, jnp.float64)))
    assert got.dtype == np.float64
  q = np.exp(logits - logits.max(-1, keepdims=True))
  q /= q.sum(-1, keepdims=True)
  closed = np.sum(q * np.log(q * 7), -1)                            # sum q log(q / (1/K))
  np.testing.assert_allclose(got, closed, rtol=1e-12)
  torch = pytest.importorskip("torch")
  d = torch.distributions
  ref = d.kl_divergence(d.Categorical(logits=torch.tensor(logits)),
                        d.Categorical(probs=torch.full((4, 3, 7), 1 / 7, dtype=torch.float64)))
  np.testing.assert_allclose(got, ref.numpy(), rtol=1e-10)
  # extremes: 0 for the uniform posterior, log K for a one-hot one
  assert float(gumbel.kl_to_uniform(jnp.zeros(9))) == pytest.approx(0.0, abs=1e-6)
  assert float(gumbel.kl_to_uniform(jnp.array([60.0, 0, 0, 0]))) == pytest.approx(math.log(4), 1e-5)


def test_cosine_anneal_ends():
  f = lambda s: float(gumbel.cosine_anneal(s, 1.0, 1 / 16, 100))
  assert f(0) == pytest.approx(1.0)
  assert f(50) == pytest.approx((1 + 1 / 16) / 2)
  assert f(100) == pytest.approx(1 / 16) and f(1000) == pytest.approx(1 / 16)
  assert all(f(a) > f(a + 10) for a in range(0, 90, 10))


@pytest.mark.slow
def test_dvae_trains_through_the_cli_and_reports_codes(tmp_path):
  wd = str(tmp_path / "dvae")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  small = ["--config.model.channels=(16,)", "--config.model.num_res_blocks=0",
           "--config.dvae.num_codes=16", "--config.dvae.embedding_dim=8"]
  r = subprocess.run([sys.executable, "train.py", "--config=configs/dvae_digits.py",
                      f"--workdir={wd}", "--config.training.num_steps=3",
                      "--config.training.ckpt_every=3", "--config.training.sample_every=3",
                      "--config.training.batch_size=16", "--config.training.progress=False"]
                     + small, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  r = subprocess.run([sys.executable, "sample.py", "--config=configs/dvae_digits.py",
                      f"--workdir={wd}", "--eval=recon", "--num=32"] + small,
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  import json
  res = json.load(open(os.path.join(wd, "eval.json")))["recon"]
  assert res["num_codes"] == 16 and 1 <= res["codes_used"] <= 16 and res["code_shape"] == [4, 4]
  assert os.path.exists(os.path.join(wd, "dvae_recon.png"))
