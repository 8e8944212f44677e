"""Karras et al. 2022's sampler ("Elucidating the Design Space of Diffusion-Based Generative
Models"): the rho-schedule of noise levels and Heun's method with optional churn, for any
Gaussian process.

EDM writes every process in its VE form: ``x^ = x / alpha_t = x_0 + sigma^ n`` with
``sigma^ = sigma_t / alpha_t = exp(-lambda_t)`` (their Sec. 2 and Table 1, ``s(t)`` and
``sigma(t)``), where the probability-flow ODE is ``dx^/dsigma^ = (x^ - D(x^, sigma^)) / sigma^``
(eq. 3-4), and ``(x^ - D) / sigma^`` is the noise prediction ``eps(x, t)`` at
``x = alpha_t x^``, ``t = inverse_lambda(-log sigma^)``. On :class:`~genjax.sampling.processes.
EDMProcess` (and NCSN / VE models) ``x^ = x`` and ``t = sigma``.

NFE = ``2 N - 1`` for N steps (Euler on the last step to ``sigma = 0``).
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.convert import EpsFn, eps_of
from genjax.sampling.processes import bcast
from genjax.sampling.scan import initial_state, run_scan, step_draws

__all__ = ["edm_heun_nfe", "edm_heun_sample", "euler_ancestral_sample", "karras_sigmas",
           "ode_step"]


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0) -> np.ndarray:
  """Karras et al. 2022 eq. 5: ``sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) -
  smax^(1/rho)))^rho`` for ``i < N``, and ``sigma_N = 0``. float64 ``[N + 1]``, decreasing."""
  if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
    raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}.")
  if not 0 < sigma_min < sigma_max:
    raise ValueError(f"Need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}.")
  n = int(num_steps)
  i = np.arange(n, dtype=np.float64)
  ramp = i / max(n - 1, 1)
  s = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
  return np.append(s, 0.0)


def ode_step(d_fn, x: jax.Array, sigma_from, sigma_to, solver: str = "heun") -> jax.Array:
  """One step of ``dx/dsigma = d(x, sigma)`` from ``sigma_from`` to ``sigma_to`` (scalars or
  ``[B]``): Euler, ``x + h d``, or Heun (the explicit trapezoid of Karras et al. 2022,
  Algorithm 1), ``x + h (d + d(x + h d, sigma_to)) / 2``. For EDM's probability-flow ODE
  ``d = (x - D(x, sigma)) / sigma`` (eq. 3-4); consistency distillation takes one such teacher
  step (Song et al. 2023, Algorithm 2).
  """
  if solver not in ("euler", "heun"):
    raise ValueError(f"ODE solver must be euler or heun, got {solver!r}.")
  d = d_fn(x, sigma_from)
  h = bcast(sigma_to - sigma_from, x)
  x_euler = x + h * d
  if solver == "euler":
    return x_euler
  return x + h * 0.5 * (d + d_fn(x_euler, sigma_to))


def edm_heun_nfe(num_steps: int, solver: str = "heun") -> int:
  """Denoiser evaluations of :func:`edm_heun_sample` with N steps: ``2 N - 1`` (Euler: N)."""
  return int(num_steps) if solver == "euler" else 2 * int(num_steps) - 1


def _karras(process, steps: int, t_top, rho: float, dtype) -> jax.Array:
  """:func:`karras_sigmas` between ``sigma^`` at ``process.sampling_eps`` and at ``t_top``, in
  jnp (the process may be traced)."""
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise ValueError(f"steps must be a positive integer, got {steps!r}.")
  lo = jnp.exp(-process.marginal_lambda(jnp.asarray(process.sampling_eps, dtype)))
  hi = jnp.exp(-process.marginal_lambda(jnp.asarray(t_top, dtype)))
  ramp = jnp.arange(int(steps), dtype=dtype) / max(int(steps) - 1, 1)
  s = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
  return jnp.append(s, jnp.zeros((1,), dtype)).astype(dtype)


def edm_heun_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
                    steps: int = 18, rho: float = 7.0, sigmas=None, s_churn: float = 0.0,
                    s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                    t_start: Optional[float] = None, trajectory_stride: Optional[int] = None,
                    x_T: Optional[jax.Array] = None, constraint=None, solver: str = "heun"):
  """Karras et al. 2022 Algorithm 2 (Algorithm 1 when ``s_churn = 0``): Heun's method on
  ``dx^/dsigma^ = eps``, Euler on the last step to ``sigma^ = 0``; one ``lax.scan``. With
  ``solver="euler"`` every step is Euler (N evaluations; the same churn): Karras et al.'s
  discretisation for any eps-model, as k-diffusion's ``sample_euler``.

  Args:
    eps_fn: the denoiser ``eps_fn(x, t scalar, cond)`` of ``process`` (classifier guidance is
      applied in eps form).
    process: a continuous process with ``inverse_lambda``.
    key: PRNG key (the initial draw and the churn noise).
    shape: ``(B, ...)``, static.
    cond: the condition passed to ``eps_fn``.
    steps: N, the number of Karras levels (``karras_sigmas(N, ...)``) from ``sigma^`` at ``T``
      (or ``t_start``) down to ``sigma^`` at ``process.sampling_eps``.
    rho: the schedule's exponent (7).
    sigmas: optional decreasing ``[N + 1]`` levels ``sigma^`` ending in 0, overriding ``steps``.
    s_churn: total churn ``S_churn``; ``gamma_i = min(S_churn / N, sqrt(2) - 1)`` on
      ``[s_tmin, s_tmax]``.
    s_tmin: churn range start.
    s_tmax: churn range end.
    s_noise: ``S_noise``.
    t_start: start at this time from ``x_T`` (SDEdit).
    trajectory_stride: None or a positive int (states ``x^`` after every k-th step).
    x_T: optional initial state in the process's coordinates (``x``, not ``x^``).
    constraint: ``constraint(x^, 1, sigma^, key) -> x^`` after every step (the VE form).

  Returns:
    ``x`` ``[*shape]``, or ``(x, trajectory)``.
  """
  if solver not in ("euler", "heun"):
    raise ValueError(f"solver must be euler or heun, got {solver!r}.")
  if not hasattr(process, "inverse_lambda"):
    raise ValueError(f"edm-heun needs a continuous process with inverse_lambda; "
                     f"{type(process).__name__} is not one (use sched.continuous()).")
  shape, x_T, k_init, k_steps = initial_state(process, key, shape, x_T, t_start)
  t_top = process.T if t_start is None else t_start
  dtype = x_T.dtype
  if sigmas is None:
    sig = _karras(process, steps, t_top, rho, dtype)
  else:
    sig_np = np.asarray(sigmas, np.float64)
    if sig_np.ndim != 1 or len(sig_np) < 2 or sig_np[-1] != 0 or np.any(np.diff(sig_np) >= 0):
      raise ValueError("sigmas must be a decreasing 1-D array ending in 0, e.g. "
                       f"karras_sigmas(18); got {sig_np}.")
    sig = jnp.asarray(sig_np, dtype)
  n = int(sig.shape[0]) - 1
  x_hat_T = x_T / process.marginal_alpha(jnp.asarray(t_top, dtype)).astype(dtype)
  gamma = jnp.where((sig[:-1] >= s_tmin) & (sig[:-1] <= s_tmax),
                    min(s_churn / n, math.sqrt(2) - 1), 0.0).astype(dtype)
  keys = jax.random.split(k_steps, n)

  def d_of(x, s):
    t = process.inverse_lambda(-jnp.log(s)).astype(dtype)
    alpha = process.marginal_alpha(t).astype(dtype)
    return eps_of(eps_fn(alpha * x, t, cond), process.marginal_std(t)).astype(dtype)

  if constraint is not None:
    x_hat_T = constraint(x_hat_T, jnp.ones((), dtype), sig[0], jax.random.fold_in(k_init, 1))

  def draw(k):  # the churn's noise and the constraint's key
    k_churn, k_con = jax.random.split(k)
    return jax.random.normal(k_churn, shape, dtype), (k_con if constraint is not None else None)

  draws, draws_of = step_draws(draw, keys)

  def step(x, inp):
    s_cur, s_next, g, r = inp
    z, k_con = draws_of(r)
    s_hat = s_cur * (1 + g)
    noise = s_noise * z
    x_hat = x + jnp.sqrt(jnp.maximum(s_hat**2 - s_cur**2, 0.0)) * noise
    if solver == "euler":
      x = ode_step(d_of, x_hat, s_hat, s_next, "euler")
    else:
      x = jax.lax.cond(s_next > 0, lambda: ode_step(d_of, x_hat, s_hat, s_next, "heun"),
                       lambda: ode_step(d_of, x_hat, s_hat, s_next, "euler"))
    if constraint is not None:
      x = constraint(x, jnp.ones((), dtype), s_next, k_con)
    return x

  xs = (sig[:-1], sig[1:], gamma, draws)
  return run_scan(step, x_hat_T, xs, stride=trajectory_stride)


def _sigma_grid(process, steps, sigmas, t_top, rho, dtype):
  if sigmas is None:
    return _karras(process, steps, t_top, rho, dtype)
  sig_np = np.asarray(sigmas, np.float64)
  if sig_np.ndim != 1 or len(sig_np) < 2 or sig_np[-1] != 0 or np.any(np.diff(sig_np) >= 0):
    raise ValueError("sigmas must be a decreasing 1-D array ending in 0, e.g. "
                     f"karras_sigmas(18); got {sig_np}.")
  return jnp.asarray(sig_np, dtype)


def euler_ancestral_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
                           steps: int = 35, rho: float = 7.0, sigmas=None, eta: float = 1.0,
                           s_noise: float = 1.0, trajectory_stride: Optional[int] = None,
                           x_T: Optional[jax.Array] = None, constraint=None):
  """Euler ancestral sampling in sigma space (k-diffusion's ``sample_euler_ancestral``;
  diffusers' ``EulerAncestralDiscreteScheduler``) for any eps-model.

  In EDM's VE form ``x^ = x / alpha`` (module docstring), each step from ``sigma`` to
  ``sigma'`` splits ``sigma'`` into a deterministic and an ancestral part so that the step is
  the DDPM posterior (Ho et al. 2020 eq. 7 in sigma space) when ``eta = 1``:

    ``sigma_up = min(sigma', eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2))``,
    ``sigma_down = sqrt(sigma'^2 - sigma_up^2)``,
    ``x^ <- x^ + (sigma_down - sigma) eps(x^, sigma) + s_noise sigma_up z``

  (the Euler step of Karras et al. 2022 eq. 4's ``dx^/dsigma = eps`` to ``sigma_down``, then
  fresh noise up to ``sigma'``). ``eta = 0`` is Euler. N evaluations, one ``lax.scan``.

  Args:
    eps_fn: the denoiser of ``process``.
    process: a continuous process with ``inverse_lambda``.
    key: PRNG key: ``x_T`` from its first split, the steps' noise ``z_i`` from
      ``jax.random.split(second, N)[i]``.
    shape: ``(B, ...)``.
    cond: the condition.
    steps: N Karras levels (``sigmas`` overrides them).
    rho: Karras exponent.
    sigmas: decreasing ``[N + 1]`` levels ``sigma^`` ending in 0.
    eta: the ancestral fraction (1: k-diffusion / diffusers).
    s_noise: noise scale.
    trajectory_stride: record every k-th state ``x^``.
    x_T: optional start (process coordinates).
    constraint: ``constraint(x^, 1, sigma^, key)`` after every step.

  Returns:
    ``x`` (or ``(x, trajectory)``).
  """
  if not hasattr(process, "inverse_lambda"):
    raise ValueError(f"euler-ancestral needs a continuous process with inverse_lambda; "
                     f"{type(process).__name__} is not one (use sched.continuous()).")
  shape, x_T, k_init, k_steps = initial_state(process, key, shape, x_T, None)
  dtype = x_T.dtype
  sig = _sigma_grid(process, steps, sigmas, process.T, rho, dtype)
  n = int(sig.shape[0]) - 1
  # diffusers scales the prior draw to the first sigma; here x_T is drawn at the process's top
  # and mapped to x^ = x / alpha, which equals it when sigmas[0] is sigma^ at T.
  x_hat = x_T / process.marginal_alpha(process.inverse_lambda(-jnp.log(sig[0]))).astype(dtype)

  def d_of(x, s):
    t = process.inverse_lambda(-jnp.log(s)).astype(dtype)
    alpha = process.marginal_alpha(t).astype(dtype)
    return eps_of(eps_fn(alpha * x, t, cond), process.marginal_std(t)).astype(dtype)

  def draw(k):  # the step's noise and the constraint's key
    k_noise, k_con = jax.random.split(k) if constraint is not None else (k, None)
    return jax.random.normal(k_noise, shape, dtype), k_con

  draws, draws_of = step_draws(draw, jax.random.split(k_steps, n))

  def step(x, inp):
    s, s_next, r = inp
    z, k_con = draws_of(r)
    up = jnp.minimum(s_next, eta * jnp.sqrt(jnp.maximum(s_next**2 * (s**2 - s_next**2), 0.0)) / s)
    down = jnp.sqrt(jnp.maximum(s_next**2 - up**2, 0.0))
    x = x + (down - s) * d_of(x, s)
    x = (x + s_noise * up * z).astype(dtype)
    if constraint is not None:
      x = constraint(x, jnp.ones((), dtype), s_next, k_con)
    return x

  return run_scan(step, x_hat, (sig[:-1], sig[1:], draws), stride=trajectory_stride)
