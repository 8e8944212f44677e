"""The eps / score relation, one helper used everywhere in genjax.score.

For a Gaussian perturbation ``x_t = m_t x_0 + std_t eps``, Tweedie's formula gives
``grad log p_t(x_t) = -E[eps | x_t] / std_t``. For DDPM ``std_t = sqrt(1 - abar_t)``, which is
seed 003 eq. 33: ``s_theta(x_t, t) ~ -eps_theta(x_t, t) / sqrt(1 - abar_t)``; for SMLD / VE it
is seed 001 section III.B's ``eps_theta = -sigma_t s_theta``. Every score network in
genjax.score predicts eps (score_sde's "scale by sigma" / VP output convention) and every
conversion between the two goes through :func:`score_from_eps` / :func:`eps_from_score`.

Example:
  >>> score_fn = score_fn_from_eps_fn(eps_fn, sde.marginal_std)
  >>> eps_fn = eps_fn_from_score_fn(score_fn, sde.marginal_std)   # for DPM-Solver / DDIM
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from genjax.diffusion.schedules import DiffusionSchedule

__all__ = ["denoiser_from_score_fn", "discrete_score_fn", "eps_fn_from_score_fn",
           "eps_from_score", "score_fn_from_eps_fn", "score_from_eps"]


def _bcast(std, x):
  std = jnp.asarray(std, x.dtype)
  return std.reshape(std.shape + (1,) * (x.ndim - std.ndim))


def score_from_eps(eps: jax.Array, std: jax.Array) -> jax.Array:
  """``s = -eps / std`` (seed 003 eq. 33 with ``std = sqrt(1 - abar_t)``).

  Args:
    eps: predicted noise ``[B, ...]``.
    std: the marginal std of ``x_t`` given ``x_0``: ``[B]`` or a scalar.

  Returns:
    The score ``[B, ...]``.
  """
  return -eps / _bcast(std, eps)


def eps_from_score(score: jax.Array, std: jax.Array) -> jax.Array:
  """``eps = -std * s``, the inverse of :func:`score_from_eps`; ``std`` is ``[B]`` or scalar."""
  return -score * _bcast(std, score)


def score_fn_from_eps_fn(eps_fn: Callable, std_fn: Callable) -> Callable:
  """``score_fn(x, t) = score_from_eps(eps_fn(x, t), std_fn(t))``."""

  def score_fn(x, t):
    return score_from_eps(eps_fn(x, t), std_fn(t))

  return score_fn


def eps_fn_from_score_fn(score_fn: Callable, std_fn: Callable) -> Callable:
  """``eps_fn(x, t) = eps_from_score(score_fn(x, t), std_fn(t))`` (e.g. for DPM-Solver)."""

  def eps_fn(x, t):
    return eps_from_score(score_fn(x, t), std_fn(t))

  return eps_fn


def discrete_score_fn(eps_fn: Callable, sched: DiffusionSchedule) -> Callable:
  """The score of a discrete-time DDPM eps-model: ``s(x, t) = -eps(x, t) / sqrt(1 - abar_t)``.

  ``t`` is an int ``[B]`` of zero-based timesteps (index t is the paper's step t+1).
  """

  def score_fn(x, t):
    return score_from_eps(eps_fn(x, t), sched.sqrt_one_minus_alphas_cumprod[t])

  return score_fn


def denoiser_from_score_fn(score_fn: Callable) -> Callable:
  """A VE-style denoiser ``D(x, sigma) = x + sigma^2 s(x, sigma)`` (Tweedie; Karras et al. 2022
  eq. 3) from ``score_fn(x, sigma [B])``; equivalently ``x - sigma * eps``."""

  def denoise_fn(x, sigma):
    eps = eps_from_score(score_fn(x, sigma), sigma)
    return x - _bcast(sigma, x) * eps

  return denoise_fn
