"""Guidance as a transform of the denoiser, so that it works with every sampler.

A denoiser is ``eps_fn(x, t, cond)`` (:mod:`genjax.sampling.convert`). The transforms here
return another one:

  * :func:`classifier_free_guidance`: ``eps~ = (1 + w) eps(x, t, c) - w eps(x, t, null)`` (Ho &
    Salimans 2022, eq. 6; seed 003 eq. 40), both branches in one batched network call;
  * :func:`classifier_guidance`: adds ``s grad_x log p(y | x_t)`` of a classifier (Dhariwal &
    Nichol 2021; seed 003 eq. 36-38) as ``Prediction.log_p_grad``, which each sampler applies
    in its own form: score-based samplers as ``eps - sigma_t s grad`` (their Algorithm 2), the
    ancestral DDPM sampler as a mean shift ``Sigma s grad`` (their Algorithm 1).

The pure formulas are here too, for derivation checks, and :func:`drop_condition`, the label
dropout that trains one network for both branches (Ho & Salimans Algorithm 1).

Example:
  >>> guided = classifier_free_guidance(eps_fn, 2.0, null_cond=lambda y: jnp.full_like(y, 10))
  >>> x = ddim_sample(guided, sched, key, (16, 8, 8, 1), cond=labels)
"""

from __future__ import annotations

from typing import Any, Callable, Union

import jax
import jax.numpy as jnp

from genjax.sampling.convert import EpsFn, Prediction, as_prediction

Array = jax.Array
Scalar = Union[float, Array]

__all__ = ["classifier_free_eps", "classifier_free_guidance", "classifier_guidance",
           "classifier_guided_eps", "classifier_log_prob_grad", "drop_condition",
           "implicit_classifier_grad"]


# ------------------------------------------------------------------------------------------------
# The formulas.
# ------------------------------------------------------------------------------------------------


def classifier_guided_eps(eps: Array, grad_log_p_y: Array, sigma: Array,
                          scale: Scalar = 1.0) -> Array:
  """Classifier guidance on eps: ``eps_hat = eps - s sigma_t grad_x log p(y | x_t)``.

  Dhariwal & Nichol 2021, Algorithm 2 (``s`` is their gradient scale); seed 003 eq. 37-38
  (``w`` there, with ``sigma_t = sqrt(1 - abar_t)``). From the score of ``q(x_t, y)``:
  ``grad log q(x_t) + grad log q(y | x_t)`` with ``grad log q(x_t) = -eps / sigma_t`` (seed
  eq. 33, 36).

  Args:
    eps: the noise prediction ``eps_theta(x_t, t)``, ``[B, ...]``.
    grad_log_p_y: ``grad_{x_t} log p_phi(y | x_t)``, ``[B, ...]``.
    sigma: ``sigma_t`` broadcastable to ``eps`` (e.g. ``[B, 1, 1, 1]``).
    scale: the guidance scale ``s``; 0 gives ``eps`` back.
  """
  return eps - scale * sigma * grad_log_p_y


def classifier_free_eps(eps_cond: Array, eps_uncond: Array, w: Scalar) -> Array:
  """Classifier-free guidance: ``eps_hat = (1 + w) eps(x_t, t, y) - w eps(x_t, t)``.

  Ho & Salimans 2022, eq. 6; seed 003 eq. 40. It is classifier guidance (seed eq. 38) with
  the implicit classifier gradient of seed eq. 39 (:func:`implicit_classifier_grad`), so no
  separate classifier is needed. ``w = 0`` is the conditional model, ``w = -1`` the
  unconditional one.
  """
  return (1.0 + w) * eps_cond - w * eps_uncond


def implicit_classifier_grad(eps_cond: Array, eps_uncond: Array, sigma: Array) -> Array:
  """The implicit classifier's gradient, seed 003 eq. 39 (Ho & Salimans 2022, Sec. 3.2).

  ``grad_{x_t} log p(y | x_t) = grad log p(x_t | y) - grad log p(x_t)
  = -(eps(x_t, t, y) - eps(x_t, t)) / sigma_t``.
  """
  return -(eps_cond - eps_uncond) / jnp.asarray(sigma)


def drop_condition(key: Array, cond: Any, null_cond: Any, p_uncond: Scalar) -> Any:
  """Joint conditional / unconditional training: each example's condition becomes the null
  condition with probability ``p_uncond`` (Ho & Salimans 2022, Algorithm 1,
  ``c <- null with prob. p_uncond``).

  Args:
    key: a PRNG key.
    cond: a pytree of ``[B, ...]`` arrays (class labels, text embeddings, ...).
    null_cond: a pytree like ``cond`` (or broadcastable leaves, e.g. the null label as a
      scalar).
    p_uncond: the drop probability (the paper uses 0.1 or 0.2).

  Returns:
    ``cond`` with one random subset of examples replaced, the same subset in every leaf.
  """
  leaves = jax.tree.leaves(cond)
  if not leaves:
    raise ValueError("drop_condition needs a condition with a batch axis.")
  drop = jax.random.bernoulli(key, p_uncond, (leaves[0].shape[0],))

  def leaf(c, n):
    n = jnp.broadcast_to(jnp.asarray(n, c.dtype), c.shape)
    return jnp.where(drop.reshape(drop.shape + (1,) * (c.ndim - 1)), n, c)

  return jax.tree.map(leaf, cond, null_cond)


