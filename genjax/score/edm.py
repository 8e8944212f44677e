"""EDM's preconditioning and training loss (Karras, Aittala, Aila & Laine 2022, "Elucidating the
Design Space of Diffusion-Based Generative Models"); its sampler (Karras sigmas and Heun) is on
the sampling floor, :mod:`genjax.sampling.edm`.

Everything is VE-style: ``x_sigma = x_0 + sigma n`` and a denoiser ``D(x, sigma) ~ E[x_0 | x]``,
whose score is ``(D(x, sigma) - x) / sigma^2`` (eq. 3). Any VE-style score model
(:class:`~genjax.sampling.processes.VESDE`, NCSN) is a denoiser through
:func:`genjax.sampling.convert.x0_from_eps` with ``alpha = 1``.

  * Preconditioning (Table 1, "Ours"): ``D = c_skip x + c_out F(c_in x, c_noise)`` with
    ``c_skip = sd^2 / (sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``,
    ``c_in = 1 / sqrt(sigma^2 + sd^2)``, ``c_noise = ln(sigma) / 4``.
  * Training (Table 1): ``ln sigma ~ N(P_mean, P_std^2)``, loss
    ``lambda(sigma) || D(x + sigma n, sigma) - x ||^2`` with
    ``lambda = (sigma^2 + sd^2) / (sigma sd)^2``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from genjax.sampling.processes import bcast

__all__ = ["EDMPrecond", "edm_precond", "make_edm_denoiser", "make_edm_loss"]


class EDMPrecond(NamedTuple):
  """The four preconditioning coefficients, each with ``sigma``'s shape."""
  c_skip: jax.Array
  c_out: jax.Array
  c_in: jax.Array
  c_noise: jax.Array


def edm_precond(sigma: jax.Array, sigma_data: float = 0.5) -> EDMPrecond:
  """Karras et al. 2022 Table 1 preconditioning for noise level ``sigma`` (any shape)."""
  sigma = jnp.asarray(sigma)
  s2 = sigma**2 + sigma_data**2
  return EDMPrecond(c_skip=sigma_data**2 / s2, c_out=sigma * sigma_data / jnp.sqrt(s2),
                    c_in=1.0 / jnp.sqrt(s2), c_noise=0.25 * jnp.log(sigma))


def make_edm_denoiser(net_fn: Callable, sigma_data: float = 0.5) -> Callable:
  """``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)`` from ``net_fn(x_in, c_noise [B])``.

  Args:
    net_fn: the raw network ``F``, ``([B, ...], [B]) -> [B, ...]``.
    sigma_data: the data's standard deviation (0.5 in the paper).

  Returns:
    ``denoise_fn(x [B, ...], sigma [B]) -> [B, ...]``.
  """

  def denoise_fn(x, sigma):
    c = edm_precond(sigma, sigma_data)
    f = net_fn(bcast(c.c_in, x).astype(x.dtype) * x, c.c_noise)
    return bcast(c.c_skip, x) * x + bcast(c.c_out, x) * f

  return denoise_fn


def make_edm_loss(denoise_model: Callable, *, sigma_data: float = 0.5, p_mean: float = -1.2,
                  p_std: float = 1.2, reduce_mean: bool = True):
  """EDM's training loss (Karras et al. 2022, eq. 8 with Table 1's choices).

  Args:
    denoise_model: ``denoise_model(params, x [B, ...], sigma [B], key) -> D [B, ...]``.
    sigma_data: sd.
    p_mean: mean of ``ln sigma``.
    p_std: std of ``ln sigma``.
    reduce_mean: mean over data dimensions (the reference averages); else the sum.

  Returns:
    ``loss_fn(params, batch, key) -> (loss, {"loss"})``.
  """

  def loss_fn(params, batch, key):
    x0 = batch["x"]
    k_s, k_n, k_model = jax.random.split(key, 3)
    sigma = jnp.exp(p_mean + p_std * jax.random.normal(k_s, (x0.shape[0],), x0.dtype))
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    n = jax.random.normal(k_n, x0.shape, x0.dtype)
    d = denoise_model(params, x0 + bcast(sigma, x0) * n, sigma, k_model)
    err = jnp.square(d - x0).reshape(x0.shape[0], -1)
    err = jnp.mean(err, axis=-1) if reduce_mean else jnp.sum(err, axis=-1)
    loss = jnp.mean(weight * err)
    return loss, {"loss": loss}

  return loss_fn
