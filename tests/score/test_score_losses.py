"""The DSM losses at the true score equal their known minimum, for Gaussian data.

For ``x0 ~ N(MU, C)`` the SDE marginal is ``N(m_t MU, C_t = m_t^2 C + std_t^2 I)``; at the true
score the per-time loss is ``E||grad log p_0t||^2 - E||grad log p_t||^2 = D / std^2 - tr C_t^-1``
times the weight (Vincent 2011). So with ``lambda = std^2`` (summed over dims) the minimum at t is
``sum_j m^2 l_j / (m^2 l_j + std^2)`` over C's eigenvalues ``l_j``; with ``lambda = g^2`` it is
that times ``g^2 / std^2``. Integrated over ``t ~ U[eps, 1]`` by the trapezoid rule (float64),
then halved (score_sde's ``0.5 * sum``) or divided by D (``reduce_mean``). NCSN's minimum is
``mean_i 1/2 sum_j l_j / (l_j + sigma_i^2)``; EDM's (with the exact denoiser) is
``E_sigma[lambda(sigma) sum_j l_j sigma^2 / (l_j + sigma^2)] / D``.
The Monte Carlo loss must match within 5 standard errors (over independent batches).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import sampling as gs
from genjax import score as S
from tests.sampling.gaussian import C, LAM, MU, marginal_score_fn, sigma_score_fn

VP, SUBVP, VE = gs.VPSDE(), gs.SubVPSDE(), gs.VESDE(sigma_min=0.01, sigma_max=50.0)


def _closed_form(sde, reduce_mean, likelihood_weighting, eps=1e-5, n=200001):
  t = np.linspace(eps, 1.0, n)
  if isinstance(sde, gs.VESDE):
    m = np.ones_like(t)
    std2 = (sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t) ** 2
    g2 = std2 * 2 * np.log(sde.sigma_max / sde.sigma_min)
  else:
    lmc = -0.25 * t**2 * (sde.beta_max - sde.beta_min) - 0.5 * t * sde.beta_min
    m = np.exp(lmc)
    beta = sde.beta_min + t * (sde.beta_max - sde.beta_min)
    if isinstance(sde, gs.VPSDE):
      std2, g2 = -np.expm1(2 * lmc), beta
    else:
      std2, g2 = np.expm1(2 * lmc) ** 2, beta * -np.expm1(4 * lmc)
  per_t = np.sum(m[:, None] ** 2 * LAM / (m[:, None] ** 2 * LAM + std2[:, None]), axis=1)
  if likelihood_weighting:
    per_t = per_t * g2 / std2
  per_t = per_t / len(LAM) if reduce_mean else 0.5 * per_t
  return float(np.trapezoid(per_t, t) / (1.0 - eps))


def _mc(loss_fn, n_batches=16, batch=2048):
  def one(k):
    k1, k2 = jax.random.split(k)
    x0 = jnp.asarray(MU, jnp.float32) + jax.random.normal(k1, (batch, 2)) @ jnp.asarray(
        np.linalg.cholesky(C).T, jnp.float32)
    return loss_fn(None, {"x": x0}, k2)[0]
  vals = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), n_batches)))
  return vals.mean(), vals.std(ddof=1) / np.sqrt(n_batches)


@pytest.mark.parametrize("sde,reduce_mean,lw", [
    (VP, False, False), (VP, True, False), (SUBVP, False, False), (VE, False, False),
    (VE, True, True)], ids=["vp", "vp_mean", "subvp", "ve", "ve_mean_likelihood_weighted"])
def test_sde_dsm_loss_at_true_score_is_its_minimum(sde, reduce_mean, lw):
  score_fn = marginal_score_fn(sde)
  loss_fn = S.make_sde_loss(lambda p, x, t, k: score_fn(x, t), sde, reduce_mean=reduce_mean,
                            likelihood_weighting=lw)
  mean, sem = _mc(loss_fn)
  expected = _closed_form(sde, reduce_mean, lw)
  assert abs(mean - expected) < 5 * sem + 1e-3 * expected, (mean, sem, expected)
  # A wrong score costs more.
  bad = S.make_sde_loss(lambda p, x, t, k: 1.5 * score_fn(x, t), sde, reduce_mean=reduce_mean,
                        likelihood_weighting=lw)
  assert _mc(bad)[0] > mean  # same keys: common random numbers


def test_ncsn_loss_at_true_score_is_its_minimum():
  sigmas = gs.geometric_sigmas(5.0, 0.01, 10)
  loss_fn = S.make_ncsn_loss(lambda p, x, s, k: sigma_score_fn()(x, s), sigmas)
  mean, sem = _mc(loss_fn)
  expected = np.mean([0.5 * np.sum(LAM / (LAM + s**2)) for s in sigmas])
  assert abs(mean - expected) < 5 * sem, (mean, sem, expected)


def test_edm_loss_at_exact_denoiser_is_its_minimum():
  sd, pm, ps = 0.5, -1.2, 1.2
  score_fn = sigma_score_fn()
  denoise = lambda x, s: x + jnp.reshape(s, (-1, 1)) ** 2 * score_fn(x, s)  # Tweedie
  loss_fn = S.make_edm_loss(lambda p, x, s, k: denoise(x, s), sigma_data=sd, p_mean=pm, p_std=ps)
  mean, sem = _mc(loss_fn)
  z = np.linspace(-8, 8, 20001)
  s = np.exp(pm + ps * z)
  w = (s**2 + sd**2) / (s * sd) ** 2
  per = w * np.sum(LAM * s[:, None] ** 2 / (LAM + s[:, None] ** 2), axis=1) / 2
  expected = np.trapezoid(per * np.exp(-z**2 / 2) / np.sqrt(2 * np.pi), z)
  assert abs(mean - expected) < 5 * sem, (mean, sem, expected)
