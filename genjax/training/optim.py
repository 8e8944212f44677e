"""Optimizers from config (optax) and the EMA of parameters, in optax's (init, update) shape."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from genjax.training.config import OptimConfig


def learning_rate_schedule(cfg: OptimConfig, num_steps: int) -> optax.Schedule:
  """Linear warm-up to ``cfg.learning_rate``, then constant or cosine decay."""
  if cfg.schedule == "constant":
    main = optax.constant_schedule(cfg.learning_rate)
  elif cfg.schedule == "cosine":
    decay = cfg.decay_steps or max(num_steps - cfg.warmup_steps, 1)
    main = optax.cosine_decay_schedule(cfg.learning_rate, decay, alpha=cfg.end_lr_factor)
  else:
    raise ValueError(f"Unknown optim.schedule {cfg.schedule!r}; use 'constant' or 'cosine'.")
  if cfg.warmup_steps <= 0:
    return main
  warm = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
  return optax.join_schedules([warm, main], [cfg.warmup_steps])


def make_optimizer(cfg: OptimConfig, num_steps: int) -> optax.GradientTransformation:
  """Adam/AdamW with warm-up, a schedule and global-norm gradient clipping.

  Args:
    cfg: the optimizer section.
    num_steps: total training steps (for the cosine schedule's default length).
  """
  lr = learning_rate_schedule(cfg, num_steps)
  if cfg.name == "adam":
    opt = optax.adam(lr, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps)
  elif cfg.name == "adamw":
    opt = optax.adamw(lr, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps, weight_decay=cfg.weight_decay)
  else:
    raise ValueError(f"Unknown optim.name {cfg.name!r}; use 'adam' or 'adamw'.")
  if cfg.grad_clip:
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
  return opt


class EmaState(NamedTuple):
  ema: Any


def ema_decay_at(decay: float, step, start_step: int = 0, warmup: bool = True):
  """The EMA decay used at ``step``: 0 before ``start_step``, then
  ``min(decay, (1 + n) / (10 + n))`` with ``n = step - start_step`` when ``warmup`` (the
  ``num_updates`` rule of TensorFlow's ExponentialMovingAverage, also diffusers' EMAModel), so
  that a short run's EMA is not dominated by the random initial params (0.999^1500 = 22%).
  """
  n = jnp.asarray(step, jnp.float32) - start_step
  d = jnp.minimum(decay, (1.0 + n) / (10.0 + n)) if warmup else jnp.asarray(decay, jnp.float32)
  return jnp.where(n < 0, 0.0, d)


def ema(decay: float, start_step: int = 0, warmup: bool = True):
  """EMA of a parameter pytree as an optax-style ``(init, update)`` pair.

  ``update(params, state, step)`` returns the new state with
  ``ema <- d * ema + (1 - d) * params`` (Polyak averaging, as DDPM's 0.9999 EMA), where
  ``d = ema_decay_at(decay, step, start_step, warmup)``.
  """

  def init(params) -> EmaState:
    return EmaState(jax.tree.map(jnp.asarray, params))

  def update(params, state: EmaState, step) -> EmaState:
    d = ema_decay_at(decay, step, start_step, warmup)
    new = jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), state.ema, params)
    return EmaState(new)

  return init, update
