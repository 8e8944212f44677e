"""The continuous-time denoising score matching loss (Song et al. 2021, eq. 7; score_sde
``losses.get_sde_loss_fn``).

    L(theta) = E_{t ~ U[eps, T]} E_{x0} E_{x_t | x0} [ lambda(t) || s_theta(x_t, t) - grad log p_0t(x_t | x0) ||^2 ],
    grad log p_0t(x_t | x0) = -z / std_t  for  x_t = mean_t(x0) + std_t z.

Weightings:
  * the paper's ``lambda(t) = std_t^2`` (default): ``|| std_t s + z ||^2``, i.e. the eps
    loss of seed 001 section III.B (iii) / DDPM's L_simple for an eps-network;
  * ``likelihood_weighting``: ``lambda(t) = g(t)^2`` (Song, Durkan et al. 2021), which makes the
    loss an upper bound on the negative log-likelihood up to a constant.

``reduce_mean`` averages the squared error over the data dimensions; otherwise it is half its
sum (score_sde's ``reduce_op``). The batch loss is the mean over examples.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from genjax.sampling.processes import bcast

__all__ = ["make_sde_loss"]


def make_sde_loss(score_model: Callable, sde, *, reduce_mean: bool = False,
                  likelihood_weighting: bool = False, eps: float = 1e-5):
  """Builds ``loss_fn(params, batch, key) -> (loss, metrics)`` (DESIGN.md item 5).

  Args:
    score_model: ``score_model(params, x [B, ...], t [B], key) -> score [B, ...]`` (``key``
      feeds dropout). Training samples ``t ~ U[eps, T]``.
    sde: the forward SDE.
    reduce_mean: mean over data dimensions instead of half the sum.
    likelihood_weighting: ``lambda = g^2`` instead of ``std^2``.
    eps: smallest training time (score_sde: 1e-5).

  Returns:
    The loss function; ``batch["x"]`` is ``[B, ...]``. Metrics: ``loss``.
  """
  if not 0 <= eps < sde.T:
    raise ValueError(f"eps must lie in [0, T={sde.T}), got {eps!r}.")

  def reduce(v):
    v = v.reshape(v.shape[0], -1)
    return jnp.mean(v, axis=-1) if reduce_mean else 0.5 * jnp.sum(v, axis=-1)

  def loss_fn(params, batch, key):
    x0 = batch["x"]
    b = x0.shape[0]
    # 1. Time and noise.
    k_t, k_z, k_model = jax.random.split(key, 3)
    t = jax.random.uniform(k_t, (b,), x0.dtype, minval=eps, maxval=sde.T)
    z = jax.random.normal(k_z, x0.shape, x0.dtype)
    # 2. Perturb: x_t = mean + std z.
    mean, std = sde.marginal_prob(x0, t)
    xt = mean + bcast(std, x0) * z
    # 3. Score error against the perturbation kernel's score -z / std.
    score = score_model(params, xt, t, k_model)
    if likelihood_weighting:
      g2 = sde.sde(jnp.zeros_like(x0), t)[1] ** 2
      losses = reduce(jnp.square(score + z / bcast(std, x0))) * g2
    else:
      losses = reduce(jnp.square(score * bcast(std, x0) + z))
    loss = jnp.mean(losses)
    return loss, {"loss": loss}

  return loss_fn

