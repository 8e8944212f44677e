"""The forward process and the reverse-process Gaussians of a discrete DDPM chain.

Shared by the ancestral sampler (:mod:`genjax.sampling.ancestral`) and the variational bound
(:mod:`genjax.diffusion.vlb`). Conventions:

  * ``t`` is an int array ``[B]`` (or a scalar) of zero-based timesteps: index ``t`` is the
    paper's step ``t+1`` (improved-diffusion / diffusers). So ``t = 0`` is the first noising
    step and ``q_posterior(..., t=0)`` is the paper's ``q(x_0 | x_1, x_0)``.
  * Arrays are ``[B, ...]`` (any trailing shape); schedule coefficients are gathered with
    :func:`~genjax.sampling.schedules.extract` and broadcast.
  * "seed eq. N" refers to the course notes in ``seeds/`` (Weng's "What are diffusion
    models?"); paper equations are named alongside.

Example:
  >>> sched = get_schedule("linear", 1000)
  >>> x0 = jnp.zeros((2, 8, 8, 1)); t = jnp.array([0, 999])
  >>> xt = q_sample(sched, x0, t, jax.random.normal(jax.random.key(0), x0.shape))
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from genjax.sampling.convert import predict_eps_from_x0, predict_x0_from_eps
from genjax.sampling.schedules import DiffusionSchedule, extract

__all__ = ["ClipRange", "LEARNED_VAR_TYPES", "VAR_TYPES", "check_clip", "check_var_type",
           "model_variance", "p_mean_variance", "q_mean_variance",
           "q_posterior_mean_variance", "q_sample"]

# Reverse-process variance types (see `model_variance`). The learned one needs the network's
# variance output `var_values` (a denoiser returns `Prediction(eps, var_values)`).
VAR_TYPES = ("fixed_large", "fixed_small", "learned_range")
LEARNED_VAR_TYPES = ("learned_range",)

ClipRange = Optional[tuple[float, float]]


def check_clip(clip) -> None:
  """Raises a ValueError unless ``clip`` is None or a ``(lo, hi)`` pair."""
  if clip is not None and (not isinstance(clip, (tuple, list)) or len(clip) != 2):
    raise ValueError(
        f"clip_x0 must be None or a (lo, hi) tuple such as (-1.0, 1.0), got {clip!r}.")


def check_var_type(var_type: str) -> None:
  """Raises a ValueError for an unknown reverse-variance type."""
  if var_type not in VAR_TYPES:
    raise ValueError(f"Unknown var_type {var_type!r}; valid ones are {', '.join(VAR_TYPES)}.")


# ------------------------------------------------------------------------------------------------
# Forward process q.
# ------------------------------------------------------------------------------------------------


def q_sample(sched: DiffusionSchedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
  """Samples ``x_t ~ q(x_t | x_0)`` by reparameterization.

  ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (Ho et al. 2020, eq. 4; seed eq. 16-17).

  Args:
    sched: the schedule.
    x0: clean data ``[B, ...]``.
    t: int ``[B]``, zero-based (index t is the paper's step t+1).
    noise: standard normal ``eps``, same shape as ``x0``.

  Returns:
    ``x_t``, ``[B, ...]``.
  """
  return (extract(sched.sqrt_alphas_cumprod, t, x0.shape) * x0
          + extract(sched.sqrt_one_minus_alphas_cumprod, t, x0.shape) * noise)


def q_mean_variance(sched: DiffusionSchedule, x0: jax.Array, t: jax.Array):
  """Mean and variance of ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)``.

  Ho et al. 2020, eq. 4; seed eq. 17. ``t`` is zero-based, int ``[B]``.

  Returns:
    ``(mean [B, ...], var [B, 1, ...], log_var [B, 1, ...])``.
  """
  mean = extract(sched.sqrt_alphas_cumprod, t, x0.shape) * x0
  var = extract(1.0 - sched.alphas_cumprod, t, x0.shape)
  log_var = extract(sched.log_one_minus_alphas_cumprod, t, x0.shape)
  return mean, var, log_var


def q_posterior_mean_variance(sched: DiffusionSchedule, x0: jax.Array, xt: jax.Array,
                              t: jax.Array):
  """The forward-process posterior ``q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I)``.

  ``mu~_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t)(1 - abar_{t-1})/(1 - abar_t) x_t``
  and ``beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t`` (Ho et al. 2020, eq. 6-7; seed
  eq. 19-22). At zero-based ``t = 0``, ``beta~ = 0`` and ``mu~ = x_0``; the returned log
  variance is clipped to ``log beta~`` of ``t = 1`` there (improved-diffusion).

  Args:
    sched: the schedule.
    x0: ``[B, ...]``.
    xt: ``[B, ...]``.
    t: int ``[B]`` (or a scalar), zero-based.

  Returns:
    ``(mean [B, ...], var [B, 1, ...], log_var_clipped [B, 1, ...])``.
  """
  mean = (extract(sched.posterior_mean_coef1, t, xt.shape) * x0
          + extract(sched.posterior_mean_coef2, t, xt.shape) * xt)
  var = extract(sched.posterior_variance, t, xt.shape)
  log_var = extract(sched.posterior_log_variance_clipped, t, xt.shape)
  return mean, var, log_var


# ------------------------------------------------------------------------------------------------
# Reverse process p.
# ------------------------------------------------------------------------------------------------


def model_variance(sched: DiffusionSchedule, t: jax.Array, x_shape, var_type: str = "fixed_large",
                   var_values: Optional[jax.Array] = None):
  """Variance ``sigma_t^2`` of ``p(x_{t-1} | x_t)`` and its log.

  * ``"fixed_large"``: ``sigma_t^2 = beta_t`` (Ho et al. 2020, Sec. 3.2). As in
    improved-diffusion, zero-based ``t = 0`` uses ``beta~`` of ``t = 1`` instead, for a better
    decoder log likelihood; the sampler adds no noise at ``t = 0`` anyway.
  * ``"fixed_small"``: ``sigma_t^2 = beta~_t`` (Ho et al. 2020, eq. 7; seed eq. 21), log clipped
    at ``t = 0`` to ``log beta~`` of ``t = 1``.
  * ``"learned_range"``: ``Sigma = exp(v log beta_t + (1 - v) log beta~_t)`` (Nichol & Dhariwal
    2021, eq. 15; seed eq. 35), with ``v = (var_values + 1) / 2``: the network's output in
    ``[-1, 1]`` maps to ``[beta~_t, beta_t]`` (improved-diffusion's ``LEARNED_RANGE``,
    ``frac = (model_var_values + 1) / 2``; it is not clipped, so ``v`` may leave ``[0, 1]``).
    ``log beta~_t`` is the clipped one (``log beta~`` of ``t = 1`` at ``t = 0``), ``log beta_t``
    is unmodified.

  Args:
    sched: the schedule.
    t: int ``[B]`` (or a scalar), zero-based.
    x_shape: shape of ``x_t``, ``(B, ...)``.
    var_type: one of :data:`VAR_TYPES`.
    var_values: ``[B, ...]`` (shape ``x_shape``), the network's variance output; required for
      ``"learned_range"``, rejected for the fixed types.

  Returns:
    ``(var, log_var)``, broadcastable to ``x_shape`` (``x_shape`` itself when learned).

  Raises:
    ValueError: unknown ``var_type``, ``var_values`` given for a fixed type or missing for a
      learned one.
  """
  check_var_type(var_type)
  if var_type in LEARNED_VAR_TYPES:
    if var_values is None:
      raise ValueError(f"var_type {var_type!r} needs the model's variance output: the denoiser "
                       "must return Prediction(eps, var_values) (build it with "
                       "genjax.sampling.denoiser(..., learned_variance=True)).")
    min_log = extract(sched.posterior_log_variance_clipped, t, x_shape)
    max_log = extract(jnp.log(sched.betas), t, x_shape)
    frac = (var_values + 1.0) / 2.0
    log_var = frac * max_log + (1.0 - frac) * min_log
    return jnp.exp(log_var), log_var
  if var_values is not None:
    raise ValueError(f"The denoiser returned var_values but var_type {var_type!r} is fixed; use "
                     "var_type='learned_range' or return eps only.")
  if var_type == "fixed_large":
    t = jnp.asarray(t)
    var = jnp.where(t == 0, sched.posterior_variance[1 % sched.num_timesteps],
                    jnp.take(sched.betas, t, axis=0))
    var = var.reshape(var.shape + (1,) * (len(x_shape) - var.ndim))
    return var, jnp.log(var)
  # fixed_small
  return (extract(sched.posterior_variance, t, x_shape),
          extract(sched.posterior_log_variance_clipped, t, x_shape))


def p_mean_variance(sched: DiffusionSchedule, eps: jax.Array, xt: jax.Array, t: jax.Array,
                    var_type: str = "fixed_large", clip_x0: ClipRange = None, *,
                    var_values: Optional[jax.Array] = None) -> dict:
  """Mean and variance of ``p(x_{t-1} | x_t)`` from a noise prediction.

  ``x0_hat = predict_x0_from_eps(x_t, eps)`` (optionally clipped), and the mean is the
  posterior mean ``mu~_t(x_t, x0_hat)`` (seed eq. 22). Unclipped, this equals
  ``1/sqrt(alpha_t) (x_t - beta_t/sqrt(1 - abar_t) eps)`` (Ho et al. 2020, eq. 11; seed eq. 23,
  27). If ``clip_x0 = (lo, hi)``, ``x0_hat`` is clipped before the mean is formed, and the
  returned ``eps`` is recomputed from it.

  Args:
    sched: the schedule.
    eps: predicted noise ``[B, ...]``.
    xt: ``[B, ...]``.
    t: int ``[B]`` (or a scalar), zero-based.
    var_type: see :func:`model_variance`.
    clip_x0: ``None`` or ``(lo, hi)``.
    var_values: see :func:`model_variance`.

  Returns:
    ``dict(mean [B, ...], var, log_var (broadcastable to [B, ...]), x0 [B, ...],
    eps [B, ...])``.
  """
  check_clip(clip_x0)
  var, log_var = model_variance(sched, t, xt.shape, var_type, var_values)  # validates first
  x0 = predict_x0_from_eps(sched, xt, t, eps)
  if clip_x0 is not None:
    x0 = jnp.clip(x0, clip_x0[0], clip_x0[1])
    eps = predict_eps_from_x0(sched, xt, t, x0)
  mean, _, _ = q_posterior_mean_variance(sched, x0, xt, t)
  return dict(mean=mean, var=var, log_var=log_var, x0=x0, eps=eps)
