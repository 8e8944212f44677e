"""Gaussian diffusion math as pure functions (DDPM, improved DDPM, v-parameterization).

Conventions:
  * ``t`` is an int array ``[B]`` of zero-based timesteps: index ``t`` is the paper's step
    ``t+1`` (improved-diffusion / diffusers). So ``t = 0`` is the first noising step and
    ``q_posterior(..., t=0)`` is the paper's ``q(x_0 | x_1, x_0)``.
  * Arrays are ``[B, ...]`` (any trailing shape, e.g. NHWC images); schedule coefficients are
    gathered with :func:`~genjax.diffusion.schedules.extract` and broadcast.
  * "seed eq. N" refers to the course notes in ``seeds/`` (Weng's "What are diffusion
    models?"); paper equations are named alongside.

Example:
  >>> sched = get_schedule("linear", 1000)
  >>> x0 = jnp.zeros((2, 8, 8, 1)); t = jnp.array([0, 999])
  >>> xt = q_sample(sched, x0, t, jax.random.normal(jax.random.key(0), x0.shape))
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.diffusion.schedules import DiffusionSchedule, extract

__all__ = [
    "LEARNED_VAR_TYPES",
    "PARAMETERIZATIONS",
    "VAR_TYPES",
    "approx_standard_normal_cdf",
    "as_eps_fn",
    "decoder_nll_bpd",
    "discretized_gaussian_log_likelihood",
    "eps_from_v",
    "full_vlb_bpd",
    "mean_flat",
    "model_output_to_eps_x0",
    "model_variance",
    "normal_kl",
    "p_mean_variance",
    "predict_eps_from_x0",
    "predict_v",
    "predict_x0_from_eps",
    "prior_bpd",
    "q_mean_variance",
    "q_posterior_mean_variance",
    "q_sample",
    "split_learned_output",
    "unpack_model_output",
    "vlb_terms_bpd",
    "x0_from_v",
]

PARAMETERIZATIONS = ("eps", "x0", "v")
# Reverse-process variance types (see `model_variance`). The learned ones need the network's
# variance output `var_values`: a learned-variance model function returns `(eps, var_values)`
# (see `unpack_model_output`), and a network with 2C output channels is split by
# `split_learned_output`.
VAR_TYPES = ("fixed_large", "fixed_small", "learned_range")
LEARNED_VAR_TYPES = ("learned_range",)

ClipRange = Optional[tuple[float, float]]


def mean_flat(x: jax.Array) -> jax.Array:
  """Mean over all but the first (batch) axis: ``[B, ...] -> [B]``."""
  return jnp.mean(x, axis=tuple(range(1, x.ndim)))


def _check_clip(clip_x0) -> None:
  if clip_x0 is not None and (not isinstance(clip_x0, (tuple, list)) or len(clip_x0) != 2):
    raise ValueError(
        f"clip_x0 must be None or a (lo, hi) tuple such as (-1.0, 1.0), got {clip_x0!r}.")


def _clip(x0: jax.Array, clip_x0: ClipRange) -> jax.Array:
  _check_clip(clip_x0)
  if clip_x0 is None:
    return x0
  return jnp.clip(x0, clip_x0[0], clip_x0[1])


def _check_var_type(var_type: str) -> None:
  if var_type not in VAR_TYPES:
    raise ValueError(f"Unknown var_type {var_type!r}; valid ones are {', '.join(VAR_TYPES)}.")


def split_learned_output(out: jax.Array):
  """Splits a learned-variance network output ``[..., 2C]`` into ``(mean part, v)``.

  improved-diffusion's ``th.split(model_output, C, dim=1)`` on the channel axis, which is the
  last axis here (NHWC images, ``[B, D]`` points): the first ``C`` channels are the mean
  parameterization (eps, x0 or v-prediction) and the last ``C`` are the variance
  interpolation ``v`` of Nichol & Dhariwal 2021, eq. 15 (seed eq. 35).

  Args:
    out: ``[..., 2C]``.

  Returns:
    ``(out[..., :C], out[..., C:])``.

  Raises:
    ValueError: the last axis is odd.
  """
  c2 = out.shape[-1]
  if c2 % 2:
    raise ValueError(
        f"A learned-variance network must output 2C channels (mean part and variance part); "
        f"got {c2} on the last axis of shape {out.shape}. Build it with out_channels=2*C.")
  return out[..., : c2 // 2], out[..., c2 // 2:]


def unpack_model_output(out, var_type: Optional[str] = None):
  """``eps_fn`` outputs: an array ``eps``, or ``(eps, var_values)`` for a learned variance.

  Every sampler and :func:`full_vlb_bpd` accept both forms, so a learned-variance model is
  called once per step. Samplers that need no variance (DDIM, DPM-Solver) ignore
  ``var_values``.

  Args:
    out: ``eps [B, ...]`` or a tuple ``(eps [B, ...], var_values [B, ...])``.
    var_type: if given, checks that a learned type got ``var_values`` and a fixed one did not.

  Returns:
    ``(eps, var_values or None)``.

  Raises:
    ValueError: the form does not match ``var_type``.
  """
  if isinstance(out, (tuple, list)):
    if len(out) != 2:
      raise ValueError(
          f"eps_fn must return eps or (eps, var_values); got a sequence of {len(out)} items.")
    eps, var_values = out
  else:
    eps, var_values = out, None
  if var_type is not None:
    if var_type in LEARNED_VAR_TYPES and var_values is None:
      raise ValueError(
          f"var_type {var_type!r} needs the model's variance output: eps_fn(x, t) must return "
          "(eps, var_values), e.g. via split_learned_output on a 2C-channel network.")
    if var_type not in LEARNED_VAR_TYPES and var_values is not None:
      raise ValueError(
          f"eps_fn returned (eps, var_values) but var_type {var_type!r} is fixed; use "
          "var_type='learned_range' or return eps only.")
  return eps, var_values


# ----------------------------------------------------------------------------------------------
# Forward process q.
# ----------------------------------------------------------------------------------------------


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
    t: int ``[B]``, zero-based.

  Returns:
    ``(mean [B, ...], var [B, 1, ...], log_var_clipped [B, 1, ...])``.
  """
  mean = (extract(sched.posterior_mean_coef1, t, xt.shape) * x0
          + extract(sched.posterior_mean_coef2, t, xt.shape) * xt)
  var = extract(sched.posterior_variance, t, xt.shape)
  log_var = extract(sched.posterior_log_variance_clipped, t, xt.shape)
  return mean, var, log_var


