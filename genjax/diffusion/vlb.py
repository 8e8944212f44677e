"""The variational bound of a DDPM in bits per dimension (Ho et al. 2020, eq. 5; improved DDPM).

The forward process, the posterior and ``p(x_{t-1} | x_t)`` it is built from live on the
sampling floor (:mod:`genjax.sampling.posterior`); this module adds the KL terms, the
discretized decoder and the full bound. Conventions as there: ``t`` is an int array ``[B]``
of zero-based timesteps (index ``t`` is the paper's step ``t+1``); arrays are ``[B, ...]``.

Example:
  >>> sched = get_schedule("linear", 1000)
  >>> out = full_vlb_bpd(eps_fn, sched, x0, jax.random.key(0))   # T network calls
  >>> out["total_bpd"]                                           # [B]
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.convert import as_prediction
from genjax.sampling.posterior import (ClipRange, check_clip, check_var_type, p_mean_variance,
                                       q_mean_variance, q_posterior_mean_variance, q_sample)
from genjax.sampling.schedules import DiffusionSchedule

__all__ = [
    "approx_standard_normal_cdf",
    "decoder_nll_bpd",
    "discretized_gaussian_log_likelihood",
    "full_vlb_bpd",
    "mean_flat",
    "normal_kl",
    "prior_bpd",
    "vlb_terms_bpd",
]


def mean_flat(x: jax.Array) -> jax.Array:
  """Mean over all but the first (batch) axis: ``[B, ...] -> [B]``."""
  return jnp.mean(x, axis=tuple(range(1, x.ndim)))


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
                 var_type: str = "fixed_large", clip_x0: ClipRange = None, *, cond=None,
                 num_bins: int = 256) -> dict:
  """The full variational bound ``L_vlb = L_T + sum_t L_t + L_0`` in bits/dim (test-set NLL).

  Each of the T terms uses its own ``x_t ~ q(x_t | x_0)`` (a one-sample estimate, as
  improved-diffusion's ``calc_bpd_loop``); all T are computed in one ``lax.scan`` over t.
  Ho et al. 2020, eq. 5; seed eq. 24-26; with a learned variance, Nichol & Dhariwal 2021,
  eq. 15 (seed eq. 35).

  Args:
    eps_fn: a denoiser ``eps_fn(x [B, ...], t int32 [B], cond)`` returning ``eps [B, ...]``,
      or ``Prediction(eps, var_values)`` for ``var_type="learned_range"`` (build it with
      :func:`genjax.sampling.denoiser` for x0 / v networks).
    sched: the schedule.
    x0: data ``[B, ...]`` in ``[-1, 1]`` (on the ``num_bins``-level grid).
    key: a PRNG key.
    var_type: see :func:`model_variance`.
    clip_x0: ``None`` or ``(lo, hi)``.
    cond: the condition passed to ``eps_fn``.
    num_bins: levels of the decoder's data grid (256: 8-bit images).

  Returns:
    ``dict(total_bpd [B], terms_bpd [B, T] (column t = zero-based t), prior_bpd [B],
    x0_mse [B, T], eps_mse [B, T], decoder_mean [B, ...], decoder_log_var [B, ...])``; the
    last two are ``p(x_0 | x_1)`` of the ``t = 0`` term, so that ``L_0`` can be recomputed on
    another grid with :func:`decoder_nll_bpd`.
  """
  check_var_type(var_type)
  check_clip(clip_x0)
  num_t = sched.num_timesteps
  batch = x0.shape[0]

  def body(dec, inp):
    t_scalar, k = inp
    t = jnp.full((batch,), t_scalar, dtype=jnp.int32)
    noise = jax.random.normal(k, x0.shape, x0.dtype)
    xt = q_sample(sched, x0, t, noise)
    pred = as_prediction(eps_fn(xt, t, cond))
    out = p_mean_variance(sched, pred.eps, xt, t, var_type, clip_x0, var_values=pred.var_values)
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
