"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1; seed 001 section III.B).

For each noise level ``sigma_i`` of a decreasing sequence, ``T`` updates
``x <- x + alpha_i / 2 s(x, sigma_i) + sqrt(alpha_i) z`` with the step
``alpha_i = eps sigma_i^2 / sigma_L^2``, then optionally the denoising step
``x <- x + sigma_L^2 s(x, sigma_L)`` (Tweedie; Jolicoeur-Martineau et al. 2021 and NCSNv2).
The score is ``-eps / sigma`` of the denoiser (:mod:`genjax.sampling.convert`), so the sampler
runs on any process whose marginals are ``x_0 + sigma n`` (``alpha = 1``: NCSN's noise levels on
:class:`~genjax.sampling.processes.EDMProcess`, or :class:`~genjax.sampling.processes.VESDE`).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.convert import EpsFn, eps_of
from genjax.sampling.scan import check_shape, finish, run_scan, step_draws

__all__ = ["annealed_langevin_nfe", "annealed_langevin_sample", "geometric_sigmas"]


def geometric_sigmas(sigma_max: float = 1.0, sigma_min: float = 0.01,
                     num_scales: int = 10) -> np.ndarray:
  """``sigma_i = sigma_max (sigma_min / sigma_max)^((i-1)/(L-1))``, decreasing, float64 ``[L]``
  (Song & Ermon 2019 Sec. 4.2: sigma_1 = 1, sigma_10 = 0.01 for images in [0, 1])."""
  if not 0 < sigma_min < sigma_max or int(num_scales) != num_scales or num_scales < 2:
    raise ValueError(f"Need 0 < sigma_min < sigma_max and num_scales >= 2; got sigma_min="
                     f"{sigma_min}, sigma_max={sigma_max}, num_scales={num_scales}.")
  return np.exp(np.linspace(np.log(sigma_max), np.log(sigma_min), int(num_scales)))


def annealed_langevin_nfe(num_scales: int, n_steps_each: int, denoise: bool = True) -> int:
  """Score evaluations of :func:`annealed_langevin_sample` per sample."""
  return int(num_scales) * int(n_steps_each) + int(bool(denoise))


def annealed_langevin_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, sigmas,
                             cond=None, n_steps_each: int = 100, step_lr: float = 2e-5,
                             denoise: bool = True, init: str = "uniform",
                             init_range: tuple[float, float] = (-1.0, 1.0),
                             trajectory_stride: Optional[int] = None,
                             x_T: Optional[jax.Array] = None, constraint=None):
  """Annealed Langevin dynamics, Song & Ermon 2019 Algorithm 1, as one ``lax.scan`` of
  ``L * n_steps_each`` updates.

  Args:
    eps_fn: the denoiser ``eps_fn(x, t scalar, cond)`` of ``process``.
    process: a process with ``alpha = 1`` (EDMProcess: ``t = sigma``; VESDE).
    key: PRNG key (split into the initial draw and one key per update).
    shape: ``(B, ...)``, static.
    sigmas: decreasing noise levels ``[L]`` (:func:`geometric_sigmas`).
    cond: the condition passed to ``eps_fn``.
    n_steps_each: T, updates per level (100 in the paper).
    step_lr: epsilon; level i uses ``alpha_i = epsilon sigma_i^2 / sigma_L^2`` (2e-5 in the paper).
    denoise: finish with ``x + sigma_L^2 s(x, sigma_L)``.
    init: ``"uniform"`` on ``init_range`` (the paper's U[0, 1] for data in [0, 1]) or
      ``"gaussian"``: ``N(0, sigma_1^2 I)``.
    init_range: the uniform initialisation's range (genjax's images live in [-1, 1]).
    trajectory_stride: None or a positive int (states after every k-th update).
    x_T: optional initial state of ``shape``.
    constraint: ``constraint(x, 1, sigma_i, key) -> x`` after every update.

  Returns:
    ``x`` ``[*shape]``, or ``(x, trajectory)`` with a trajectory stride.
  """
  sig = np.asarray(sigmas, np.float64)
  if sig.ndim != 1 or len(sig) < 1 or np.any(np.diff(sig) >= 0) or sig.min() <= 0:
    raise ValueError(f"sigmas must be a decreasing 1-D array of positive noise levels, got {sig}.")
  if isinstance(n_steps_each, bool) or int(n_steps_each) != n_steps_each or n_steps_each < 1:
    raise ValueError(f"n_steps_each must be a positive integer, got {n_steps_each!r}.")
  shape = check_shape(shape, x_T)
  num = len(sig) * int(n_steps_each)
  k_init, k_steps = jax.random.split(key)
  if x_T is None:
    if init == "uniform":
      x_T = jax.random.uniform(k_init, shape, jnp.float32, init_range[0], init_range[1])
    elif init == "gaussian":
      x_T = sig[0] * jax.random.normal(k_init, shape, jnp.float32)
    else:
      raise ValueError(f"init must be 'uniform' or 'gaussian', got {init!r}.")
  dtype = x_T.dtype
  level_sigma = jnp.asarray(np.repeat(sig, int(n_steps_each)), dtype)
  level_alpha = jnp.asarray(np.repeat(step_lr * sig**2 / sig[-1] ** 2, int(n_steps_each)), dtype)

  def score(x, sigma):
    t = process.inverse_lambda(-jnp.log(sigma)).astype(dtype)
    return -eps_of(eps_fn(x, t, cond), sigma).astype(dtype) / sigma

  def draw(k):  # the update's noise and the constraint's key
    kz, kc = jax.random.split(k)
    return jax.random.normal(kz, shape, dtype), (kc if constraint is not None else None)

  draws, draws_of = step_draws(draw, jax.random.split(k_steps, num))

  def step(x, inp):
    sigma, alpha, r = inp
    z, kc = draws_of(r)
    x = x + 0.5 * alpha * score(x, sigma) + jnp.sqrt(alpha) * z
    return x if constraint is None else constraint(x, jnp.ones((), dtype), sigma, kc)

  out = run_scan(step, x_T, (level_sigma, level_alpha, draws), stride=trajectory_stride)

  def last(x):
    if denoise:
      s_l = jnp.asarray(sig[-1], dtype)
      x = x + s_l**2 * score(x, s_l)
    if constraint is not None:
      x = constraint(x, jnp.ones((), dtype), jnp.zeros((), dtype), jax.random.fold_in(k_init, 1))
    return x

  return finish(out, trajectory_stride, last)
