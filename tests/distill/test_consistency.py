"""Consistency models (Song et al. 2023) against closed forms on Gaussian data.

Data N(mu, s^2 I): the EDM denoiser is D*(x, sigma) = mu + (x - mu) s^2 / (s^2 + sigma^2) and
the probability-flow ODE ``dx/dsigma = (x - D) / sigma`` is solved by
``x_sigma = mu + (x_0 - mu) sqrt(s^2 + sigma^2) / s``, so the exact consistency function
(trajectory start at sigma = eps) is ``f*(x, sigma) = mu + (x - mu) sqrt(s^2 + eps^2) /
sqrt(s^2 + sigma^2)``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import sampling as gs
from genjax.distill import consistency as cm

MU, S, EPS = 0.4, 0.3, 0.002


def d_exact(x, sigma):
  sig = sigma.reshape((-1,) + (1,) * (x.ndim - 1))
  return MU + (x - MU) * S ** 2 / (S ** 2 + sig ** 2)


def f_exact(x, sigma):
  sig = sigma.reshape((-1,) + (1,) * (x.ndim - 1))
  return MU + (x - MU) * jnp.sqrt(S ** 2 + EPS ** 2) / jnp.sqrt(S ** 2 + sig ** 2)


def test_boundary_condition_and_preconditioning():
  net = lambda x_in, sigma: jnp.sin(3 * x_in) + sigma[:, None]
  f = cm.make_consistency_fn(net, 0.5, EPS)
  x = jax.random.normal(jax.random.key(0), (5, 4))
  np.testing.assert_allclose(f(x, jnp.full((5,), EPS)), x, rtol=1e-6)  # f(x, eps) = x
  c = cm.consistency_precond(jnp.array([EPS, 1.0, 80.0]), 0.5, EPS)
  np.testing.assert_allclose(c.c_skip[0], 1.0)
  np.testing.assert_allclose(c.c_out[0], 0.0, atol=1e-9)
  np.testing.assert_allclose(c.c_skip[1], 0.25 / ((1 - EPS) ** 2 + 0.25), rtol=1e-6)
  np.testing.assert_allclose(c.c_out[1], 0.5 * (1 - EPS) / np.sqrt(1.25), rtol=1e-6)
  assert c.c_skip[2] < 1e-4 and abs(c.c_out[2] - 0.5) < 1e-2


def test_heun_step_follows_the_exact_ode():
  """Heun on the exact D: error against the closed-form trajectory is 3rd order per step."""
  x0 = jax.random.normal(jax.random.key(1), (1000, 1)) * S + MU
  errs = []
  for h in (0.4, 0.2, 0.1):
    s_from, s_to = jnp.full((1000,), 1.0), jnp.full((1000,), 1.0 - h)
    x_from = MU + (x0 - MU) * np.sqrt(S ** 2 + 1.0) / S
    exact = MU + (x0 - MU) * np.sqrt(S ** 2 + (1 - h) ** 2) / S
    errs.append(float(jnp.max(jnp.abs(cm.ode_step(d_exact, x_from, s_from, s_to) - exact))))
  slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
  assert np.all(slopes > 2.6), (errs, slopes)


def test_cd_loss_vanishes_at_the_exact_consistency_function():
  x0 = jax.random.normal(jax.random.key(2), (512, 3)) * S + MU
  key = jax.random.key(3)
  at_exact, _ = cm.cd_loss(f_exact, f_exact, d_exact, x0, key, 18, sigma_min=EPS)
  wrong = lambda x, sigma: x  # the identity is the boundary only
  at_wrong, _ = cm.cd_loss(wrong, wrong, d_exact, x0, key, 18, sigma_min=EPS)
  # what remains at f* is the Heun step's own error over 18 coarse levels
  assert float(at_exact) < 2e-5 and float(at_wrong) > 1e4 * float(at_exact)


def test_ct_is_cd_with_euler_and_the_one_sample_denoiser():
  """Algorithm 3's pair (x + sigma_{n+1} z, x + sigma_n z) is the Euler step of Algorithm 2
  whose denoiser returns the clean x: the two losses agree on the same key."""
  x0 = jax.random.normal(jax.random.key(4), (64, 2, 2, 1))
  f_on = lambda x, s: jnp.tanh(x) * (1 + s.reshape(-1, 1, 1, 1))
  f_tg = lambda x, s: jnp.cos(x) + s.reshape(-1, 1, 1, 1)
  key = jax.random.key(5)
  ct, _ = cm.ct_loss(f_on, f_tg, x0, key, 10)
  cd, _ = cm.cd_loss(f_on, f_tg, lambda x, s: x0, x0, key, 10, solver="euler")
  np.testing.assert_allclose(ct, cd, rtol=1e-5)


def test_schedules_are_the_papers():
  sig = np.asarray(cm.cm_sigmas(18))[:18]
  np.testing.assert_allclose([sig[0], sig[-1]], [0.002, 80.0], rtol=1e-5)
  assert np.all(np.diff(sig) > 0)
  k = jnp.array([0, 1000, 10_000, 800_000])
  n = np.asarray(cm.ct_num_scales(k, 800_000, 2, 150))
  expect = np.ceil(np.sqrt(np.asarray(k) / 800_000 * (151 ** 2 - 4) + 4) - 1) + 1
  np.testing.assert_array_equal(n, expect)
  assert n[0] == 2 and n[-1] == 151
  np.testing.assert_allclose(cm.ct_target_decay(2, 2, 0.9), 0.9, rtol=1e-6)
  np.testing.assert_allclose(cm.ct_target_decay(151, 2, 0.9), np.exp(2 * np.log(0.9) / 151),
                             rtol=1e-6)


@pytest.mark.parametrize("steps", [1, 3])
def test_sampling_with_the_exact_function_gives_the_data(steps):
  proc = gs.EDMProcess(sigma_min=EPS, sigma_max=80.0)
  eps_fn = gs.denoiser(lambda x, s, c: f_exact(x, jnp.broadcast_to(s, x.shape[:1])), proc,
                       prediction="x0")
  x = gs.consistency_sample(eps_fn, proc, jax.random.key(6), (20000, 1),
                            taus=gs.default_taus(steps, EPS))
  x = np.asarray(x)
  assert abs(x.mean() - MU) < 0.01 and abs(x.std() - np.sqrt(S ** 2 + EPS ** 2)) < 0.01


def test_training_step_updates_the_target_network():
  """theta- <- mu theta- + (1 - mu) theta after the optimizer step; CT's mu(k) at step 0 is mu0."""
  from configs import consistency_training
  from genjax.distill.method import build_consistency_training
  from genjax.types import DataSpec
  from genjax.training.state import TrainState

  config = consistency_training.get_config()
  config.model.ch, config.model.ch_mult, config.model.attn_resolutions = 8, (1,), ()
  method = build_consistency_training(config, DataSpec(shape=(4, 4, 1)))
  batch = {"x": jax.random.normal(jax.random.key(0), (8, 4, 4, 1)), "label": jnp.zeros(8, int)}
  params, model_state = method.init(jax.random.key(1), batch)
  tx = optax.sgd(0.1)
  state = TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                     ema_params=params, model_state=model_state,
                     rng=jax.random.key_data(jax.random.key(2)), nonfinite_step=jnp.int32(-1),
                     tx=tx)
  new, metrics = jax.jit(method.train_step)(state, batch, jax.random.key(3))
  assert float(metrics["num_scales"]) == 2 and np.isclose(float(metrics["target_decay"]), 0.9)
  leaves = lambda t: np.concatenate([np.ravel(a) for a in jax.tree.leaves(t)])
  assert np.abs(leaves(new.params) - leaves(params)).max() > 0
  np.testing.assert_allclose(leaves(new.model_state["target"]),
                             0.9 * leaves(params) + 0.1 * leaves(new.params), rtol=1e-5, atol=1e-7)


