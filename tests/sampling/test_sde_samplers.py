"""Samplers fed the exact score of Gaussian data reproduce its mean and covariance.

Data ``x0 ~ N(MU, C)`` in 2-D with a full covariance (tests/score/gaussian.py). Each sampler
starts from the exact marginal at T (so the prior mismatch of VE's N(0, sigma_max^2) is not
measured) unless noted, and its samples' mean / covariance must match (MU, C) to 5 standard
errors plus the method's own discretization bias (``mean_tol`` in data units, ``cov_tol``
relative to the largest entry of C). Also: the fixed-step ODE solvers converge to the adaptive
one, annealed Langevin (NCSN Algorithm 1) and EDM's Heun sampler with the exact score, the
trajectory layout and jit / vmap.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import sampling as S
from tests.sampling.gaussian import MU, check_moments, exact_eps_fn, marginal_sample

N = 4000
VP, SUBVP, VE = S.VPSDE(), S.SubVPSDE(), S.VESDE(sigma_min=0.01, sigma_max=20.0)

# (id, sde, sampler, kwargs, mean_tol, cov_tol)
CASES = [
    ("vp_pc_rd_langevin", VP, "pc", dict(snr=0.01), 0.01, 0.04),
    ("vp_pc_em", VP, "pc", dict(predictor="euler_maruyama", corrector="none"), 0.01, 0.04),
    ("vp_pc_ancestral", VP, "pc", dict(predictor="ancestral_sampling", corrector="none"), 0.01, 0.04),
    ("vp_ode_euler", VP, "ode-euler", dict(steps=200), 0.01, 0.03),
    ("vp_ode_heun", VP, "ode-heun", dict(steps=50), 0.01, 0.03),
    ("subvp_pc_em_langevin", SUBVP, "pc", dict(predictor="euler_maruyama", snr=0.01), 0.01, 0.04),
    ("subvp_ode_heun", SUBVP, "ode-heun", dict(steps=50), 0.01, 0.03),
    ("ve_pc_rd_langevin", VE, "pc", dict(snr=0.16, eps=1e-5), 0.01, 0.04),
    ("ve_pc_ancestral", VE, "pc", dict(predictor="ancestral_sampling", corrector="none",
                                       eps=1e-5), 0.01, 0.04),
    ("ve_ode_heun", VE, "ode-heun", dict(steps=100, eps=1e-5), 0.01, 0.03),
]


def _sample(sde, sampler, kw, key, x_T):
  fn = exact_eps_fn(sde)
  if sampler == "pc":
    return S.pc_sample(fn, sde, key, (N, 2), x_T=x_T, **kw)
  if sampler == "ode-adaptive":
    return S.ode_sample_adaptive(fn, sde, key, (N, 2), x_T=x_T, **kw)
  return S.ode_sample(fn, sde, key, (N, 2), method=sampler[4:], x_T=x_T, **kw)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_samplers_match_gaussian_moments(case):
  _, sde, sampler, kw, mean_tol, cov_tol = case
  key = jax.random.key(hash(case[0]) % 2**31)
  x_T = marginal_sample(sde, jax.random.fold_in(key, 1), N, sde.T)
  x = jax.jit(functools.partial(_sample, sde, sampler, kw))(key, x_T)
  check_moments(x, mean_tol, cov_tol)


def test_vp_pc_from_the_prior():
  """The default start x_T ~ N(0, I): VP's prior matches p_T to ~1e-5 in variance."""
  x = jax.jit(lambda k: S.pc_sample(exact_eps_fn(VP), VP, k, (N, 2), snr=0.01,
                                    steps=500))(jax.random.key(3))
  check_moments(x, 0.01, 0.05)


def test_ode_solvers_converge_to_the_adaptive_solution():
  """Same x_T: Euler's error falls ~1/steps, Heun's ~1/steps^2, towards Dormand-Prince."""
  key = jax.random.key(0)
  x_T = marginal_sample(VP, key, 256, 1.0)
  fn = exact_eps_fn(VP)
  ref, nfe = jax.jit(lambda x: S.ode_sample_adaptive(fn, VP, key, (256, 2), x_T=x, rtol=1e-6,
                                                     atol=1e-6))(x_T)
  assert 20 < int(nfe) < 2000
  err = {}
  for method in ("euler", "heun"):
    for steps in (25, 50, 100):
      x = jax.jit(lambda x: S.ode_sample(fn, VP, key, (256, 2), method=method, steps=steps,
                                         x_T=x))(x_T)
      err[method, steps] = float(jnp.max(jnp.abs(x - ref)))
  assert err["heun", 100] < 1e-3
  assert 1.6 < err["euler", 50] / err["euler", 100] < 2.4
  assert err["heun", 50] / err["heun", 100] > 3.0
  assert err["heun", 25] < err["euler", 100]


def test_annealed_langevin_matches_gaussian():
  """NCSN Algorithm 1 (L = 10 geometric sigmas, T = 100, eps = 2e-5) with the exact scores."""
  sigmas = S.geometric_sigmas(5.0, 0.01, 10)
  edm = S.EDMProcess(sigma_min=0.01, sigma_max=5.0)
  x = jax.jit(lambda k: S.annealed_langevin_sample(exact_eps_fn(edm), edm, k, (N, 2),
                                                   sigmas=sigmas, n_steps_each=100,
                                                   step_lr=2e-5))(jax.random.key(0))
  check_moments(x, 0.02, 0.05)
  assert S.annealed_langevin_nfe(10, 100) == 1001


