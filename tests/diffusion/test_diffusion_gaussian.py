"""q, posterior, conversions and the variational bound against closed forms (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from genjax import diffusion as d
from genjax import sampling as gs

T = 50


@pytest.fixture(scope="module")
def sched64():
  with jax.enable_x64(True):  # float64 arrays; each test re-enters x64 to compute with them
    return d.get_schedule("linear", T, dtype=jnp.float64)


def _np_abar(name="linear", num=T):
  betas = d.get_beta_schedule(name, num)
  return betas, np.cumprod(1 - betas)


def test_q_posterior_is_bayes_rule(sched64):
  """Seed eq. 19-22 vs the precision-weighted product of q(x_t|x_{t-1}) and q(x_{t-1}|x_0)."""
  betas, abar = _np_abar()
  rng = np.random.default_rng(0)
  t = np.array([1, 2, 17, 30, T - 1])
  x0 = rng.normal(size=(5, 3, 2))
  xt = rng.normal(size=(5, 3, 2))
  with jax.enable_x64(True):
    mean, var, log_var = d.q_posterior_mean_variance(sched64, jnp.asarray(x0), jnp.asarray(xt),
                                                     jnp.asarray(t))
    mean, var, log_var = map(np.asarray, (mean, var, log_var))
  beta, alpha, abar_prev = betas[t], 1 - betas[t], abar[t - 1]
  # As a function of x_{t-1}: N(x_t; sqrt(alpha) x_{t-1}, beta) has precision alpha/beta about
  # x_t/sqrt(alpha); q(x_{t-1}|x_0) = N(sqrt(abar_prev) x_0, 1 - abar_prev).
  p_lik, p_prior = alpha / beta, 1 / (1 - abar_prev)
  exp_var = 1 / (p_lik + p_prior)
  r = lambda a: a[:, None, None]
  exp_mean = r(exp_var) * (r(p_lik) * xt / r(np.sqrt(alpha)) + r(p_prior * np.sqrt(abar_prev)) * x0)
  np.testing.assert_allclose(mean, exp_mean, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(var[:, 0, 0], exp_var, rtol=1e-10)
  np.testing.assert_allclose(np.exp(log_var[:, 0, 0]), exp_var, rtol=1e-10)
  # t = 0 (paper step 1): the posterior is the point mass at x_0.
  with jax.enable_x64(True):
    m0, v0, lv0 = d.q_posterior(sched64, jnp.asarray(x0), jnp.asarray(xt), jnp.zeros(5, int))
  np.testing.assert_allclose(m0, x0, atol=1e-14)
  assert np.all(np.asarray(v0) == 0) and np.all(np.isfinite(lv0))


def test_q_sample_matches_iterated_forward_steps(sched64):
  """Seed eq. 17 (closed form) vs iterating eq. 15 q(x_t|x_{t-1}) step by step."""
  betas, abar = _np_abar()
  n, t = 40000, 20
  x0 = np.array([1.0, -0.5, 0.0])
  rng = np.random.default_rng(1)
  x = np.broadcast_to(x0, (n, 3)).copy()
  for k in range(t + 1):  # zero-based t = 20 is 21 forward steps
    x = np.sqrt(1 - betas[k]) * x + np.sqrt(betas[k]) * rng.normal(size=x.shape)
  with jax.enable_x64(True):
    tt = jnp.full((n,), t)
    noise = jax.random.normal(jax.random.key(0), (n, 3), jnp.float64)
    xq = np.asarray(d.q_sample(sched64, jnp.broadcast_to(jnp.asarray(x0), (n, 3)), tt, noise))
    qm, qv, qlv = d.q_mean_variance(sched64, jnp.asarray(x0)[None], tt[:1])
  exp_mean, exp_var = np.sqrt(abar[t]) * x0, 1 - abar[t]
  np.testing.assert_allclose(qm[0], exp_mean, rtol=1e-12)
  np.testing.assert_allclose(qv.ravel(), exp_var, rtol=1e-12)
  np.testing.assert_allclose(np.exp(qlv).ravel(), exp_var, rtol=1e-12)
  se_m, se_v = np.sqrt(exp_var / n), exp_var * np.sqrt(2 / n)
  for samples in (x, xq):
    assert np.all(np.abs(samples.mean(0) - exp_mean) < 5 * se_m)
    assert np.all(np.abs(samples.var(0) - exp_var) < 5 * se_v)


def test_normal_kl_textbook_and_monte_carlo():
  with jax.enable_x64(True):
    m1, lv1, m2, lv2 = 0.3, np.log(0.5), -0.4, np.log(2.0)
    kl = float(d.normal_kl(m1, lv1, m2, lv2))
    s1, s2 = np.sqrt(0.5), np.sqrt(2.0)
    textbook = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert kl == pytest.approx(textbook, rel=1e-12)
    x = m1 + s1 * jax.random.normal(jax.random.key(0), (400000,), jnp.float64)
    mc = norm.logpdf(x, m1, s1) - norm.logpdf(x, m2, s2)
    assert abs(float(mc.mean()) - kl) < 5 * float(mc.std()) / np.sqrt(x.size)
    assert float(d.normal_kl(1.0, 0.2, 1.0, 0.2)) == 0.0


def test_discretized_gaussian_sums_to_one_and_matches_exact_bins():
  with jax.enable_x64(True):
    bins = jnp.linspace(-1.0, 1.0, 256)
    for mean, log_scale in [(0.0, np.log(0.3)), (0.97, np.log(0.01)), (-1.3, np.log(2.0)),
                            (0.123, np.log(1e-3))]:
      lp = jax.jit(d.discretized_gaussian_log_likelihood)(bins, mean,
                                                          jnp.full_like(bins, log_scale))
      assert lp.shape == (256,)
      assert float(jnp.exp(lp).sum()) == pytest.approx(1.0, abs=1e-9)
      # Against the exact normal CDF (the tanh approximation is good to ~2e-4 absolute).
      edges = jnp.concatenate([jnp.array([-jnp.inf]), (bins[1:] + bins[:-1]) / 2,
                               jnp.array([jnp.inf])])
      exact = jnp.diff(norm.cdf(edges, mean, np.exp(log_scale)))
      np.testing.assert_allclose(jnp.exp(lp), exact, atol=5e-4)
    x = jnp.linspace(-4, 4, 1001)
    np.testing.assert_allclose(d.approx_standard_normal_cdf(x), norm.cdf(x), atol=5e-4)


def test_conversions_round_trip(sched64):
  with jax.enable_x64(True):
    k1, k2 = jax.random.split(jax.random.key(3))
    x0 = jax.random.normal(k1, (6, 4, 4, 2), jnp.float64)
    eps = jax.random.normal(k2, x0.shape, jnp.float64)
    t = jnp.array([0, 1, 10, 25, 48, 49])
    xt = d.q_sample(sched64, x0, t, eps)
    np.testing.assert_allclose(gs.predict_x0_from_eps(sched64, xt, t, eps), x0, atol=1e-10)
    np.testing.assert_allclose(gs.predict_eps_from_x0(sched64, xt, t, x0), eps, atol=1e-10)
    v = gs.predict_v(sched64, x0, t, eps)
    ab = np.cumprod(1 - d.get_beta_schedule("linear", T))[np.asarray(t)][:, None, None, None]
    np.testing.assert_allclose(v, np.sqrt(ab) * eps - np.sqrt(1 - ab) * x0, atol=1e-12)
    a, s = sched64.marginal_alpha(t), sched64.marginal_std(t)
    np.testing.assert_allclose(gs.x0_from_v(xt, v, a, s), x0, atol=1e-10)
    np.testing.assert_allclose(gs.eps_from_v(xt, v, a, s), eps, atol=1e-10)
    score = -eps / np.sqrt(1 - ab)
    for param, out in (("eps", eps), ("x0", x0), ("v", v), ("score", score)):
      e, x = gs.prediction_to_eps_x0(out, xt, a, s, param)
      np.testing.assert_allclose(e, eps, atol=1e-9)
      np.testing.assert_allclose(x, x0, atol=1e-9)
      fn = gs.denoiser(lambda x_, t_, c, out=out: out, sched64, param)
      np.testing.assert_allclose(fn(xt, t, None), eps, atol=1e-9)
  with pytest.raises(ValueError, match="eps, x0, v"):
    gs.prediction_to_eps_x0(eps, xt, a, s, "noise")


def test_p_mean_variance(sched64):
  betas, abar = _np_abar()
  with jax.enable_x64(True):
    k1, k2 = jax.random.split(jax.random.key(4))
    xt = 2 * jax.random.normal(k1, (5, 3), jnp.float64)
    eps = jax.random.normal(k2, (5, 3), jnp.float64)
    t = jnp.array([0, 1, 7, 30, 49])
    tn = np.asarray(t)[:, None]
    # Ho et al. eq. 11 / seed eq. 27.
    eq11 = (np.asarray(xt) - betas[tn] / np.sqrt(1 - abar[tn]) * np.asarray(eps)) / np.sqrt(
        1 - betas[tn])
    tilde = betas * (1 - np.r_[1.0, abar[:-1]]) / (1 - abar)
    large = d.p_mean_variance(sched64, eps, xt, t, "fixed_large")
    small = d.p_mean_variance(sched64, eps, xt, t, "fixed_small")
    for out in (large, small):
      np.testing.assert_allclose(out["mean"], eq11, rtol=1e-9, atol=1e-12)
      np.testing.assert_allclose(out["x0"], gs.predict_x0_from_eps(sched64, xt, t, eps))
      # (fixed_small has var 0 but a clipped, finite log var at t = 0, as improved-diffusion.)
      np.testing.assert_allclose(np.exp(out["log_var"][1:]), out["var"][1:], rtol=1e-12)
    np.testing.assert_allclose(large["var"][:, 0], np.r_[tilde[1], betas[np.asarray(t)[1:]]],
                               rtol=1e-12)
    np.testing.assert_allclose(small["var"][:, 0], tilde[np.asarray(t)], rtol=1e-12)
    np.testing.assert_allclose(small["log_var"][:, 0],
                               np.log(np.r_[tilde[1], tilde[np.asarray(t)[1:]]]), rtol=1e-12)
    clipped = d.p_mean_variance(sched64, eps, xt, t, "fixed_small", clip_x0=(-1.0, 1.0))
    assert float(jnp.abs(clipped["x0"]).max()) <= 1.0
    np.testing.assert_allclose(gs.predict_x0_from_eps(sched64, xt, t, clipped["eps"]),
                               clipped["x0"], atol=1e-10)
    m, _, _ = d.q_posterior_mean_variance(sched64, clipped["x0"], xt, t)
    np.testing.assert_allclose(clipped["mean"], m)
    with pytest.raises(ValueError, match="fixed_large, fixed_small"):
      d.p_mean_variance(sched64, eps, xt, t, "learned")
    with pytest.raises(ValueError, match="clip_x0"):
      d.p_mean_variance(sched64, eps, xt, t, clip_x0=1.0)
    with pytest.raises(ValueError, match="var_values"):
      d.p_mean_variance(sched64, eps, xt, t, var_values=eps)


def test_vlb_terms_are_gaussian_kls_and_decoder_nll(sched64):
  betas, abar = _np_abar()
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(5), 3)
    x0 = jnp.round(jax.random.uniform(keys[0], (4, 6), minval=-1, maxval=1) * 127.5) / 127.5
    x0 = jnp.clip(x0, -1, 1)
    xt = jax.random.normal(keys[1], (4, 6), jnp.float64)
    mean = x0 + jax.random.normal(keys[2], (4, 6), jnp.float64) * 0.02
    t = jnp.array([0, 3, 20, 49])
    log_var = jnp.log(jnp.array([1e-3, 0.01, 0.02, 0.05]))[:, None]
    bpd = np.asarray(jax.jit(d.vlb_terms_bpd)(sched64, mean, log_var, x0, xt, t))
  assert bpd.shape == (4,)
  tn = np.asarray(t)
  x0n, xtn, mn, lvn = map(np.asarray, (x0, xt, mean, log_var))
  for i in range(1, 4):
    k = tn[i]
    # q(x_{t-1}|x_t, x_0) via seed eq. 21-22, then the textbook Gaussian KL.
    pv = betas[k] * (1 - abar[k - 1]) / (1 - abar[k])
    pm = (np.sqrt(abar[k - 1]) * betas[k] * x0n[i] + np.sqrt(1 - betas[k]) * (1 - abar[k - 1])
          * xtn[i]) / (1 - abar[k])
    s1, s2 = np.sqrt(pv), np.exp(0.5 * lvn[i, 0])
    kl = np.log(s2 / s1) + (s1**2 + (pm - mn[i]) ** 2) / (2 * s2**2) - 0.5
    assert bpd[i] == pytest.approx(kl.mean() / np.log(2), rel=1e-9)
  # t = 0: the decoder NLL with scale exp(log_var / 2), exact CDF to ~1e-3 bits.
  s = np.exp(0.5 * lvn[0, 0])
  lo = np.where(x0n[0] < -0.99, -np.inf, x0n[0] - 1 / 255)
  hi = np.where(x0n[0] > 0.99, np.inf, x0n[0] + 1 / 255)
  p = norm.cdf(hi, mn[0], s) - norm.cdf(lo, mn[0], s)
  assert bpd[0] == pytest.approx(-np.log(np.maximum(p, 1e-12)).mean() / np.log(2), rel=1e-2)
  # L_T.
  with jax.enable_x64(True):
    pr = np.asarray(d.prior_bpd(sched64, x0))
  a = abar[-1]
  kl_t = 0.5 * (-1 - np.log(1 - a) + (1 - a) + a * x0n**2)
  np.testing.assert_allclose(pr, kl_t.mean(1) / np.log(2), rtol=1e-10)


def test_full_vlb_scan_equals_term_by_term_loop(sched64):
  with jax.enable_x64(True):
    x0 = jnp.round(jax.random.uniform(jax.random.key(6), (3, 2, 2, 1), minval=-1, maxval=1)
                   * 127.5) / 127.5
    eps_fn = lambda x, t, c=None: 0.3 * x * (t[:, None, None, None] / T)
    key = jax.random.key(7)
    out = jax.jit(lambda x, k: d.full_vlb_bpd(eps_fn, sched64, x, k, var_type="fixed_small",
                                              clip_x0=(-1.0, 1.0)))(x0, key)
    assert out["terms_bpd"].shape == (3, T) and out["total_bpd"].shape == (3,)
    assert np.all(np.isfinite(out["terms_bpd"])) and np.all(np.asarray(out["terms_bpd"]) >= -1e-9)
    keys = jax.random.split(key, T)

    @jax.jit
    def one_term(t_, k):
      t = jnp.full((3,), t_)
      xt = d.q_sample(sched64, x0, t, jax.random.normal(k, x0.shape, x0.dtype))
      o = d.p_mean_variance(sched64, eps_fn(xt, t), xt, t, "fixed_small", (-1.0, 1.0))
      return d.vlb_terms_bpd(sched64, o["mean"], o["log_var"], x0, xt, t)

    for t_ in (0, 1, 25, T - 1):
      np.testing.assert_allclose(out["terms_bpd"][:, t_], one_term(t_, keys[t_]), rtol=1e-9)
    np.testing.assert_allclose(out["total_bpd"],
                               out["terms_bpd"].sum(1) + d.prior_bpd(sched64, x0), rtol=1e-12)


def test_grad_and_vmap_through_the_math():
  sched = d.get_schedule("cosine", 20)
  x0 = jnp.linspace(-1, 1, 12).reshape(3, 4)
  t = jnp.array([0, 5, 19])

  def f(eps):
    out = d.p_mean_variance(sched, eps, x0, t, "fixed_large")
    return d.vlb_terms_bpd(sched, out["mean"], out["log_var"], x0, x0 * 0.5, t).sum()

  g = jax.grad(f)(jnp.zeros((3, 4)))
  assert g.shape == (3, 4) and np.all(np.isfinite(g))
  per = jax.vmap(lambda x, tt: d.q_sample(sched, x[None], tt[None], x[None]))(x0, t)
  np.testing.assert_allclose(per[:, 0], d.q_sample(sched, x0, t, x0), rtol=1e-6)
