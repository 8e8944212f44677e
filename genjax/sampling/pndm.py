"""PNDM: pseudo numerical methods for diffusion models (Liu et al. 2022), in the convention of
diffusers' ``PNDMScheduler`` (``skip_prk_steps=False``), on a discrete DDPM chain.

The "transfer part" of PNDM (Liu et al. 2022, eq. 11) moves ``x_t`` to level ``s < t`` along
the noise prediction ``e``:

  ``x_s = sqrt(abar_s / abar_t) x_t - (abar_s - abar_t) e /
          (abar_t sqrt(1 - abar_s) + sqrt(abar_t (1 - abar_t) abar_s))``,

which is DDIM's deterministic step written without ``x0``. PNDM replaces ``e`` by a
combination of noise predictions as a linear multistep method would (the "gradient part"):

* the first three steps are pseudo Runge-Kutta steps (eq. 13, "PRK", 4 evaluations each) with
  a half step ``r / 2`` (``r = T // S``): ``e = (e1 + 2 e2 + 2 e3 + e4) / 6`` where ``e2``, ``e3``
  are taken at the midpoint ``t_next + r // 2`` and ``e4`` at the end of the step;
* then pseudo linear multistep steps (eq. 12, "PLMS", one evaluation each):
  ``e = (55 e_0 - 59 e_1 + 37 e_2 - 9 e_3) / 24`` over the last four predictions (the first
  prediction of every PRK step counts as history).

diffusers' convention, followed here exactly: ``S`` "leading" grid steps ``0, r, 2r, ...,
(S - 1) r`` (or any spacing of :func:`~genjax.sampling.ancestral.ddim_timesteps`), the start at
the largest, the last step to ``abar = 1`` (``set_alpha_to_one``) or to ``abar_0`` (diffusers'
default ``set_alpha_to_one=False``), and the PRK midpoints at ``t - r // 2`` on the integer
chain. NFE = ``S + 9``.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.convert import EpsFn, eps_of
from genjax.sampling.scan import initial_state, run_scan
from genjax.sampling.schedules import DiffusionSchedule

__all__ = ["pndm_nfe", "pndm_sample", "pndm_transfer"]


def pndm_transfer(x: jax.Array, e: jax.Array, abar_t, abar_s) -> jax.Array:
  """PNDM's transfer part (Liu et al. 2022, eq. 11; diffusers' ``_get_prev_sample``)."""
  coef = (abar_s / abar_t) ** 0.5
  denom = abar_t * (1.0 - abar_s) ** 0.5 + (abar_t * (1.0 - abar_t) * abar_s) ** 0.5
  return coef * x - (abar_s - abar_t) * e / denom


def pndm_nfe(num_steps: int) -> int:
  """Network evaluations of :func:`pndm_sample` with ``S`` grid steps: ``S + 9``."""
  return int(num_steps) + 9


def pndm_sample(eps_fn: EpsFn, sched: DiffusionSchedule, key: jax.Array, shape, *, cond=None,
                num_steps: int = 50, spacing: str = "leading", timesteps=None,
                set_alpha_to_one: bool = False, x_T: Optional[jax.Array] = None,
                trajectory_stride: Optional[int] = None, steps_offset: int = 0):
  """PNDM sampling (see the module docstring): 3 PRK steps, then PLMS; one ``lax.scan``.

  Args:
    eps_fn: ``eps_fn(x, t int32 scalar, cond)`` on the discrete chain.
    sched: the schedule.
    key: PRNG key (only ``x_T``).
    shape: ``(B, ...)``.
    cond: the condition.
    num_steps: S >= 4 (the PRK warm-up takes three steps).
    spacing: a spacing of :func:`~genjax.sampling.ancestral.ddim_timesteps` (diffusers'
      default is ``"leading"``).
    timesteps: an explicit decreasing integer grid (overrides ``num_steps`` and ``spacing``).
    set_alpha_to_one: the last step lands on clean data (True) or on ``abar_0``.
    x_T: optional start.
    trajectory_stride: record the state after every k-th grid step.
    steps_offset: added to every step of the ``"leading"`` grid (diffusers').

  Returns:
    ``x_0`` (or ``(x_0, trajectory)``).
  """
  from genjax.sampling.ancestral import ddim_timesteps
  if not isinstance(sched, DiffusionSchedule):
    raise ValueError("PNDM runs on a discrete chain (a DiffusionSchedule).")
  n_t = sched.num_timesteps
  ts = (np.asarray(timesteps, np.int64) if timesteps is not None
        else ddim_timesteps(n_t, num_steps, spacing, steps_offset=steps_offset))
  if len(ts) < 4 or np.any(np.diff(ts) >= 0):
    raise ValueError(f"PNDM needs at least 4 strictly decreasing grid steps, got {ts}.")
  half = (n_t // len(ts)) // 2
  dtype = sched.betas.dtype
  shape, x_T, _, _ = initial_state(sched, key, shape, x_T, None, dtype)
  abar = sched.alphas_cumprod
  final = jnp.ones((), dtype) if set_alpha_to_one else abar[0]
  ab = lambda t: jnp.where(t >= 0, abar[jnp.maximum(t, 0)], final)
  e_of = lambda x, t: eps_of(eps_fn(x, jnp.asarray(t, jnp.int32), cond),
                             sched.marginal_std(jnp.maximum(t, 0))).astype(x.dtype)
  ts_j = jnp.asarray(ts, jnp.int32)

  # 1. Three pseudo Runge-Kutta steps (PNDM eq. 13), unrolled: t -> t - r/2 -> t_next.
  x, hist = x_T, []
  for i in range(3):
    t, t_next = ts_j[i], ts_j[i + 1]
    t_mid = t_next + half
    e1 = e_of(x, t)
    hist.append(e1)
    # diffusers' first half step lands on t - r // 2 but is evaluated at t_next + r // 2 (the
    # same step unless r is odd); kept for parity.
    e2 = e_of(pndm_transfer(x, e1, ab(t), ab(t - half)), t_mid)
    e3 = e_of(pndm_transfer(x, e2, ab(t), ab(t_mid)), t_mid)
    e4 = e_of(pndm_transfer(x, e3, ab(t), ab(t_next)), t_next)
    x = pndm_transfer(x, (e1 + 2.0 * e2 + 2.0 * e3 + e4) / 6.0, ab(t), ab(t_next)).astype(dtype)

  # 2. Pseudo linear multistep (PNDM eq. 12) from ts[3] down, the last step to abar_prev.
  t_cur = ts_j[3:]
  t_prev = jnp.concatenate([ts_j[4:], jnp.full((1,), -1, jnp.int32)])

  def step(carry, inp):
    x, h = carry                         # h: [3, B, ...], oldest first
    t, tp = inp
    e = e_of(x, t)
    comb = (55.0 * e - 59.0 * h[2] + 37.0 * h[1] - 9.0 * h[0]) / 24.0
    x = pndm_transfer(x, comb, ab(t), ab(tp)).astype(dtype)
    return x, jnp.concatenate([h[1:], e[None]])

  out = run_scan(step, (x, jnp.stack(hist)), (t_cur, t_prev), stride=trajectory_stride,
                 state_of=lambda c: c[0])
  if trajectory_stride is None:
    return out[0]
  return out[0][0], out[1]
