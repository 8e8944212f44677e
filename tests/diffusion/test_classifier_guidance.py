"""Classifier guidance end to end: the guided eps_fn against Bayes' rule on the two-class
mixture of test_guidance.py, the noisy classifier's training, and the CLI."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import diffusion
from genjax import sampling as gs
from tests.sampling.test_guidance import _log_p, _log_p_cond, _log_p_y_given_x


def test_guided_eps_fn_with_the_bayes_classifier_is_the_conditional_eps():
  """eps(x_t) - sqrt(1 - abar_t) grad log p(y | x_t) = eps(x_t | y), with sqrt(1 - abar_t)
  gathered per example from the schedule at (different) zero-based t: classifier_guidance's
  gradient applied in eps form (eps_of)."""
  sched = diffusion.get_schedule("linear", 1000)
  abar = sched.alphas_cumprod
  t = jnp.array([0, 250, 600, 999])
  y = jnp.array([0, 1, 1, 0])
  x = 1.3 * jax.random.normal(jax.random.key(0), (4, 3))
  eps_u = lambda x, t, c=None: jax.vmap(
      lambda xi, a: -jnp.sqrt(1 - a) * jax.grad(_log_p)(xi, a))(x, abar[t])
  grad_fn = lambda x, t, y: jax.vmap(lambda xi, a, yi: jax.grad(_log_p_y_given_x)(xi, yi, a))(
      x, abar[t], y)
  sigma = sched.marginal_std(t)
  guided = gs.eps_of(gs.classifier_guidance(eps_u, grad_fn, 1.0)(x, t, y), sigma)
  exact = jax.vmap(lambda xi, a, yi: -jnp.sqrt(1 - a) * jax.grad(_log_p_cond)(xi, yi, a))(
      x, abar[t], y)
  np.testing.assert_allclose(guided, exact, rtol=1e-4, atol=1e-5)
  # A learned-variance output keeps its variance part.
  var = jnp.ones_like(x)
  p = gs.classifier_guidance(lambda x, t, c: gs.Prediction(eps_u(x, t), var), grad_fn, 1.0)(
      x, t, y)
  np.testing.assert_allclose(gs.eps_of(p, sigma), exact, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(p.var_values, var)


def _tiny(config, **sampling):
  config.model.ch, config.model.ch_mult, config.model.attn_resolutions = 8, (1,), ()
  config.diffusion.num_timesteps = 50
  t = config.training
  t.batch_size, t.num_steps, t.ckpt_every, t.sample_every = 16, 2, 2, 0
  t.progress, t.tensorboard = False, False
  for k, v in sampling.items():
    config.sampling[k] = v
  return config


def test_classifier_training_then_guided_sampling(tmp_path):
  """In process (the CLI is train.py / sample.py over these calls): train a classifier and an
  unconditional DDPM, evaluate the classifier, sample with its guidance, and the errors."""
  from configs import ddpm, noisy_classifier
  from genjax.diffusion.method import build_ddpm
  from genjax.training import run as run_lib
  from genjax.training import sampling
  from genjax.types import DataSpec

  clf, dd = str(tmp_path / "clf"), str(tmp_path / "ddpm")
  clf_config = _tiny(noisy_classifier.get_config())
  run_lib.train_and_evaluate(clf_config, clf)
  res = sampling.evaluate(clf_config, clf, ["accuracy"], clf, num=20)
  assert 0.0 <= res["accuracy"]["accuracy_t0"] <= 1.0
  run_lib.train_and_evaluate(_tiny(ddpm.get_config(), steps=4), dd)
  guided = _tiny(ddpm.get_config(), steps=4, classifier_workdir=clf, classifier_scale=3.0, label=2)
  paths = sampling.sample_to_files(guided, dd, dd, num=3, batch=3)
  x = np.load(paths[1])["samples"]
  assert paths[1].endswith("ddim4_eta1.0_cls3.0_label2.npz")
  assert x.shape == (3, 8, 8, 1) and np.all(np.isfinite(x))
  spec = DataSpec(shape=(8, 8, 1), num_classes=10)
  # sample.py --mode=inpaint / img2img on the same run: the inputs, what the model was given and
  # the results side by side; the known pixels are kept exactly.
  inpaint = _tiny(ddpm.get_config(), steps=4, mode="inpaint", input="test", mask="right")
  png, npz = sampling.edit_to_files(inpaint, dd, dd, num=4, batch=4, per_input=2)
  assert png.endswith("ddim4_eta1.0_inpaint.png") and os.path.getsize(png) > 0
  out = np.load(npz)
  keep = out["mask"][..., 0] > 0
  np.testing.assert_allclose(out["samples"][0::2][keep], out["inputs"][keep], atol=1e-6)
  assert out["samples"].shape == (4, 8, 8, 1) and out["inputs"].shape == (2, 8, 8, 1)
  sdedit = _tiny(ddpm.get_config(), steps=4, mode="img2img", input="test", strength=0.3)
  assert sampling.edit_to_files(sdedit, dd, dd, num=2, batch=2)[0].endswith("img2img0.3.png")
  with pytest.raises(ValueError, match="needs RGB"):
    sampling.edit_to_files(_tiny(ddpm.get_config(), mode="colorize", input="test"), dd, dd, num=2)
  # Every sampler takes the guidance, the continuous ones at fractional steps of the classifier.
  for sampler in ("ddpm", "dpm-solver-2"):
    m = build_ddpm(_tiny(ddpm.get_config(), sampler=sampler, classifier_workdir=clf,
                         classifier_scale=3.0, label=2), spec)
    run, state = run_lib.restore(_tiny(ddpm.get_config()), dd)
    assert np.all(np.isfinite(np.asarray(m.sample(state.ema_params, jax.random.key(0), 3))))
  other = _tiny(ddpm.get_config(), classifier_workdir=clf)
  other.diffusion.num_timesteps = 60
  with pytest.raises(ValueError, match="same one"):
    build_ddpm(other, spec)
