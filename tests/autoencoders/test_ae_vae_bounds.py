"""VAE bounds against closed forms: the linear-Gaussian model (ELBO exact with the exact
posterior, strictly lower otherwise, IWAE rising towards log p(x)) and the analytic KL."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import autoencoders as ae


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


def _linear_gaussian():
  """p(z) = N(0, I_3), p(x|z) = N(W z + b, sigma^2 I_6) with orthogonal columns of W, so that
  the exact posterior N(mu, Sigma) has a diagonal Sigma (a VAE's q can represent it)."""
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(6, 3)))
  s = np.array([2.0, 1.0, 0.5])
  w = q * s                                   # W^T W = diag(s^2)
  b = rng.normal(size=6)
  sigma = 0.7
  x = 2.0 * rng.normal(size=(5, 6))
  cov = w @ w.T + sigma ** 2 * np.eye(6)
  diff = x - b
  _, logdet = np.linalg.slogdet(cov)
  log_px = -0.5 * (6 * np.log(2 * np.pi) + logdet
                   + np.einsum("bi,ij,bj->b", diff, np.linalg.inv(cov), diff))
  post_var = 1.0 / (1.0 + s ** 2 / sigma ** 2)             # diag Sigma
  post_mean = (diff @ w / sigma ** 2) * post_var           # Sigma W^T (x - b) / sigma^2
  ll_fn = lambda xx, z: ae.gaussian_log_prob(xx, z @ jnp.asarray(w).T + b, jnp.log(sigma),
                                             event_ndim=1)
  return dict(w=w, b=b, sigma=sigma, x=jnp.asarray(x), log_px=log_px,
              mean=jnp.asarray(post_mean), logvar=jnp.log(jnp.asarray(np.tile(post_var, (5, 1)))),
              ll_fn=ll_fn)


def _exact_elbo(m, mean, logvar):
  """E_q[log p(x|z)] - KL(q||p(z)) in closed form for the linear-Gaussian model."""
  w, b, s2 = m["w"], m["b"], m["sigma"] ** 2
  var = np.exp(np.asarray(logvar))
  resid = np.asarray(m["x"]) - np.asarray(mean) @ w.T - b
  trace = np.sum(var * np.sum(w ** 2, axis=0), axis=-1)     # tr(W diag(var) W^T)
  ell = -0.5 * (6 * np.log(2 * np.pi * s2) + (np.sum(resid ** 2, -1) + trace) / s2)
  return ell - np.asarray(ae.gaussian_kl_standard_normal(mean, logvar))


def test_elbo_equals_log_px_with_the_exact_posterior():
  m = _linear_gaussian()
  # Estimator A (eq. 6): log p(x, z) - log q(z|x) is log p(x) for every z when q is exact.
  elbo = jax.jit(lambda key, n, analytic: ae.elbo(key, m["x"], m["mean"], m["logvar"],
                                                   m["ll_fn"], n, analytic).elbo,
                 static_argnums=(1, 2))
  for seed in range(3):
    np.testing.assert_allclose(elbo(jax.random.key(seed), 4, False), m["log_px"], rtol=0,
                               atol=1e-10)
  np.testing.assert_allclose(_exact_elbo(m, m["mean"], m["logvar"]), m["log_px"], atol=1e-10)
  # Estimator B (eq. 7, analytic KL) is unbiased: its Monte Carlo mean converges to log p(x).
  np.testing.assert_allclose(elbo(jax.random.key(7), 100_000, True), m["log_px"], atol=0.03)
  # IWAE of an exact q: all importance weights equal p(x), so L_k = log p(x) for every k.
  iwae = jax.jit(lambda key: ae.iwae_bound(key, m["x"], m["mean"], m["logvar"], m["ll_fn"], 100,
                                           chunk_size=25))
  np.testing.assert_allclose(iwae(jax.random.key(0)), m["log_px"], atol=1e-10)


