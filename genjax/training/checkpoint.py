"""Orbax checkpoints (DESIGN.md item 10): keep the last N, never save a broken state, never use
a damaged one.

Each checkpoint step holds three orbax items: ``state`` (the :class:`TrainState` arrays:
params, EMA params, optimizer state, step, PRNG key data, model state), ``meta`` (JSON: the
data-iterator position and run facts) and ``manifest`` (JSON: every array's path, shape, dtype
and the sha256 of its bytes, and the sha256 of ``meta``). Loading never executes code (no
pickle).

**Saving.** Orbax writes a step into a temporary directory and renames it when every item is
complete, so a partial write is never taken for a checkpoint, and the manifest commits together
with the arrays it describes; older steps are deleted only after a newer one has committed. The
trainer only saves states whose params are finite. A save runs in the background; its failure
surfaces at the next :meth:`Checkpointer.check`, :meth:`~Checkpointer.save` or
:meth:`~Checkpointer.wait` as a :class:`CheckpointSaveError` that names the step, says whether
the disk was full and names the last intact step.

**Restoring** a step checks, in order: that the manifest describes the arrays this config
expects (otherwise the config differs from the run's: :class:`CheckpointMismatchError`, and no
other step is tried); that orbax can read the files; that every array's sha256 (and the meta's)
matches the manifest; and that the params and EMA params are finite. A step failing one of the
last three is damaged: :meth:`Checkpointer.restore` without a step then falls back to the newest
intact step and reports the damaged ones; with an explicit step it raises
:class:`CheckpointDamagedError`.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

MANIFEST_VERSION = 1
# The items whose floating values must be finite in a saved state (the trainer's guard keeps
# them so; an optimizer or model state may legitimately hold infinities).
FINITE_ITEMS = ("params", "ema_params")


class CheckpointError(RuntimeError):
  """A missing, damaged or mismatched checkpoint, or a failed save."""


class CheckpointMismatchError(CheckpointError):
  """A checkpoint holds arrays of other shapes than this config builds: the config differs."""


class CheckpointDamagedError(CheckpointError):
  """A checkpoint step cannot be read, or its contents do not match its manifest.

  Attributes:
    step: the damaged step.
    reason: what is wrong, e.g. ``"sha256 mismatch in ['params']['w']"``.
  """

  def __init__(self, message: str, step: int, reason: str):
    super().__init__(message)
    self.step = step
    self.reason = reason


class CheckpointSaveError(CheckpointError):
  """Saving a checkpoint failed; the earlier checkpoints are intact.

  Attributes:
    step: the step whose save failed.
    last_intact: the newest intact step, or None if there is none.
    disk_full: whether the device ran out of space (or quota).
  """

  def __init__(self, message: str, step: int, last_intact: Optional[int], disk_full: bool):
    super().__init__(message)
    self.step = step
    self.last_intact = last_intact
    self.disk_full = disk_full


@dataclasses.dataclass(frozen=True)
class Restored:
  """A verified restore.

  Attributes:
    step: the step restored.
    items: the state arrays, in the structure of the target.
    meta: the JSON saved beside them.
    damaged: ``(step, reason)`` of every newer step that was skipped as damaged.
  """
  step: int
  items: Any
  meta: dict
  damaged: tuple = ()


def manifest_of(items: Any, meta: dict) -> dict:
  """The manifest of a state: per array path its shape, dtype and sha256; the meta's sha256."""
  arrays = {}
  for path, x in jax.tree_util.tree_flatten_with_path(to_host(items))[0]:
    a = np.asarray(x)
    arrays[jax.tree_util.keystr(path)] = {"shape": list(a.shape), "dtype": str(a.dtype),
                                          "sha256": _sha256(a)}
  return {"version": MANIFEST_VERSION, "arrays": arrays, "meta_sha256": _sha256_json(meta)}


