"""Noise-conditional score networks (Song & Ermon 2019, "Generative Modeling by Estimating
Gradients of the Data Distribution"; seed 001 section III.B).

  * Geometric noise levels ``sigma_1 > sigma_2 > ... > sigma_L`` (Sec. 4.2).
  * Denoising score matching at every level with ``lambda(sigma) = sigma^2`` (eq. 5-6):
    ``l(theta; sigma) = 1/2 E || s(x~, sigma) + (x~ - x) / sigma^2 ||^2``, so
    ``lambda(sigma) l = 1/2 E || sigma s(x + sigma z, sigma) + z ||^2`` (seed III.B (iii)).
  * Annealed Langevin dynamics (Algorithm 1) is on the sampling floor,
    :func:`genjax.sampling.langevin.annealed_langevin_sample`, with the levels of
    :func:`genjax.sampling.langevin.geometric_sigmas`.

Here ``score_fn(x [B, ...], sigma float [B])`` is conditioned on the noise level itself; the
network behind it predicts ``eps = -sigma s`` (:mod:`genjax.sampling.convert`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.processes import bcast

__all__ = ["make_ncsn_loss"]


def make_ncsn_loss(score_model: Callable, sigmas, *, reduce_mean: bool = False):
  """NCSN's loss (Song & Ermon 2019, eq. 6) with ``lambda(sigma) = sigma^2``.

  Each example gets a uniformly drawn level ``sigma_i`` and
  ``1/2 || sigma_i s(x + sigma_i z, sigma_i) + z ||^2`` (the mean over dimensions instead of
  half the sum with ``reduce_mean``); the loss is the batch mean.

  Args:
    score_model: ``score_model(params, x [B, ...], sigma [B], key) -> score [B, ...]``.
    sigmas: the noise levels ``[L]``.
    reduce_mean: average over data dimensions.

  Returns:
    ``loss_fn(params, batch, key) -> (loss, {"loss"})``.
  """
  sigmas = jnp.asarray(np.asarray(sigmas), jnp.float32)

  def loss_fn(params, batch, key):
    x0 = batch["x"]
    k_i, k_z, k_model = jax.random.split(key, 3)
    sigma = sigmas[jax.random.randint(k_i, (x0.shape[0],), 0, sigmas.shape[0])].astype(x0.dtype)
    z = jax.random.normal(k_z, x0.shape, x0.dtype)
    xt = x0 + bcast(sigma, x0) * z
    err = jnp.square(bcast(sigma, x0) * score_model(params, xt, sigma, k_model) + z)
    err = err.reshape(err.shape[0], -1)
    losses = jnp.mean(err, axis=-1) if reduce_mean else 0.5 * jnp.sum(err, axis=-1)
    loss = jnp.mean(losses)
    return loss, {"loss": loss}

  return loss_fn
