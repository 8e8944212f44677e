"""EDM: preconditioning, training loss and the Heun sampler with Karras sigmas (Karras, Aittala,
Aila & Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative Models").

Everything is VE-style: ``x_sigma = x_0 + sigma n`` and a denoiser ``D(x, sigma) ~ E[x_0 | x]``,
whose score is ``(D(x, sigma) - x) / sigma^2`` (eq. 3). Any VE-style score model
(:class:`~genjax.score.sde.VESDE`, NCSN) gives a denoiser through
:func:`genjax.score.convert.denoiser_from_score_fn`.

  * Preconditioning (Table 1, "Ours"): ``D = c_skip x + c_out F(c_in x, c_noise)`` with
    ``c_skip = sd^2 / (sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``,
    ``c_in = 1 / sqrt(sigma^2 + sd^2)``, ``c_noise = ln(sigma) / 4``.
  * Training (Table 1): ``ln sigma ~ N(P_mean, P_std^2)``, loss
    ``lambda(sigma) || D(x + sigma n, sigma) - x ||^2`` with
    ``lambda = (sigma^2 + sd^2) / (sigma sd)^2``.
  * Sampling: the Karras sigmas (eq. 5, rho = 7) and the 2nd-order Heun solver of the
    probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` (Algorithm 1), with the
    optional churn of Algorithm 2. NFE = ``2 N - 1``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.score.samplers import run_scan
from genjax.score.sde import bcast

__all__ = ["EDMPrecond", "edm_heun_nfe", "edm_heun_sample", "edm_precond", "karras_sigmas",
           "make_edm_denoiser", "make_edm_loss"]


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


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0) -> np.ndarray:
  """Karras et al. 2022 eq. 5: ``sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) -
  smax^(1/rho)))^rho`` for ``i < N``, and ``sigma_N = 0``. float64 ``[N + 1]``, decreasing."""
  if int(num_steps) != num_steps or num_steps < 1:
    raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}.")
  if not 0 < sigma_min < sigma_max:
    raise ValueError(f"Need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}.")
  n = int(num_steps)
  i = np.arange(n, dtype=np.float64)
  ramp = i / max(n - 1, 1)
  s = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
  return np.append(s, 0.0)


def edm_heun_nfe(num_steps: int) -> int:
  """Denoiser evaluations of :func:`edm_heun_sample` with N steps: ``2 N - 1``."""
  return 2 * int(num_steps) - 1


def edm_heun_sample(denoise_fn: Callable, sigmas, key: jax.Array, shape, *,
                    s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                    s_noise: float = 1.0, trajectory_stride: Optional[int] = None,
                    x_T: Optional[jax.Array] = None):
  """Karras et al. 2022 Algorithm 2 (Algorithm 1 when ``s_churn = 0``): Heun's method on
  ``dx/dsigma = (x - D(x, sigma)) / sigma``, Euler on the last step to ``sigma_N = 0``.

  The N - 1 Heun steps are one ``lax.scan``; the last Euler step follows it.

  Args:
    denoise_fn: ``denoise_fn(x [B, ...], sigma [B]) -> [B, ...]``.
    sigmas: decreasing ``[N + 1]`` ending in 0 (:func:`karras_sigmas`).
    key: PRNG key (the initial ``x_0 ~ N(0, sigma_0^2 I)`` and the churn noise).
    shape: ``(B, ...)``, static.
    s_churn: total churn ``S_churn``; ``gamma_i = min(S_churn / N, sqrt(2) - 1)`` on
      ``[s_tmin, s_tmax]``.
    s_tmin: churn range start.
    s_tmax: churn range end.
    s_noise: ``S_noise``.
    trajectory_stride: None or a positive int (states after every k-th step).
    x_T: optional initial state (already scaled by ``sigma_0``).

  Returns:
    ``x`` ``[*shape]``, or ``(x, trajectory)``.
  """
  sig = np.asarray(sigmas, np.float64)
  if sig.ndim != 1 or len(sig) < 2 or sig[-1] != 0 or np.any(np.diff(sig) >= 0):
    raise ValueError("sigmas must be a decreasing 1-D array ending in 0, e.g. "
                     f"karras_sigmas(18); got {sig}.")
  shape = tuple(int(s) for s in shape)
  n = len(sig) - 1
  k_init, k_steps = jax.random.split(key)
  if x_T is None:
    x_T = sig[0] * jax.random.normal(k_init, shape, jnp.float32)
  dtype = x_T.dtype
  gamma = np.where((sig[:-1] >= s_tmin) & (sig[:-1] <= s_tmax),
                   min(s_churn / n, math.sqrt(2) - 1), 0.0)
  keys = jax.random.split(k_steps, n)

  def churn(x, s_cur, g, k):
    s_hat = s_cur * (1 + g)
    noise = s_noise * jax.random.normal(k, shape, dtype)
    return x + jnp.sqrt(jnp.maximum(s_hat**2 - s_cur**2, 0.0)) * noise, s_hat

  def d_of(x, s):
    return (x - denoise_fn(x, jnp.full((shape[0],), s, dtype))) / s

  def step(x, inp):
    s_cur, s_next, g, k = inp
    x_hat, s_hat = churn(x, s_cur, g, k)
    d = d_of(x_hat, s_hat)
    x_next = x_hat + (s_next - s_hat) * d
    return x_hat + (s_next - s_hat) * 0.5 * (d + d_of(x_next, s_next))

  xs = (jnp.asarray(sig[:-2], dtype), jnp.asarray(sig[1:-1], dtype),
        jnp.asarray(gamma[:-1], dtype), keys[:-1])

  def last(x):
    x_hat, s_hat = churn(x, jnp.asarray(sig[-2], dtype), jnp.asarray(gamma[-1], dtype), keys[-1])
    return x_hat - s_hat * d_of(x_hat, s_hat)

  if trajectory_stride is None:
    return last(run_scan(step, x_T, xs, n - 1, None))
  # The scan records steps 0, k, ..., n-1 (and n-1); the final Euler step is step n.
  x, traj = run_scan(step, x_T, xs, n - 1, trajectory_stride) if n > 1 else (x_T, x_T[None])
  x = last(x)
  if (n - 1) % trajectory_stride == 0:  # step n-1 is a stride point: keep it, append step n
    return x, jnp.concatenate([traj, x[None]])
  return x, traj.at[-1].set(x)  # step n-1 was only recorded as "the end": replace it