# ----------------------------------------------------------------------------------------------
# Conversions between parameterizations. `model_output_to_eps_x0` is the one dispatcher.
# ----------------------------------------------------------------------------------------------


def predict_x0_from_eps(sched: DiffusionSchedule, xt: jax.Array, t: jax.Array,
                        eps: jax.Array) -> jax.Array:
  """``x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``.

  Inverse of Ho et al. 2020 eq. 4 (seed eq. 17; the substitution before seed eq. 23).
  ``t`` is zero-based, int ``[B]``.
  """
  return (extract(sched.sqrt_recip_alphas_cumprod, t, xt.shape) * xt
          - extract(sched.sqrt_recipm1_alphas_cumprod, t, xt.shape) * eps)


def predict_eps_from_x0(sched: DiffusionSchedule, xt: jax.Array, t: jax.Array,
                        x0: jax.Array) -> jax.Array:
  """``eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)``.

  Inverse of :func:`predict_x0_from_eps` (Ho et al. 2020 eq. 4; seed eq. 17/23).
  ``t`` is zero-based, int ``[B]``.
  """
  return ((extract(sched.sqrt_recip_alphas_cumprod, t, xt.shape) * xt - x0)
          / extract(sched.sqrt_recipm1_alphas_cumprod, t, xt.shape))


