"""Gaussian data x0 ~ N(MU, C): the exact score of every marginal of every process, in closed form.

For a process with marginal ``x_t = m_t x0 + std_t z`` the marginal is ``N(m_t MU, m_t^2 C +
std_t^2 I)``; with ``C = U diag(LAM) U^T`` its score is
``-U diag(1 / (m_t^2 LAM + std_t^2)) U^T (x - m_t MU)`` and the exact denoiser (noise
prediction) is ``eps = -std_t score``.
"""

import jax.numpy as jnp
import numpy as np

MU = np.array([0.5, -0.3])
_A = np.array([[1.0, 0.0], [0.6, 0.5]])
C = _A @ _A.T                       # [[1, .6], [.6, .61]]
LAM, U = np.linalg.eigh(C)


def marginal_score_fn(sde, mu=MU, lam=LAM, u=U):
  """``score_fn(x [B, D], t [B] or scalar)``: the exact score of the process's marginal at t."""

  def fn(x, t):
    uj, lj, muj = (jnp.asarray(a, x.dtype) for a in (u, lam, mu))
    m = jnp.reshape(sde.marginal_alpha(t), (-1, 1)).astype(x.dtype)
    std = jnp.reshape(sde.marginal_std(t), (-1, 1)).astype(x.dtype)
    inv = 1.0 / (m**2 * lj + std**2)
    return -(((x - m * muj) @ uj) * inv) @ uj.T

  return fn


def exact_eps_fn(sde, mu=MU, lam=LAM, u=U):
  """The exact denoiser ``eps_fn(x, t, cond) = -std_t score(x, t)`` (cond ignored)."""
  score = marginal_score_fn(sde, mu, lam, u)

  def fn(x, t, cond=None):
    std = jnp.reshape(sde.marginal_std(t), (-1, 1)).astype(x.dtype)
    return -std * score(x, t)

  return fn


def sigma_score_fn(mu=MU, lam=LAM, u=U):
  """``score_fn(x, sigma [B] or scalar)`` of ``N(MU, C + sigma^2 I)`` (NCSN / EDM's VE
  marginals)."""

  def fn(x, sigma):
    uj, lj, muj = (jnp.asarray(a, x.dtype) for a in (u, lam, mu))
    inv = 1.0 / (lj + jnp.reshape(sigma, (-1, 1)) ** 2)
    return -(((x - muj) @ uj) * inv) @ uj.T

  return fn


def marginal_sample(sde, key, n, t, dtype=jnp.float32):
  """``n`` draws of the exact marginal at scalar time t (used as x_T)."""
  import jax
  k1, k2 = jax.random.split(key)
  x0 = MU + jax.random.normal(k1, (n, 2), dtype) @ jnp.asarray(_A.T, dtype)
  mean, std = sde.marginal_prob(x0, jnp.full((n,), t, dtype))
  return mean + std[:, None] * jax.random.normal(k2, (n, 2), dtype)


def logpdf(x, mu, cov):
  """Gaussian log-density, float64 numpy, ``[B, D] -> [B]``."""
  x = np.asarray(x, np.float64)
  diff = x - mu
  ci = np.linalg.inv(cov)
  return (-0.5 * np.einsum("bi,ij,bj->b", diff, ci, diff)
          - 0.5 * np.log(np.linalg.det(2 * np.pi * cov)))


def check_moments(x, mean_tol, cov_tol, mu=MU, cov=C):
  """Empirical mean / covariance of ``x`` against (mu, cov): 5 standard errors plus a bias."""
  x = np.asarray(x, np.float64)
  n = len(x)
  m, c = x.mean(0), np.cov(x.T)
  se_m = np.sqrt(np.diag(cov) / n)
  se_c = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
  assert np.all(np.isfinite(x))
  assert np.all(np.abs(m - mu) <= 5 * se_m + mean_tol), (m, mu)
  assert np.all(np.abs(c - cov) <= 5 * se_c + cov_tol * np.abs(cov).max()), (c, cov)
