"""DPM-Solver: fast high-order solvers of the diffusion ODE (Lu et al. 2022).

The probability-flow ODE of a VP diffusion, written in the half log-SNR
``lambda_t = log(alpha_t / sigma_t)``, has the exact solution (Lu et al. 2022, eq. 3.4; seed 001
Sec. IV.2's "exponentially weighted integral of the network")

    x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lambda_s}^{lambda_t} e^{-lambda} eps(x_lambda, lambda) dlambda.

The linear part is exact; DPM-Solver-k Taylor-expands ``eps`` in ``lambda`` to order ``k - 1``
and integrates the exponential weights analytically (``h = lambda_t - lambda_s``):

  * DPM-Solver-1 (eq. 3.7), which is DDIM with eta = 0 (Song et al. 2021, eq. 12; seed eq. 43):
    ``x_t = (alpha_t / alpha_s) x_s - sigma_t (e^h - 1) eps(x_s, s)``.
  * singlestep DPM-Solver-2 (Algorithm 1, ``r1 = 1/2``) and DPM-Solver-3 (Algorithm 2,
    ``r1 = 1/3``, ``r2 = 2/3``): intermediate points at ``lambda_s + r h``.
  * multistep DPM-Solver-2 / -3 (Lu et al. 2022b, "DPM-Solver++", Algorithms 1-2 and
    Appendix B, the noise-prediction variant): reuse the previous steps' ``eps`` for the
    finite differences, one network evaluation (NFE) per step.

The code follows the official ``dpm_solver_jax.py`` / ``dpm_solver_pytorch.py``
(``solver_type='dpm_solver'``, noise prediction): the same update formulas, step schedules
(``time_uniform``, ``logSNR``, ``time_quadratic``), the "DPM-Solver-fast" order pattern for
singlestep, and lower-order warm-up steps for multistep. One difference: singlestep
DPM-Solver-2/-3 place their intermediate points at the paper's ``r1 = 1/2`` and
``r1 = 1/3, r2 = 2/3`` in ``lambda`` for every ``skip_type`` (the reference takes them from a
``skip_type`` grid inside each step, which equals these for ``logSNR``).

Conventions: the solver runs on any continuous Gaussian process of
:mod:`genjax.sampling.processes` (``marginal_log_mean_coeff``, ``marginal_std``,
``marginal_lambda`` and ``inverse_lambda``): VP (linear, cosine, or a discrete DDPM schedule's
continuous view ``sched.continuous()``), sub-VP, VE and EDM's sigma process; the exponential
integrator only needs the marginals. Time runs from ``T`` (or ``t_start``) to ``t_end``
(default the process's ``sampling_eps``: ``1/N`` for a discrete schedule's view). The denoiser is
``eps_fn(x, t, cond)`` in the process's continuous time (classifier guidance applied in eps
form). The solvers are one ``lax.scan`` (multistep) or one ``lax.scan`` per run of equal orders
(singlestep: at most three), jit-able and vmap-able over keys; only ``x_T`` is random.

Example:
  >>> ns = sched.continuous()                       # a DiscreteVPSDE
  >>> x = dpm_solver_sample(eps_fn, ns, jax.random.key(0), (16, 8, 8, 1), steps=20, order=3,
  ...                       method="singlestep", skip_type="logSNR")
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.convert import EpsFn, eps_of
from genjax.sampling.scan import check_shape, finish, initial_state, run_groups

__all__ = [
    "DPM_METHODS",
    "SKIP_TYPES",
    "dpm_solver_first_update",
    "dpm_solver_nfe",
    "dpm_solver_sample",
    "get_time_steps",
    "multistep_second_update",
    "multistep_third_update",
    "singlestep_orders",
    "singlestep_second_update",
    "singlestep_third_update",
    "singlestep_timesteps",
    "timesteps_from_discrete",
]

DPM_METHODS = ("singlestep", "multistep")
SKIP_TYPES = ("time_uniform", "logSNR", "time_quadratic")


def timesteps_from_discrete(timesteps, num_timesteps: int) -> np.ndarray:
  """Continuous times ``t_n = (n + 1) / N`` of zero-based discrete steps ``n`` (float64 numpy).

  E.g. DDIM's ``ddim_timesteps(N, S)`` as DPM-Solver timesteps: DPM-Solver-1 on them is DDIM
  (eta = 0) on the same steps (with ``denoise_to_zero=True`` for DDIM's last step to ``x_0``).
  """
  return (np.asarray(timesteps, dtype=np.float64) + 1.0) / num_timesteps


def _eps_caller(eps_fn, ns, cond):
  """``eps(x, t)`` of the denoiser at a scalar time, classifier guidance applied."""

  def eps(x, t):
    t = jnp.asarray(t, x.dtype)
    return eps_of(eps_fn(x, t, cond), ns.marginal_std(t)).astype(x.dtype)

  return eps


# ----------------------------------------------------------------------------------------------
# Step schedules.
# ----------------------------------------------------------------------------------------------


def get_time_steps(process, skip_type: str, t_T: float, t_0: float,
                   num: int, dtype=jnp.float32) -> jax.Array:
  """``num + 1`` decreasing times from ``t_T`` to ``t_0`` (the reference's ``get_time_steps``).

  * ``"time_uniform"``: uniform in ``t``.
  * ``"logSNR"``: uniform in ``lambda_t`` (Lu et al. 2022, Sec. 3.3), mapped back with
    :meth:`process.inverse_lambda`.
  * ``"time_quadratic"``: uniform in ``sqrt(t)`` (DDIM's quadratic spacing).

  Returns:
    ``[num + 1]`` array of ``dtype``.
  """
  if skip_type not in SKIP_TYPES:
    raise ValueError(f"Unknown skip_type {skip_type!r}; valid: {', '.join(SKIP_TYPES)}.")
  ns = process
  if skip_type == "logSNR":
    lam_T = ns.marginal_lambda(jnp.asarray(t_T, dtype))
    lam_0 = ns.marginal_lambda(jnp.asarray(t_0, dtype))
    return ns.inverse_lambda(jnp.linspace(lam_T, lam_0, num + 1)).astype(dtype)
  if skip_type == "time_uniform":
    return jnp.linspace(t_T, t_0, num + 1, dtype=dtype)
  return (jnp.linspace(t_T**0.5, t_0**0.5, num + 1, dtype=dtype) ** 2).astype(dtype)


def singlestep_orders(steps: int, order: int) -> list[int]:
  """The order of each step of singlestep "DPM-Solver-fast" for ``steps`` NFE (Lu et al. 2022, Sec. 3.4).

  ``order = 3``: ``K = steps // 3 + 1`` steps: ``[3] * (K-2) + [2, 1]`` if ``steps % 3 == 0``,
  ``[3] * (K-1) + [1]`` if ``== 1``, ``[3] * (K-1) + [2]`` if ``== 2``. ``order = 2``:
  ``[2] * (steps // 2)`` plus ``[1]`` if ``steps`` is odd. ``order = 1``: ``[1] * steps``.
  The orders sum to ``steps``.
  """
  _check_order(order)
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}.")
  if order == 3:
    k = steps // 3 + 1
    if steps % 3 == 0:
      return [3] * (k - 2) + [2, 1]
    if steps % 3 == 1:
      return [3] * (k - 1) + [1]
    return [3] * (k - 1) + [2]
  if order == 2:
    return [2] * (steps // 2) + ([1] if steps % 2 else [])
  return [1] * steps


def singlestep_timesteps(process, steps: int, order: int,
                         skip_type: str, t_T: float, t_0: float, dtype=jnp.float32):
  """Outer timesteps and orders of singlestep DPM-Solver-fast (the reference's
  ``get_orders_and_timesteps_for_singlestep_solver``).

  For ``logSNR`` the ``K`` steps are uniform in ``lambda``; otherwise a ``steps``-interval grid
  of ``skip_type`` is made and each step of order ``k`` spans ``k`` of its intervals.

  Returns:
    ``(timesteps_outer [K + 1], orders: list of K ints)``.
  """
  orders = singlestep_orders(steps, order)
  if skip_type == "logSNR":
    return get_time_steps(process, skip_type, t_T, t_0, len(orders), dtype), orders
  grid = get_time_steps(process, skip_type, t_T, t_0, steps, dtype)
  return grid[np.cumsum([0] + orders)], orders


def dpm_solver_nfe(steps: int, order: int, method: str = "singlestep",
                   denoise_to_zero: bool = False) -> int:
  """Network evaluations of :func:`dpm_solver_sample` (``steps``, plus one to denoise)."""
  del order, method  # both methods use exactly `steps` evaluations
  return int(steps) + int(bool(denoise_to_zero))


def _check_order(order):
  if order not in (1, 2, 3):
    raise ValueError(f"DPM-Solver order must be 1, 2 or 3, got {order!r}.")


# ----------------------------------------------------------------------------------------------
# Updates (noise prediction, solver_type="dpm_solver"). s, t: scalars; x: [B, ...].
# ----------------------------------------------------------------------------------------------


def dpm_solver_first_update(ns, eps_fn: EpsFn, x: jax.Array, s, t,
                            eps_s: Optional[jax.Array] = None) -> jax.Array:
  """DPM-Solver-1 from ``s`` to ``t`` (Lu et al. 2022, eq. 3.7), which is DDIM (eta = 0).

  ``x_t = exp(log alpha_t - log alpha_s) x_s - sigma_t expm1(h) eps(x_s, s)``,
  ``h = lambda_t - lambda_s``.

  Args:
    ns: the noise schedule.
    eps_fn: ``eps_fn(x, t)``, the noise prediction at a scalar time.
    x: ``x_s`` ``[B, ...]``.
    s, t: scalar times, ``s > t``.
    eps_s: ``eps(x_s, s)`` if already computed.

  Returns:
    ``x_t``.
  """
  h = ns.marginal_lambda(t) - ns.marginal_lambda(s)
  if eps_s is None:
    eps_s = eps_fn(x, s)
  la_s, la_t = ns.marginal_log_mean_coeff(s), ns.marginal_log_mean_coeff(t)
  return jnp.exp(la_t - la_s) * x - ns.marginal_std(t) * jnp.expm1(h) * eps_s


def singlestep_second_update(ns, eps_fn: EpsFn, x: jax.Array, s, t,
                             r1: float = 0.5, eps_s: Optional[jax.Array] = None) -> jax.Array:
  """Singlestep DPM-Solver-2 from ``s`` to ``t`` (Lu et al. 2022, Algorithm 1; 2 NFE).

  ``s1 = t_lambda(lambda_s + r1 h)``,
  ``u = exp(la_s1 - la_s) x - sigma_s1 expm1(r1 h) eps_s``,
  ``x_t = exp(la_t - la_s) x - sigma_t expm1(h) eps_s - sigma_t expm1(h) / (2 r1) (eps(u, s1) - eps_s)``.
  """
  lam_s, lam_t = ns.marginal_lambda(s), ns.marginal_lambda(t)
  h = lam_t - lam_s
  s1 = ns.inverse_lambda(lam_s + r1 * h)
  la_s, la_s1, la_t = (ns.marginal_log_mean_coeff(s), ns.marginal_log_mean_coeff(s1),
                       ns.marginal_log_mean_coeff(t))
  sigma_s1, sigma_t = ns.marginal_std(s1), ns.marginal_std(t)
  if eps_s is None:
    eps_s = eps_fn(x, s)
  phi_11, phi_1 = jnp.expm1(r1 * h), jnp.expm1(h)
  u = jnp.exp(la_s1 - la_s) * x - sigma_s1 * phi_11 * eps_s
  eps_s1 = eps_fn(u, s1)
  return (jnp.exp(la_t - la_s) * x - sigma_t * phi_1 * eps_s
          - (0.5 / r1) * sigma_t * phi_1 * (eps_s1 - eps_s))


def singlestep_third_update(ns, eps_fn: EpsFn, x: jax.Array, s, t,
                            r1: float = 1.0 / 3.0, r2: float = 2.0 / 3.0,
                            eps_s: Optional[jax.Array] = None) -> jax.Array:
  """Singlestep DPM-Solver-3 from ``s`` to ``t`` (Lu et al. 2022, Algorithm 2; 3 NFE).

  With ``phi_1 = expm1(h)``, ``phi_2 = phi_1 / h - 1`` and ``phi_22 = expm1(r2 h)/(r2 h) - 1``:
  ``u1 = exp(la_s1 - la_s) x - sigma_s1 expm1(r1 h) eps_s``,
  ``u2 = exp(la_s2 - la_s) x - sigma_s2 expm1(r2 h) eps_s - (r2 / r1) sigma_s2 phi_22 (eps(u1, s1) - eps_s)``,
  ``x_t = exp(la_t - la_s) x - sigma_t phi_1 eps_s - (1 / r2) sigma_t phi_2 (eps(u2, s2) - eps_s)``.
  """
  lam_s, lam_t = ns.marginal_lambda(s), ns.marginal_lambda(t)
  h = lam_t - lam_s
  s1, s2 = ns.inverse_lambda(lam_s + r1 * h), ns.inverse_lambda(lam_s + r2 * h)
  la_s, la_s1, la_s2, la_t = (ns.marginal_log_mean_coeff(v) for v in (s, s1, s2, t))
  sigma_s1, sigma_s2, sigma_t = ns.marginal_std(s1), ns.marginal_std(s2), ns.marginal_std(t)
  phi_11, phi_12, phi_1 = jnp.expm1(r1 * h), jnp.expm1(r2 * h), jnp.expm1(h)
  phi_22 = jnp.expm1(r2 * h) / (r2 * h) - 1.0
  phi_2 = phi_1 / h - 1.0
  if eps_s is None:
    eps_s = eps_fn(x, s)
  u1 = jnp.exp(la_s1 - la_s) * x - sigma_s1 * phi_11 * eps_s
  eps_s1 = eps_fn(u1, s1)
  u2 = (jnp.exp(la_s2 - la_s) * x - sigma_s2 * phi_12 * eps_s
        - (r2 / r1) * sigma_s2 * phi_22 * (eps_s1 - eps_s))
  eps_s2 = eps_fn(u2, s2)
  return (jnp.exp(la_t - la_s) * x - sigma_t * phi_1 * eps_s
          - (1.0 / r2) * sigma_t * phi_2 * (eps_s2 - eps_s))


def multistep_second_update(ns, x: jax.Array, eps_prev: Sequence[jax.Array],
                            t_prev: Sequence, t) -> jax.Array:
  """Multistep DPM-Solver-2 from ``t_prev[-1]`` to ``t`` (no network call).

  ``eps_prev = (eps_{i-2}, eps_{i-1})`` at ``t_prev = (t_{i-2}, t_{i-1})``;
  ``r0 = h_0 / h``, ``D1 = (eps_{i-1} - eps_{i-2}) / r0``,
  ``x_t = exp(la_t - la_{i-1}) x - sigma_t expm1(h) eps_{i-1} - 0.5 sigma_t expm1(h) D1``
  (the reference's ``multistep_dpm_solver_second_update``).
  """
  (e1, e0), (t1, t0) = eps_prev, t_prev
  lam_1, lam_0, lam_t = ns.marginal_lambda(t1), ns.marginal_lambda(t0), ns.marginal_lambda(t)
  h0, h = lam_0 - lam_1, lam_t - lam_0
  d1 = (e0 - e1) / (h0 / h)
  la_0, la_t = ns.marginal_log_mean_coeff(t0), ns.marginal_log_mean_coeff(t)
  sigma_t, phi_1 = ns.marginal_std(t), jnp.expm1(h)
  return jnp.exp(la_t - la_0) * x - sigma_t * phi_1 * e0 - 0.5 * sigma_t * phi_1 * d1


def multistep_third_update(ns, x: jax.Array, eps_prev: Sequence[jax.Array],
                           t_prev: Sequence, t) -> jax.Array:
  """Multistep DPM-Solver-3 from ``t_prev[-1]`` to ``t`` (no network call).

  ``eps_prev = (e2, e1, e0)`` at ``t_prev = (t_{i-3}, t_{i-2}, t_{i-1})`` (oldest first). With
  ``h_1, h_0, h`` the last three ``lambda`` increments, ``r0 = h_0 / h``, ``r1 = h_1 / h``,
  ``D1_0 = (e0 - e1) / r0``, ``D1_1 = (e1 - e2) / r1``,
  ``D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1)`` (``~ h eps'``) and
  ``D2 = 2 (D1_0 - D1_1) / (r0 + r1)`` (``~ h^2 eps''``):
  ``x_t = exp(la_t - la_0) x - sigma_t expm1(h) e0 - sigma_t (expm1(h)/h - 1) D1
  - sigma_t ((expm1(h) - h)/h^2 - 1/2) D2``, i.e. the exact integral of the quadratic through
  the three ``eps`` values (``sigma_t h^{n+1} phi_{n+1}(h) eps^(n)``, Lu et al. 2022, eq. 3.6).

  Deviation from the reference: its ``multistep_dpm_solver_third_update`` (and diffusers') uses
  ``D2 = (D1_0 - D1_1) / (r0 + r1)``, which is ``h^2 eps'' / 2``, so the ``eps''`` term gets half
  its weight and the local error is ``O(h^3)``, a second-order method. With the factor 2 the
  local error is ``O(h^4)`` (measured in ``tests/score/test_dpm_solver.py``).
  """
  (e2, e1, e0), (t2, t1, t0) = eps_prev, t_prev
  lam_2, lam_1 = ns.marginal_lambda(t2), ns.marginal_lambda(t1)
  lam_0, lam_t = ns.marginal_lambda(t0), ns.marginal_lambda(t)
  h1, h0, h = lam_1 - lam_2, lam_0 - lam_1, lam_t - lam_0
  r0, r1 = h0 / h, h1 / h
  d1_0, d1_1 = (e0 - e1) / r0, (e1 - e2) / r1
  d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
  d2 = 2.0 * (d1_0 - d1_1) / (r0 + r1)
  la_0, la_t = ns.marginal_log_mean_coeff(t0), ns.marginal_log_mean_coeff(t)
  sigma_t, phi_1 = ns.marginal_std(t), jnp.expm1(h)
  return (jnp.exp(la_t - la_0) * x - sigma_t * phi_1 * e0 - sigma_t * (phi_1 / h - 1.0) * d1
          - sigma_t * ((phi_1 - h) / h**2 - 0.5) * d2)


# ----------------------------------------------------------------------------------------------
# The sampler.
# ----------------------------------------------------------------------------------------------


def dpm_solver_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
                      steps: int = 20, order: int = 2, method: str = "singlestep",
                      skip_type: str = "time_uniform", t_start: Optional[float] = None,
                      t_end: Optional[float] = None, x_T: Optional[jax.Array] = None,
                      trajectory_stride: Optional[int] = None, timesteps=None,
                      denoise_to_zero: bool = False, dtype=None, constraint=None):
  """Samples by solving the diffusion ODE from ``t_start`` to ``t_end`` with DPM-Solver.

  Lu et al. 2022 (singlestep: DPM-Solver-fast, Sec. 3.4 and Algorithms 1-2) and Lu et al.
  2022b (multistep, the noise-prediction form). ``steps`` is the number of network
  evaluations (NFE):

  * ``"singlestep"``: order 1: ``steps`` DPM-Solver-1 (DDIM) steps; order 2: ``steps // 2``
    DPM-Solver-2 steps (+ one DPM-Solver-1 if odd); order 3: DPM-Solver-3 steps ended by a
    DPM-Solver-2 and/or -1 step (:func:`singlestep_orders`). One ``lax.scan`` per run of equal
    orders.
  * ``"multistep"``: ``steps`` steps on the ``skip_type`` grid, each reusing the previous
    ``eps`` values; the first ``order - 1`` steps use orders 1, 2 (warm-up). One ``lax.scan``.

  Args:
    eps_fn: the denoiser ``eps_fn(x [B, ...], t scalar, cond)`` in the process's continuous
      time (a learned variance is ignored).
    process: a continuous process (see the module docstring).
    key: PRNG key for ``x_T ~ p_T`` (unused if ``x_T`` is given).
    shape: ``(B, ...)``, static.
    cond: the condition passed to ``eps_fn``.
    steps: NFE (>= 1), static.
    order: 1, 2 or 3.
    method: ``"singlestep"`` or ``"multistep"``.
    skip_type: ``"time_uniform"``, ``"logSNR"`` or ``"time_quadratic"``.
    t_start: start time (default ``process.T``; below it ``x_T`` must be given: SDEdit).
    t_end: end time (default ``process.sampling_eps``: step 0 of a discrete schedule's view;
      the reference recommends 1e-3 to 1e-4 for continuous ones).
    x_T: optional starting point of ``shape``.
    trajectory_stride: ``None`` or a positive int: also return the states before the first
      step, after every ``k``-th (outer) step and at the end (``[n, *shape]``).
    timesteps: optional explicit decreasing continuous times ``[M + 1]`` (overriding
      ``steps``, ``skip_type``, ``t_start``, ``t_end``): multistep steps between consecutive
      ones (M NFE); singlestep takes DPM-Solver-``order`` on every interval (``order * M`` NFE).
    denoise_to_zero: finish with ``x_0 = (x - sigma eps(x, t_end)) / alpha`` at ``t_end`` (one
      more NFE; the reference's ``denoise=True``; DDIM's last step to ``abar = 1``).
    dtype: dtype of ``x_T`` and the times (default: ``x_T``'s, else the process's arrays', else
      float32).
    constraint: ``constraint(x, alpha, sigma, key) -> x`` after every outer step.

  Returns:
    ``x`` ``[*shape]`` at ``t_end`` (or ``x_0`` if ``denoise_to_zero``), or ``(x, trajectory)``
    with a stride (its last entry is the returned sample).

  Raises:
    ValueError: bad order, method, skip type, steps, times or shapes.
  """
  _check_order(order)
  if method not in DPM_METHODS:
    raise ValueError(f"Unknown DPM-Solver method {method!r}; valid: {', '.join(DPM_METHODS)}.")
  if skip_type not in SKIP_TYPES:
    raise ValueError(f"Unknown skip_type {skip_type!r}; valid: {', '.join(SKIP_TYPES)}.")
  if not hasattr(process, "inverse_lambda"):
    raise ValueError(f"DPM-Solver needs a continuous process with inverse_lambda; "
                     f"{type(process).__name__} is not one (use sched.continuous() for a "
                     "discrete schedule).")
  shape = check_shape(shape, x_T)
  ns = process
  if dtype is None:
    if x_T is not None:
      dtype = x_T.dtype
    elif getattr(ns, "log_alpha_array", None) is not None:
      dtype = ns.log_alpha_array.dtype
    else:
      dtype = jnp.float32
  t_T = float(ns.T if t_start is None else t_start)
  t_0 = float(ns.sampling_eps if t_end is None else t_end)

  if timesteps is not None:
    ts_np = np.asarray(timesteps, dtype=np.float64)
    if ts_np.ndim != 1 or len(ts_np) < 2 or np.any(np.diff(ts_np) >= 0) or ts_np.min() <= 0:
      raise ValueError("timesteps must be a 1-D array of at least 2 strictly decreasing "
                       f"positive continuous times; got {timesteps!r}.")
    t_0 = float(ts_np[-1])
  else:
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
      raise ValueError(f"steps (the NFE) must be a positive integer, got {steps!r}.")
    if not 0 < t_0 < t_T:
      raise ValueError(f"Need 0 < t_end < t_start; got t_start={t_T}, t_end={t_0}.")

  if key is None:  # a given x_T and no constraint need no randomness
    key = jax.random.key(0)
  _, x_T, _, key_steps = initial_state(ns, key, shape, x_T,
                                       t_start if timesteps is None else None, dtype)
  x = x_T.astype(dtype)
  eps = _eps_caller(eps_fn, ns, cond)

  def constrain(x, t, k):
    if constraint is None:
      return x
    return constraint(x, ns.marginal_alpha(t).astype(x.dtype), ns.marginal_std(t).astype(x.dtype),
                      k)

  if method == "singlestep":
    if timesteps is not None:
      ts = jnp.asarray(ts_np, dtype)
      orders = [order] * (len(ts_np) - 1)
    else:
      ts, orders = singlestep_timesteps(ns, int(steps), order, skip_type, t_T, t_0, dtype)
    updates = {
        1: lambda c, s, t: dpm_solver_first_update(ns, eps, c, s, t),
        2: lambda c, s, t: singlestep_second_update(ns, eps, c, s, t, r1=0.5),
        3: lambda c, s, t: singlestep_third_update(ns, eps, c, s, t, r1=1.0 / 3.0, r2=2.0 / 3.0),
    }
    keys = _step_keys(key_steps, len(orders), constraint)
    x = constrain(x, ts[0], keys[-1])
    groups, i = [], 0
    for o, n in _runs(orders):
      groups.append(((lambda c, st, f=updates[o]: constrain(f(c, st[0], st[1]).astype(dtype),
                                                            st[1], st[2])),
                     (ts[i:i + n], ts[i + 1:i + n + 1], keys[i:i + n])))
      i += n
    out = run_groups(groups, x, stride=trajectory_stride)
  else:
    if timesteps is not None:
      ts = jnp.asarray(ts_np, dtype)
    else:
      ts = get_time_steps(ns, skip_type, t_T, t_0, int(steps), dtype)
    keys = _step_keys(key_steps, int(ts.shape[0]) - 1, constraint)
    x = constrain(x, ts[0], keys[-1])
    out = _multistep(ns, eps, x, ts, order, trajectory_stride, dtype, constrain, keys)

  def last(x_end):
    if denoise_to_zero:
      t_last = jnp.asarray(t_0, dtype)
      x_end = ((x_end - ns.marginal_std(t_last) * eps(x_end, t_last))
               / ns.marginal_alpha(t_last)).astype(dtype)
    if constraint is not None:  # the known part of the output is the clean data
      x_end = constraint(x_end, jnp.ones((), dtype), jnp.zeros((), dtype), keys[-1])
    return x_end

  get_x = (lambda c: c) if method == "singlestep" else (lambda c: c[0])
  return finish(out, trajectory_stride, lambda c: last(get_x(c)))


def _step_keys(key, n, constraint):
  """One key per step for the constraint (plus one for the start), or dummies without one."""
  if constraint is None or key is None:
    return jnp.zeros((n + 1,), jnp.uint32)
  return jax.random.split(key, n + 1)


def _runs(orders):
  """``[3, 3, 2, 1] -> [(3, 2), (2, 1), (1, 1)]`` (the reference's ``to_sparse_list``)."""
  runs = []
  for o in orders:
    if runs and runs[-1][0] == o:
      runs[-1][1] += 1
    else:
      runs.append([o, 1])
  return [tuple(r) for r in runs]


def _multistep(ns, eps, x, ts, order, trajectory_stride, dtype, constrain, keys):
  """Multistep DPM-Solver on the grid ``ts [M + 1]``: one ``lax.scan`` of M steps, M NFE."""
  num = ts.shape[0] - 1
  eps0 = eps(x, ts[0])
  eps_hist = jnp.stack([eps0] * order)          # [order, B, ...]; entry -1 is the newest
  t_hist = jnp.stack([ts[0]] * order)           # [order]

  def update(c, eps_h, t_h, t, k):
    if k == 1:
      return dpm_solver_first_update(ns, eps, c, t_h[-1], t, eps_s=eps_h[-1])
    if k == 2:
      return multistep_second_update(ns, c, (eps_h[-2], eps_h[-1]), (t_h[-2], t_h[-1]), t)
    return multistep_third_update(ns, c, (eps_h[-3], eps_h[-2], eps_h[-1]),
                                  (t_h[-3], t_h[-2], t_h[-1]), t)

  def step(carry, inp):
    c, eps_h, t_h = carry
    i, t, k = inp
    k_i = jnp.minimum(i + 1, order) - 1  # warm-up: orders 1, 2, ..., order
    branches = [lambda c, e, th, t, k=k: update(c, e, th, t, k).astype(dtype)
                for k in range(1, order + 1)]
    c = constrain(jax.lax.switch(k_i, branches, c, eps_h, t_h, t), t, k)
    # The last step needs no evaluation (NFE = M).
    eps_new = jax.lax.cond(i < num - 1, lambda: eps(c, t), lambda: eps_h[-1])
    eps_h = jnp.concatenate([eps_h[1:], eps_new[None]])
    t_h = jnp.concatenate([t_h[1:], t[None]])
    return c, eps_h, t_h

  xs = (jnp.arange(num, dtype=jnp.int32), ts[1:], keys[:num])
  return run_groups([(step, xs)], (x, eps_hist, t_hist), stride=trajectory_stride,
                    state_of=lambda c: c[0])