def predict_v(sched: DiffusionSchedule, x0: jax.Array, t: jax.Array, eps: jax.Array) -> jax.Array:
  """The velocity target ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0``.

  Salimans & Ho 2022 (progressive distillation), Sec. 4 / Appendix D, with
  ``alpha = sqrt(abar_t)``, ``sigma = sqrt(1 - abar_t)``. ``t`` is zero-based, int ``[B]``.
  """
  return (extract(sched.sqrt_alphas_cumprod, t, x0.shape) * eps
          - extract(sched.sqrt_one_minus_alphas_cumprod, t, x0.shape) * x0)


def x0_from_v(sched: DiffusionSchedule, xt: jax.Array, t: jax.Array, v: jax.Array) -> jax.Array:
  """``x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v`` (Salimans & Ho 2022, Sec. 4).

  ``t`` is zero-based, int ``[B]``.
  """
  return (extract(sched.sqrt_alphas_cumprod, t, xt.shape) * xt
          - extract(sched.sqrt_one_minus_alphas_cumprod, t, xt.shape) * v)


def eps_from_v(sched: DiffusionSchedule, xt: jax.Array, t: jax.Array, v: jax.Array) -> jax.Array:
  """``eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v`` (Salimans & Ho 2022, Sec. 4).

  ``t`` is zero-based, int ``[B]``.
  """
  return (extract(sched.sqrt_one_minus_alphas_cumprod, t, xt.shape) * xt
          + extract(sched.sqrt_alphas_cumprod, t, xt.shape) * v)


def model_output_to_eps_x0(sched: DiffusionSchedule, out: jax.Array, xt: jax.Array, t: jax.Array,
                           parameterization: str = "eps"):
  """Converts a network output to ``(eps, x0)``; the one place conversions happen.

  Args:
    sched: the schedule.
    out: network output ``[B, ...]``: ``eps`` (Ho et al. 2020, eq. 11; seed eq. 27), ``x0``, or
      ``v`` (Salimans & Ho 2022).
    xt: the network input ``[B, ...]``.
    t: int ``[B]``, zero-based.
    parameterization: ``"eps"``, ``"x0"`` or ``"v"``.

  Returns:
    ``(eps, x0)``, each ``[B, ...]``.

  Raises:
    ValueError: unknown parameterization.
  """
  if parameterization == "eps":
    return out, predict_x0_from_eps(sched, xt, t, out)
  if parameterization == "x0":
    return predict_eps_from_x0(sched, xt, t, out), out
  if parameterization == "v":
    return eps_from_v(sched, xt, t, out), x0_from_v(sched, xt, t, out)
  raise ValueError(
      f"Unknown parameterization {parameterization!r}; valid ones are "
      f"{', '.join(PARAMETERIZATIONS)}.")


def as_eps_fn(out_fn: Callable[[jax.Array, jax.Array], jax.Array], sched: DiffusionSchedule,
              parameterization: str = "eps") -> Callable[[jax.Array, jax.Array], jax.Array]:
  """Wraps ``out_fn(x, t) -> network output`` into the ``eps_fn(x, t) -> eps`` samplers take.

  Args:
    out_fn: a callable returning the network output in ``parameterization``.
    sched: the schedule.
    parameterization: ``"eps"``, ``"x0"`` or ``"v"``.

  Returns:
    ``eps_fn(x [B, ...], t int [B]) -> eps [B, ...]``; if ``out_fn`` returns
    ``(out, var_values)`` (a learned variance), ``eps_fn`` returns ``(eps, var_values)``.
  """
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(
        f"Unknown parameterization {parameterization!r}; valid ones are "
        f"{', '.join(PARAMETERIZATIONS)}.")
  if parameterization == "eps":
    return out_fn

  def eps_fn(x, t):
    out, var_values = unpack_model_output(out_fn(x, t))
    eps = model_output_to_eps_x0(sched, out, x, t, parameterization)[0]
    return eps if var_values is None else (eps, var_values)

  return eps_fn


