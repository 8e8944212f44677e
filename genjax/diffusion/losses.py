"""DDPM training losses as factories returning pure ``loss_fn(params, batch, key)`` closures.

Timesteps are zero-based: ``t ~ Uniform{0..T-1}``, index t being the paper's step t+1.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from genjax.diffusion.gaussian import PARAMETERIZATIONS, mean_flat, predict_v, q_sample
from genjax.diffusion.schedules import DiffusionSchedule

__all__ = ["LOSS_TYPES", "make_ddpm_loss"]

LOSS_TYPES = ("simple",)

ModelFn = Callable[[Any, jax.Array, jax.Array, Any, jax.Array], jax.Array]


def make_ddpm_loss(model_fn: ModelFn, sched: DiffusionSchedule, parameterization: str = "eps",
                   loss_type: str = "simple"):
  """Builds the DDPM training loss ``L_simple``.

  ``L_simple = E_{t, x_0, eps} || target - net(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2``
  with ``t ~ Uniform{0..T-1}`` (zero-based; Ho et al. 2020, eq. 14 and Algorithm 1; seed eq. 30).
  The target is ``eps`` (Ho et al.), ``x_0``, or ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0``
  (Salimans & Ho 2022), following ``parameterization``. The squared error is averaged over all
  dimensions and the batch.

  Args:
    model_fn: ``model_fn(params, x_t [B, ...], t int32 [B], y [B] or None, key) -> [B, ...]``;
      ``key`` is for dropout, ``y = batch.get("label")``.
    sched: the schedule.
    parameterization: ``"eps"``, ``"x0"`` or ``"v"``: what the network predicts.
    loss_type: ``"simple"``.

  Returns:
    ``loss_fn(params, batch, key) -> (loss, metrics)`` where ``batch = {"x": [B, ...],
    "label": [B] (optional)}`` and ``metrics`` has ``"loss"`` and ``"loss_q0"`` .. ``"loss_q3"``:
    the mean loss of the examples whose ``t`` falls in each quarter of ``{0..T-1}``
    (``q = 4t // T``, as improved-diffusion logs them). A quarter with no example in the batch
    reports 0.

  Raises:
    ValueError: unknown parameterization or loss type.

  Example:
    >>> loss_fn = make_ddpm_loss(lambda p, x, t, y, k: p * x, get_schedule("linear", 100))
    >>> loss, metrics = jax.jit(loss_fn)(1.0, {"x": jnp.zeros((4, 2))}, jax.random.key(0))
  """
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(
        f"Unknown parameterization {parameterization!r}; valid ones are "
        f"{', '.join(PARAMETERIZATIONS)}.")
  if loss_type not in LOSS_TYPES:
    raise ValueError(f"Unknown loss_type {loss_type!r}; valid ones are {', '.join(LOSS_TYPES)}.")
  num_t = sched.num_timesteps

  def loss_fn(params, batch, key):
    if "x" not in batch:
      raise ValueError(f"The batch needs an 'x' entry; it has keys {sorted(batch)}.")
    x0 = batch["x"]
    y = batch.get("label")
    b = x0.shape[0]
    key_t, key_noise, key_model = jax.random.split(key, 3)

    # 1. t ~ Uniform{0..T-1}, eps ~ N(0, I), x_t ~ q(x_t | x_0).
    t = jax.random.randint(key_t, (b,), 0, num_t, dtype=jnp.int32)
    noise = jax.random.normal(key_noise, x0.shape, x0.dtype)
    xt = q_sample(sched, x0, t, noise)

    # 2. Network prediction and its target.
    out = model_fn(params, xt, t, y, key_model)
    if out.shape != x0.shape:
      raise ValueError(
          f"model_fn returned shape {out.shape}, expected the data shape {x0.shape}.")
    if parameterization == "eps":
      target = noise
    elif parameterization == "x0":
      target = x0
    else:
      target = predict_v(sched, x0, t, noise)

    # 3. Per-example mean squared error, then the batch mean and per-quarter means.
    per_example = mean_flat((target - out.astype(target.dtype)) ** 2)  # [B]
    loss = jnp.mean(per_example)
    metrics = {"loss": loss}
    quarter = (4 * t) // num_t
    for q in range(4):
      mask = (quarter == q).astype(per_example.dtype)
      metrics[f"loss_q{q}"] = jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    return loss, metrics

  return loss_fn
