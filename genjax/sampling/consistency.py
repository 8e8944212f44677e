"""Multistep consistency sampling (Song, Dhariwal, Chen & Sutskever 2023, Algorithm 1).

A consistency function ``f(x_sigma, sigma)`` maps any point of a probability-flow ODE
trajectory to its start, so one evaluation samples: ``x = f(T z, T)``; then, for each ``tau``
of a decreasing sequence, ``x <- f(x + sqrt(tau^2 - eps^2) z, tau)``. On the
:class:`~genjax.sampling.processes.EDMProcess` a consistency function is an x0-prediction, so
the denoiser contract holds: ``f(x, sigma) = x - sigma eps(x, sigma)``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.convert import EpsFn, eps_of
from genjax.sampling.edm import karras_sigmas
from genjax.sampling.scan import initial_state, run_scan, step_draws

__all__ = ["consistency_sample", "default_taus"]


def default_taus(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                 rho: float = 7.0) -> np.ndarray:
  """The intermediate noise levels of a ``steps``-evaluation consistency sampler: the interior
  of a Karras schedule of ``steps + 1`` levels from T to eps (empty for one step). The paper
  tunes them per dataset (e.g. 0.821 for 2-step CIFAR-10); this is a fixed, documented rule."""
  if steps < 1:
    raise ValueError(f"consistency sampling needs steps >= 1, got {steps}.")
  return karras_sigmas(steps + 1, sigma_min, sigma_max, rho)[1:steps]


def consistency_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
                       taus: Sequence[float] = (), trajectory_stride: Optional[int] = None,
                       x_T: Optional[jax.Array] = None, constraint=None):
  """Song et al. 2023 Algorithm 1 (one ``lax.scan`` over the ``taus``).

  Args:
    eps_fn: the consistency model as a denoiser on ``process``:
      ``f(x, sigma) = x - sigma eps_fn(x, sigma, cond)``.
    process: an :class:`~genjax.sampling.processes.EDMProcess` (``sigma_min`` is eps,
      ``sigma_max`` is T).
    key: PRNG key.
    shape: ``(B, ...)``.
    cond: the condition passed to ``eps_fn``.
    taus: decreasing noise levels in ``(eps, T)`` after the first evaluation at T; ``()`` is
      one-step generation.
    trajectory_stride: None or a positive int (the state after every k-th evaluation).
    x_T: optional initial state ``T z`` of ``shape``.
    constraint: ``constraint(x, alpha, sigma, key) -> x``, applied to each noisy input
      (``sigma = tau``) and, with ``sigma = 0``, to each output.

  Returns:
    ``[B, ...]`` samples (or ``(x, trajectory)``). NFE = ``1 + len(taus)``.
  """
  taus_np = np.asarray(taus, np.float64).reshape(-1)
  if len(taus_np) and (np.any(np.diff(taus_np) >= 0) or taus_np.min() <= process.sigma_min
                       or taus_np.max() >= process.sigma_max):
    raise ValueError(f"taus must decrease inside (sigma_min, sigma_max) = ({process.sigma_min}, "
                     f"{process.sigma_max}); got {tuple(taus_np)}.")
  shape, x_T, k0, ks = initial_state(process, key, shape, x_T)
  dtype = x_T.dtype
  one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)

  def f(x, sigma, k):
    if constraint is not None:
      x = constraint(x, one, sigma, jax.random.fold_in(k, 0))
    x = x - sigma * eps_of(eps_fn(x, sigma, cond), sigma).astype(dtype)
    return x if constraint is None else constraint(x, one, zero, jax.random.fold_in(k, 1))

  x = f(x_T, jnp.asarray(process.sigma_max, dtype), k0)
  taus_j = jnp.asarray(taus_np, dtype)

  def draw(k):  # the re-noising draw and the constraint's key
    kz, kf = jax.random.split(k)
    return jax.random.normal(kz, x.shape, dtype), kf

  draws, draws_of = step_draws(draw, jax.random.split(ks, max(len(taus_np), 1))[:len(taus_np)])

  def step(x, inp):
    tau, r = inp
    z, kf = draws_of(r)
    noisy = x + jnp.sqrt(tau**2 - process.sigma_min**2) * z
    return f(noisy, tau, kf)

  return run_scan(step, x, (taus_j, draws), stride=trajectory_stride)
