"""Importance sampling of the training timesteps (Nichol & Dhariwal 2021, Sec. 3.3, eq. 18).

``L_vlb = E_{t ~ p_t}[L_t / p_t]`` with ``p_t ∝ sqrt(E[L_t^2])``, where ``E[L_t^2]`` is estimated
from the last 10 values of each term; ``t`` is drawn uniformly until every ``t`` has 10 values.
This is improved-diffusion's ``LossSecondMomentResampler`` (``resample.py``: history of 10 per
term, ``uniform_prob = 0.001`` mixed in, weights ``1 / (T p_t)`` so the mean is unbiased), as
pure functions of an explicit state (a dict of arrays, so that it lives in the trainer's
``TrainState.model_state`` and is checkpointed with it).

Timesteps are zero-based, ``t in {0..T-1}`` (index t is the paper's step t+1).

Example:
  >>> hist = init_loss_history(1000)
  >>> p = loss_second_moment_probs(hist)            # uniform until warmed up
  >>> t, w = sample_timesteps(jax.random.key(0), p, 64)
  >>> hist = update_loss_history(hist, t, losses)   # losses [64], before weighting
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "TIMESTEP_SAMPLERS",
    "init_loss_history",
    "loss_second_moment_probs",
    "sample_timesteps",
    "update_loss_history",
]

TIMESTEP_SAMPLERS = ("uniform", "loss-second-moment")


def init_loss_history(num_timesteps: int, history_per_term: int = 10) -> dict:
  """An empty loss history: ``{"loss_history": [T, H] float32, "loss_counts": [T] int32}``."""
  if num_timesteps < 1 or history_per_term < 1:
    raise ValueError(f"num_timesteps and history_per_term must be positive, got "
                     f"{num_timesteps}, {history_per_term}.")
  return {"loss_history": jnp.zeros((num_timesteps, history_per_term), jnp.float32),
          "loss_counts": jnp.zeros((num_timesteps,), jnp.int32)}


def loss_second_moment_probs(history: dict, uniform_prob: float = 0.001) -> jax.Array:
  """Sampling probabilities ``p_t ∝ sqrt(mean of the last H squared L_t)``, ``[T]``.

  Nichol & Dhariwal 2021, eq. 18 (``p_t ∝ sqrt(E[L_t^2])``, ``sum p_t = 1``), mixed with the
  uniform distribution: ``p = (1 - u) p + u / T`` (improved-diffusion, ``uniform_prob=0.001``).
  Uniform until every timestep has a full history (``_warmed_up``), or if all losses are 0.

  Args:
    history: from :func:`init_loss_history` / :func:`update_loss_history`.
    uniform_prob: ``u``.

  Returns:
    ``[T]`` probabilities (float32), summing to 1.
  """
  hist, counts = history["loss_history"], history["loss_counts"]
  num_t, size = hist.shape
  w = jnp.sqrt(jnp.mean(hist.astype(jnp.float32) ** 2, axis=-1))
  total = jnp.sum(w)
  w = w / jnp.where(total > 0, total, 1.0)
  w = w * (1.0 - uniform_prob) + uniform_prob / num_t
  warmed_up = jnp.all(counts == size) & (total > 0)
  return jnp.where(warmed_up, w, jnp.full((num_t,), 1.0 / num_t, jnp.float32))


def sample_timesteps(key: jax.Array, probs: jax.Array, batch_size: int):
  """Draws ``t ~ p`` and the importance weights ``1 / (T p_t)``.

  ``E_{t~p}[w_t L_t] = (1/T) sum_t L_t``, so the weighted loss has the uniform-``t`` mean
  (improved-diffusion ``ScheduleSampler.sample``).

  Args:
    key: a PRNG key.
    probs: ``[T]`` probabilities.
    batch_size: B.

  Returns:
    ``(t int32 [B], weights float32 [B])``.
  """
  num_t = probs.shape[0]
  t = jax.random.categorical(key, jnp.log(probs), shape=(batch_size,)).astype(jnp.int32)
  weights = 1.0 / (num_t * probs[t])
  return t, weights.astype(jnp.float32)


def update_loss_history(history: dict, t: jax.Array, losses: jax.Array) -> dict:
  """Appends each ``losses[i]`` to the history of ``t[i]``, oldest value shifted out when full.

  Processes the batch in order (a ``lax.scan``), exactly as improved-diffusion's
  ``LossSecondMomentResampler.update_with_all_losses``, so repeated ``t`` in a batch are all
  recorded. Gradients do not flow into the history.

  Args:
    history: the current history.
    t: int ``[B]`` zero-based timesteps.
    losses: ``[B]`` per-example losses (unweighted).

  Returns:
    The new history.
  """
  size = history["loss_history"].shape[1]
  losses = jax.lax.stop_gradient(losses).astype(jnp.float32)

  def body(carry, inp):
    hist, counts = carry
    ti, li = inp
    c = counts[ti]
    row = hist[ti]
    shifted = jnp.concatenate([row[1:], li[None]])
    inserted = row.at[jnp.minimum(c, size - 1)].set(li)
    hist = hist.at[ti].set(jnp.where(c == size, shifted, inserted))
    counts = counts.at[ti].set(jnp.minimum(c + 1, size))
    return (hist, counts), None

  (hist, counts), _ = jax.lax.scan(
      body, (history["loss_history"], history["loss_counts"]),
      (jnp.asarray(t, jnp.int32), losses))
  return {"loss_history": hist, "loss_counts": counts}
