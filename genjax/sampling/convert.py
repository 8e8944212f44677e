"""The converters between what a network predicts and what a sampler needs, written once.

For a Gaussian process ``x_t = alpha_t x_0 + sigma_t eps`` every prediction is an affine
function of the others at fixed ``x_t``:

  * ``eps``: the noise (Ho et al. 2020, eq. 11; seed 003 eq. 27);
  * ``x0``: the data, ``x0 = (x_t - sigma eps) / alpha`` (inverse of eq. 4; the EDM denoiser
    ``D(x, sigma)`` and a consistency function are x0-predictions with ``alpha = 1``);
  * ``v``: the velocity ``v = alpha eps - sigma x0`` (Salimans & Ho 2022, Sec. 4 / App. D), so
    ``x0 = (alpha x_t - sigma v) / (alpha^2 + sigma^2)`` and
    ``eps = (sigma x_t + alpha v) / (alpha^2 + sigma^2)``; the denominator is 1 on VP processes,
    where these are the paper's formulas, and keeps them exact on sub-VP and VE;
  * ``score``: ``grad log p_t(x_t) = -E[eps | x_t] / sigma`` (Tweedie; seed 003 eq. 33).

**The denoiser contract.** Every sampler takes ``eps_fn(x [B, ...], t, cond) -> out``: ``t`` is
the process's time (a scalar shared by the batch when a sampler calls it, or ``[B]``), ``cond``
any pytree (a class label, a text embedding, a low-resolution image, a control map, a mask, or
None), and ``out`` either the noise prediction ``eps [B, ...]`` or a :class:`Prediction` that
also carries a learned variance or a classifier-guidance gradient. :func:`denoiser` builds one
from a network of any prediction type; guidance (:mod:`genjax.sampling.guidance`) transforms it.

Example:
  >>> eps_fn = denoiser(lambda x, t, c: net.apply(p, x, t, y=c), sched, prediction="v")
  >>> x = ddim_sample(eps_fn, sched, key, (16, 8, 8, 1), num_steps=50)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from genjax.sampling.processes import bcast

__all__ = ["PREDICTIONS", "Prediction", "as_prediction", "denoiser", "eps_from_prediction",
           "eps_from_score", "eps_from_v", "eps_from_x0", "eps_of", "predict_eps_from_x0",
           "predict_v", "predict_x0_from_eps", "prediction_to_eps_x0", "score_fn_of",
           "score_from_eps", "split_learned_output", "v_from_eps_x0", "x0_from_eps",
           "x0_from_v", "x0_fn_of"]

PREDICTIONS = ("eps", "x0", "v", "score")

Array = jax.Array
EpsFn = Callable[[Array, Array, Any], Any]


class Prediction(NamedTuple):
  """What a denoiser returns when the noise prediction alone is not enough.

  Attributes:
    eps: the noise prediction ``[B, ...]``.
    var_values: improved DDPM's learned-variance output ``[B, ...]`` (the interpolation ``v``
      of Nichol & Dhariwal 2021, eq. 15, before ``(v + 1) / 2``), or None.
    log_p_grad: classifier guidance's ``s grad_x log p(y | x_t)`` ``[B, ...]``, not yet applied
      (Dhariwal & Nichol 2021): score-based samplers fold it into ``eps`` as
      ``eps - sigma_t log_p_grad`` (:func:`eps_of`); ancestral DDPM shifts its mean by
      ``Sigma log_p_grad`` (their Algorithm 1). None without classifier guidance.
  """
  eps: Array
  var_values: Optional[Array] = None
  log_p_grad: Optional[Array] = None


def as_prediction(out) -> Prediction:
  """A denoiser's output as a :class:`Prediction`: an array is ``eps``; a 2-tuple is
  ``(eps, var_values)``.

  Raises:
    ValueError: any other form.
  """
  if isinstance(out, Prediction):
    return out
  if isinstance(out, (tuple, list)):
    if len(out) != 2:
      raise ValueError(f"A denoiser must return eps, (eps, var_values) or a Prediction; got a "
                       f"sequence of {len(out)} items.")
    return Prediction(eps=out[0], var_values=out[1])
  return Prediction(eps=out)


def eps_of(out, sigma) -> Array:
  """The noise prediction a score-based sampler uses: ``eps - sigma_t log_p_grad`` when the
  output carries classifier guidance (seed 003 eq. 38, Dhariwal & Nichol 2021 Algorithm 2),
  else ``eps``. ``sigma`` is ``sigma_t``, a scalar or ``[B]``."""
  p = as_prediction(out)
  if p.log_p_grad is None:
    return p.eps
  return p.eps - bcast(jnp.asarray(sigma, p.eps.dtype), p.eps) * p.log_p_grad


# ------------------------------------------------------------------------------------------------
# Conversions at fixed x_t, given alpha_t and sigma_t (scalars, [B], or broadcastable arrays).
# ------------------------------------------------------------------------------------------------


def _b(v, x):
  return bcast(v, x)


def x0_from_eps(x: Array, eps: Array, alpha, sigma) -> Array:
  """``x0 = (x_t - sigma_t eps) / alpha_t`` (inverse of Ho et al. 2020 eq. 4; seed eq. 17)."""
  return (x - _b(sigma, x) * eps) / _b(alpha, x)


def eps_from_x0(x: Array, x0: Array, alpha, sigma) -> Array:
  """``eps = (x_t - alpha_t x0) / sigma_t``."""
  return (x - _b(alpha, x) * x0) / _b(sigma, x)


def _vp_norm(alpha, sigma, x):
  """``alpha^2 + sigma^2`` (1 on VP processes)."""
  return _b(alpha, x) ** 2 + _b(sigma, x) ** 2


def x0_from_v(x: Array, v: Array, alpha, sigma) -> Array:
  """``x0 = (alpha_t x_t - sigma_t v) / (alpha_t^2 + sigma_t^2)``: Salimans & Ho 2022, Sec. 4's
  ``alpha x - sigma v`` on VP processes, and the exact inverse of ``x_t = alpha x0 + sigma eps``,
  ``v = alpha eps - sigma x0`` on any other."""
  return (_b(alpha, x) * x - _b(sigma, x) * v) / _vp_norm(alpha, sigma, x)


def eps_from_v(x: Array, v: Array, alpha, sigma) -> Array:
  """``eps = (sigma_t x_t + alpha_t v) / (alpha_t^2 + sigma_t^2)`` (Salimans & Ho 2022, Sec. 4's
  ``sigma x + alpha v`` on VP processes; see :func:`x0_from_v`)."""
  return (_b(sigma, x) * x + _b(alpha, x) * v) / _vp_norm(alpha, sigma, x)


def v_from_eps_x0(eps: Array, x0: Array, alpha, sigma) -> Array:
  """The velocity target ``v = alpha_t eps - sigma_t x0`` (Salimans & Ho 2022, App. D)."""
  return _b(alpha, eps) * eps - _b(sigma, eps) * x0


def score_from_eps(eps: Array, sigma) -> Array:
  """``s = -eps / sigma_t`` (seed 003 eq. 33 with ``sigma_t = sqrt(1 - abar_t)``; seed 001
  section III.B's ``eps = -sigma s`` for SMLD)."""
  return -eps / _b(jnp.asarray(sigma, eps.dtype), eps)


def eps_from_score(score: Array, sigma) -> Array:
  """``eps = -sigma_t s``, the inverse of :func:`score_from_eps`."""
  return -score * _b(jnp.asarray(sigma, score.dtype), score)


def prediction_to_eps_x0(out: Array, x: Array, alpha, sigma, prediction: str = "eps"):
  """A network output in ``prediction`` as ``(eps, x0)``; the one dispatcher.

  Args:
    out: ``[B, ...]``: eps, x0, v or the score.
    x: the network input ``x_t`` ``[B, ...]``.
    alpha, sigma: ``alpha_t``, ``sigma_t`` (scalar or ``[B]``).
    prediction: one of :data:`PREDICTIONS`.

  Raises:
    ValueError: an unknown prediction type.
  """
  if prediction == "eps":
    return out, x0_from_eps(x, out, alpha, sigma)
  if prediction == "x0":
    return eps_from_x0(x, out, alpha, sigma), out
  if prediction == "v":
    return eps_from_v(x, out, alpha, sigma), x0_from_v(x, out, alpha, sigma)
  if prediction == "score":
    eps = eps_from_score(out, sigma)
    return eps, x0_from_eps(x, eps, alpha, sigma)
  raise ValueError(f"Unknown prediction type {prediction!r}; valid: {', '.join(PREDICTIONS)}.")


def eps_from_prediction(out: Array, x: Array, alpha, sigma, prediction: str = "eps") -> Array:
  """``eps`` of a network output in ``prediction`` (see :func:`prediction_to_eps_x0`)."""
  if prediction == "eps":
    return out
  if prediction == "x0":
    return eps_from_x0(x, out, alpha, sigma)
  if prediction == "v":
    return eps_from_v(x, out, alpha, sigma)
  if prediction == "score":
    return eps_from_score(out, sigma)
  raise ValueError(f"Unknown prediction type {prediction!r}; valid: {', '.join(PREDICTIONS)}.")


# -- the discrete schedule's spelling (zero-based integer t) --------------------------------------


def predict_x0_from_eps(sched, xt: Array, t: Array, eps: Array) -> Array:
  """``x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)`` at zero-based int ``t`` (improved-
  diffusion's ``sqrt_recip_alphas_cumprod x_t - sqrt_recipm1_alphas_cumprod eps``)."""
  return (_b(jnp.take(sched.sqrt_recip_alphas_cumprod, t, axis=0), xt) * xt
          - _b(jnp.take(sched.sqrt_recipm1_alphas_cumprod, t, axis=0), xt) * eps)


def predict_eps_from_x0(sched, xt: Array, t: Array, x0: Array) -> Array:
  """``eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)`` at zero-based int ``t``."""
  return ((_b(jnp.take(sched.sqrt_recip_alphas_cumprod, t, axis=0), xt) * xt - x0)
          / _b(jnp.take(sched.sqrt_recipm1_alphas_cumprod, t, axis=0), xt))


def predict_v(sched, x0: Array, t: Array, eps: Array) -> Array:
  """The velocity target ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0`` at zero-based ``t``."""
  return v_from_eps_x0(eps, x0, sched.marginal_alpha(t), sched.marginal_std(t))


# ------------------------------------------------------------------------------------------------
# Denoisers.
# ------------------------------------------------------------------------------------------------


def split_learned_output(out: Array):
  """Splits a learned-variance network output ``[..., 2C]`` into ``(mean part, v)``.

  improved-diffusion's ``th.split(model_output, C, dim=1)`` on the channel axis, which is the
  last axis here (NHWC images, ``[B, D]`` points): the first ``C`` channels are the mean
  parameterization and the last ``C`` the variance interpolation ``v`` of Nichol & Dhariwal
  2021, eq. 15 (seed eq. 35).

  Raises:
    ValueError: the last axis is odd.
  """
  c2 = out.shape[-1]
  if c2 % 2:
    raise ValueError(
        f"A learned-variance network must output 2C channels (mean part and variance part); "
        f"got {c2} on the last axis of shape {out.shape}. Build it with out_channels=2*C.")
  return out[..., : c2 // 2], out[..., c2 // 2:]


def denoiser(model_fn: Callable[[Array, Array, Any], Array], process, prediction: str = "eps",
             *, learned_variance: bool = False) -> EpsFn:
  """Turns a network into the ``eps_fn(x, t, cond)`` that samplers take.

  The output is converted with the process's ``alpha_t``, ``sigma_t`` at the time ``t`` the
  sampler passes (for a discrete schedule the zero-based step; for a continuous view of it the
  continuous time, so that x0- and v-networks are converted exactly between steps).

  Args:
    model_fn: ``model_fn(x [B, ...], t, cond) -> out`` in ``prediction``; with
      ``learned_variance`` the output has 2C channels ``[mean part | variance part]``.
    process: the noise process ``t`` belongs to.
    prediction: ``"eps"``, ``"x0"``, ``"v"`` or ``"score"``.
    learned_variance: split the output and return ``Prediction(eps, var_values)``.

  Returns:
    ``eps_fn(x, t, cond)``.
  """
  if prediction not in PREDICTIONS:
    raise ValueError(f"Unknown prediction type {prediction!r}; valid: {', '.join(PREDICTIONS)}.")

  def eps_fn(x, t, cond=None):
    out = model_fn(x, t, cond)
    var_values = None
    if learned_variance:
      out, var_values = split_learned_output(out)
    if prediction != "eps":
      out = eps_from_prediction(out, x, process.marginal_alpha(t), process.marginal_std(t),
                                prediction).astype(x.dtype)
    return out if var_values is None else Prediction(out, var_values)

  return eps_fn


def score_fn_of(eps_fn: EpsFn, process, cond=None) -> Callable[[Array, Array], Array]:
  """``score_fn(x, t) = -eps(x, t, cond) / sigma_t`` (classifier guidance applied) for the
  score-based samplers and likelihoods of score_sde's interface."""

  def score_fn(x, t):
    sigma = process.marginal_std(t)
    return score_from_eps(eps_of(eps_fn(x, t, cond), sigma), sigma)

  return score_fn


def x0_fn_of(eps_fn: EpsFn, process, cond=None) -> Callable[[Array, Array], Array]:
  """``x0_fn(x, t) = (x - sigma_t eps) / alpha_t``: the denoised estimate ``E[x_0 | x_t]``."""

  def x0_fn(x, t):
    sigma = process.marginal_std(t)
    return x0_from_eps(x, eps_of(eps_fn(x, t, cond), sigma), process.marginal_alpha(t), sigma)

  return x0_fn