def _heun_gain(lam, sig):
  """Float64 reference: EDM's Heun (Algorithm 1) on dy/dsigma = sigma y / (lam + sigma^2), the
  probability-flow ODE of one eigen-direction of the centered Gaussian; returns y_end / y_0."""
  y = 1.0
  for s0, s1 in zip(sig[:-1], sig[1:]):
    d = lambda y, s: s * y / (lam + s**2)
    y_e = y + (s1 - s0) * d(y, s0)
    y = y + (s1 - s0) * 0.5 * (d(y, s0) + d(y_e, s1)) if s1 > 0 else y_e
  return y


def test_edm_heun_matches_its_recursion_on_gaussian_data():
  """Karras et al. Algorithm 1 on 18 Karras sigmas (35 NFE), fed D(x, sigma) = x + sigma^2 s.

  With Gaussian data every step is linear, so the output is Gaussian with mean
  ``MU - U diag(g) U^T MU`` and covariance ``U diag(g^2 80^2) U^T``, g from the float64
  recursion; 18 steps overestimate the variance by 9-12% (discretization, not a bug), and
  64 steps are within 1%.
  """
  from tests.sampling.gaussian import LAM, U
  edm = S.EDMProcess()
  for steps, rel in ((18, 0.2), (64, 0.02)):
    sig = S.karras_sigmas(steps, 0.002, 80.0, 7.0)
    g = np.array([_heun_gain(l, sig) for l in LAM])
    mean = MU - U @ (g * (U.T @ MU))
    cov = U @ np.diag(g**2 * 80.0**2) @ U.T
    assert np.abs(np.diag(U.T @ cov @ U) / LAM - 1).max() < rel
    x = jax.jit(lambda k: S.edm_heun_sample(exact_eps_fn(edm), edm, k, (N, 2), steps=steps))(
        jax.random.key(steps))
    check_moments(x, 0.0, 0.0, mu=mean, cov=cov)


def test_edm_heun_with_churn_matches_gaussian():
  """Algorithm 2 (S_churn = 10) on 64 steps recovers the data's moments."""
  edm = S.EDMProcess()
  x = jax.jit(lambda k: S.edm_heun_sample(exact_eps_fn(edm), edm, k, (N, 2), steps=64,
                                          s_churn=10.0))(jax.random.key(0))
  check_moments(x, 0.01, 0.04)


def test_karras_sigmas_and_precond():
  s = S.karras_sigmas(5, 0.002, 80.0, 7.0)
  assert s[0] == pytest.approx(80.0) and s[4] == pytest.approx(0.002) and s[5] == 0.0
  i = np.arange(5)
  np.testing.assert_allclose(
      s[:5], (80 ** (1 / 7) + i / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7, rtol=1e-12)
  from genjax import score
  c = score.edm_precond(jnp.array([0.1, 1.0, 10.0]), 0.5)
  sig = np.array([0.1, 1.0, 10.0])
  np.testing.assert_allclose(c.c_skip, 0.25 / (sig**2 + 0.25), rtol=1e-6)
  np.testing.assert_allclose(c.c_out, sig * 0.5 / np.sqrt(sig**2 + 0.25), rtol=1e-6)
  np.testing.assert_allclose(c.c_in, 1 / np.sqrt(sig**2 + 0.25), rtol=1e-6)
  np.testing.assert_allclose(c.c_noise, np.log(sig) / 4, rtol=1e-6)
  # F = 0 leaves the skip path: D = c_skip x, the posterior mean for N(0, sd^2) data.
  f0 = lambda x_in, c_noise: jnp.zeros_like(x_in)
  x = jnp.ones((3, 2))
  np.testing.assert_allclose(score.make_edm_denoiser(f0, 0.5)(x, jnp.asarray(sig)),
                             (0.25 / (sig**2 + 0.25))[:, None] * x, rtol=1e-6)


def test_trajectory_and_vmap():
  fn = exact_eps_fn(VP)
  x, traj = jax.jit(lambda k: S.pc_sample(fn, VP, k, (8, 2), steps=10, trajectory_stride=4))(
      jax.random.key(0))
  assert traj.shape == (4, 8, 2)  # states 0, 4, 8, 10
  np.testing.assert_allclose(traj[-1], x)
  x, traj = jax.jit(lambda k: S.ode_sample(fn, VP, k, (8, 2), steps=10, trajectory_stride=5))(
      jax.random.key(0))
  assert traj.shape == (3, 8, 2)
  proc = S.EDMProcess()
  edm = lambda stride: jax.jit(lambda k: S.edm_heun_sample(
      exact_eps_fn(proc), proc, k, (8, 2), steps=6, trajectory_stride=stride))
  x, traj = edm(2)(jax.random.key(0))
  assert traj.shape == (4, 8, 2) and np.allclose(traj[-1], x)  # 0, 2, 4, 6
  x, traj = edm(5)(jax.random.key(0))
  assert traj.shape == (3, 8, 2) and np.allclose(traj[-1], x)  # 0, 5, 6
  keys = jax.random.split(jax.random.key(1), 3)
  xs = jax.jit(jax.vmap(lambda k: S.ode_sample(fn, VP, k, (4, 2), steps=5)))(keys)
  assert xs.shape == (3, 4, 2) and not np.allclose(xs[0], xs[1])
