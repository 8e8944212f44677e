"""Every stochastic sampler draws its per-step noise before the scan when it fits
(``genjax.sampling.scan.step_draws``): the draws are bitwise those of each step, and the samples
equal to float32 rounding (XLA may fuse the noise into the update differently), where a noise
draw paired with the wrong step would move them by O(1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax.sampling as gs
from genjax.sampling import consistency, edm, langevin, scan

from gaussian import exact_eps_fn

SCHED = gs.get_schedule("linear", 40)
N = 8


def _replacement():
  return gs.replacement(jnp.broadcast_to(jnp.asarray([0.0, 0.5]), (N, 2)), jnp.asarray([0.0, 1.0]))


def _samplers():
  vp = SCHED.continuous()
  ve = gs.EDMProcess(sigma_min=0.01, sigma_max=5.0)
  eps_vp, eps_sched, eps_ve = exact_eps_fn(vp), exact_eps_fn(SCHED), exact_eps_fn(ve)
  return {
      "ddpm": lambda k, c: gs.ddpm_sample(eps_sched, SCHED, k, (N, 2), constraint=c),
      "ddpm_stride": lambda k, c: gs.ddpm_sample(eps_sched, SCHED, k, (N, 2), constraint=c,
                                                 trajectory_stride=7)[1],
      "ddim_eta1": lambda k, c: gs.ddim_sample(eps_sched, SCHED, k, (N, 2), num_steps=10,
                                               eta=1.0, constraint=c),
      "ddim_eta0": lambda k, c: gs.ddim_sample(eps_sched, SCHED, k, (N, 2), num_steps=10,
                                               constraint=c),
      "repaint": lambda k, c: gs.repaint_sample(eps_sched, SCHED, k, (N, 2),
                                                constraint=c or _replacement(), jump_length=5,
                                                jump_n_sample=2),
      "edm_churn": lambda k, c: edm.edm_heun_sample(eps_vp, vp, k, (N, 2), steps=8, s_churn=5.0,
                                                    constraint=c),
      "euler_ancestral": lambda k, c: edm.euler_ancestral_sample(eps_vp, vp, k, (N, 2), steps=8,
                                                                 constraint=c),
      "langevin": lambda k, c: langevin.annealed_langevin_sample(
          eps_ve, ve, k, (N, 2), sigmas=gs.geometric_sigmas(5.0, 0.01, 4), n_steps_each=3,
          constraint=c),
      "consistency": lambda k, c: consistency.consistency_sample(
          eps_ve, ve, k, (N, 2), taus=(2.0, 0.5, 0.1), constraint=c),
  }


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("name", list(_samplers()))
def test_drawing_ahead_gives_the_same_samples(name, constrained, monkeypatch):
  fn = _samplers()[name]
  c = _replacement() if constrained else None
  key = jax.random.key(3)
  ahead = np.asarray(jax.jit(lambda k: fn(k, c))(key))
  monkeypatch.setattr(scan, "DRAWS_AHEAD_BYTES", 0)  # every step draws its own noise
  in_step = np.asarray(jax.jit(lambda k: fn(k, c))(key))
  assert np.isfinite(ahead).all()
  np.testing.assert_allclose(ahead, in_step, rtol=1e-5, atol=1e-5)


def test_step_draws_keeps_to_its_byte_budget():
  keys = jax.random.split(jax.random.key(0), 5)
  draw = lambda k: (jax.random.normal(k, (4, 3)), jax.random.split(k)[0])
  xs, of = scan.step_draws(draw, keys, max_bytes=5 * (4 * 3 * 4 + 8))  # exactly fits
  z, k = of(jax.tree.map(lambda a: a[2], xs))
  np.testing.assert_array_equal(z, jax.random.normal(keys[2], (4, 3)))
  assert jax.random.key_data(k).tolist() == jax.random.key_data(
      jax.random.split(keys[2])[0]).tolist()
  xs, of = scan.step_draws(draw, keys, max_bytes=5 * (4 * 3 * 4 + 8) - 1)  # one byte short
  assert xs is keys and of is draw
  raw = jax.random.split(jax.random.PRNGKey(0), 5)  # legacy uint32 keys
  xs, of = scan.step_draws(lambda k: jax.random.normal(k, (2,)), raw)
  np.testing.assert_array_equal(xs[4], jax.random.normal(raw[4], (2,)))
  empty, of = scan.step_draws(draw, keys[:0])
  assert empty.shape[0] == 0