@pytest.mark.slow  # three small trainings, ~1 min (CI budget); the CT step is tested above
def test_consistency_distillation_and_training_runs(tmp_path):
  """A tiny EDM teacher, its consistency distillation and 2-step samples, the teacher-mismatch
  error, and consistency training (in process; the CLI is train.py / sample.py over these)."""
  from configs import consistency_distill, consistency_training, edm
  from genjax.training import run as run_lib
  from genjax.training import sampling

  def tiny(config):
    config.model.ch, config.model.ch_mult, config.model.attn_resolutions = 8, (1,), ()
    t = config.training
    t.batch_size, t.num_steps, t.ckpt_every, t.sample_every = 16, 2, 2, 0
    t.progress, t.tensorboard = False, False
    return config

  teacher, student = str(tmp_path / "edm"), str(tmp_path / "cd")
  run_lib.train_and_evaluate(tiny(edm.get_config()), teacher)
  config = tiny(consistency_distill.get_config())
  config.consistency.teacher_workdir = teacher
  config.sampling.steps = 2
  run_lib.train_and_evaluate(config, student)
  paths = sampling.sample_to_files(config, student, student, num=3, batch=3)
  assert paths[1].endswith("consistency_2.npz")
  x = np.load(paths[1])["samples"]
  assert x.shape == (3, 8, 8, 1) and np.all(np.isfinite(x))
  config.model.ch = 16
  with pytest.raises(ValueError, match="init_from_teacher"):
    run_lib.train_and_evaluate(config, str(tmp_path / "bad"))

  config = tiny(consistency_training.get_config())
  state = run_lib.train_and_evaluate(config, str(tmp_path / "ct"))
  assert int(state.step) == 2 and "target" in state.model_state
