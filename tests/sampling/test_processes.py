"""Each noise process against its closed forms (Song et al. 2021, eq. 9-12, 29-30; score_sde
sde_lib; DPM-Solver's NoiseScheduleVP; Karras et al. 2022).

1. marginal_prob's mean / std against a float64 RK4 integration of the SDE's moment ODEs,
   built from ``sde.sde`` itself: for ``dx = a(t) x dt + g(t) dw``, ``m' = a m`` and
   ``v' = 2 a v + g^2`` (Sarkka & Solin 2019, eq. 5.51).
2. prior_logp against the Gaussian log-density; prior_sampling's std.
3. discretize against the chains it should reduce to: DDPM's forward step with the linear
   betas of genjax.diffusion (VP), SMLD's geometric sigmas (VE), Euler-Maruyama (sub-VP).
4. reverse: the reverse drift f - g^2 s and the probability-flow drift f - g^2 s / 2.
5. The ancestral predictor with the eps -> score helper equals DDPM's posterior mean step.
6. Float64 in, float64 out: the chains' betas, the discretizations, the reverse-diffusion
   predictor and the Langevin corrector at rtol 1e-10 against numpy.
7. The processes without score_sde counterparts (cosine, a discrete schedule's continuous
   view, EDM's sigma process): the generic SDE from d log alpha / dt against closed forms,
   lambda and its inverse, and the exact transition of ``discretize``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import diffusion
from genjax import sampling as S


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
  eps_fn = lambda x, t, c=None: jnp.tanh(x) + t[:, None] / 1000
  x = jax.random.normal(jax.random.key(0), (4, 3))
  t = jnp.array([0, 10, 500, 999])
  s = S.score_fn_of(eps_fn, sched)(x, t)
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
  _, x_mean = S.sde.ancestral_sampling_predictor(jax.random.key(1), x, i / 999.0, sde, score_fn)
  beta = sched.betas[i][:, None]
  ddpm = (x - beta / jnp.sqrt(1 - sched.alphas_cumprod[i])[:, None] * eps_fn(x, i)) / jnp.sqrt(1 - beta)
  np.testing.assert_allclose(x_mean, ddpm, rtol=1e-5)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="Unknown SDE"):
    S.get_sde("vp")
  with pytest.raises(ValueError, match="sigma_min < sigma_max"):
    S.get_sde("vesde", sigma_min=2.0, sigma_max=1.0)
  with pytest.raises(ValueError, match="predictor"):
    S.pc_sample(lambda x, t, c: x, S.VPSDE(), jax.random.key(0), (2, 2), predictor="heun")
  with pytest.raises(ValueError, match="ancestral"):
    S.pc_sample(lambda x, t, c: x, S.SubVPSDE(), jax.random.key(0), (2, 2),
                predictor="ancestral_sampling", steps=3)


# ------------------------------------------------------------------------------------------------
# 6. float64 in, float64 out.
# ------------------------------------------------------------------------------------------------


def test_float64_discretizations_keep_their_digits():
  """score_sde's chains in float64: beta_i, the forward step, its reverse and the PC steps.

  The index i = int(t (N - 1)) is an integer; beta_i = (beta_min + i/(N-1) (beta_max - beta_min))
  / N must still be computed in t's dtype, and sqrt(1 - beta) - 1 without cancellation.
  """
  n = 1000
  t64 = np.array([1e-5, 1.3e-3, 0.2, 0.77, 1.0])
  i = np.floor(t64 * (n - 1))
  beta = (0.1 + i / (n - 1) * 19.9) / n
  x64 = np.linspace(-1.5, 2.0, 5 * 3).reshape(5, 3)
  score64 = -0.7 * x64
  with jax.enable_x64(True):
    sde = S.VPSDE(N=n)
    t, x = jnp.asarray(t64), jnp.asarray(x64)
    assert sde.discrete_alpha(t).dtype == jnp.float64
    np.testing.assert_allclose(sde.discrete_alpha(t), 1 - beta, rtol=1e-13)
    f, G = sde.discretize(x, t)
    assert f.dtype == jnp.float64 and G.dtype == jnp.float64
    f_ref = (np.sqrt(1 - beta) - 1)[:, None] * x64
    np.testing.assert_allclose(f, f_ref, rtol=1e-10)
    np.testing.assert_allclose(G, np.sqrt(beta), rtol=1e-12)
    score_fn = lambda x, t: -0.7 * x
    rf, rG = sde.reverse(score_fn).discretize(x, t)
    np.testing.assert_allclose(rf, f_ref - beta[:, None] * score64, rtol=1e-10)
    _, x_mean = S.sde.reverse_diffusion_predictor(jax.random.key(0), x, t, sde, score_fn)
    assert x_mean.dtype == jnp.float64
    np.testing.assert_allclose(x_mean, x64 - (f_ref - beta[:, None] * score64), rtol=1e-10)
    # The Langevin corrector's step 2 alpha_i (snr ||z|| / ||s||)^2 with alpha_i = 1 - beta_i.
    k = jax.random.key(3)
    x1, x1_mean = S.sde.langevin_corrector(k, x, t, sde, score_fn, 0.16, 1)
    assert x1.dtype == jnp.float64
    z = np.asarray(jax.random.normal(jax.random.split(k)[1], x.shape, jnp.float64))
    g_norm = np.mean(np.linalg.norm(score64, axis=-1))
    z_norm = np.mean(np.linalg.norm(z, axis=-1))
    step = 2 * (1 - beta) * (0.16 * z_norm / g_norm) ** 2
    np.testing.assert_allclose(x1_mean, x64 + step[:, None] * score64, rtol=1e-10)
    # VE's sigma pair in float64.
    ve = S.VESDE(N=n)
    sig, prev = ve.discrete_sigma_pair(t)
    assert sig.dtype == jnp.float64
    r = np.log(ve.sigma_max / ve.sigma_min) / (n - 1)
    np.testing.assert_allclose(sig, 0.01 * np.exp(i * r), rtol=1e-12)
    np.testing.assert_allclose(prev, np.where(i == 0, 0, 0.01 * np.exp((i - 1) * r)), rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: S.VPSDE(), lambda: S.SubVPSDE(), lambda: S.VESDE(),
                                  lambda: S.CosineVPSDE(), lambda: S.EDMProcess(),
                                  lambda: S.get_schedule("cosine", 50).continuous()],
                         ids=["vp", "subvp", "ve", "cosine", "edm", "discrete_view"])
def test_float64_marginals_and_lambda_roundtrip(make):
  with jax.enable_x64(True):
    proc = make()
    if hasattr(proc, "log_alpha_array"):  # rebuild the discrete view in float64
      sched = S.get_schedule("cosine", 50, dtype=jnp.float64)
      proc = sched.continuous()
    lo = proc.sampling_eps
    t = jnp.linspace(lo, proc.T, 9, dtype=jnp.float64)
    lam = proc.marginal_lambda(t)
    assert lam.dtype == jnp.float64 and proc.marginal_alpha(t).dtype == jnp.float64
    np.testing.assert_allclose(proc.inverse_lambda(lam), t, rtol=1e-9, atol=1e-12)
    a, s = np.asarray(proc.marginal_alpha(t)), np.asarray(proc.marginal_std(t))
    np.testing.assert_allclose(np.asarray(lam), np.log(a) - np.log(s), rtol=1e-10)
    # Every prediction converts back exactly at these (alpha, sigma), v included off VP.
    k1, k2 = jax.random.split(jax.random.key(0))
    x0 = jax.random.normal(k1, (9, 3), jnp.float64)
    eps = jax.random.normal(k2, (9, 3), jnp.float64)
    xt = a[:, None] * x0 + s[:, None] * eps
    outs = {"eps": eps, "x0": x0, "v": S.v_from_eps_x0(eps, x0, a, s),
            "score": -eps / s[:, None]}
    for prediction, out in outs.items():
      e, x = S.prediction_to_eps_x0(out, xt, a, s, prediction)
      np.testing.assert_allclose(e, eps, rtol=1e-9, atol=1e-9, err_msg=prediction)
      np.testing.assert_allclose(x, x0, rtol=1e-9, atol=1e-9, err_msg=prediction)


# ------------------------------------------------------------------------------------------------
# 7. The other processes.
# ------------------------------------------------------------------------------------------------


def test_generic_sde_of_a_vp_process_is_the_vp_sde():
  """For VP marginals, f = d log alpha / dt x and g^2 = -2 d log alpha / dt: on the cosine
  schedule against its derivative in closed form, and the jvp route against VPSDE's own."""
  with jax.enable_x64(True):
    t = jnp.linspace(0.05, 0.95, 7, dtype=jnp.float64)
    x = jnp.ones((7, 1), jnp.float64)
    cos = S.CosineVPSDE()
    s0 = 0.008
    u = (np.asarray(t) + s0) / (1 + s0) * np.pi / 2
    dla = -np.tan(u) * np.pi / (2 * (1 + s0))  # d/dt log cos(u)
    f, g = cos.sde(x, t)
    np.testing.assert_allclose(np.asarray(f)[:, 0], dla, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(g) ** 2, -2 * dla, rtol=1e-9)
    vp = S.VPSDE()
    f_vp, g_vp = vp.sde(x, t)
    f_gen, g_gen = S.processes._Process.sde(vp, x, t)
    np.testing.assert_allclose(f_gen, f_vp, rtol=1e-10)
    np.testing.assert_allclose(g_gen, g_vp, rtol=1e-9)


