"""Exact likelihood through the probability-flow ODE, on Gaussian data with its exact score.

In float64: log p_eps(x) from :func:`ode_likelihood` against the analytic Gaussian log-density
(within 1e-2 nats/dim; the prior mismatch of p_T ~ N(0, I) or
N(0, sigma_max^2 I) is ~1e-3), and the ODE part alone (the divergence integral plus the exact
marginal log-density of the latent) to 1e-3. Hutchinson's Rademacher and Gaussian estimates are
unbiased (their mean over probes matches the exact trace). The Dormand-Prince solver matches
closed-form solutions. bits/dim of discrete data matches the exact discrete log-probability of
a Gaussian integrated over the quantization bins.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from genjax import sampling as gs
from genjax import score as S
from tests.sampling.gaussian import C, MU, logpdf, marginal_score_fn

# VE's prior N(0, sigma_max^2 I) misses the marginal's mean MU by a log-density of about
# |MU| |z| / sigma_max^2 ~ |MU| / sigma_max: 0.014 nats/dim at score_sde's sigma_max = 50 (the
# ODE part alone is exact to 5e-5), so the 1e-2 bound is checked at sigma_max = 100.
SDES = [gs.VPSDE(), gs.SubVPSDE(), gs.VESDE(sigma_min=0.01, sigma_max=100.0)]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_likelihood_matches_analytic_density(sde):
  with jax.enable_x64(True):
    x = np.random.default_rng(0).multivariate_normal(MU, C, size=32)
    res = jax.jit(lambda x, k: S.ode_likelihood(sde, marginal_score_fn(sde), x, k,
                                                hutchinson="exact"))(
        jnp.asarray(x), jax.random.key(0))
    eps_std = float(sde.marginal_std(jnp.asarray(1e-5)))
    m_T = float(sde.marginal_prob(jnp.ones((1, 1)), jnp.ones(1))[0][0, 0])
    std_T = float(sde.marginal_std(jnp.asarray(1.0)))
    logp, delta, z = (np.asarray(a, np.float64) for a in (res.logp, res.delta_logp, res.z))
  d = 2
  # 1. Against the data's density (p_eps = N(MU, C + std(eps)^2 I), ~ N(MU, C)).
  ref = logpdf(x, MU, C + eps_std**2 * np.eye(2))
  assert np.max(np.abs(logp - ref)) / d < 1e-2
  assert np.max(np.abs(logp - logpdf(x, MU, C))) / d < 1e-2
  # 2. The ODE part alone: the exact marginal at T in place of the prior.
  exact_T = logpdf(z, m_T * MU, m_T**2 * C + std_T**2 * np.eye(2))
  assert np.max(np.abs(exact_T + delta - ref)) / d < 1e-3
  assert 10 < int(res.nfe) < 1000


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(kind):
  sde = gs.VPSDE()
  x = jnp.asarray(np.random.default_rng(1).multivariate_normal(MU, C, size=4), jnp.float32)
  fn = marginal_score_fn(sde)
  run = lambda k, h: S.ode_likelihood(sde, fn, x, k, hutchinson=h, method="rk4", steps=40).logp
  exact = jax.jit(lambda k: run(k, "exact"))(jax.random.key(0))
  ests = jax.jit(jax.vmap(lambda k: run(k, kind)))(jax.random.split(jax.random.key(1), 400))
  ests = np.asarray(ests)
  sem = ests.std(0) / np.sqrt(len(ests))
  assert np.all(np.abs(ests.mean(0) - np.asarray(exact)) < 5 * sem + 1e-3)
  assert ests.std(0).max() > 1e-2  # it is an estimate, not the exact trace


def test_divergence_exact_on_images():
  """Exact trace over [B, H, W, C] examples equals the Jacobian's trace."""
  w = jax.random.normal(jax.random.key(0), (12, 12)) / 4
  fn = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w).reshape(x.shape)
  x = jax.random.normal(jax.random.key(1), (3, 2, 2, 3))
  _, div = S.divergence(fn, x, "exact")
  jac = jax.vmap(jax.jacfwd(lambda v: fn(v[None])[0].reshape(-1)))(x)
  np.testing.assert_allclose(div, jnp.trace(jac.reshape(3, 12, 12), axis1=1, axis2=2), rtol=1e-5)


def test_dopri5_closed_forms():
  with jax.enable_x64(True):
    # y' = -2 t y, y(0) = 1 -> exp(-t^2); pytree state with a second, linear component.
    fn = lambda t, y: (-2 * t * y[0], jnp.cos(t) * jnp.ones_like(y[1]))
    res = jax.jit(lambda: gs.odeint_dopri5(fn, (jnp.ones(3), jnp.zeros(2)), 0.0, 2.0,
                                          rtol=1e-8, atol=1e-10))()
    np.testing.assert_allclose(res.y[0], np.exp(-4.0), rtol=1e-6)
    np.testing.assert_allclose(res.y[1], np.sin(2.0), rtol=1e-7)
    assert bool(res.success)
    # Backwards in time, as the samplers integrate: y' = y from 1 to 0 gives y(0) = y(1) / e.
    back = gs.odeint_dopri5(lambda t, y: y, jnp.array([math.e]), 1.0, 0.0, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(back.y, 1.0, rtol=1e-7)
    # Looser tolerances take fewer evaluations; a step cap reports failure.
    loose = gs.odeint_dopri5(fn, (jnp.ones(3), jnp.zeros(2)), 0.0, 2.0, rtol=1e-3, atol=1e-3)
    assert int(loose.nfe) < int(res.nfe)
    assert not bool(gs.odeint_dopri5(fn, (jnp.ones(3), jnp.zeros(2)), 0.0, 2.0, max_steps=2).success)


def test_bits_per_dim_of_discrete_data():
  """Uniform dequantization + ODE + log(1/Delta) upper-bounds the exact discrete NLL, and is
  close to it when the density is smooth on the bin scale (Theis et al. 2016).

  Data: independent N(mu_j, s_j^2) dims on 17 levels in [-1, 1] (the digits' levels, Delta =
  1/8); P(k) is the Gaussian mass of k's bin, an exact product of normal CDF differences.
  """
  mu, s = np.array([0.1, -0.2]), np.array([0.5, 0.7])
  levels, delta = 17, 2.0 / 16
  with jax.enable_x64(True):
    sde = gs.VPSDE()
    score = marginal_score_fn(sde, mu=mu, lam=s**2, u=np.eye(2))
    x = np.clip(np.round((np.random.default_rng(2).normal(mu, s, (64, 2)) + 1) / delta)
                * delta - 1, -1, 1)
    keys = jax.random.split(jax.random.key(0), 64)
    bpd = jax.jit(jax.vmap(lambda k: S.bits_per_dim(sde, score, jnp.asarray(x), k,
                                                     num_levels=levels, hutchinson="exact",
                                                     method="rk4", steps=40)[0]))(keys)
    bpd = np.asarray(bpd).mean(0)  # average over dequantization noise
  # Exact -log2 P(k) / D of the (unclipped) Gaussian over the centered bins.
  p = norm.cdf((x + delta / 2 - mu) / s) - norm.cdf((x - delta / 2 - mu) / s)
  exact = -np.log2(p).sum(1) / 2
  assert np.all(bpd > exact - 0.02)          # an upper bound, up to Monte Carlo noise
  assert np.abs(bpd - exact).mean() < 0.02   # and a tight one (Jensen gap ~ Delta^2 / 24 s^2)
  y = S.uniform_dequantize(jax.random.key(0), jnp.zeros((1000, 1)), 17)
  assert float(y.min()) >= -delta / 2 and float(y.max()) < delta / 2
