"""What a sampler does to its predicted ``x0``: nothing, static clipping, or Imagen's dynamic
thresholding, as one transform of a denoiser so that every sampler that forms ``x0`` gets it.

Every sampler here forms ``x0 = (x_t - sigma_t eps) / alpha_t`` from the noise prediction (DDPM
and DDIM explicitly; DPM-Solver++, UniPC and DEIS as their data prediction; DPM-Solver, PNDM and
the sigma-space Euler / Heun samplers implicitly, since ``eps`` and ``x0`` determine each other
at fixed ``x_t``). :func:`threshold_denoiser` processes that ``x0`` and gives back the ``eps``
that agrees with it, ``eps' = (x_t - alpha_t x0') / sigma_t``, which is what diffusers does for
its noise-prediction solvers (``DPMSolverMultistepScheduler.convert_model_output`` with
``thresholding=True``); a data-prediction solver then sees exactly ``x0'``.

* static: ``x0' = clip(x0, lo, hi)`` (Ho et al. 2020's reference code; Imagen's "static
  thresholding", Saharia et al. 2022 Sec. 2.3).
* dynamic: Saharia et al. 2022, Sec. 2.3 ("dynamic thresholding"): per example,
  ``s = max(1, percentile(|x0|, p))`` (optionally also ``min(s, max_value)``, diffusers'
  ``sample_max_value``), then ``x0' = clip(x0, -s, s) / s``. With ``s = 1`` it is the static
  clip to ``[-1, 1]``, so it changes nothing when ``|x0| <= 1``.

Example:
  >>> proc = x0_processor("dynamic", percentile=0.995)
  >>> eps_fn = threshold_denoiser(eps_fn, sched, proc)
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from genjax.sampling.convert import EpsFn, Prediction, as_prediction, eps_of

__all__ = ["THRESHOLDINGS", "dynamic_threshold", "static_threshold", "threshold_denoiser",
           "x0_processor"]

THRESHOLDINGS = ("model", "none", "static", "dynamic")

X0Fn = Callable[[jax.Array], jax.Array]


def static_threshold(x0: jax.Array, lo: float = -1.0, hi: float = 1.0) -> jax.Array:
  """Static thresholding: ``clip(x0, lo, hi)`` (Saharia et al. 2022, Sec. 2.3)."""
  return jnp.clip(x0, lo, hi).astype(x0.dtype)


def dynamic_threshold(x0: jax.Array, percentile: float = 0.995,
                      max_value: Optional[float] = None) -> jax.Array:
  """Dynamic thresholding (Saharia et al. 2022, "Imagen", Sec. 2.3).

  Per example ``b``: ``s_b = max(1, quantile_p(|x0_b|))`` over all its elements (linear
  interpolation between order statistics, as ``torch.quantile``), bounded above by
  ``max_value`` if given (diffusers' ``sample_max_value``; Imagen has no bound), and
  ``x0'_b = clip(x0_b, -s_b, s_b) / s_b``.

  Args:
    x0: ``[B, ...]`` predicted data.
    percentile: p in ``(0, 1]`` (Imagen: 0.995 works well; the paper's 99.5th percentile).
    max_value: an upper bound on ``s``, or None.

  Returns:
    ``[B, ...]`` of ``x0``'s dtype.
  """
  b = x0.shape[0]
  flat = jnp.abs(x0.reshape(b, -1))
  # The quantile in float32 at least (jnp.quantile sorts; half precision would lose the order).
  work = flat.astype(jnp.promote_types(flat.dtype, jnp.float32))
  s = jnp.maximum(jnp.quantile(work, percentile, axis=1), 1.0)
  if max_value is not None:
    s = jnp.minimum(s, max_value)
  s = s.reshape((b,) + (1,) * (x0.ndim - 1)).astype(x0.dtype)
  return (jnp.clip(x0, -s, s) / s).astype(x0.dtype)


def x0_processor(kind: str, *, percentile: float = 0.995, max_value: Optional[float] = None,
                 clip=(-1.0, 1.0)) -> Optional[X0Fn]:
  """The ``x0 -> x0'`` map of a thresholding kind: ``"none"`` / ``"model"`` (None: the sampler's
  own handling), ``"static"`` (clip to ``clip``) or ``"dynamic"`` (:func:`dynamic_threshold`).

  Raises:
    ValueError: an unknown kind or percentile outside ``(0, 1]``.
  """
  if kind not in THRESHOLDINGS:
    raise ValueError(f"Unknown thresholding {kind!r}; valid: {', '.join(THRESHOLDINGS)}.")
  if not 0.0 < percentile <= 1.0:
    raise ValueError(f"The dynamic-thresholding percentile must be in (0, 1], got {percentile}.")
  if kind == "static":
    lo, hi = (-1.0, 1.0) if clip is None else clip
    return lambda x0: static_threshold(x0, lo, hi)
  if kind == "dynamic":
    return lambda x0: dynamic_threshold(x0, percentile, max_value)
  return None


def threshold_denoiser(eps_fn: EpsFn, process, fn: Optional[X0Fn]) -> EpsFn:
  """``eps_fn`` whose implied ``x0`` is processed by ``fn`` (see the module docstring).

  ``x0 = (x - sigma_t eps) / alpha_t`` with the process's coefficients at the time the sampler
  passes, ``x0' = fn(x0)``, and the returned noise prediction is
  ``eps' = (x - alpha_t x0') / sigma_t``. Classifier guidance (``log_p_grad``) is folded into
  ``eps`` first (:func:`~genjax.sampling.convert.eps_of`), so the thresholded ``x0`` is the
  guided one; a learned variance is passed through.

  Args:
    eps_fn: ``eps_fn(x, t, cond)``.
    process: the process ``t`` belongs to (``marginal_alpha``, ``marginal_std``).
    fn: ``x0 -> x0'``, or None (``eps_fn`` is returned unchanged).
  """
  if fn is None:
    return eps_fn

  def processed(x, t, cond=None):
    p = as_prediction(eps_fn(x, t, cond))
    alpha = jnp.asarray(process.marginal_alpha(t)).astype(x.dtype)
    sigma = jnp.asarray(process.marginal_std(t)).astype(x.dtype)
    a = alpha.reshape(alpha.shape + (1,) * (x.ndim - alpha.ndim))
    s = sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim))
    eps = eps_of(p, sigma).astype(x.dtype)
    x0 = fn((x - s * eps) / a)
    eps = ((x - a * x0) / s).astype(x.dtype)
    return eps if p.var_values is None else Prediction(eps, p.var_values)

  return processed
