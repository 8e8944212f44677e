"""The train state: one pytree that the jitted step carries and orbax checkpoints."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs, besides the config.

  Attributes:
    step: int32 scalar, the number of train steps taken.
    params: the trained parameters (any pytree; a GAN keeps ``{"g": ..., "d": ...}``).
    opt_state: the optimizer state (a GAN may keep one per player).
    ema_params: EMA of ``ema_filter(params)``; this is what sampling uses.
    model_state: non-trained collections (batch statistics, codebook EMA, ...), ``{}`` if none.
    rng: uint32 key data of the run's base key; step keys are ``fold_in(base, step)``.
    nonfinite_step: int32 scalar, the first step whose loss or params were not finite, or -1.
      The step that produced them is not applied, so ``params`` always stay finite.
    tx: the optimizer (static; anything the method's step understands).
  """

  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  model_state: Any
  rng: jax.Array
  nonfinite_step: jax.Array
  tx: Any = flax.struct.field(pytree_node=False)

  @property
  def key(self) -> jax.Array:
    """The typed base key."""
    return jax.random.wrap_key_data(self.rng)

  def apply_gradients(self, grads, **changes) -> "TrainState":
    """One optimizer update of all params with ``self.tx`` (a single optax transformation)."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(params=params, opt_state=opt_state, **changes)

  def checkpoint_items(self) -> dict:
    """The state as a plain dict of arrays, for orbax."""
    return {
        "step": self.step, "params": self.params, "opt_state": self.opt_state,
        "ema_params": self.ema_params, "model_state": self.model_state, "rng": self.rng,
        "nonfinite_step": self.nonfinite_step,
    }

  def from_checkpoint_items(self, items: dict) -> "TrainState":
    return self.replace(**items)


def tree_all_finite(tree) -> jax.Array:
  """True iff every floating leaf of ``tree`` is finite (one scalar, stays on device)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  if not leaves:
    return jnp.array(True)
  return jnp.all(jnp.stack(leaves))
