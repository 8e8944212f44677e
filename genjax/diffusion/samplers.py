"""DDPM ancestral and DDIM samplers, each one ``lax.scan`` over its steps.

Conventions:
  * ``eps_fn(x [B, ...], t int32 [B]) -> eps [B, ...]`` is any callable (a network closed over
    its params, a guidance wrapper, an analytic noise predictor); wrap x0- or v-predicting
    networks with :func:`genjax.diffusion.gaussian.as_eps_fn`. A learned-variance model
    (improved DDPM) returns ``(eps, var_values)`` instead; ``ddpm_sample`` with
    ``var_type="learned_range"`` uses both, DDIM ignores ``var_values``.
  * Timesteps are zero-based: index ``t`` is the paper's step ``t+1``; sampling runs
    ``t = T-1, ..., 0``.
  * Everything is jit-able and vmap-able over ``key`` (``shape`` and the step counts are static).
  * Keys: ``key`` is split into one key for ``x_T`` and one per step (``split(k, num_steps)``,
    step ``i`` using the ``i``-th); so DDPM with ``"fixed_small"`` and DDIM with ``eta = 1``
    on all T steps give the same samples for the same key.
  * With ``trajectory_stride = k`` a sampler also returns ``[n, *shape]``: the state before the
    first step (``x_T``), after every ``k``-th step, and the final sample (always included).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.diffusion.gaussian import (
    ClipRange,
    _check_clip,
    _check_var_type,
    p_mean_variance,
    predict_eps_from_x0,
    predict_x0_from_eps,
    unpack_model_output,
)
from genjax.diffusion.schedules import DiffusionSchedule

__all__ = ["DDIM_SPACINGS", "ddim_sample", "ddim_timesteps", "ddpm_sample", "trajectory_steps"]

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]
DDIM_SPACINGS = ("uniform", "quadratic")


def trajectory_steps(num_steps: int, stride: int) -> np.ndarray:
  """Which states a trajectory holds: step counts ``0, k, 2k, ...`` plus ``num_steps``.

  State ``0`` is the initial noise and state ``num_steps`` the final sample.
  """
  if int(stride) != stride or stride < 1:
    raise ValueError(f"trajectory_stride must be a positive integer or None, got {stride!r}.")
  return np.unique(np.append(np.arange(0, num_steps + 1, int(stride)), num_steps))


def _check_shape(shape, x_T):
  shape = tuple(int(s) for s in shape)
  if len(shape) < 1:
    raise ValueError(f"shape must be (B, ...) with a batch axis, got {shape}.")
  if x_T is not None and tuple(x_T.shape) != shape:
    raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape is {shape}; make them agree.")
  return shape


def _run_scan(step, x_init, xs, num_steps: int, trajectory_stride: Optional[int]):
  """Runs ``x <- step(x, xs_i)`` for all steps; optionally records a trajectory.

  The trajectory is a preallocated ``[n, *shape]`` carry written in place (one
  ``dynamic_update_slice`` per step), so memory is ``n`` states, not ``num_steps``.
  """
  if trajectory_stride is None:
    x, _ = jax.lax.scan(lambda x, inp: (step(x, inp), None), x_init, xs)
    return x
  recorded = trajectory_steps(num_steps, trajectory_stride)
  slot_of = np.full(num_steps + 1, -1, dtype=np.int32)
  slot_of[recorded] = np.arange(len(recorded), dtype=np.int32)
  slots = jnp.asarray(slot_of[1:])  # slot of the state after step i (i = 0..num_steps-1)
  traj = jnp.zeros((len(recorded),) + x_init.shape, x_init.dtype).at[0].set(x_init)

  def body(carry, inp):
    x, traj = carry
    step_inp, slot = inp
    x = step(x, step_inp)
    idx = jnp.maximum(slot, 0)
    traj = traj.at[idx].set(jnp.where(slot >= 0, x, traj[idx]))
    return (x, traj), None

  (x, traj), _ = jax.lax.scan(body, (x_init, traj), (xs, slots))
  return x, traj


def ddpm_sample(eps_fn: EpsFn, sched: DiffusionSchedule, key: jax.Array, shape, *,
                var_type: str = "fixed_large", clip_x0: ClipRange = None,
                trajectory_stride: Optional[int] = None, x_T: Optional[jax.Array] = None):
  """Ancestral sampling, Ho et al. 2020 Algorithm 2 (seed Algorithm 2, eq. 28).

  ``x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps(x_t, t)) + sigma_t z`` for
  ``t = T-1, ..., 0`` (zero-based), with ``z ~ N(0, I)`` except at ``t = 0`` (no noise). The mean
  is computed as the posterior mean at the predicted ``x_0`` (:func:`p_mean_variance`), which
  is the same thing and allows ``clip_x0``.

  With ``var_type="learned_range"``, ``sigma_t^2`` is the network's
  ``exp(v log beta_t + (1 - v) log beta~_t)`` (Nichol & Dhariwal 2021, eq. 15; seed eq. 35 and
  eq. 28's ``Sigma_theta``).

  Args:
    eps_fn: ``eps_fn(x [B, ...], t int32 [B]) -> eps [B, ...]``, or ``-> (eps, var_values)``
      for ``var_type="learned_range"``.
    sched: the schedule.
    key: a PRNG key.
    shape: ``(B, ...)``, static.
    var_type: ``"fixed_large"`` (``sigma_t^2 = beta_t``) or ``"fixed_small"``
      (``sigma_t^2 = beta~_t``), Ho et al. 2020 Sec. 3.2; or ``"learned_range"``.
    clip_x0: ``None`` or ``(lo, hi)``: clip the predicted ``x_0`` (and recompute ``eps``).
    trajectory_stride: ``None`` or a positive int; see the module docstring.
    x_T: optional starting noise of ``shape`` (default: drawn from ``key``).

  Returns:
    ``x_0`` ``[*shape]``, or ``(x_0, trajectory [n, *shape])`` with a trajectory stride.
  """
  _check_var_type(var_type)
  _check_clip(clip_x0)
  shape = _check_shape(shape, x_T)
  num_t = sched.num_timesteps
  key_init, key_steps = jax.random.split(key)
  dtype = sched.betas.dtype
  if x_T is None:
    x_T = jax.random.normal(key_init, shape, dtype)

  def step(x, inp):
    t_scalar, k = inp
    t = jnp.full((shape[0],), t_scalar, dtype=jnp.int32)
    eps, var_values = unpack_model_output(eps_fn(x, t), var_type)
    out = p_mean_variance(sched, eps, x, t, var_type, clip_x0, var_values=var_values)
    noise = jax.random.normal(k, shape, x.dtype)
    noise_scale = jnp.where(t_scalar > 0, jnp.exp(0.5 * out["log_var"]), 0.0)
    return (out["mean"] + noise_scale * noise).astype(x.dtype)

  ts = jnp.arange(num_t - 1, -1, -1, dtype=jnp.int32)
  xs = (ts, jax.random.split(key_steps, num_t))
  return _run_scan(step, x_T, xs, num_t, trajectory_stride)


def ddim_timesteps(num_timesteps: int, num_steps: int, spacing: str = "uniform") -> np.ndarray:
  """The decreasing, zero-based timesteps a DDIM sampler visits.

  Follows the DDIM paper's official code (``ermongroup/ddim``, ``runners/diffusion.py``,
  ``skip_type``):

  * ``"uniform"``: ``range(0, T, T // S)``; this may give slightly more than S steps when S
    does not divide T (as the reference does).
  * ``"quadratic"``: ``int(linspace(0, sqrt(0.8 T), S)**2)``, which tops out at ``0.8 T``
    (as the reference, used there for CIFAR-10). Repeated values (for large S) are dropped,
    since a step from t to t is the identity; so fewer than S steps may be returned.
    Sampling then starts from ``N(0, I)`` at ``t = 0.8 T``: fine for the linear schedule
    (``abar`` ~ 2e-3 there) but markedly biased for the cosine one (``abar`` ~ 0.1); prefer
    ``"uniform"`` with cosine.

  Args:
    num_timesteps: T.
    num_steps: S, ``1 <= S <= T``.
    spacing: ``"uniform"`` or ``"quadratic"``.

  Returns:
    int64 numpy array, strictly decreasing, ending in 0.
  """
  if spacing not in DDIM_SPACINGS:
    raise ValueError(f"Unknown spacing {spacing!r}; valid ones are {', '.join(DDIM_SPACINGS)}.")
  if int(num_steps) != num_steps or not 1 <= num_steps <= num_timesteps:
    raise ValueError(
        f"num_steps must be an integer in [1, num_timesteps={num_timesteps}], got {num_steps!r}.")
  if spacing == "uniform":
    seq = np.arange(0, num_timesteps, num_timesteps // int(num_steps))
  else:
    seq = (np.linspace(0, np.sqrt(num_timesteps * 0.8), int(num_steps)) ** 2).astype(np.int64)
  return np.unique(seq)[::-1].astype(np.int64)


def ddim_sample(eps_fn: EpsFn, sched: DiffusionSchedule, key: jax.Array, shape, *,
                num_steps: int = 50, eta: float = 0.0, spacing: str = "uniform",
                timesteps=None, clip_x0: ClipRange = None,
                trajectory_stride: Optional[int] = None, x_T: Optional[jax.Array] = None):
  """DDIM sampling (Song et al. 2021, eq. 12 and 16; seed eq. 41-43) on a subsequence tau.

  For consecutive ``t > s`` of the decreasing subsequence (zero-based; after its last entry
  ``s`` is "step -1" with ``abar_s = 1``, so the last update returns the predicted ``x_0``):

    ``x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``
    ``sigma = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)``
    ``x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z``

  ``eta = 0`` is the deterministic DDIM; ``eta = 1`` on all T steps is DDPM ancestral sampling
  with ``sigma_t^2 = beta~_t`` (and the same samples as ``ddpm_sample(var_type="fixed_small")``
  for the same key). Sampling starts from ``x_T ~ N(0, I)`` at the first (largest) timestep of
  the subsequence, as the reference code does.

  Args:
    eps_fn: ``eps_fn(x [B, ...], t int32 [B]) -> eps [B, ...]`` (or ``(eps, var_values)``,
      whose variance part DDIM ignores).
    sched: the schedule.
    key: a PRNG key.
    shape: ``(B, ...)``, static.
    num_steps: S, used with ``spacing`` when ``timesteps`` is None (see :func:`ddim_timesteps`).
    eta: stochasticity, ``>= 0`` (a float or a traced scalar).
    spacing: ``"uniform"`` or ``"quadratic"``.
    timesteps: optional strictly decreasing zero-based ints in ``[0, T-1]``, overriding
      ``num_steps`` and ``spacing``.
    clip_x0: ``None`` or ``(lo, hi)``: clip ``x0_hat`` and recompute ``eps`` from it.
    trajectory_stride: ``None`` or a positive int; see the module docstring.
    x_T: optional starting noise of ``shape``.

  Returns:
    ``x_0`` ``[*shape]``, or ``(x_0, trajectory [n, *shape])`` with a trajectory stride.
  """
  _check_clip(clip_x0)
  shape = _check_shape(shape, x_T)
  num_t = sched.num_timesteps
  if timesteps is None:
    timesteps = ddim_timesteps(num_t, num_steps, spacing)
  else:
    timesteps = np.asarray(timesteps)
    if (timesteps.ndim != 1 or len(timesteps) < 1 or not np.issubdtype(timesteps.dtype, np.integer)
        or np.any(np.diff(timesteps) >= 0) or timesteps.min() < 0 or timesteps.max() >= num_t):
      raise ValueError(
          "timesteps must be a 1-D array of strictly decreasing integers in "
          f"[0, {num_t - 1}] (zero-based); got {timesteps!r}.")
  n = len(timesteps)
  key_init, key_steps = jax.random.split(key)
  dtype = sched.betas.dtype
  if x_T is None:
    x_T = jax.random.normal(key_init, shape, dtype)

  abar = sched.alphas_cumprod
  ts = jnp.asarray(timesteps, dtype=jnp.int32)
  a_t = abar[ts]
  a_s = jnp.concatenate([abar[ts[1:]], jnp.ones((1,), abar.dtype)])

  def step(x, inp):
    t_scalar, at, as_, k = inp
    t = jnp.full((shape[0],), t_scalar, dtype=jnp.int32)
    eps = unpack_model_output(eps_fn(x, t))[0]
    x0 = predict_x0_from_eps(sched, x, t, eps)
    if clip_x0 is not None:
      x0 = jnp.clip(x0, clip_x0[0], clip_x0[1])
      eps = predict_eps_from_x0(sched, x, t, x0)
    sigma = eta * jnp.sqrt((1.0 - as_) / (1.0 - at)) * jnp.sqrt(1.0 - at / as_)
    dir_coef = jnp.sqrt(jnp.maximum(1.0 - as_ - sigma**2, 0.0))
    noise = jax.random.normal(k, shape, x.dtype)
    return (jnp.sqrt(as_) * x0 + dir_coef * eps + sigma * noise).astype(x.dtype)

  xs = (ts, a_t, a_s, jax.random.split(key_steps, n))
  return _run_scan(step, x_T, xs, n, trajectory_stride)
