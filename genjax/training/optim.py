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


def ema(decay: float, start_step: int = 0):
  """EMA of a parameter pytree as an optax-style ``(init, update)`` pair.

  ``update(params, state, step)`` returns the new state with
  ``ema <- decay * ema + (1 - decay) * params`` (Polyak averaging, as DDPM's 0.9999 EMA), or a
  verbatim copy of ``params`` while ``step < start_step``.
  """

  def init(params) -> EmaState:
    return EmaState(jax.tree.map(jnp.asarray, params))

  def update(params, state: EmaState, step) -> EmaState:
    d = jnp.where(step < start_step, 0.0, decay)
    new = jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), state.ema, params)
    return EmaState(new)

  return init, update
