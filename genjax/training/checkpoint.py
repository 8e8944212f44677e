"""Orbax checkpoints (DESIGN.md item 10): keep the last N, never save a broken state.

A checkpoint holds the whole :class:`TrainState` (params, EMA params, optimizer state, step,
PRNG key data, model state) plus a JSON record of the data-iterator position and run metadata.
Orbax writes each step to a temporary directory and renames it when complete, so a partial
write is never taken for a checkpoint; the trainer only saves states whose params are finite.
Loading never executes code (no pickle).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A missing, corrupt or mismatched checkpoint."""


class Checkpointer:
  """A thin wrapper over ``ocp.CheckpointManager`` with clear errors."""

  def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save),
    )

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mngr.all_steps())

  def save(self, step: int, items: dict, meta: dict) -> None:
    """Saves ``items`` (a pytree of arrays) and ``meta`` (JSON) at ``step``."""
    self._mngr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(items), meta=ocp.args.JsonSave(meta)),
    )

  def restore(self, target: Any, step: Optional[int] = None) -> tuple[Any, dict]:
    """Restores the state at ``step`` (default: latest) into the structure of ``target``.

    Args:
      target: a pytree of arrays or ``jax.ShapeDtypeStruct`` (with shardings) that the saved
        state must match.
      step: which step; None for the latest.

    Raises:
      CheckpointError: no checkpoint, or one that cannot be read or does not match ``target``.
    """
    if step is None:
      step = self.latest_step()
    if step is None:
      raise CheckpointError(
          f"No checkpoint found in {self.directory}. Train first "
          f"(python train.py --config=... --workdir=...) or point --workdir at a trained run.")
    if step not in self.all_steps():
      raise CheckpointError(f"No checkpoint for step {step} in {self.directory}; "
                            f"available steps: {self.all_steps()}.")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        target)
    try:
      out = self._mngr.restore(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                  meta=ocp.args.JsonRestore()),
      )
    except Exception as e:  # orbax raises many types; give one clear message.
      raise CheckpointError(
          f"Checkpoint step {step} in {self.directory} is corrupt or does not match this "
          f"config ({type(e).__name__}: {str(e)[:300]}). If the config changed, use a new "
          f"--workdir; if the files are damaged, delete {self.directory}/{step} to resume from "
          f"the previous checkpoint {[s for s in self.all_steps() if s < step][-1:]}.") from e
    return out["state"], dict(out["meta"])

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
