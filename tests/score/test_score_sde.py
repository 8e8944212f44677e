"""Each SDE against its closed forms (Song et al. 2021, eq. 9-12, 29-30; score_sde sde_lib).

1. marginal_prob's mean / std against a float64 RK4 integration of the SDE's moment ODEs,
   built from ``sde.sde`` itself: for ``dx = a(t) x dt + g(t) dw``, ``m' = a m`` and
   ``v' = 2 a v + g^2`` (Sarkka & Solin 2019, eq. 5.51).
2. prior_logp against the Gaussian log-density; prior_sampling's std.
3. discretize against the chains it should reduce to: DDPM's forward step with the linear
   betas of genjax.diffusion (VP), SMLD's geometric sigmas (VE), Euler-Maruyama (sub-VP).
4. reverse: the reverse drift f - g^2 s and the probability-flow drift f - g^2 s / 2.
5. The ancestral predictor with the eps -> score helper equals DDPM's posterior mean step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import diffusion
from genjax import score as S


def _moments_by_integration(sde, ts, n=4000):
  """RK4 on (m, v) from t = 0 with m(0) = 1, v(0) = 0, using only sde.sde (vectorized)."""
  grid = np.linspace(0, ts[-1], 2 * n + 1)  # knots and midpoints
  drift, g = sde.sde(jnp.ones((len(grid), 1), jnp.float64), jnp.asarray(grid))
  a, g2 = np.asarray(drift)[:, 0], np.asarray(g) ** 2
  rhs = lambda j, y: np.array([a[j] * y[0], 2 * a[j] * y[1] + g2[j]])
  y, out, h = np.array([1.0, 0.0]), {}, grid[2] - grid[0]
  for i in range(n):
    j = 2 * i
    k1 = rhs(j, y); k2 = rhs(j + 1, y + h / 2 * k1)
    k3 = rhs(j + 1, y + h / 2 * k2); k4 = rhs(j + 2, y + h * k3)
    y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    out[round(grid[j + 2], 9)] = y
  return np.array([out[round(t, 9)] for t in ts])


SDES = [S.VPSDE(), S.SubVPSDE(), S.VESDE(), S.VPSDE(beta_min=0.5, beta_max=5.0)]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__ + f"_{s.N}")
def test_marginals_match_integrated_moments(sde):
  ts = np.array([0.05, 0.25, 0.5, 0.75, 1.0])
  with jax.enable_x64(True):
    mv = _moments_by_integration(sde, ts, n=2000)
    mean, std = sde.marginal_prob(jnp.ones((len(ts), 1), jnp.float64), jnp.asarray(ts))
    mean, std = np.asarray(mean)[:, 0], np.asarray(std)
  np.testing.assert_allclose(mean, mv[:, 0], rtol=1e-7)
  var = mv[:, 1]
  if isinstance(sde, S.VESDE):
    # The exact variance from t = 0 is sigma(t)^2 - sigma_min^2; score_sde's (and the paper's)
    # marginal std is sigma(t): the data is taken as already perturbed by sigma_min.
    var = var + sde.sigma_min**2
  np.testing.assert_allclose(std**2, var, rtol=1e-6)


def test_closed_forms():
  t = jnp.linspace(0.01, 1.0, 7)
  vp, sub, ve = S.VPSDE(), S.SubVPSDE(), S.VESDE()
  log_alpha = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
  np.testing.assert_allclose(vp.marginal_std(t), np.sqrt(1 - np.exp(2 * log_alpha)), rtol=1e-5)
  np.testing.assert_allclose(sub.marginal_std(t), 1 - np.exp(2 * log_alpha), rtol=1e-5)
  np.testing.assert_allclose(ve.marginal_std(t), 0.01 * 5000.0**t, rtol=1e-5)
  np.testing.assert_allclose(ve.t_of_sigma(ve.sigma(t)), t, rtol=1e-5)


@pytest.mark.parametrize("sde", SDES[:3], ids=lambda s: type(s).__name__)
def test_prior(sde):
  z = jax.random.normal(jax.random.key(0), (5, 3, 2, 1)) * 3.0
  expected = np.sum(jax.scipy.stats.norm.logpdf(np.asarray(z).reshape(5, -1), 0.0,
                                                sde.prior_std), axis=1)
  np.testing.assert_allclose(sde.prior_logp(z), expected, rtol=1e-5)
  draws = sde.prior_sampling(jax.random.key(1), (20000, 2))
  np.testing.assert_allclose(np.std(np.asarray(draws)), sde.prior_std, rtol=0.02)


def test_vp_discretize_is_ddpm_forward_step():
  """x_{i+1} = sqrt(1 - beta_i) x_i + sqrt(beta_i) z with Ho et al.'s linear betas."""
  sde = S.VPSDE()
  sched = diffusion.get_schedule("linear", 1000, dtype=jnp.float32)
  i = jnp.array([0, 1, 499, 998, 999])
  t = i / 999.0
  x = jax.random.normal(jax.random.key(0), (5, 4))
  f, G = sde.discretize(x, t)
  beta = np.asarray(sched.betas)[np.asarray(i)]
  np.testing.assert_allclose(x + f, np.sqrt(1 - beta)[:, None] * x, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(G, np.sqrt(beta), rtol=1e-5)
  np.testing.assert_allclose(sde.discrete_betas, sched.betas, rtol=1e-5)


def test_ve_discretize_is_smld_step():
  """x_{i+1} = x_i + sqrt(sigma_{i+1}^2 - sigma_i^2) z with geometric sigmas; sigma_{-1} = 0."""
  sde = S.VESDE(sigma_min=0.01, sigma_max=50.0, N=10)
  sig = np.exp(np.linspace(np.log(0.01), np.log(50.0), 10))
  t = jnp.arange(10) / 9.0
  x = jnp.ones((10, 3))
  f, G = sde.discretize(x, t)
  prev = np.concatenate([[0.0], sig[:-1]])
  np.testing.assert_allclose(f, 0.0)
  np.testing.assert_allclose(G, np.sqrt(sig**2 - prev**2), rtol=1e-5)
  np.testing.assert_allclose(sde.discrete_sigmas, sig, rtol=1e-12)


def test_subvp_discretize_is_euler_maruyama():
  sde = S.SubVPSDE(N=50)
  x = jax.random.normal(jax.random.key(0), (3, 2))
  t = jnp.array([0.1, 0.5, 0.9])
  f, G = sde.discretize(x, t)
  drift, g = sde.sde(x, t)
  np.testing.assert_allclose(f, drift / 50, rtol=1e-6)
  np.testing.assert_allclose(G, g / np.sqrt(50), rtol=1e-6)


@pytest.mark.parametrize("pf", [False, True])
def test_reverse(pf):
  sde = S.VPSDE()
  score_fn = lambda x, t: -x * (1 + t[:, None])
  x = jax.random.normal(jax.random.key(0), (3, 2))
  t = jnp.array([0.1, 0.5, 0.9])
  drift, g = sde.reverse(score_fn, pf).sde(x, t)
  f, g_fwd = sde.sde(x, t)
  w = 0.5 if pf else 1.0
  np.testing.assert_allclose(drift, f - (g_fwd**2)[:, None] * score_fn(x, t) * w, rtol=1e-6)
  np.testing.assert_allclose(g, 0.0 if pf else g_fwd)
  rf, rG = sde.reverse(score_fn, pf).discretize(x, t)
  ff, fG = sde.discretize(x, t)
  np.testing.assert_allclose(rf, ff - (fG**2)[:, None] * score_fn(x, t) * w, rtol=1e-6)


def test_eps_score_helper_is_seed_eq_33():
  sched = diffusion.get_schedule("linear", 1000)
  eps_fn = lambda x, t: jnp.tanh(x) + t[:, None] / 1000
  x = jax.random.normal(jax.random.key(0), (4, 3))
  t = jnp.array([0, 10, 500, 999])
  s = S.discrete_score_fn(eps_fn, sched)(x, t)
  abar = np.cumprod(1 - diffusion.get_beta_schedule("linear", 1000))  # float64
  expected = -eps_fn(x, t) / np.sqrt(1 - abar[np.asarray(t)])[:, None]
  np.testing.assert_allclose(s, expected, rtol=1e-6)
  std = jnp.array([0.1, 0.5, 1.0, 2.0])
  np.testing.assert_allclose(S.eps_from_score(S.score_from_eps(x, std), std), x, rtol=1e-6)


def test_ancestral_vp_is_ddpm_step():
  """The ancestral predictor fed s = -eps / sqrt(1 - abar) is Ho et al.'s eq. 11 mean."""
  sde = S.VPSDE()
  sched = diffusion.get_schedule("linear", 1000)
  eps_fn = lambda x, t: 0.3 * x
  i = jnp.array([999, 500, 1])
  x = jax.random.normal(jax.random.key(0), (3, 2))
  score_fn = lambda x, t: S.score_from_eps(eps_fn(x, t), sched.sqrt_one_minus_alphas_cumprod[i])
  _, x_mean = S.ancestral_sampling_predictor(jax.random.key(1), x, i / 999.0, sde, score_fn)
  beta = sched.betas[i][:, None]
  ddpm = (x - beta / jnp.sqrt(1 - sched.alphas_cumprod[i])[:, None] * eps_fn(x, i)) / jnp.sqrt(1 - beta)
  np.testing.assert_allclose(x_mean, ddpm, rtol=1e-5)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="Unknown SDE"):
    S.get_sde("vp")
  with pytest.raises(ValueError, match="sigma_min < sigma_max"):
    S.get_sde("vesde", sigma_min=2.0, sigma_max=1.0)
  with pytest.raises(ValueError, match="predictor"):
    S.pc_sample(S.VPSDE(), lambda x, t: x, jax.random.key(0), (2, 2), predictor="heun")
  with pytest.raises(ValueError, match="ancestral"):
    S.pc_sample(S.SubVPSDE(), lambda x, t: x, jax.random.key(0), (2, 2),
                predictor="ancestral_sampling", steps=3)