# ----------------------------------------------------------------------------------------------
# Reverse process p.
# ----------------------------------------------------------------------------------------------


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
    t: int ``[B]``, zero-based.
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
  _check_var_type(var_type)
  if var_type in LEARNED_VAR_TYPES:
    if var_values is None:
      raise ValueError(f"var_type {var_type!r} needs var_values (the network's variance output).")
    min_log = extract(sched.posterior_log_variance_clipped, t, x_shape)
    max_log = extract(jnp.log(sched.betas), t, x_shape)
    frac = (var_values + 1.0) / 2.0
    log_var = frac * max_log + (1.0 - frac) * min_log
    return jnp.exp(log_var), log_var
  if var_values is not None:
    raise ValueError(f"var_type {var_type!r} is fixed; it takes no var_values.")
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
    t: int ``[B]``, zero-based.
    var_type: see :func:`model_variance`.
    clip_x0: ``None`` or ``(lo, hi)``.
    var_values: see :func:`model_variance`.

  Returns:
    ``dict(mean [B, ...], var, log_var (broadcastable to [B, ...]), x0 [B, ...],
    eps [B, ...])``.
  """
  _check_clip(clip_x0)
  var, log_var = model_variance(sched, t, xt.shape, var_type, var_values)  # validates first
  x0 = predict_x0_from_eps(sched, xt, t, eps)
  if clip_x0 is not None:
    x0 = _clip(x0, clip_x0)
    eps = predict_eps_from_x0(sched, xt, t, x0)
  mean, _, _ = q_posterior_mean_variance(sched, x0, xt, t)
  return dict(mean=mean, var=var, log_var=log_var, x0=x0, eps=eps)


# ----------------------------------------------------------------------------------------------
# Likelihood: KL terms, the discretized decoder, and the full variational bound in bits/dim.
# ----------------------------------------------------------------------------------------------


def normal_kl(mean1, logvar1, mean2, logvar2):
  """Elementwise ``KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)))`` in nats.

  ``0.5 (-1 + logvar2 - logvar1 + exp(logvar1 - logvar2) + (mean1 - mean2)^2 exp(-logvar2))``,
  the closed form used for seed eq. 25's ``L_{t-1}`` terms (Ho et al. 2020, eq. 5).
  Arguments broadcast against each other.
  """
  return 0.5 * (-1.0 + logvar2 - logvar1 + jnp.exp(logvar1 - logvar2)
                + (mean1 - mean2) ** 2 * jnp.exp(-logvar2))


def approx_standard_normal_cdf(x):
  """Fast approximation of the standard normal CDF (as improved-diffusion / Ho et al.'s code).

  ``0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
  """
  return 0.5 * (1.0 + jnp.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x, means, log_scales, *, num_bins: int = 256):
  """Log likelihood of a Gaussian discretized into bins on ``[-1, 1]`` (the decoder ``L_0``).

  Ho et al. 2020, eq. 13 (seed eq. 25-26's ``L_0``), as improved-diffusion implements it:
  bin ``k`` is centred at ``-1 + 2k/(num_bins-1)`` with half-width ``1/(num_bins-1)``; the
  first and last bins extend to ``-inf`` and ``+inf``, so the probabilities of all bins sum to
  one. Uses :func:`approx_standard_normal_cdf` and clamps probabilities at ``1e-12``.

  Args:
    x: data on the bin centres (8-bit images rescaled to ``[-1, 1]``), ``[B, ...]``.
    means: Gaussian means, broadcastable to ``x``.
    log_scales: log standard deviations, broadcastable to ``x``.
    num_bins: number of levels (256 for 8-bit data).

  Returns:
    Elementwise log probabilities (nats), shape of ``x``.
  """
  half = 1.0 / (num_bins - 1)
  centered = x - means
  inv_std = jnp.exp(-log_scales)
  cdf_plus = approx_standard_normal_cdf(inv_std * (centered + half))
  cdf_min = approx_standard_normal_cdf(inv_std * (centered - half))
  log_cdf_plus = jnp.log(jnp.maximum(cdf_plus, 1e-12))
  log_one_minus_cdf_min = jnp.log(jnp.maximum(1.0 - cdf_min, 1e-12))
  log_delta = jnp.log(jnp.maximum(cdf_plus - cdf_min, 1e-12))
  return jnp.where(x < -1.0 + half, log_cdf_plus,
                   jnp.where(x > 1.0 - half, log_one_minus_cdf_min, log_delta))


def decoder_nll_bpd(x0: jax.Array, mean: jax.Array, log_var: jax.Array, *,
                    num_bins: int = 256) -> jax.Array:
  """The decoder term ``L_0 = -log p(x_0 | x_1)`` in bits per dimension, ``[B]``.

  Ho et al. 2020, eq. 13 (seed eq. 25-26's ``L_0``): the Gaussian ``N(mean, exp(log_var))``
  integrated over the bin of each value (:func:`discretized_gaussian_log_likelihood`), averaged
  over dimensions and divided by ``log 2``.

  Args:
    x0: data ``[B, ...]``.
    mean: mean of ``p(x_0 | x_1)``, ``[B, ...]``.
    log_var: its log variance, broadcastable to ``[B, ...]``.
    num_bins: number of levels of the data grid on ``[-1, 1]``; see
      :func:`discretized_gaussian_log_likelihood`.

  Returns:
    ``[B]`` bits/dim.
  """
  ll = discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var, num_bins=num_bins)
  return -mean_flat(jnp.broadcast_to(ll, x0.shape)) / np.log(2.0)


def vlb_terms_bpd(sched: DiffusionSchedule, mean: jax.Array, log_var: jax.Array, x0: jax.Array,
                  xt: jax.Array, t: jax.Array, *, num_bins: int = 256) -> jax.Array:
  """One timestep's term of the variational bound, in bits per dimension.

  For zero-based ``t > 0``: ``L_t = KL(q(x_t-1 | x_t, x_0) || p(x_t-1 | x_t))`` (the paper's
  ``L_{t}`` for step ``t+1``); for ``t = 0``: the decoder ``L_0 = -log p(x_0 | x_1)`` with
  :func:`discretized_gaussian_log_likelihood` (Ho et al. 2020, eq. 5 and 13; seed eq. 25-26;
  improved-diffusion ``_vb_terms_bpd``). Both are averaged over dimensions and divided by
  ``log 2``. With a learned variance, ``log_var`` is the full ``[B, ...]`` array of
  :func:`model_variance` (Nichol & Dhariwal 2021, eq. 15).

  Args:
    sched: the schedule.
    mean: mean of ``p(x_{t-1} | x_t)`` ``[B, ...]``.
    log_var: its log variance, broadcastable to ``[B, ...]``.
    x0: data ``[B, ...]`` (on the ``num_bins``-level grid in ``[-1, 1]`` for the decoder term).
    xt: ``[B, ...]``.
    t: int ``[B]``, zero-based.
    num_bins: levels of the decoder's data grid (256: 8-bit images).

  Returns:
    ``[B]`` bits/dim.
  """
  true_mean, _, true_log_var = q_posterior_mean_variance(sched, x0, xt, t)
  kl = mean_flat(jnp.broadcast_to(normal_kl(true_mean, true_log_var, mean, log_var),
                                  x0.shape)) / np.log(2.0)
  nll = decoder_nll_bpd(x0, mean, log_var, num_bins=num_bins)
  return jnp.where(jnp.asarray(t) == 0, nll, kl)


def prior_bpd(sched: DiffusionSchedule, x0: jax.Array) -> jax.Array:
  """The prior term ``L_T = KL(q(x_T | x_0) || N(0, I))`` in bits/dim, ``[B]``.

  Ho et al. 2020, eq. 5; seed eq. 25 (``L_T``). Constant in the model's parameters.
  """
  t = jnp.full((x0.shape[0],), sched.num_timesteps - 1, dtype=jnp.int32)
  mean, _, log_var = q_mean_variance(sched, x0, t)
  kl = normal_kl(mean, log_var, 0.0, 0.0)
  return mean_flat(jnp.broadcast_to(kl, x0.shape)) / np.log(2.0)


def full_vlb_bpd(eps_fn: Callable, sched: DiffusionSchedule, x0: jax.Array, key: jax.Array,
                 var_type: str = "fixed_large", clip_x0: ClipRange = None, *,
                 num_bins: int = 256) -> dict:
  """The full variational bound ``L_vlb = L_T + sum_t L_t + L_0`` in bits/dim (test-set NLL).

  Each of the T terms uses its own ``x_t ~ q(x_t | x_0)`` (a one-sample estimate, as
  improved-diffusion's ``calc_bpd_loop``); all T are computed in one ``lax.scan`` over t.
  Ho et al. 2020, eq. 5; seed eq. 24-26; with a learned variance, Nichol & Dhariwal 2021,
  eq. 15 (seed eq. 35).

  Args:
    eps_fn: ``eps_fn(x [B, ...], t int32 [B])`` returning ``eps [B, ...]``, or
      ``(eps, var_values)`` for ``var_type="learned_range"`` (use :func:`as_eps_fn` for
      x0 / v networks).
    sched: the schedule.
    x0: data ``[B, ...]`` in ``[-1, 1]`` (on the ``num_bins``-level grid).
    key: a PRNG key.
    var_type: see :func:`model_variance`.
    clip_x0: ``None`` or ``(lo, hi)``.
    num_bins: levels of the decoder's data grid (256: 8-bit images).

  Returns:
    ``dict(total_bpd [B], terms_bpd [B, T] (column t = zero-based t), prior_bpd [B],
    x0_mse [B, T], eps_mse [B, T], decoder_mean [B, ...], decoder_log_var [B, ...])``; the
    last two are ``p(x_0 | x_1)`` of the ``t = 0`` term, so that ``L_0`` can be recomputed on
    another grid with :func:`decoder_nll_bpd`.
  """
  _check_var_type(var_type)
  _check_clip(clip_x0)
  num_t = sched.num_timesteps
  batch = x0.shape[0]

  def body(dec, inp):
    t_scalar, k = inp
    t = jnp.full((batch,), t_scalar, dtype=jnp.int32)
    noise = jax.random.normal(k, x0.shape, x0.dtype)
    xt = q_sample(sched, x0, t, noise)
    eps, var_values = unpack_model_output(eps_fn(xt, t), var_type)
    out = p_mean_variance(sched, eps, xt, t, var_type, clip_x0, var_values=var_values)
    term = vlb_terms_bpd(sched, out["mean"], out["log_var"], x0, xt, t, num_bins=num_bins)
    log_var = jnp.broadcast_to(out["log_var"], x0.shape).astype(x0.dtype)
    first = t_scalar == 0
    dec = (jnp.where(first, out["mean"].astype(x0.dtype), dec[0]), jnp.where(first, log_var, dec[1]))
    return dec, (term, mean_flat((out["x0"] - x0) ** 2), mean_flat((out["eps"] - noise) ** 2))

  ts = jnp.arange(num_t, dtype=jnp.int32)
  dec0 = (jnp.zeros_like(x0), jnp.zeros_like(x0))
  (dec_mean, dec_log_var), (terms, x0_mse, eps_mse) = jax.lax.scan(
      body, dec0, (ts, jax.random.split(key, num_t)))
  terms = terms.T  # [B, T]
  prior = prior_bpd(sched, x0)
  return dict(total_bpd=terms.sum(axis=1) + prior, terms_bpd=terms, prior_bpd=prior,
              x0_mse=x0_mse.T, eps_mse=eps_mse.T, decoder_mean=dec_mean,
              decoder_log_var=dec_log_var)
