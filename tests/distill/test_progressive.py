"""Progressive distillation (Salimans & Ho 2022): the target's algebra, x-prediction from every
parameterization, sampling with the exact Gaussian model, and the CLI chain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import sampling as gs
from genjax.distill import progressive as pd

NS = gs.get_schedule("linear", 1000).continuous()
MU, S = 0.3, 0.5


def x_exact(z, t):  # E[x | z_t] for x ~ N(MU, S^2)
  a, s = (jnp.reshape(v, (-1, 1)) for v in NS.alpha_sigma_with_data(t))
  return MU + a * S ** 2 * (z - a * MU) / (a ** 2 * S ** 2 + s ** 2)


def ddim_x_step(x_hat, z_t, a_t, s_t, a_s, s_s):
  """Salimans & Ho eq. 5, written out: z_s = a_s x^ + s_s (z_t - a_t x^) / s_t."""
  return a_s * x_hat + s_s * (z_t - a_t * x_hat) / s_t


@pytest.mark.parametrize("i", [1, 3, 8])
def test_one_student_step_with_the_target_equals_two_teacher_steps(i):
  """Algorithm 2: DDIM from z_t with x~ lands exactly on the teacher's z_t'' (any teacher)."""
  n = 8
  teacher = lambda z, t: jnp.tanh(z) * (1.0 + t[:, None])
  z = jax.random.normal(jax.random.key(0), (16, 3))
  t = jnp.full((16,), i / n)
  x_tilde = pd.distillation_target(teacher, NS, z, t, n)
  a, s = (v[:, None] for v in NS.alpha_sigma_with_data(t))
  (a1, s1), (a2, s2) = ((v[:, None] for v in NS.alpha_sigma_with_data(t - k / n)) for k in (0.5, 1.0))
  z1 = ddim_x_step(teacher(z, t), z, a, s, a1, s1)
  z2 = ddim_x_step(teacher(z1, t - 0.5 / n), z1, a1, s1, a2, s2)
  np.testing.assert_allclose(ddim_x_step(x_tilde, z, a, s, a2, s2), z2, rtol=1e-4, atol=1e-5)
  if i == 1:  # t'' = 0: the target is the teacher's x^ at t'
    np.testing.assert_allclose(x_tilde, teacher(z1, t - 0.5 / n), rtol=1e-5)


@pytest.mark.parametrize("model_type", ["eps", "x0", "v"])
def test_x0_fn_inverts_each_parameterization(model_type):
  x = jax.random.normal(jax.random.key(1), (8, 2))
  e = jax.random.normal(jax.random.key(2), (8, 2))
  t = jnp.linspace(0.05, 0.95, 8)
  a, s = (v[:, None] for v in NS.alpha_sigma_with_data(t))
  z = a * x + s * e
  out = {"eps": e, "x0": x, "v": a * e - s * x}[model_type]  # v of Salimans & Ho eq. (Sec. 4)
  fn = pd.make_x0_fn(lambda zz, step: out, NS, model_type)
  np.testing.assert_allclose(fn(z, t), x, rtol=1e-4, atol=1e-4)


def test_ddim_grid_with_the_exact_model_recovers_the_data():
  """A student's sampler, DDIM on the grid i / N of the continuous view, fed the exact x^."""
  eps_fn = gs.denoiser(lambda z, t, c: x_exact(z, t), NS, prediction="x0")
  x = np.asarray(gs.ddim_sample(eps_fn, NS, jax.random.key(3), (20000, 1), num_steps=100))
  assert abs(x.mean() - MU) < 0.01 and abs(x.std() - S) < 0.02
  # The grid is 1, (N-1)/N, ..., 1/N and then the clean data: N evaluations.
  times = []
  gs.ddim_sample(lambda z, t, c: (times.append(t), 0 * z)[1], NS, jax.random.key(3), (2, 1),
                 num_steps=4)
  assert len(times) == 1  # traced once inside the scan


def test_loss_is_zero_for_the_exact_two_step_student():
  x = MU + S * jax.random.normal(jax.random.key(4), (64, 2))
  student = lambda z, t: pd.distillation_target(x_exact, NS, z, t, 4)
  loss, _ = pd.pd_loss(student, x_exact, NS, x, jax.random.key(5), 4)
  assert float(loss) < 1e-8
  loss_teacher, _ = pd.pd_loss(x_exact, x_exact, NS, x, jax.random.key(5), 4)
  assert float(loss_teacher) > 1e-4  # the teacher's one step is not its two steps


@pytest.mark.slow  # two small trainings, ~40 s (CI budget); run with -m slow
def test_distillation_rounds(tmp_path):
  """A v-teacher, one round (teacher 4 steps -> student 2), its samples, and the chain check."""
  from configs import ddpm, progressive_distill
  from genjax.training import run as run_lib
  from genjax.training import sampling

  def tiny(config):
    config.model.ch, config.model.ch_mult, config.model.attn_resolutions = 8, (1,), ()
    config.diffusion.num_timesteps, config.diffusion.parameterization = 50, "v"
    t = config.training
    t.batch_size, t.num_steps, t.ckpt_every, t.sample_every = 16, 2, 2, 0
    t.progress, t.tensorboard = False, False
    return config

  teacher, r1 = str(tmp_path / "teacher"), str(tmp_path / "pd2")
  run_lib.train_and_evaluate(tiny(ddpm.get_config()), teacher)
  config = tiny(progressive_distill.get_config())
  config.distill.teacher_workdir, config.distill.student_steps = teacher, 2
  state = run_lib.train_and_evaluate(config, r1)
  assert int(state.step) == 2
  paths = sampling.sample_to_files(config, r1, r1, num=3, batch=3)
  assert paths[1].endswith("ddim2_eta0.0.npz")
  x = np.load(paths[1])["samples"]
  assert x.shape == (3, 8, 8, 1) and np.all(np.isfinite(x))
  nxt = tiny(progressive_distill.get_config())
  nxt.distill.teacher_workdir, nxt.distill.student_steps = r1, 2  # r1 takes 2 steps, not 4
  with pytest.raises(ValueError, match="student_steps=1"):
    run_lib.build_run(nxt)
  nxt.distill.student_steps = 1
  nxt.model.ch = 16
  with pytest.raises(ValueError, match="must equal the teacher"):
    run_lib.build_run(nxt)
