"""Consistency models (Song, Dhariwal, Chen & Sutskever 2023; seed 003 eq. 44-46), pure functions.

A consistency function maps any point ``x_sigma`` of a probability-flow ODE trajectory to the
trajectory's start: ``f(x_sigma, sigma) = x_eps`` for every ``sigma in [eps, T]``, so one network
evaluation samples. Everything is EDM-style (VE): ``x_sigma = x_0 + sigma n``, the ODE
``dx/dsigma = (x - D(x, sigma)) / sigma`` with a denoiser D (Karras et al. 2022).

* Parameterization (Sec. 3, Appendix C): ``f(x, sigma) = c_skip(sigma) x + c_out(sigma)
  F(c_in(sigma) x, sigma)`` with ``c_skip = sd^2 / ((sigma - eps)^2 + sd^2)``,
  ``c_out = sd (sigma - eps) / sqrt(sd^2 + sigma^2)``, ``c_in = 1 / sqrt(sigma^2 + sd^2)``, so
  ``f(x, eps) = x`` exactly (the boundary condition, seed eq. 44).
* Noise levels (Sec. 5): ``sigma_i = (eps^(1/rho) + (i-1)/(N-1) (T^(1/rho) - eps^(1/rho)))^rho``.
* Consistency distillation (Algorithm 2, seed eq. 45): ``x_{n+1} = x + sigma_{n+1} z``, one step
  of an ODE solver with the teacher D gives ``x^_n``, and the loss is
  ``d(f_theta(x_{n+1}, sigma_{n+1}), f_theta-(x^_n, sigma_n))`` with the target network
  ``theta- <- stopgrad(mu theta- + (1 - mu) theta)``.
* Consistency training (Algorithm 3, seed eq. 46): the same with ``x^_n = x + sigma_n z`` (the
  Euler step with the one-sample estimate ``D(x_{n+1}) = x``), and the schedules ``N(k)``,
  ``mu(k)`` of Sec. 5.
* Sampling (Algorithm 1) is on the sampling floor: :func:`genjax.sampling.consistency_sample`.

The distance ``d`` is the squared L2 distance (mean over pixels); the paper's best results use
LPIPS, which needs pretrained VGG weights that cannot be downloaded here.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from genjax.sampling.edm import ode_step as edm_ode_step
from genjax.sampling.processes import bcast

Array = jax.Array

__all__ = ["ConsistencyPrecond", "consistency_precond", "make_consistency_fn", "cm_sigmas",
           "ct_num_scales", "ct_target_decay", "ode_step", "cd_loss", "ct_loss"]


class ConsistencyPrecond(NamedTuple):
  c_skip: Array
  c_out: Array
  c_in: Array


def consistency_precond(sigma: Array, sigma_data: float = 0.5,
                        sigma_min: float = 0.002) -> ConsistencyPrecond:
  """Song et al. 2023 Appendix C: ``c_skip = sd^2 / ((sigma - eps)^2 + sd^2)``,
  ``c_out = sd (sigma - eps) / sqrt(sd^2 + sigma^2)``, and EDM's ``c_in = 1/sqrt(sigma^2 + sd^2)``.
  ``c_skip(eps) = 1`` and ``c_out(eps) = 0``: the boundary condition ``f(x, eps) = x``."""
  sigma = jnp.asarray(sigma)
  sd2 = sigma_data ** 2
  return ConsistencyPrecond(
      c_skip=sd2 / ((sigma - sigma_min) ** 2 + sd2),
      c_out=sigma_data * (sigma - sigma_min) / jnp.sqrt(sd2 + sigma ** 2),
      c_in=1.0 / jnp.sqrt(sigma ** 2 + sd2))


def make_consistency_fn(net_fn: Callable[[Array, Array], Array], sigma_data: float = 0.5,
                        sigma_min: float = 0.002) -> Callable[[Array, Array], Array]:
  """``f(x [B, ...], sigma [B]) = c_skip x + c_out net_fn(c_in x, sigma)`` (Appendix C).

  ``net_fn(x_in, sigma)`` is the raw network F; it maps sigma to its own noise input."""

  def f(x, sigma):
    c = consistency_precond(sigma, sigma_data, sigma_min)
    return bcast(c.c_skip, x) * x + bcast(c.c_out, x) * net_fn(bcast(c.c_in, x) * x, sigma)

  return f


def cm_sigmas(num_scales, sigma_min: float = 0.002, sigma_max: float = 80.0,
              rho: float = 7.0) -> Array:
  """The N noise levels of Sec. 5, increasing from eps to T: ``sigma_i = (eps^(1/rho) +
  (i-1)/(N-1) (T^(1/rho) - eps^(1/rho)))^rho``, i = 1..N. Zero-based ``[N]``; ``num_scales``
  may be a traced integer (consistency training grows it), then the array has a static
  maximal length and is indexed only below ``num_scales``."""
  n = jnp.asarray(num_scales, jnp.float32)
  i = jnp.arange(_MAX_SCALES, dtype=jnp.float32)
  lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
  return (lo + i / jnp.maximum(n - 1, 1) * (hi - lo)) ** rho


_MAX_SCALES = 1281  # the largest N(k) of the paper's schedules (ImageNet CT: s1 = 1280)


def ct_num_scales(step, total_steps: int, s0: int = 2, s1: int = 150):
  """Consistency training's N(k) (Sec. 5 / Appendix C):
  ``ceil(sqrt(k/K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1``; from ``s0`` at k = 0 to ``s1 + 1``."""
  k = jnp.asarray(step, jnp.float32)
  n = jnp.ceil(jnp.sqrt(k / total_steps * ((s1 + 1) ** 2 - s0 ** 2) + s0 ** 2) - 1) + 1
  return n.astype(jnp.int32)


def ct_target_decay(num_scales, s0: int = 2, mu0: float = 0.9):
  """Consistency training's target EMA rate ``mu(k) = exp(s0 log(mu0) / N(k))``."""
  return jnp.exp(s0 * math.log(mu0) / jnp.asarray(num_scales, jnp.float32))


def ode_step(denoise_fn: Callable[[Array, Array], Array], x: Array, sigma_from: Array,
             sigma_to: Array, solver: str = "heun") -> Array:
  """One step of the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` from
  ``sigma_from`` to ``sigma_to`` (both ``[B]``, > 0): Euler, or Heun (Karras et al. 2022,
  Algorithm 1, the solver of Song et al. 2023's CD experiments), by
  :func:`genjax.sampling.edm.ode_step`."""
  d_fn = lambda x, s: (x - denoise_fn(x, s)) / bcast(s, x)
  return edm_ode_step(d_fn, x, sigma_from, sigma_to, solver)


def _pick_levels(key, batch: int, num_scales, sigma_min, sigma_max, rho):
  """n ~ U{1..N-1} (one-based as the paper), giving (sigma_n, sigma_{n+1}) per example."""
  sig = cm_sigmas(num_scales, sigma_min, sigma_max, rho)
  n = jax.random.randint(key, (batch,), 0, jnp.asarray(num_scales) - 1)
  return sig[n], sig[n + 1]


def cd_loss(f_online, f_target, denoise_fn, x0: Array, key: Array, num_scales: int, *,
            solver: str = "heun", sigma_min: float = 0.002, sigma_max: float = 80.0,
            rho: float = 7.0) -> tuple[Array, dict]:
  """Consistency distillation, Song et al. 2023 Algorithm 2 / eq. 7 (seed eq. 45).

  Args:
    f_online: ``f_theta(x, sigma)``, differentiated.
    f_target: ``f_theta-(x, sigma)`` (the target network; its output is stop-gradient'ed).
    denoise_fn: the teacher ``D(x, sigma)``.
    x0: ``[B, ...]`` data.
    key: PRNG key.
    num_scales: N.

  Returns:
    ``(loss, metrics)``: the mean over the batch of the mean squared distance, lambda = 1.
  """
  k_n, k_z = jax.random.split(key)
  s_n, s_next = _pick_levels(k_n, x0.shape[0], num_scales, sigma_min, sigma_max, rho)
  x_next = x0 + bcast(s_next, x0) * jax.random.normal(k_z, x0.shape, x0.dtype)
  x_hat = jax.lax.stop_gradient(ode_step(denoise_fn, x_next, s_next, s_n, solver))
  return _consistency_distance(f_online, f_target, x_next, s_next, x_hat, s_n)


def ct_loss(f_online, f_target, x0: Array, key: Array, num_scales, *, sigma_min: float = 0.002,
            sigma_max: float = 80.0, rho: float = 7.0) -> tuple[Array, dict]:
  """Consistency training, Song et al. 2023 Algorithm 3 / eq. 10 (seed eq. 46): the pair
  ``x + sigma_{n+1} z`` and ``x + sigma_n z`` share z (the Euler step of the PF-ODE with the
  one-sample score estimate ``-(x_t - x) / t^2``)."""
  k_n, k_z = jax.random.split(key)
  s_n, s_next = _pick_levels(k_n, x0.shape[0], num_scales, sigma_min, sigma_max, rho)
  z = jax.random.normal(k_z, x0.shape, x0.dtype)
  x_next = x0 + bcast(s_next, x0) * z
  x_hat = x0 + bcast(s_n, x0) * z
  return _consistency_distance(f_online, f_target, x_next, s_next, x_hat, s_n)


def _consistency_distance(f_online, f_target, x_next, s_next, x_hat, s_n):
  pred = f_online(x_next, s_next)
  target = jax.lax.stop_gradient(f_target(x_hat, s_n))
  per_example = jnp.mean((pred - target) ** 2, axis=tuple(range(1, pred.ndim)))
  loss = jnp.mean(per_example)
  return loss, {"loss": loss, "sigma_mean": jnp.mean(s_next)}
