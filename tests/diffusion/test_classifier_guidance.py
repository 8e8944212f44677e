"""Classifier guidance end to end: the guided eps_fn against Bayes' rule on the two-class
mixture of test_guidance.py, the noisy classifier's training, and the CLI."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from genjax import diffusion
from genjax.diffusion.classifier import classifier_guided_eps_fn
from tests.conftest import run_python
from tests.diffusion.test_guidance import _log_p, _log_p_cond, _log_p_y_given_x


def test_guided_eps_fn_with_the_bayes_classifier_is_the_conditional_eps():
  """eps(x_t) - sqrt(1 - abar_t) grad log p(y | x_t) = eps(x_t | y), with sqrt(1 - abar_t)
  gathered per example from the schedule at (different) zero-based t."""
  sched = diffusion.get_schedule("linear", 1000)
  abar = sched.alphas_cumprod
  t = jnp.array([0, 250, 600, 999])
  y = jnp.array([0, 1, 1, 0])
  x = 1.3 * jax.random.normal(jax.random.key(0), (4, 3))
  eps_u = lambda x, t: jax.vmap(lambda xi, a: -jnp.sqrt(1 - a) * jax.grad(_log_p)(xi, a))(
      x, abar[t])
  grad_fn = lambda x, t, y: jax.vmap(lambda xi, a, yi: jax.grad(_log_p_y_given_x)(xi, yi, a))(
      x, abar[t], y)
  guided = classifier_guided_eps_fn(eps_u, grad_fn, sched, y, 1.0)(x, t)
  exact = jax.vmap(lambda xi, a, yi: -jnp.sqrt(1 - a) * jax.grad(_log_p_cond)(xi, yi, a))(
      x, abar[t], y)
  np.testing.assert_allclose(guided, exact, rtol=1e-4, atol=1e-5)
  # A learned-variance output keeps its variance part.
  var = jnp.ones_like(x)
  g, v = classifier_guided_eps_fn(lambda x, t: (eps_u(x, t), var), grad_fn, sched, y, 1.0)(x, t)
  np.testing.assert_allclose(g, exact, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(v, var)


def test_cli_classifier_then_guided_sampling(tmp_path):
  common = ["--config.training.batch_size=16", "--config.training.num_steps=2",
            "--config.training.ckpt_every=2", "--config.diffusion.num_timesteps=50",
            "--config.model.ch=8", "--config.model.ch_mult=(1,)",
            "--config.model.attn_resolutions=()"]
  clf, ddpm = str(tmp_path / "clf"), str(tmp_path / "ddpm")
  run_python(["train.py", "--config=configs/noisy_classifier.py", *common, f"--workdir={clf}"],
             check=True)
  run_python(["sample.py", "--config=configs/noisy_classifier.py", *common, f"--workdir={clf}",
              "--eval=accuracy", "--num=20"], check=True)
  assert "accuracy_t0" in open(os.path.join(clf, "eval.json")).read()
  dd = ["--config=configs/ddpm.py", *common, "--config.training.sample_every=0",
        "--config.sampling.steps=4"]
  run_python(["train.py", *dd, f"--workdir={ddpm}"], check=True)
  guided = [*dd, f"--config.sampling.classifier_workdir={clf}",
            "--config.sampling.classifier_scale=3", "--label=2"]
  run_python(["sample.py", *guided, f"--workdir={ddpm}", "--num=3"], check=True)
  x = np.load(os.path.join(ddpm, "ddim4_eta1.0_label2.npz"))["samples"]
  assert x.shape == (3, 8, 8, 1) and np.all(np.isfinite(x))
  bad = run_python(["sample.py", *guided, f"--workdir={ddpm}", "--sampler=dpm-solver-2"])
  assert bad.returncode != 0 and "ddpm and ddim" in bad.stderr
  bad = run_python(["sample.py", *guided, "--config.diffusion.num_timesteps=60",
                    f"--workdir={ddpm}"])
  assert bad.returncode != 0 and "same one" in bad.stderr