def test_elbo_is_strictly_lower_for_any_other_q_and_the_gap_is_the_kl():
  m = _linear_gaussian()
  shifts = [(0.3, 0.0), (0.0, 0.5), (-0.2, -0.7), (0.05, 0.05)]
  elbo = jax.jit(lambda key, mean, logvar: ae.elbo(key, m["x"], mean, logvar, m["ll_fn"],
                                                   num_samples=50_000).elbo)
  for dm, dlv in shifts:
    mean, logvar = m["mean"] + dm, m["logvar"] + dlv
    exact = _exact_elbo(m, mean, logvar)
    gap = m["log_px"] - exact
    post_kl = np.asarray(ae.gaussian_kl(mean, logvar, m["mean"], m["logvar"]))
    np.testing.assert_allclose(gap, post_kl, rtol=1e-9)   # log p(x) - ELBO = KL(q || p(z|x))
    assert np.all(gap > 1e-4), (dm, dlv, gap)
    est = elbo(jax.random.key(1), mean, logvar)
    stderr = 0.05
    np.testing.assert_allclose(est, exact, atol=stderr)
    if np.all(gap > 10 * stderr):
      assert np.all(np.asarray(est) < m["log_px"])


def test_iwae_rises_towards_log_px_with_k():
  m = _linear_gaussian()
  mean, logvar = m["mean"] + 0.4, m["logvar"] - 0.8   # a poor q: large ELBO gap
  reps = 200

  def mean_bound(k):
    keys = jax.random.split(jax.random.key(k), reps)
    f = jax.jit(jax.vmap(lambda kk: ae.iwae_bound(kk, m["x"], mean, logvar, m["ll_fn"], k,
                                                  chunk_size=min(k, 100))))
    return np.asarray(f(keys)).mean(0)  # [5] E[L_k], averaged over replicates

  ks = (1, 10, 100, 1000)
  bounds = np.stack([mean_bound(k) for k in ks])  # [4, 5]
  exact_elbo = _exact_elbo(m, mean, logvar)
  np.testing.assert_allclose(bounds[0], exact_elbo, atol=0.15)  # E[L_1] = ELBO
  assert np.all(np.diff(bounds, axis=0) > 0), bounds            # rises with k
  assert np.all(bounds <= m["log_px"] + 0.02), (bounds, m["log_px"])
  gap = m["log_px"] - bounds
  assert np.all(gap[-1] < 0.2 * gap[0]), gap                    # ... towards log p(x)


def test_analytic_kl_matches_monte_carlo():
  rng = np.random.default_rng(1)
  mean = jnp.asarray(rng.normal(size=(4, 5)))
  logvar = jnp.asarray(rng.normal(scale=0.7, size=(4, 5)))
  z = ae.reparameterize(jax.random.key(0), mean, logvar, num_samples=200_000)
  # KL(q || N(0, I)) = E_q[log q(z) - log p(z)]
  samples = ae.diag_gaussian_log_prob(z, mean, logvar) - ae.standard_normal_log_prob(z)
  mc, se = np.asarray(samples.mean(0)), np.asarray(samples.std(0)) / np.sqrt(z.shape[0])
  analytic = np.asarray(ae.gaussian_kl_standard_normal(mean, logvar))
  assert np.all(np.abs(mc - analytic) < 5 * se + 1e-6), (mc, analytic, se)
  # The general two-Gaussian KL, against the same Monte Carlo with a non-standard p.
  mean_p, logvar_p = 0.5 * mean[::-1], 0.3 * logvar[::-1]
  samples = ae.diag_gaussian_log_prob(z, mean, logvar) - ae.diag_gaussian_log_prob(z, mean_p, logvar_p)
  mc, se = np.asarray(samples.mean(0)), np.asarray(samples.std(0)) / np.sqrt(z.shape[0])
  analytic = np.asarray(ae.gaussian_kl(mean, logvar, mean_p, logvar_p))
  assert np.all(np.abs(mc - analytic) < 5 * se + 1e-6), (mc, analytic, se)
  np.testing.assert_allclose(ae.gaussian_kl(mean, logvar, 0.0 * mean, 0.0 * logvar),
                             ae.gaussian_kl_standard_normal(mean, logvar), rtol=1e-12)


def test_discretized_logistic_is_a_distribution_over_the_levels():
  """The probabilities of the L levels sum to 1 (edge bins extend to +-infinity)."""
  levels = 17
  grid = jnp.linspace(-1.0, 1.0, levels)
  for mu, log_s in [(0.1, -2.0), (-0.9, -4.0), (1.2, 0.5), (0.0, -6.0)]:
    logp = ae.discretized_logistic_log_prob(grid, jnp.full_like(grid, mu),
                                            jnp.full_like(grid, log_s), levels, event_ndim=0)
    np.testing.assert_allclose(jnp.sum(jnp.exp(logp)), 1.0, atol=1e-6)
