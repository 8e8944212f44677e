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
    "ALGORITHMS",
    "DEIS_BASES",
    "DPM_METHODS",
    "UNIPC_VARIANTS",
    "deis_coefficients",
    "deis_update",
    "dpmpp_first_update",
    "dpmpp_multistep_second_update",
    "dpmpp_multistep_third_update",
    "dpmpp_singlestep_second_update",
    "multistep_orders",
    "unipc_correct",
    "unipc_predict",
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
SKIP_TYPES = ("time_uniform", "logSNR", "time_quadratic", "karras")


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
                   num: int, dtype=jnp.float32, rho: float = 7.0) -> jax.Array:
  """``num + 1`` decreasing times from ``t_T`` to ``t_0`` (the reference's ``get_time_steps``).

  * ``"time_uniform"``: uniform in ``t``.
  * ``"logSNR"``: uniform in ``lambda_t`` (Lu et al. 2022, Sec. 3.3), mapped back with
    :meth:`process.inverse_lambda`.
  * ``"time_quadratic"``: uniform in ``sqrt(t)`` (DDIM's quadratic spacing).
  * ``"karras"``: Karras et al. 2022 eq. 5 in ``sigma^ = exp(-lambda_t)`` between the ends
    (exponent ``rho``), mapped back with :meth:`process.inverse_lambda`.

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
  if skip_type == "karras":
    hi = jnp.exp(-ns.marginal_lambda(jnp.asarray(t_T, dtype)))
    lo = jnp.exp(-ns.marginal_lambda(jnp.asarray(t_0, dtype)))
    ramp = jnp.linspace(0.0, 1.0, num + 1, dtype=dtype)
    sig = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    ts = ns.inverse_lambda(-jnp.log(sig)).astype(dtype)
    return ts.at[0].set(t_T).at[-1].set(t_0)
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
                         skip_type: str, t_T: float, t_0: float, dtype=jnp.float32,
                         rho: float = 7.0):
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
  grid = get_time_steps(process, skip_type, t_T, t_0, steps, dtype, rho)
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
# DPM-Solver++ (Lu et al. 2022b): the same exponential integrator on the data prediction
# x0(x, t) = (x - sigma_t eps) / alpha_t. Its exact solution (their eq. 8) is
#   x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^{lambda} x0(x_lambda) dlambda,
# and the k-th Taylor term of x0 in lambda integrates to alpha_t h^{k+1} phi_{k+1}(-h)-type weights:
#   int_0^h e^{u - h} du = 1 - e^{-h},  int_0^h e^{u - h} u du = h - 1 + e^{-h},
#   int_0^h e^{u - h} u^2 / 2 du = h^2 / 2 - h + 1 - e^{-h}.
# ----------------------------------------------------------------------------------------------


def _lam(ns, t):
  return ns.marginal_lambda(t)


def dpmpp_first_update(ns, x: jax.Array, s, t, x0_s: jax.Array) -> jax.Array:
  """DPM-Solver++(1) from ``s`` to ``t`` (Lu et al. 2022b, eq. 8 with x0 constant; DDIM):
  ``x_t = (sigma_t / sigma_s) x_s - alpha_t expm1(-h) x0_s``, ``h = lambda_t - lambda_s``."""
  h = _lam(ns, t) - _lam(ns, s)
  return (ns.marginal_std(t) / ns.marginal_std(s)) * x - ns.marginal_alpha(t) * jnp.expm1(-h) * x0_s


def dpmpp_singlestep_second_update(ns, x0_fn: EpsFn, x: jax.Array, s, t, r1: float = 0.5,
                                   x0_s: Optional[jax.Array] = None) -> jax.Array:
  """DPM-Solver++(2S) from ``s`` to ``t`` (Lu et al. 2022b, Algorithm 1; 2 NFE).

  ``s1 = t_lambda(lambda_s + r1 h)``,
  ``u = (sigma_s1 / sigma_s) x - alpha_s1 expm1(-r1 h) x0_s``,
  ``D = (1 - 1/(2 r1)) x0_s + 1/(2 r1) x0(u, s1)``,
  ``x_t = (sigma_t / sigma_s) x - alpha_t expm1(-h) D``.
  """
  lam_s, lam_t = _lam(ns, s), _lam(ns, t)
  h = lam_t - lam_s
  s1 = ns.inverse_lambda(lam_s + r1 * h)
  if x0_s is None:
    x0_s = x0_fn(x, s)
  u = (ns.marginal_std(s1) / ns.marginal_std(s)) * x - ns.marginal_alpha(s1) * jnp.expm1(-r1 * h) * x0_s
  d = (1.0 - 0.5 / r1) * x0_s + (0.5 / r1) * x0_fn(u, s1)
  return (ns.marginal_std(t) / ns.marginal_std(s)) * x - ns.marginal_alpha(t) * jnp.expm1(-h) * d


def dpmpp_multistep_second_update(ns, x: jax.Array, x0_prev: Sequence[jax.Array],
                                  t_prev: Sequence, t) -> jax.Array:
  """DPM-Solver++(2M) from ``t_prev[-1]`` to ``t`` (Lu et al. 2022b, Algorithm 2; no network
  call): ``r0 = h_0 / h``, ``D1 = (x0_{i-1} - x0_{i-2}) / r0``,
  ``x_t = (sigma_t / sigma_{i-1}) x - alpha_t expm1(-h) x0_{i-1} - 0.5 alpha_t expm1(-h) D1``
  (diffusers' ``solver_type="midpoint"``)."""
  (m1, m0), (t1, t0) = x0_prev, t_prev
  lam_1, lam_0, lam_t = _lam(ns, t1), _lam(ns, t0), _lam(ns, t)
  h0, h = lam_0 - lam_1, lam_t - lam_0
  d1 = (m0 - m1) / (h0 / h)
  phi = jnp.expm1(-h)
  alpha_t = ns.marginal_alpha(t)
  return (ns.marginal_std(t) / ns.marginal_std(t0)) * x - alpha_t * phi * m0 - 0.5 * alpha_t * phi * d1


def dpmpp_multistep_third_update(ns, x: jax.Array, x0_prev: Sequence[jax.Array],
                                 t_prev: Sequence, t) -> jax.Array:
  """DPM-Solver++(3M) from ``t_prev[-1]`` to ``t`` (Lu et al. 2022b, App. B; no network call).

  The finite differences of :func:`multistep_third_update` on ``x0`` (``D1 ~ h x0'``,
  ``D2 ~ h^2 x0''``) and the exact weights of the integral (module comment above):
  ``x_t = (sigma_t / sigma_0) x - alpha_t expm1(-h) x0_0 + alpha_t (expm1(-h)/h + 1) D1
  - alpha_t ((expm1(-h) + h)/h^2 - 1/2) D2``.

  As in :func:`multistep_third_update`, ``D2 = 2 (D1_0 - D1_1) / (r0 + r1)``; diffusers'
  ``DPMSolverMultistepScheduler`` (and the reference code) take half of it, which makes their
  3M second order.
  """
  (m2, m1, m0), (t2, t1, t0) = x0_prev, t_prev
  lam_2, lam_1, lam_0, lam_t = (_lam(ns, v) for v in (t2, t1, t0, t))
  h1, h0, h = lam_1 - lam_2, lam_0 - lam_1, lam_t - lam_0
  r0, r1 = h0 / h, h1 / h
  d1_0, d1_1 = (m0 - m1) / r0, (m1 - m2) / r1
  d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
  d2 = 2.0 * (d1_0 - d1_1) / (r0 + r1)
  phi = jnp.expm1(-h)
  alpha_t = ns.marginal_alpha(t)
  return ((ns.marginal_std(t) / ns.marginal_std(t0)) * x - alpha_t * phi * m0
          + alpha_t * (phi / h + 1.0) * d1 - alpha_t * ((phi + h) / h**2 - 0.5) * d2)


# ----------------------------------------------------------------------------------------------
# UniPC (Zhao et al. 2023): the unified predictor UniP-p and corrector UniC-p, data prediction
# (their Algorithms 2-3 with the "B(h)" choices of Sec. 3.3 / App. C; diffusers'
# UniPCMultistepScheduler with predict_x0=True).
# ----------------------------------------------------------------------------------------------

UNIPC_VARIANTS = ("bh1", "bh2")


def _unipc_coeffs(hh, rks, order: int, variant: str):
  """``(R [order, order], b [order], B(h))`` of UniPC (Zhao et al. 2023, eq. 8 and App. C):
  ``R_ij = r_j^{i}``, ``b_i = i! h phi_{i+1}(hh) / B(h)`` with ``hh = -h`` (data prediction;
  ``hh = h`` for noise prediction),
  ``phi_1(hh) = expm1(hh) / hh`` and ``phi_{k+1}(hh) = (phi_k(hh) - 1/k!) / hh``."""
  h_phi_1 = jnp.expm1(hh)
  h_phi_k = h_phi_1 / hh - 1.0
  b_h = hh if variant == "bh1" else jnp.expm1(hh)
  rows, b, fact = [], [], 1.0
  for i in range(1, order + 1):
    rows.append(rks ** (i - 1))
    b.append(h_phi_k * fact / b_h)
    fact *= i + 1
    h_phi_k = h_phi_k / hh - 1.0 / fact
  return jnp.stack(rows), jnp.stack(b), b_h, h_phi_1


def _unipc_base(ns, x, m0, s0, t, h_phi_1, data):
  """The first-order part and the weight of the corrections: data prediction
  ``(sigma_t / sigma_s) x - alpha_t h_phi_1 m0`` and ``alpha_t``; noise prediction
  ``(alpha_t / alpha_s) x - sigma_t h_phi_1 m0`` and ``sigma_t``."""
  if data:
    a_t = ns.marginal_alpha(t)
    return (ns.marginal_std(t) / ns.marginal_std(s0)) * x - a_t * h_phi_1 * m0, a_t
  s_t = ns.marginal_std(t)
  return (ns.marginal_alpha(t) / ns.marginal_alpha(s0)) * x - s_t * h_phi_1 * m0, s_t


def _unipc_diffs(ns, m_hist, t_hist, lam_s0, h, k_prev: int):
  """``r_k = (lambda_{s_k} - lambda_{s_0}) / h`` and ``D1_k = (m_k - m_0) / r_k`` of the
  ``k_prev`` older outputs (newest last in the histories)."""
  m0 = m_hist[-1]
  rks, d1s = [], []
  for i in range(1, k_prev + 1):
    rk = (_lam(ns, t_hist[-(i + 1)]) - lam_s0) / h
    rks.append(rk)
    d1s.append((m_hist[-(i + 1)] - m0) / rk)
  return rks, d1s


def unipc_predict(ns, x: jax.Array, m_hist, t_hist, t, order: int,
                  variant: str = "bh2", data: bool = True) -> jax.Array:
  """UniP-``order`` from ``t_hist[-1]`` to ``t`` (Zhao et al. 2023, Alg. 2, data prediction):
  ``x_t = (sigma_t / sigma_0) x - alpha_t expm1(-h) m_0 - alpha_t B(h) sum_k a_k D1_k`` with
  ``a`` solving ``R_{:-1,:-1} a = b_{:-1}`` (``a = 1/2`` at order 2, as the reference)."""
  lam_s0 = _lam(ns, t_hist[-1])
  h = _lam(ns, t) - lam_s0
  rks, d1s = _unipc_diffs(ns, m_hist, t_hist, lam_s0, h, order - 1)
  r_all = jnp.stack(rks + [jnp.ones_like(h)])
  big_r, b, b_h, h_phi_1 = _unipc_coeffs(-h if data else h, r_all, order, variant)
  x_t, scale = _unipc_base(ns, x, m_hist[-1], t_hist[-1], t, h_phi_1, data)
  if order == 1:
    return x_t
  rhos = (jnp.full((1,), 0.5, x.dtype) if order == 2
          else jnp.linalg.solve(big_r[:-1, :-1], b[:-1]).astype(x.dtype))
  res = sum(rhos[k] * d1s[k] for k in range(order - 1))
  return x_t - scale * b_h * res


def unipc_correct(ns, x: jax.Array, m_hist, t_hist, t, m_t: jax.Array, order: int,
                  variant: str = "bh2", data: bool = True) -> jax.Array:
  """UniC-``order`` (Zhao et al. 2023, Alg. 1 / eq. 8, data prediction): recomputes the step
  from ``x`` at ``t_hist[-1]`` to ``t`` with the new output ``m_t`` (evaluated at the
  predicted ``x_t``) as one more difference ``D1_t = m_t - m_0`` (``r = 1``), ``c`` solving
  ``R c = b`` (``c = 1/2`` at order 1). No network call: ``m_t`` is the next step's input."""
  lam_s0 = _lam(ns, t_hist[-1])
  h = _lam(ns, t) - lam_s0
  rks, d1s = _unipc_diffs(ns, m_hist, t_hist, lam_s0, h, order - 1)
  r_all = jnp.stack(rks + [jnp.ones_like(h)])
  big_r, b, b_h, h_phi_1 = _unipc_coeffs(-h if data else h, r_all, order, variant)
  x_t, scale = _unipc_base(ns, x, m_hist[-1], t_hist[-1], t, h_phi_1, data)
  rhos = (jnp.full((1,), 0.5, x.dtype) if order == 1
          else jnp.linalg.solve(big_r, b).astype(x.dtype))
  res = sum(rhos[k] * d1s[k] for k in range(order - 1)) + rhos[-1] * (m_t - m_hist[-1])
  return x_t - scale * b_h * res


# ----------------------------------------------------------------------------------------------
# DEIS (Zhang & Chen 2023): the exponential integrator of the eps-form probability-flow ODE,
#   x_t / alpha_t = x_s / alpha_s + int_{rho_s}^{rho_t} eps drho,   rho = sigma / alpha = e^{-lambda}
# (their eq. 11-13 in this parameterization), with eps extrapolated by the Lagrange polynomial
# through the last k outputs (the "AB" multistep, eq. 14): in the process time t (tAB-DEIS) or in
# log rho (diffusers' DEISMultistepScheduler).
# ----------------------------------------------------------------------------------------------

DEIS_BASES = ("t", "log_rho")
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(24)


def _lagrange(v, nodes, j):
  out = 1.0
  for m, vm in enumerate(nodes):
    if m != j:
      out = out * (v - vm) / (nodes[j] - vm)
  return out


def deis_coefficients(ns, t_hist, t, order: int, basis: str = "t"):
  """``c_j = int_{rho_s}^{rho_t} L_j drho`` for the ``order`` newest history times (newest last
  in ``t_hist``; ``c`` newest first), ``L_j`` the Lagrange basis through them.

  * ``basis="log_rho"``: ``L_j`` in ``log rho``; the closed forms of diffusers'
    ``ind_fn`` (antiderivatives of ``rho`` times the basis polynomials).
  * ``basis="t"``: ``L_j`` in the process time (tAB-DEIS, Zhang & Chen 2023 eq. 14),
    ``int_s^t L_j(tau) rho'(tau) dtau`` by 24-point Gauss-Legendre quadrature (``rho'`` by
    forward-mode differentiation).
  """
  ts = [t_hist[-(i + 1)] for i in range(order)]  # newest first
  if basis == "log_rho":
    rho = lambda v: ns.marginal_std(v) / ns.marginal_alpha(v)
    r_t, rs = rho(t), [rho(v) for v in ts]
    lg = jnp.log
    if order == 1:
      return [r_t - rs[0]]
    if order == 2:
      def ind(x, b, c):
        return x * (-lg(c) + lg(x) - 1.0) / (lg(b) - lg(c))
      return [ind(r_t, rs[0], rs[1]) - ind(rs[0], rs[0], rs[1]),
              ind(r_t, rs[1], rs[0]) - ind(rs[0], rs[1], rs[0])]

    def ind3(x, b, c, d):
      num = x * (lg(c) * (lg(d) - lg(x) + 1.0) - lg(d) * lg(x) + lg(d) + lg(x) ** 2
                 - 2.0 * lg(x) + 2.0)
      return num / ((lg(b) - lg(c)) * (lg(b) - lg(d)))
    r0, r1, r2 = rs
    return [ind3(r_t, r0, r1, r2) - ind3(r0, r0, r1, r2),
            ind3(r_t, r1, r2, r0) - ind3(r0, r1, r2, r0),
            ind3(r_t, r2, r0, r1) - ind3(r0, r2, r0, r1)]
  s = ts[0]
  dtype = jnp.result_type(s)
  nodes = (jnp.asarray(_GL_NODES, dtype) + 1.0) * 0.5 * (t - s) + s
  w = jnp.asarray(_GL_WEIGHTS, dtype) * 0.5 * (t - s)
  lam, dlam = jax.jvp(ns.marginal_lambda, (nodes,), (jnp.ones_like(nodes),))
  drho = -jnp.exp(-lam) * dlam
  return [jnp.sum(w * _lagrange(nodes, ts, j) * drho) for j in range(order)]


def deis_update(ns, x: jax.Array, eps_hist, t_hist, t, order: int, basis: str = "t"):
  """One DEIS-``order`` step from ``t_hist[-1]`` to ``t`` (no network call):
  ``x_t = alpha_t (x / alpha_s + sum_j c_j eps_j)`` (:func:`deis_coefficients`). Order 1 is
  DDIM / DPM-Solver-1."""
  c = deis_coefficients(ns, t_hist, t, order, basis)
  acc = x / ns.marginal_alpha(t_hist[-1])
  for j in range(order):
    acc = acc + c[j] * eps_hist[-(j + 1)]
  return ns.marginal_alpha(t) * acc


# ----------------------------------------------------------------------------------------------
# The sampler.
# ----------------------------------------------------------------------------------------------


ALGORITHMS = ("dpmsolver", "dpmsolver++", "unipc", "deis")


def multistep_orders(num_steps: int, order: int, lower_order_final: bool = False,
                     algorithm: str = "dpmsolver", to_clean: bool = False) -> np.ndarray:
  """The order of each of ``num_steps`` multistep steps: warm-up ``min(order, i + 1)``, and
  with ``lower_order_final`` lower orders at the end, as diffusers does (its step list has one
  more step, to clean data, when ``to_clean``):

  * dpmsolver / dpmsolver++ / deis: below 15 steps, at most 2 on the second-to-last and 1 on
    the last step (``DPMSolverMultistepScheduler``, ``DEISMultistepScheduler``);
  * unipc: at most ``steps_left`` on every step (``UniPCMultistepScheduler``).

  Returns:
    int32 numpy ``[num_steps]``.
  """
  n_all = num_steps + int(bool(to_clean))
  out = []
  for i in range(num_steps):
    k = min(order, i + 1)
    if lower_order_final:
      if algorithm == "unipc":
        k = min(k, n_all - i)
      elif n_all < 15:
        k = min(k, 1 if i == n_all - 1 else (2 if i == n_all - 2 else k))
    out.append(k)
  return np.asarray(out, np.int32)


def dpm_solver_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
                      steps: int = 20, order: int = 2, method: str = "singlestep",
                      skip_type: str = "time_uniform", t_start: Optional[float] = None,
                      t_end: Optional[float] = None, x_T: Optional[jax.Array] = None,
                      trajectory_stride: Optional[int] = None, timesteps=None,
                      denoise_to_zero: bool = False, dtype=None, constraint=None,
                      algorithm: str = "dpmsolver", lower_order_final: bool = False,
                      unic: bool = False, variant: Optional[str] = None, rho: float = 7.0):
  """Samples by solving the diffusion ODE from ``t_start`` to ``t_end`` with an exponential
  integrator of the DPM-Solver family.

  ``algorithm`` picks the update rule on the shared step grid and loop:

  * ``"dpmsolver"``: Lu et al. 2022 (singlestep: DPM-Solver-fast, Sec. 3.4 and Algorithms 1-2)
    and Lu et al. 2022b (multistep, the noise-prediction form).
  * ``"dpmsolver++"``: DPM-Solver++ (Lu et al. 2022b): the data-prediction form; singlestep
    order 2 is 2S (Algorithm 1), multistep 2M / 3M (Algorithm 2, App. B).
  * ``"unipc"``: UniPC (Zhao et al. 2023): UniP-``order`` predictor and UniC corrector,
    multistep only, data prediction; ``variant`` bh1 | bh2.
  * ``"deis"``: DEIS (Zhang & Chen 2023), multistep only, noise prediction; ``variant`` (the
    polynomial's variable) t | log_rho.

  ``steps`` is the number of network evaluations (NFE):

  * ``"singlestep"``: order 1: ``steps`` first-order steps; order 2: ``steps // 2`` second-order
    steps (+ one first-order if odd); order 3: third-order steps ended by a second- and/or
    first-order step (:func:`singlestep_orders`). One ``lax.scan`` per run of equal orders.
  * ``"multistep"``: ``steps`` steps on the ``skip_type`` grid, each reusing the previous
    outputs; warm-up with lower orders (:func:`multistep_orders`). One ``lax.scan``. With
    ``unic`` (always for UniPC) every step but the last is corrected with the evaluation the
    next step needs anyway (no extra NFE); with ``denoise_to_zero`` the last one is too.

  Args:
    eps_fn: the denoiser ``eps_fn(x [B, ...], t scalar, cond)`` in the process's continuous
      time (a learned variance is ignored). Thresholding of x0 is a transform of it
      (:func:`genjax.sampling.thresholding.threshold_denoiser`).
    process: a continuous process (see the module docstring).
    key: PRNG key for ``x_T ~ p_T`` (unused if ``x_T`` is given).
    shape: ``(B, ...)``, static.
    cond: the condition passed to ``eps_fn``.
    steps: NFE (>= 1), static.
    order: 1, 2 or 3.
    method: ``"singlestep"`` or ``"multistep"``.
    skip_type: ``"time_uniform"``, ``"logSNR"``, ``"time_quadratic"`` or ``"karras"``.
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
      more NFE; the reference's ``denoise=True``; DDIM's last step to ``abar = 1``; diffusers'
      ``final_sigmas_type="zero"``, whose first-order step to ``sigma = 0`` is this ``x_0``).
    dtype: dtype of ``x_T`` and the times (default: ``x_T``'s, else the process's arrays', else
      float32).
    constraint: ``constraint(x, alpha, sigma, key) -> x`` after every outer step.
    algorithm: one of :data:`ALGORITHMS`.
    lower_order_final: lower orders on the last steps (:func:`multistep_orders`).
    unic: add the UniC corrector to a multistep ``dpmsolver++`` or ``deis`` run.
    variant: UniPC's ``bh1`` / ``bh2`` (default bh2) or DEIS's ``t`` / ``log_rho`` (default t).
    rho: the exponent of ``skip_type="karras"``.

  Returns:
    ``x`` ``[*shape]`` at ``t_end`` (or ``x_0`` if ``denoise_to_zero``), or ``(x, trajectory)``
    with a stride (its last entry is the returned sample).

  Raises:
    ValueError: bad order, method, skip type, steps, times, algorithm or shapes.
  """
  _check_order(order)
  if algorithm not in ALGORITHMS:
    raise ValueError(f"Unknown algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}.")
  if method not in DPM_METHODS:
    raise ValueError(f"Unknown DPM-Solver method {method!r}; valid: {', '.join(DPM_METHODS)}.")
  if method == "singlestep" and algorithm in ("unipc", "deis"):
    raise ValueError(f"{algorithm} is a multistep method: use method='multistep'.")
  if skip_type not in SKIP_TYPES:
    raise ValueError(f"Unknown skip_type {skip_type!r}; valid: {', '.join(SKIP_TYPES)}.")
  if algorithm == "unipc":
    variant = variant or "bh2"
    if variant not in UNIPC_VARIANTS:
      raise ValueError(f"Unknown UniPC variant {variant!r}; valid: {', '.join(UNIPC_VARIANTS)}.")
  if algorithm == "deis":
    variant = variant or "t"
    if variant not in DEIS_BASES:
      raise ValueError(f"Unknown DEIS basis {variant!r}; valid: {', '.join(DEIS_BASES)}.")
  if unic and algorithm not in ("dpmsolver++", "deis", "unipc"):
    raise ValueError("unic (the UniC corrector) applies to dpmsolver++, deis and unipc.")
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
  data = algorithm in ("dpmsolver++", "unipc")

  def x0_of(x, t):
    return ((x - ns.marginal_std(t) * eps(x, t)) / ns.marginal_alpha(t)).astype(x.dtype)

  model = x0_of if data else eps

  def constrain(x, t, k):
    if constraint is None:
      return x
    return constraint(x, ns.marginal_alpha(t).astype(x.dtype), ns.marginal_std(t).astype(x.dtype),
                      k)

  corrected = algorithm == "unipc" or unic
  if method == "singlestep":
    if timesteps is not None:
      ts = jnp.asarray(ts_np, dtype)
      orders = [order] * (len(ts_np) - 1)
    else:
      ts, orders = singlestep_timesteps(ns, int(steps), order, skip_type, t_T, t_0, dtype, rho)
    if data:
      updates = {
          1: lambda c, s, t: dpmpp_first_update(ns, c, s, t, x0_of(c, s)),
          2: lambda c, s, t: dpmpp_singlestep_second_update(ns, x0_of, c, s, t, r1=0.5),
      }
      if order == 3:
        raise ValueError("DPM-Solver++ singlestep is second order (2S); use order 2 or "
                         "method='multistep' for 3M.")
    else:
      updates = {
          1: lambda c, s, t: dpm_solver_first_update(ns, eps, c, s, t),
          2: lambda c, s, t: singlestep_second_update(ns, eps, c, s, t, r1=0.5),
          3: lambda c, s, t: singlestep_third_update(ns, eps, c, s, t, r1=1.0 / 3.0,
                                                     r2=2.0 / 3.0),
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
      ts = get_time_steps(ns, skip_type, t_T, t_0, int(steps), dtype, rho)
    num = int(ts.shape[0]) - 1
    orders = multistep_orders(num, order, lower_order_final, algorithm, denoise_to_zero)
    keys = _step_keys(key_steps, num, constraint)
    x = constrain(x, ts[0], keys[-1])
    update, correct = _multistep_rules(ns, algorithm, variant, corrected)
    out = _multistep(model, x, ts, orders, update, trajectory_stride, dtype, constrain, keys,
                     correct=correct, eval_last=corrected and denoise_to_zero)

  def last(c):
    if method == "singlestep":
      x_end = c
    else:
      x_end, m_hist, _ = c
    if denoise_to_zero:
      t_last = jnp.asarray(t_0, dtype)
      if method == "multistep" and corrected:  # the last evaluation is already in the history
        m = m_hist[-1]
        x_end = m if data else ((x_end - ns.marginal_std(t_last) * m)
                                / ns.marginal_alpha(t_last)).astype(dtype)
      else:
        x_end = x0_of(x_end, t_last)
    if constraint is not None:  # the known part of the output is the clean data
      x_end = constraint(x_end, jnp.ones((), dtype), jnp.zeros((), dtype), keys[-1])
    return x_end

  return finish(out, trajectory_stride, last)


def _multistep_rules(ns, algorithm, variant, corrected):
  """``(update(x, m_hist, t_hist, t, k), correct or None)`` of a multistep algorithm; ``k``, the
  step's order, is static."""
  if algorithm == "dpmsolver":
    def update(c, m_h, t_h, t, k):
      if k == 1:
        return dpm_solver_first_update(ns, None, c, t_h[-1], t, eps_s=m_h[-1])
      if k == 2:
        return multistep_second_update(ns, c, (m_h[-2], m_h[-1]), (t_h[-2], t_h[-1]), t)
      return multistep_third_update(ns, c, (m_h[-3], m_h[-2], m_h[-1]),
                                    (t_h[-3], t_h[-2], t_h[-1]), t)
  elif algorithm == "dpmsolver++":
    def update(c, m_h, t_h, t, k):
      if k == 1:
        return dpmpp_first_update(ns, c, t_h[-1], t, m_h[-1])
      if k == 2:
        return dpmpp_multistep_second_update(ns, c, (m_h[-2], m_h[-1]), (t_h[-2], t_h[-1]), t)
      return dpmpp_multistep_third_update(ns, c, (m_h[-3], m_h[-2], m_h[-1]),
                                          (t_h[-3], t_h[-2], t_h[-1]), t)
  elif algorithm == "unipc":
    def update(c, m_h, t_h, t, k):
      return unipc_predict(ns, c, m_h, t_h, t, k, variant)
  else:
    def update(c, m_h, t_h, t, k):
      return deis_update(ns, c, m_h, t_h, t, k, variant)
  if not corrected:
    return update, None
  if algorithm in ("dpmsolver++", "unipc"):
    bh = variant if algorithm == "unipc" else "bh2"

    def correct(c, m_h, t_h, t, m_t, k):
      return unipc_correct(ns, c, m_h, t_h, t, m_t, k, bh)
  else:  # DEIS: UniC in the noise-prediction form (Zhao et al. 2023, App. C)
    def correct(c, m_h, t_h, t, m_t, k):
      return unipc_correct(ns, c, m_h, t_h, t, m_t, k, "bh2", data=False)
  return update, correct


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


def _multistep(model, x, ts, orders, update, trajectory_stride, dtype, constrain, keys, *,
               correct=None, eval_last=False):
  """The multistep loop of every algorithm: one ``lax.scan`` over the grid ``ts [M + 1]``.

  Each step predicts ``x_t = update(x, m_hist, t_hist, t, k)`` with its order ``k`` (static per
  branch of a ``lax.switch``), evaluates ``m_t = model(x_t, t)`` (except after the last step,
  unless ``eval_last``), corrects ``x_t = correct(x, m_hist, t_hist, t, m_t, k)`` when a
  corrector is given (UniC), and pushes ``m_t``, which was evaluated at the predicted point (as
  UniPC's reference does). M NFE (M + 1 with ``eval_last``).

  Returns:
    The carry ``(x, m_hist [order, ...], t_hist [order])`` (or with a trajectory).
  """
  num = ts.shape[0] - 1
  order = int(np.max(orders))
  m0 = model(x, ts[0])
  m_hist = jnp.stack([m0] * order)              # [order, B, ...]; entry -1 is the newest
  t_hist = jnp.stack([ts[0]] * order)           # [order]

  def step(carry, inp):
    c, m_h, t_h = carry
    i, t, k, key = inp
    branches = [lambda c, m_h, t_h, t, kk=kk: update(c, m_h, t_h, t, kk).astype(dtype)
                for kk in range(1, order + 1)]
    x_new = constrain(jax.lax.switch(k - 1, branches, c, m_h, t_h, t), t, key)
    need = (i < num - 1) if not eval_last else jnp.asarray(True)
    m_new = jax.lax.cond(need, lambda: model(x_new, t).astype(dtype), lambda: m_h[-1])
    if correct is not None:
      cbr = [lambda c, m_h, t_h, t, m_t, kk=kk: correct(c, m_h, t_h, t, m_t, kk).astype(dtype)
             for kk in range(1, order + 1)]
      x_corr = constrain(jax.lax.switch(k - 1, cbr, c, m_h, t_h, t, m_new), t, key)
      x_new = jnp.where(need, x_corr, x_new)     # no corrector without the evaluation
    m_h = jnp.concatenate([m_h[1:], m_new[None]])
    t_h = jnp.concatenate([t_h[1:], t[None]])
    return x_new, m_h, t_h

  xs = (jnp.arange(num, dtype=jnp.int32), ts[1:], jnp.asarray(orders, jnp.int32), keys[:num])
  return run_groups([(step, xs)], (x, m_hist, t_hist), stride=trajectory_stride,
                    state_of=lambda c: c[0])