def to_host(tree: Any) -> Any:
  """``jax.device_get``, also for arrays sharded over several processes (FSDP in a
  multi-process run): those are gathered, so every process must call it (as every process
  calls save and restore)."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
      from jax.experimental import multihost_utils
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return jax.device_get(x)
  return jax.tree.map(get, tree)


def _sha256(a: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _sha256_json(obj: Any) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class Checkpointer:
  """An ``ocp.CheckpointManager`` that verifies what it restores and names what went wrong.

  Args:
    directory: the checkpoint directory (``<workdir>/checkpoints``).
    keep: how many of the newest steps to keep.
    async_save: write in a background thread (the arrays are copied to the host first).
    read_only: only read: create nothing, delete nothing (``sample.py``, teachers, ...).

  Raises:
    CheckpointError: ``read_only`` and ``directory`` does not exist.
  """

  def __init__(self, directory: str, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.directory = os.path.abspath(directory)
    self.read_only = read_only
    if read_only and not os.path.isdir(self.directory):
      raise CheckpointError(
          f"No checkpoint found in {self.directory}: it does not exist. Train first "
          f"(python train.py --config=... --workdir=...) or point --workdir at a trained run.")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else keep, save_interval_steps=0 if read_only else 1,
        create=not read_only, read_only=read_only, cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=async_save and not read_only)
    quiet = _DropMessages("Given directory is read only")  # it is meant to be
    logging.getLogger("absl").addFilter(quiet)
    try:
      self._mngr = ocp.CheckpointManager(self.directory, options=options)
    finally:
      logging.getLogger("absl").removeFilter(quiet)
    self._pending: Optional[int] = None  # a step whose background save may still be running
    self._failed: Optional[CheckpointSaveError] = None

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  # -- saving ------------------------------------------------------------------------------

  def save(self, step: int, items: Any, meta: dict) -> None:
    """Saves ``items`` (a pytree of arrays), ``meta`` (JSON) and their manifest at ``step``.

    Raises:
      CheckpointSaveError: this save, or an earlier background one, failed.
    """
    self._settle()
    manifest = manifest_of(items, meta)
    try:
      self._mngr.save(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardSave(items),
                                  meta=ocp.args.JsonSave(meta),
                                  manifest=ocp.args.JsonSave(manifest)),
      )
    except Exception as e:  # orbax and tensorstore raise many types
      raise self._save_failed(step, e) from None
    self._pending = step

  def check(self) -> None:
    """Raises the failure of a finished background save, without waiting for a running one.

    Raises:
      CheckpointSaveError: a background save failed.
    """
    if self._pending is not None and not self._mngr.is_saving_in_progress():
      self._settle()

  def wait(self) -> None:
    """Waits for a background save to finish.

    Raises:
      CheckpointSaveError: it failed.
    """
    self._settle()

  def close(self, raise_errors: bool = True) -> None:
    """Waits for a background save and releases orbax's resources.

    Args:
      raise_errors: raise a failed save's error; False when another error is already on its
        way up (it is logged instead).

    Raises:
      CheckpointSaveError: the last background save failed (and ``raise_errors``).
    """
    try:
      self._settle()
    except CheckpointSaveError as e:
      if raise_errors:
        raise
      logging.error("%s", e)
    finally:
      try:
        self._mngr.close()
      except Exception as e:  # a failure already reported re-raises here; log anything else
        if self._failed is None:
          logging.error("Closing the checkpoints in %s: %s", self.directory, _first_line(e))

  def _settle(self) -> None:
    if self._pending is None:
      return
    step, self._pending = self._pending, None
    try:
      self._mngr.wait_until_finished()
    except Exception as e:
      raise self._save_failed(step, e) from None

  def _save_failed(self, step: int, e: BaseException) -> CheckpointSaveError:
    self._remove_partial(step)
    intact = [s for s in self._finalized_steps() if s != step]
    last = intact[-1] if intact else None
    disk_full = _is_disk_full(e)
    what = ("no space left on device" if disk_full
            else f"error ({type(e).__name__}: {_first_line(e)})")
    after = (f"the last intact checkpoint is step {last}" if last is not None
             else "no checkpoint was saved before it")
    fix = ("Free some space (or move the workdir to a larger disk) and run the same command "
           "again" if disk_full else "Fix the cause and run the same command again")
    fix += f" to resume from step {last}." if last is not None else " to start over."
    self._failed = CheckpointSaveError(
        f"{what} while saving step {step} in {self.directory}; {after}. {fix}",
        step=step, last_intact=last, disk_full=disk_full)
    return self._failed

  def _finalized_steps(self) -> list[int]:
    try:
      names = os.listdir(self.directory)
    except OSError:
      return []
    return sorted(int(n) for n in names if n.isdigit())

  def _remove_partial(self, step: int) -> None:
    """Deletes the temporary directory of a failed save (it holds only garbage)."""
    if self.read_only:
      return
    try:
      for n in os.listdir(self.directory):
        if n.startswith(f"{step}.") and "orbax-checkpoint-tmp" in n:
          shutil.rmtree(os.path.join(self.directory, n), ignore_errors=True)
    except OSError:
      pass

  # -- restoring ---------------------------------------------------------------------------

  def restore(self, target: Any, step: Optional[int] = None) -> Restored:
    """Restores and verifies the state at ``step``, or the newest intact step.

    Args:
      target: a pytree of arrays or ``jax.ShapeDtypeStruct`` (with shardings) that the saved
        state must match.
      step: which step; None for the newest intact one (damaged newer steps are skipped,
        reported in ``Restored.damaged`` and logged).

    Returns:
      The :class:`Restored` step, items and meta.

    Raises:
      CheckpointError: no checkpoint, no such step, or every step is damaged.
      CheckpointDamagedError: ``step`` was given and it is damaged.
      CheckpointMismatchError: the checkpoint's arrays are not those this config builds.
    """
    steps = self.all_steps()
    if not steps:
      raise CheckpointError(
          f"No checkpoint found in {self.directory}. Train first "
          f"(python train.py --config=... --workdir=...) or point --workdir at a trained run.")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        target)
    # No step carries a manifest: the checkpoints were written before manifests existed.
    legacy = not any(os.path.isdir(os.path.join(self.directory, str(s), "manifest"))
                     for s in steps)
    if step is not None:
      if step not in steps:
        raise CheckpointError(f"No checkpoint for step {step} in {self.directory}; "
                              f"available steps: {steps}.")
      try:
        return self._restore_step(abstract, step, legacy)
      except CheckpointDamagedError as e:
        others = [s for s in steps if s != step]
        raise CheckpointDamagedError(
            f"{e} Choose another step ({others or 'none left'}), or no step for the newest "
            f"intact one.", e.step, e.reason) from None
    damaged = []
    for s in reversed(steps):
      try:
        restored = self._restore_step(abstract, s, legacy)
      except CheckpointDamagedError as e:
        damaged.append((s, e.reason))
        continue
      if damaged:
        logging.warning(
            "Damaged checkpoint(s) in %s: %s. Using step %d, the newest intact one.",
            self.directory, "; ".join(f"step {d}: {r}" for d, r in damaged), s)
      return dataclasses.replace(restored, damaged=tuple(damaged))
    raise CheckpointError(
        f"Every checkpoint in {self.directory} is damaged ("
        + "; ".join(f"step {d}: {r}" for d, r in damaged)
        + "). Move that directory away to train from scratch, or use a new --workdir.")

  def set_aside(self, steps) -> str:
    """Moves damaged steps out of the way (into ``<directory>.damaged/``), so that training
    can save those steps again; returns that directory."""
    dest_root = self.directory + ".damaged"
    os.makedirs(dest_root, exist_ok=True)
    for s in steps:
      dest = os.path.join(dest_root, str(s))
      i = 1
      while os.path.exists(dest):
        dest, i = os.path.join(dest_root, f"{s}.{i}"), i + 1
      shutil.move(os.path.join(self.directory, str(s)), dest)
    self._mngr.reload()
    return dest_root

  def _restore_step(self, abstract: Any, step: int, legacy: bool) -> Restored:
    manifest = None
    if not legacy:
      try:
        manifest = self._mngr.restore(
            step, args=ocp.args.Composite(manifest=ocp.args.JsonRestore()))["manifest"]
        if manifest.get("version") != MANIFEST_VERSION or not isinstance(
            manifest.get("arrays"), dict):
          raise ValueError(f"unknown manifest format {manifest.get('version')!r}")
      except Exception as e:
        raise self._damaged(step, f"its manifest cannot be read ({_first_line(e)})") from None
      self._check_structure(abstract, manifest, step)
    try:
      out = self._mngr.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                        meta=ocp.args.JsonRestore()))
    except Exception as e:
      if manifest is None:
        raise CheckpointError(
            f"Checkpoint step {step} in {self.directory} cannot be read "
            f"({type(e).__name__}: {_first_line(e)}). It predates verified checkpoints, so "
            f"either its files are damaged or this config differs from the run's (pass the "
            f"config it was trained with: its workdir's config.json records it).") from None
      raise self._damaged(
          step, f"its files cannot be read ({type(e).__name__}: {_first_line(e)})") from None
    items, meta = out["state"], dict(out["meta"])
    host = to_host(items)
    if manifest is not None:
      bad = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_flatten_with_path(host)[0]
             if _sha256(np.asarray(x)) != manifest["arrays"][jax.tree_util.keystr(p)]["sha256"]]
      if _sha256_json(meta) != manifest.get("meta_sha256"):
        bad.append("meta")
      if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise self._damaged(step, f"sha256 mismatch in {bad[0]}{more}")
    else:
      logging.warning(
          "Checkpoint step %d in %s has no manifest (it predates verified checkpoints); only "
          "its values' finiteness is checked.", step, self.directory)
    nonfinite = _first_nonfinite(host)
    if nonfinite:
      raise self._damaged(step, f"non-finite values in {nonfinite}")
    return Restored(step=step, items=items, meta=meta)

  def _damaged(self, step: int, reason: str) -> CheckpointDamagedError:
    return CheckpointDamagedError(
        f"Checkpoint step {step} in {self.directory} is damaged: {reason}.", step, reason)

  def _check_structure(self, abstract: Any, manifest: dict, step: int) -> None:
    want = {jax.tree_util.keystr(p): (list(x.shape), str(np.dtype(x.dtype)))
            for p, x in jax.tree_util.tree_flatten_with_path(abstract)[0]}
    have = {k: (list(v["shape"]), v["dtype"]) for k, v in manifest["arrays"].items()}
    if want == have:
      return
    details = [f"{k}: saved {have[k][0]} {have[k][1]}, this config {want[k][0]} {want[k][1]}"
               for k in want if k in have and want[k] != have[k]][:3]
    only_saved = sorted(set(have) - set(want))
    only_new = sorted(set(want) - set(have))
    if only_saved:
      details.append(f"only in the checkpoint: {', '.join(only_saved[:3])}"
                     + (f" and {len(only_saved) - 3} more" if len(only_saved) > 3 else ""))
    if only_new:
      details.append(f"only in this config: {', '.join(only_new[:3])}"
                     + (f" and {len(only_new) - 3} more" if len(only_new) > 3 else ""))
    raise CheckpointMismatchError(
        f"Checkpoint step {step} in {self.directory} was trained with a different config "
        f"({'; '.join(details)}). Pass the config the run was trained with, overrides "
        f"included (its workdir's config.json records it), or use a new --workdir for this "
        f"config.")


class _DropMessages(logging.Filter):
  """Drops log records whose message starts with ``prefix``."""

  def __init__(self, prefix: str):
    super().__init__()
    self.prefix = prefix

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(self.prefix)


def _first_nonfinite(host_items: Any) -> Optional[str]:
  if not isinstance(host_items, dict):
    return None
  for name in FINITE_ITEMS:
    for path, x in jax.tree_util.tree_flatten_with_path(host_items.get(name, {}))[0]:
      a = np.asarray(x)
      if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
        return f"['{name}']" + jax.tree_util.keystr(path)
  return None


def _is_disk_full(e: BaseException) -> bool:
  """Whether ``e`` (or an exception it was raised from) says the disk or quota is full."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
      return True
    text = str(e)
    if ("No space left on device" in text or "Disk quota exceeded" in text
        or f"os_error_code='{errno.ENOSPC}'" in text):
      return True
    e = e.__cause__ or e.__context__
  return False


def _first_line(e: BaseException, limit: int = 200) -> str:
  text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."
