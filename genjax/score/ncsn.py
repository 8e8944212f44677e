"""Noise-conditional score networks (Song & Ermon 2019, "Generative Modeling by Estimating
Gradients of the Data Distribution"; seed 001 section III.B).

  * Geometric noise levels ``sigma_1 > sigma_2 > ... > sigma_L`` (Sec. 4.2).
  * Denoising score matching at every level with ``lambda(sigma) = sigma^2`` (eq. 5-6):
    ``l(theta; sigma) = 1/2 E || s(x~, sigma) + (x~ - x) / sigma^2 ||^2``, so
    ``lambda(sigma) l = 1/2 E || sigma s(x + sigma z, sigma) + z ||^2`` (seed III.B (iii)).
  * Annealed Langevin dynamics (Algorithm 1): for each level ``i``, step
    ``alpha_i = eps sigma_i^2 / sigma_L^2`` and ``T`` updates
    ``x <- x + alpha_i / 2 s(x, sigma_i) + sqrt(alpha_i) z``; optionally a final denoising step
    ``x <- x + sigma_L^2 s(x, sigma_L)`` (Tweedie; Jolicoeur-Martineau et al. 2021 and NCSNv2).

Here ``score_fn(x [B, ...], sigma float [B])`` is conditioned on the noise level itself; the
network behind it predicts ``eps = -sigma s`` (:mod:`genjax.score.convert`).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.score.samplers import run_scan
from genjax.score.sde import bcast

__all__ = ["annealed_langevin_nfe", "annealed_langevin_sample", "geometric_sigmas",
           "make_ncsn_loss"]


def geometric_sigmas(sigma_max: float = 1.0, sigma_min: float = 0.01,
                     num_scales: int = 10) -> np.ndarray:
  """``sigma_i = sigma_max (sigma_min / sigma_max)^((i-1)/(L-1))``, decreasing, float64 ``[L]``
  (Song & Ermon 2019 Sec. 4.2: sigma_1 = 1, sigma_10 = 0.01 for images in [0, 1])."""
  if not 0 < sigma_min < sigma_max or int(num_scales) != num_scales or num_scales < 2:
    raise ValueError(f"Need 0 < sigma_min < sigma_max and num_scales >= 2; got sigma_min="
                     f"{sigma_min}, sigma_max={sigma_max}, num_scales={num_scales}.")
  return np.exp(np.linspace(np.log(sigma_max), np.log(sigma_min), int(num_scales)))


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


def annealed_langevin_nfe(num_scales: int, n_steps_each: int, denoise: bool = True) -> int:
  """Score evaluations of :func:`annealed_langevin_sample` per sample."""
  return int(num_scales) * int(n_steps_each) + int(bool(denoise))


def annealed_langevin_sample(score_fn: Callable, sigmas, key: jax.Array, shape, *,
                             n_steps_each: int = 100, step_lr: float = 2e-5,
                             denoise: bool = True, init: str = "uniform",
                             init_range: tuple[float, float] = (-1.0, 1.0),
                             trajectory_stride: Optional[int] = None,
                             x_init: Optional[jax.Array] = None):
  """Annealed Langevin dynamics, Song & Ermon 2019 Algorithm 1, as one ``lax.scan`` of
  ``L * n_steps_each`` updates.

  Args:
    score_fn: ``score_fn(x [B, ...], sigma [B]) -> [B, ...]``.
    sigmas: decreasing noise levels ``[L]`` (:func:`geometric_sigmas`).
    key: PRNG key (split into the initial draw and one key per update).
    shape: ``(B, ...)``, static.
    n_steps_each: T, updates per level (100 in the paper).
    step_lr: epsilon; level i uses ``alpha_i = epsilon sigma_i^2 / sigma_L^2`` (2e-5 in the paper).
    denoise: finish with ``x + sigma_L^2 s(x, sigma_L)``.
    init: ``"uniform"`` on ``init_range`` (the paper's U[0, 1] for data in [0, 1]) or
      ``"gaussian"``: ``N(0, sigma_1^2 I)``.
    init_range: the uniform initialisation's range (genjax's images live in [-1, 1]).
    trajectory_stride: None or a positive int (states after every k-th update).
    x_init: optional initial state of ``shape``.

  Returns:
    ``x`` ``[*shape]``, or ``(x, trajectory)`` with a trajectory stride.
  """
  sig = np.asarray(sigmas, np.float64)
  if sig.ndim != 1 or len(sig) < 1 or np.any(np.diff(sig) >= 0) or sig.min() <= 0:
    raise ValueError(f"sigmas must be a decreasing 1-D array of positive noise levels, got {sig}.")
  if int(n_steps_each) != n_steps_each or n_steps_each < 1:
    raise ValueError(f"n_steps_each must be a positive integer, got {n_steps_each!r}.")
  shape = tuple(int(s) for s in shape)
  num = len(sig) * int(n_steps_each)
  k_init, k_steps = jax.random.split(key)
  if x_init is None:
    if init == "uniform":
      x_init = jax.random.uniform(k_init, shape, jnp.float32, init_range[0], init_range[1])
    elif init == "gaussian":
      x_init = sig[0] * jax.random.normal(k_init, shape, jnp.float32)
    else:
      raise ValueError(f"init must be 'uniform' or 'gaussian', got {init!r}.")
  elif tuple(x_init.shape) != shape:
    raise ValueError(f"x_init has shape {tuple(x_init.shape)} but shape is {shape}.")
  dtype = x_init.dtype
  level_sigma = jnp.asarray(np.repeat(sig, int(n_steps_each)), dtype)
  level_alpha = jnp.asarray(np.repeat(step_lr * sig**2 / sig[-1] ** 2, int(n_steps_each)), dtype)

  def step(x, inp):
    sigma, alpha, k = inp
    s = score_fn(x, jnp.full((shape[0],), sigma, dtype))
    z = jax.random.normal(k, shape, dtype)
    return x + 0.5 * alpha * s + jnp.sqrt(alpha) * z

  out = run_scan(step, x_init, (level_sigma, level_alpha, jax.random.split(k_steps, num)), num,
                 trajectory_stride)
  if not denoise:
    return out

  def final(x):
    s_l = jnp.full((shape[0],), sig[-1], dtype)
    return x + sig[-1] ** 2 * score_fn(x, s_l)

  if trajectory_stride is None:
    return final(out)
  x, traj = out
  x = final(x)
  return x, traj.at[-1].set(x)