def test_discrete_view_matches_the_schedule_at_its_steps():
  sched = S.get_schedule("linear", 100)
  ns = sched.continuous()
  n = jnp.array([0, 1, 50, 99])
  t = (n + 1.0) / 100
  np.testing.assert_allclose(ns.marginal_alpha(t), sched.marginal_alpha(n), rtol=1e-5)
  np.testing.assert_allclose(ns.marginal_std(t), sched.marginal_std(n), rtol=1e-5)
  np.testing.assert_allclose(ns.discrete_time_input(t), n, atol=1e-4)
  a, s = ns.alpha_sigma_with_data(jnp.array([0.0, 0.5]))
  assert float(a[0]) == 1.0 and float(s[0]) == 0.0 and 0 < float(s[1]) < 1


def test_edm_process_and_exact_transition():
  """EDM: alpha = 1, sigma = t, g^2 = 2t, and discretize is x_t = x_s + sqrt(t^2 - s^2) z with
  s = max(t - T/N, 0) (from the clean data at the first step)."""
  p = S.EDMProcess(sigma_min=0.002, sigma_max=80.0, N=40)
  t = jnp.array([1.0, 10.0, 80.0])
  x = jnp.ones((3, 2))
  f, G = p.discretize(x, t)
  s = np.maximum(np.asarray(t) - 80.0 / 40, 0.0)
  np.testing.assert_allclose(f, 0.0, atol=1e-6)
  np.testing.assert_allclose(G, np.sqrt(np.maximum(np.asarray(t) ** 2 - s**2, 0)), rtol=1e-5)
  np.testing.assert_allclose(p.sde(x, t)[1] ** 2, 2 * np.asarray(t), rtol=1e-6)
  np.testing.assert_allclose(p.noise_label(jnp.array([0.002, 80.0])), [0.0, 999.0], atol=1e-3)
