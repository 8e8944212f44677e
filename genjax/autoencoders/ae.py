"""Deterministic autoencoders: reconstruction losses, corruptions, sparsity and contraction.

Pure functions of arrays (DESIGN.md item 1). Equation numbers are those of the seed notes
``seeds/003`` section 1.1; where the notes are loose the cited paper wins (said inline).

* eq. 1, AE: ``L = 1/n sum_i ||x_i - f(g(x_i))||^2`` -> :func:`mse_reconstruction`; the
  Bernoulli cross-entropy alternative -> :func:`bce_reconstruction`.
* eq. 2, denoising AE (Vincent et al. 2008): the same loss with ``g`` applied to a corrupted
  ``x~`` -> :func:`corrupt` (masking, Gaussian, salt-and-pepper; Vincent et al. 2010, Sec. 4.2).
* eq. 3, sparse AE: ``beta sum_j KL(rho || rho_hat_j)`` over the mean activation of each
  hidden unit -> :func:`kl_sparsity_penalty`; k-sparse AE (Makhzani & Frey 2013): keep the k
  largest activations, backpropagate through those only -> :func:`topk_mask`, :func:`k_sparse`.
* eq. 4, contractive AE (Rifai et al. 2011): ``||J_f(x)||_F^2`` of the encoder ->
  :func:`contractive_penalty` (exact, ``jax.jacfwd``) and :func:`contractive_penalty_hutchinson`
  (unbiased, ``E_v ||J v||^2`` with ``E[v v^T] = I``, one ``jax.jvp`` per projection).

Images are [..., H, W, C] in [-1, 1]; ``event_ndim`` says how many trailing axes make one
example (3 for images), and per-example quantities are summed over them.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

CORRUPTIONS = ("none", "mask", "gaussian", "salt_pepper")


def _sum_event(x: Array, event_ndim: int) -> Array:
  return jnp.sum(x, axis=tuple(range(x.ndim - event_ndim, x.ndim))) if event_ndim else x


def mse_reconstruction(x: Array, x_hat: Array, event_ndim: int = 3) -> Array:
  """Squared reconstruction error of each example, seed 003 eq. 1 (and eq. 2 for a DAE).

  ``||x - x_hat||_2^2`` summed over the example's dimensions; average it over the batch for
  the ``1/n sum_i`` of eq. 1.

  Args:
    x: [..., *event] targets.
    x_hat: [..., *event] reconstructions f(g(x)) (or f(g(x~)) for a denoising AE).
    event_ndim: trailing axes forming one example.

  Returns:
    [...] per-example squared error.
  """
  return _sum_event(jnp.square(x - x_hat), event_ndim)


def bce_reconstruction(x: Array, logits: Array, event_ndim: int = 3) -> Array:
  """Bernoulli cross-entropy of each example (the AE alternative to eq. 1's MSE).

  Targets are ``p = (x + 1) / 2`` in [0, 1]; the loss is
  ``-sum [p log sigmoid(l) + (1 - p) log(1 - sigmoid(l))]``, computed stably as
  ``softplus(l) - p l``. For binary p it is the negative Bernoulli log-likelihood.

  Args:
    x: [..., *event] targets in [-1, 1].
    logits: [..., *event] decoder logits.
    event_ndim: trailing axes forming one example.

  Returns:
    [...] per-example cross-entropy in nats.
  """
  p = (x + 1.0) / 2.0
  return _sum_event(jax.nn.softplus(logits) - p * logits, event_ndim)


def corrupt(key: Array, x: Array, kind: str, level: float) -> Array:
  """The corrupted input x~ of a denoising AE (seed 003 eq. 2; Vincent et al. 2010, Sec. 4.2).

  * ``"mask"``: each dimension is set to the background value -1 (a "zero" pixel) with
    probability ``level`` (masking noise).
  * ``"gaussian"``: ``x + level * eps``, eps ~ N(0, I) (isotropic Gaussian noise).
  * ``"salt_pepper"``: each dimension, with probability ``level``, is set to -1 or +1 (the
    minimum or maximum) with equal probability.
  * ``"none"``: x unchanged.

  Args:
    key: PRNG key.
    x: [...] data in [-1, 1].
    kind: one of :data:`CORRUPTIONS`.
    level: corruption probability (mask, salt_pepper) or noise standard deviation (gaussian).

  Returns:
    [...] corrupted data, same shape and dtype as x.
  """
  if kind == "none":
    return x
  k1, k2 = jax.random.split(key)
  if kind == "mask":
    return jnp.where(jax.random.bernoulli(k1, level, x.shape), -1.0, x).astype(x.dtype)
  if kind == "gaussian":
    return x + level * jax.random.normal(k1, x.shape, x.dtype)
  if kind == "salt_pepper":
    hit = jax.random.bernoulli(k1, level, x.shape)
    value = jnp.where(jax.random.bernoulli(k2, 0.5, x.shape), 1.0, -1.0)
    return jnp.where(hit, value, x).astype(x.dtype)
  raise ValueError(f"Unknown corruption {kind!r}; valid: {CORRUPTIONS}.")


def bernoulli_kl(rho: float | Array, rho_hat: Array, eps: float = 1e-6) -> Array:
  """KL(Bernoulli(rho) || Bernoulli(rho_hat)), elementwise (the summand of seed 003 eq. 3).

  ``rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat))``; ``rho_hat`` is
  clipped to [eps, 1 - eps].
  """
  rho_hat = jnp.clip(rho_hat, eps, 1.0 - eps)
  rho = jnp.asarray(rho, rho_hat.dtype)
  return (jax.scipy.special.xlogy(rho, rho) - rho * jnp.log(rho_hat)
          + jax.scipy.special.xlogy(1.0 - rho, 1.0 - rho) - (1.0 - rho) * jnp.log1p(-rho_hat))


def kl_sparsity_penalty(h: Array, rho: float) -> Array:
  """The sparsity penalty of seed 003 eq. 3, ``sum_j KL(rho || rho_hat_j)`` (without beta).

  ``rho_hat_j`` is the mean activation of hidden unit j over the batch (Ng, "Sparse
  autoencoder" lecture notes, Sec. 2.6). The activations must lie in (0, 1) (a sigmoid code).

  Args:
    h: [B, J] hidden activations in (0, 1).
    rho: the target mean activation (e.g. 0.05).

  Returns:
    Scalar penalty (a batch quantity, not per example).
  """
  return jnp.sum(bernoulli_kl(rho, jnp.mean(h, axis=0)))


def topk_mask(h: Array, k: int) -> Array:
  """0/1 mask of the k largest entries of each row (k-sparse AE, Makhzani & Frey 2013).

  Exactly k ones per row, ties broken by position (``jax.lax.top_k``).

  Args:
    h: [..., J] activations.
    k: number of units to keep, 1 <= k <= J.

  Returns:
    [..., J] mask in h's dtype.
  """
  if not 1 <= k <= h.shape[-1]:
    raise ValueError(f"topk_mask: k must lie in [1, {h.shape[-1]}] (the code width), got {k}.")
  _, idx = jax.lax.top_k(h, k)
  return jnp.sum(jax.nn.one_hot(idx, h.shape[-1], dtype=h.dtype), axis=-2)


def k_sparse(h: Array, k: int) -> Array:
  """Keeps the k largest activations of each row and zeroes the rest (Makhzani & Frey 2013,
  Algorithm 1; seed 003 Sec. 1.1.3, steps 1-3).

  The mask is a constant of the backward pass (``stop_gradient``), so the gradient flows
  through the k kept units only: ``d k_sparse(h) / d h = diag(mask)``.

  Args:
    h: [..., J] activations.
    k: number of units to keep.

  Returns:
    [..., J] sparse code ``h * mask``.
  """
  return h * jax.lax.stop_gradient(topk_mask(h, k))


def contractive_penalty(encode_fn: Callable[[Array], Array], x: Array,
                        event_ndim: int = 3) -> Array:
  """``||J_f(x)||_F^2 = sum_ij (d h_j / d x_i)^2`` exactly, seed 003 eq. 4 (Rifai et al. 2011).

  Forward-mode Jacobian (``jax.jacfwd``) of one example's code, vmapped over the batch; its
  cost grows with the input dimension, so use :func:`contractive_penalty_hutchinson` for
  larger inputs.

  Args:
    encode_fn: ``encode_fn(x [B, *event]) -> h [B, J]``; examples must not interact (no batch
      statistics).
    x: [B, *event] inputs.
    event_ndim: trailing axes forming one example.

  Returns:
    [B] squared Frobenius norm of each example's encoder Jacobian.
  """
  del event_ndim

  def one(xi):
    jac = jax.jacfwd(lambda v: encode_fn(v[None])[0])(xi)  # [J, *event]
    return jnp.sum(jnp.square(jac))

  return jax.vmap(one)(x)


def contractive_penalty_hutchinson(key: Array, encode_fn: Callable[[Array], Array], x: Array,
                                   num_projections: int = 1, distribution: str = "rademacher",
                                   event_ndim: int = 3) -> Array:
  """Unbiased estimate of ``||J_f(x)||_F^2`` (seed 003 eq. 4) with random projections.

  ``||J||_F^2 = tr(J^T J) = E_v[||J v||^2]`` for any v with ``E[v v^T] = I`` (Hutchinson 1989);
  ``J v`` is one Jacobian-vector product (``jax.jvp``), i.e. about one extra forward pass per
  projection, whatever the input dimension.

  Args:
    key: PRNG key for the projections.
    encode_fn: ``encode_fn(x [B, *event]) -> h [B, J]``; examples must not interact.
    x: [B, *event] inputs.
    num_projections: number of projections averaged.
    distribution: "rademacher" (+-1, lower variance) or "gaussian".
    event_ndim: trailing axes forming one example.

  Returns:
    [B] estimates of the squared Frobenius norm.
  """
  if distribution == "rademacher":
    v = jax.random.rademacher(key, (num_projections, *x.shape), x.dtype)
  elif distribution == "gaussian":
    v = jax.random.normal(key, (num_projections, *x.shape), x.dtype)
  else:
    raise ValueError(f"Unknown distribution {distribution!r}; use 'rademacher' or 'gaussian'.")
  del event_ndim

  def sq_norm(vi):
    _, jv = jax.jvp(encode_fn, (x,), (vi,))  # [B, J]
    return jnp.sum(jnp.square(jv.reshape(jv.shape[0], -1)), axis=-1)

  return jnp.mean(jax.lax.map(sq_norm, v), axis=0)
