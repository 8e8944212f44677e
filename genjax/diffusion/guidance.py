"""Classifier guidance and classifier-free guidance of a noise predictor (pure functions).

Both act on the predicted noise, so they wrap any ``eps_fn(x, t)`` before it reaches a sampler
(DESIGN.md item 4). Timesteps are zero-based (index ``t`` is the paper's step ``t+1``); the
caller supplies ``sqrt(1 - abar_t)`` already gathered at ``t``, e.g. with
``extract(sched.sqrt_one_minus_alphas_cumprod, t, x.shape)``.

Example:
  >>> eps_hat = classifier_free_eps(eps_fn(x, t, y), eps_fn(x, t, None), w=3.0)
"""

from __future__ import annotations

from typing import Union

import jax
import jax.numpy as jnp

Array = jax.Array
Scalar = Union[float, Array]

__all__ = ["classifier_free_apply", "classifier_free_eps", "classifier_guided_eps", "drop_labels",
           "implicit_classifier_grad"]


def classifier_guided_eps(eps: Array, grad_log_p_y: Array, sqrt_one_minus_abar: Array,
                          scale: Scalar = 1.0) -> Array:
  """Classifier guidance on eps: ``eps_hat = eps - s sqrt(1 - abar_t) grad_x log p(y | x_t)``.

  Dhariwal & Nichol 2021, Algorithm 2 (``s`` is their gradient scale); seed 003 eq. 37-38
  (``w`` there). From the score of ``q(x_t, y)``: ``grad log q(x_t) + grad log q(y|x_t)``
  with ``grad log q(x_t) = -eps / sqrt(1 - abar_t)`` (seed eq. 33, 36).

  Args:
    eps: the unconditional noise prediction ``eps_theta(x_t, t)``, ``[B, ...]``.
    grad_log_p_y: ``grad_{x_t} log p_phi(y | x_t)`` from a classifier, ``[B, ...]``.
    sqrt_one_minus_abar: ``sqrt(1 - abar_t)`` broadcastable to ``eps`` (e.g. ``[B, 1, 1, 1]``).
    scale: the guidance scale ``s`` (``w``); 0 gives ``eps`` back.

  Returns:
    The guided noise prediction, ``[B, ...]``.
  """
  return eps - scale * sqrt_one_minus_abar * grad_log_p_y


def classifier_free_eps(eps_cond: Array, eps_uncond: Array, w: Scalar) -> Array:
  """Classifier-free guidance: ``eps_hat = (1 + w) eps(x_t, t, y) - w eps(x_t, t)``.

  Ho & Salimans 2022, eq. 6; seed 003 eq. 40. It is classifier guidance (seed eq. 38) with
  the implicit classifier gradient of seed eq. 39,
  ``grad log p(y|x_t) = -(eps(x_t, t, y) - eps(x_t, t)) / sqrt(1 - abar_t)``
  (:func:`implicit_classifier_grad`), so no separate classifier is needed.

  Args:
    eps_cond: the class-conditional prediction ``eps_theta(x_t, t, y)``, ``[B, ...]``.
    eps_uncond: the unconditional prediction ``eps_theta(x_t, t)`` (the null label),
      ``[B, ...]``.
    w: the guidance weight (broadcastable); ``w = 0`` is the conditional model, ``w = -1``
      the unconditional one.

  Returns:
    The guided noise prediction, ``[B, ...]``.
  """
  return (1.0 + w) * eps_cond - w * eps_uncond


def implicit_classifier_grad(eps_cond: Array, eps_uncond: Array,
                             sqrt_one_minus_abar: Array) -> Array:
  """The implicit classifier's gradient, seed 003 eq. 39 (Ho & Salimans 2022, Sec. 3.2).

  ``grad_{x_t} log p(y | x_t) = grad log p(x_t | y) - grad log p(x_t)
  = -(eps(x_t, t, y) - eps(x_t, t)) / sqrt(1 - abar_t)``.

  Args:
    eps_cond: ``eps_theta(x_t, t, y)``, ``[B, ...]``.
    eps_uncond: ``eps_theta(x_t, t)``, ``[B, ...]``.
    sqrt_one_minus_abar: ``sqrt(1 - abar_t)`` broadcastable to them.

  Returns:
    ``grad_{x_t} log p(y | x_t)``, ``[B, ...]``.
  """
  return -(eps_cond - eps_uncond) / jnp.asarray(sqrt_one_minus_abar)


def drop_labels(key: Array, labels: Array, p_uncond: Scalar, null_label: int) -> Array:
  """Joint conditional/unconditional training: each label becomes the null label with
  probability ``p_uncond`` (Ho & Salimans 2022, Algorithm 1, ``c <- null with prob. p_uncond``).

  Args:
    key: a PRNG key.
    labels: int ``[B]`` class labels.
    p_uncond: the drop probability (the paper uses 0.1 or 0.2).
    null_label: the label that means "no class" (``num_classes`` for the genjax U-Net / DiT).

  Returns:
    int ``[B]``, ``labels`` with a random subset replaced by ``null_label``.
  """
  drop = jax.random.bernoulli(key, p_uncond, labels.shape)
  return jnp.where(drop, jnp.asarray(null_label, labels.dtype), labels)


def classifier_free_apply(apply_fn, w: Scalar, null_label: int, learned_variance: bool = False):
  """Wraps ``apply_fn(params, x, t, y)`` so that it returns the guided output of eq. 6 of Ho &
  Salimans 2022 (seed 003 eq. 40), with one network call on ``[x; x]`` and ``[y; null]``.

  The combination ``(1 + w) out(y) - w out(null)`` is taken on the raw network output. For the
  eps, x0 and v parameterizations this is the same as combining eps, since each is an affine
  function of eps at fixed ``x_t`` whose coefficients do not depend on the label
  (``x0 = (x_t - sqrt(1-abar) eps) / sqrt(abar)``; the weights ``1 + w`` and ``-w`` sum to 1).
  With a learned variance (``2C`` channels) only the first ``C`` channels (the mean part) are
  guided; the variance channels are the conditional model's, as in GLIDE / improved-diffusion.

  Args:
    apply_fn: ``apply_fn(params, x [B, ...], t [B] or scalar, y int [B]) -> [B, ...]``.
    w: guidance weight; 0 returns the conditional model.
    null_label: the "no class" label.
    learned_variance: the output's last axis is ``[mean part | variance part]``.

  Returns:
    ``guided(params, x, t, y)`` with the same signature and output shape.
  """

  def guided(params, x, t, y):
    b = x.shape[0]
    t = jnp.broadcast_to(jnp.asarray(t), (b,))
    out = apply_fn(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                   jnp.concatenate([y, jnp.full_like(y, null_label)]))
    cond, uncond = out[:b], out[b:]
    if not learned_variance:
      return classifier_free_eps(cond, uncond, w)
    c = cond.shape[-1] // 2
    return jnp.concatenate([classifier_free_eps(cond[..., :c], uncond[..., :c], w),
                            cond[..., c:]], axis=-1)

  return guided