# ------------------------------------------------------------------------------------------------
# The transforms.
# ------------------------------------------------------------------------------------------------


def classifier_free_guidance(eps_fn: EpsFn, scale: Scalar,
                             null_cond: Union[Any, Callable[[Any], Any]]) -> EpsFn:
  """Classifier-free guidance of any denoiser (Ho & Salimans 2022, eq. 6; seed 003 eq. 40).

  The guided denoiser calls ``eps_fn`` once on ``[x; x]`` with ``[cond; null]`` and returns
  ``(1 + w) out(cond) - w out(null)``. Every field of a :class:`Prediction` that is affine in
  the network output (eps, a classifier-guidance gradient) is combined; a learned variance
  is the conditional branch's, as in GLIDE / improved-diffusion. For x0 or v networks the
  combination equals combining their raw outputs (each is affine in eps at fixed ``x_t`` and
  the weights sum to 1).

  Args:
    eps_fn: ``eps_fn(x, t, cond)``.
    scale: the guidance weight ``w`` (0: the conditional model).
    null_cond: the "no condition" value: a pytree like ``cond`` (leaves broadcast to its
      shapes), or a callable ``cond -> null cond`` (e.g. ``lambda y: jnp.full_like(y, K)``
      for the null label ``K``; ControlNet's guess mode drops only the text).

  Returns:
    ``guided(x, t, cond)``.
  """

  def guided(x, t, cond=None):
    if cond is None:
      raise ValueError("Classifier-free guidance needs a condition (cond=...): the guided "
                       "branch is eps(x, t, cond).")
    null = null_cond(cond) if callable(null_cond) else null_cond
    null = jax.tree.map(lambda c, n: jnp.broadcast_to(jnp.asarray(n, c.dtype), c.shape),
                        cond, null)
    b = x.shape[0]
    both = jax.tree.map(lambda c, n: jnp.concatenate([c, n]), cond, null)
    t = jnp.asarray(t)
    t2 = jnp.concatenate([t, t]) if t.ndim else t
    out = as_prediction(eps_fn(jnp.concatenate([x, x]), t2, both))
    combine = lambda a: None if a is None else classifier_free_eps(a[:b], a[b:], scale)
    eps = combine(out.eps)
    var = None if out.var_values is None else out.var_values[:b]
    grad = combine(out.log_p_grad)
    if var is None and grad is None:
      return eps
    return Prediction(eps, var, grad)

  return guided


def classifier_guidance(eps_fn: EpsFn, grad_fn: Callable[[Array, Array, Any], Array],
                        scale: Scalar) -> EpsFn:
  """Classifier guidance of any denoiser (Dhariwal & Nichol 2021; seed 003 eq. 36-38).

  Args:
    eps_fn: ``eps_fn(x, t, cond)``.
    grad_fn: ``grad_fn(x, t, cond) -> grad_x log p(y | x_t)`` ``[B, ...]`` (e.g.
      :func:`classifier_log_prob_grad` of a noise-conditional classifier).
    scale: the gradient scale ``s``.

  Returns:
    ``guided(x, t, cond) -> Prediction`` with ``log_p_grad = s grad`` (added to any earlier
    one); the sampler applies it (see the module docstring).
  """

  def guided(x, t, cond=None):
    p = as_prediction(eps_fn(x, t, cond))
    g = scale * grad_fn(x, t, cond).astype(x.dtype)
    if p.log_p_grad is not None:
      g = g + p.log_p_grad
    return p._replace(log_p_grad=g)

  return guided


def classifier_log_prob_grad(logits_fn: Callable[[Array, Array], Array],
                             labels_of: Callable[[Any], Array] = lambda cond: cond):
  """``grad_fn(x, t, cond) = grad_x sum_i log softmax(logits_fn(x, t))[i, y_i]`` with
  ``y = labels_of(cond)``: the gradient classifier guidance needs, from a classifier's logits.

  Examples are independent, so the gradient of the summed log-probability is each example's
  own ``grad_{x_i} log p(y_i | x_i, t)``.
  """

  def grad_fn(x, t, cond):
    y = labels_of(cond)

    def log_p(x):
      logp = jax.nn.log_softmax(logits_fn(x, t), axis=-1)
      return jnp.sum(jnp.take_along_axis(logp, y[:, None], axis=-1))

    return jax.grad(log_p)(x)

  return grad_fn
