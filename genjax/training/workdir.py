"""A training run's workdir: one writer at a time, and a config record that stays true.

Before anything is built or compiled, :func:`open_for_training` checks the run's settings
(:func:`genjax.training.config.validate_sections`), creates the workdir, takes its lock and
compares the config with the one the saved checkpoints were trained with:

* **One run per workdir.** ``train.lock`` in the workdir is held with ``flock`` for as long as
  the run lives; the kernel releases it when the process ends, however it ends (SIGKILL
  included), so a stale lock never blocks a new run. A second run fails at once with the
  holder's pid and host. Readers (``sample.py``) take no lock.
* **The config record.** ``config.json`` holds the config of a run started from scratch. A
  resumed run whose config differs in a field that changes training (anything outside
  :data:`~genjax.training.config.TRAJECTORY_FREE_FIELDS` and
  :data:`~genjax.training.config.TRAJECTORY_FREE_SECTIONS`) is refused with the differences,
  unless ``training.allow_config_change`` is set; the new config is then saved beside the old
  one as ``config.step<N>.json`` (N: the newest saved step), never over it.
  :func:`current_config_path` names the record that describes the latest checkpoints.

Nothing here imports JAX, so that these checks fail a bad command in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import socket
import time
from typing import Any, Iterator, Optional

from genjax.training import config as config_lib
from genjax.training import distributed

LOCK_NAME = "train.lock"
CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
_RECORD = re.compile(r"^config\.step(\d+)(?:\.(\d+))?\.json$")


class WorkdirError(RuntimeError):
  """The workdir path cannot be used (not a directory, cannot be created or written)."""
  exit_code = 2


class WorkdirBusyError(WorkdirError):
  """Another process is training in the same workdir."""
  exit_code = 1


class ConfigDriftError(ValueError):
  """A resumed run's config changes training, and the change was not accepted."""


# The locks this process holds: realpath -> [file descriptor, nesting depth].
_HELD: dict[str, list] = {}


def saved_steps(workdir: str) -> list[int]:
  """The checkpoint steps that orbax has finalized in ``workdir`` (read from the directory
  names: an unfinished save lives in a ``<step>.orbax-checkpoint-tmp*`` directory)."""
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  try:
    names = os.listdir(directory)
  except OSError:
    return []
  return sorted(int(n) for n in names
                if n.isdigit() and os.path.isdir(os.path.join(directory, n)))


def prepare(workdir: str) -> str:
  """Creates ``workdir`` if needed and checks that it is a directory.

  Returns:
    The absolute path.

  Raises:
    WorkdirError: the path is a file, or it cannot be created (the reason given).
  """
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f"workdir {workdir} is a file, not a directory; pass a directory "
                       f"(it is created if missing).")
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f"cannot create workdir {workdir}: {e.strerror or e}.") from e
  return path


@contextlib.contextmanager
def lock(workdir: str) -> Iterator[None]:
  """Holds the workdir's lock: one training run per workdir, on any number of hosts.

  Re-entrant within a process. The lock file keeps the last holder's pid, host and start time
  for the message that a second run gets.

  Raises:
    WorkdirBusyError: another process holds the lock.
    WorkdirError: the lock file cannot be created (e.g. a read-only workdir).
  """
  key = os.path.realpath(workdir)
  if key in _HELD:
    _HELD[key][1] += 1
    try:
      yield
    finally:
      _HELD[key][1] -= 1
    return
  # In a multi-process run every process holds its own lock (process 0 the usual one), so that
  # a second run is refused while the processes of this one do not exclude each other.
  index = distributed.process_index_hint()
  path = os.path.join(workdir, LOCK_NAME if index == 0 else f"{LOCK_NAME}.process{index}")
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise WorkdirError(f"cannot write in workdir {workdir}: {e.strerror or e}. Pass a "
                       f"writable --workdir.") from e
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    holder = _read_holder(fd)
    os.close(fd)
    if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      raise WorkdirBusyError(
          f"workdir {workdir} is in use by another training run ({holder}). Wait for it to "
          f"finish or stop it, or train in another --workdir.") from None
    raise WorkdirError(f"cannot lock workdir {workdir}: {e.strerror or e}.") from e
  try:
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
  except OSError as e:
    os.close(fd)
    raise WorkdirError(f"cannot write in workdir {workdir}: {e.strerror or e}.") from e
  _HELD[key] = [fd, 1]
  try:
    yield
  finally:
    del _HELD[key]
    os.close(fd)  # releases the flock


def _read_holder(fd: int) -> str:
  try:
    info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    return f"pid {info['pid']} on host {info['host']}, started {info['started']}"
  except (OSError, ValueError, KeyError):
    return "pid unknown"


@contextlib.contextmanager
def open_for_training(config, workdir: str) -> Iterator[config_lib.RunSections]:
  """Everything a training run checks before it builds or compiles anything.

  Validates the training, optim and data sections; creates the workdir; takes its lock for the
  duration of the ``with`` block; refuses a resumed config that changes training (see the
  module docstring) or a ``training.num_steps`` below the step already saved; writes the config
  record. Nested calls for the same workdir in one process only validate.

  Args:
    config: the run's ml_collections config.
    workdir: the run's directory.

  Yields:
    The validated :class:`~genjax.training.config.RunSections`.

  Raises:
    ValueError: a setting is invalid.
    WorkdirError, WorkdirBusyError: the workdir cannot be used, or another run holds it.
    ConfigDriftError: the config changes training and ``allow_config_change`` is not set.
  """
  sections = config_lib.validate_sections(config)
  key = os.path.realpath(workdir)
  if key in _HELD:  # the caller already holds it and has checked the config
    with lock(workdir):
      yield sections
    return
  prepare(workdir)
  with lock(workdir):
    if distributed.process_index_hint() == 0:  # process 0 checks and writes the record
      check_config(config, workdir, sections.train)
    yield sections


def check_config(config, workdir: str, train_cfg: config_lib.TrainConfig) -> None:
  """Compares ``config`` with the workdir's record and writes the record (see module doc).

  Raises:
    ValueError: ``training.num_steps`` is below the newest saved step.
    ConfigDriftError: a field that changes training differs and the change was not accepted.
  """
  new = json.loads(config.to_json_best_effort())
  steps = saved_steps(workdir)
  if not steps:  # a fresh start: the records of earlier attempts describe no checkpoint
    for _, path in _records(workdir):
      if os.path.basename(path) != CONFIG_NAME:
        os.remove(path)
    _write_json(os.path.join(workdir, CONFIG_NAME), new)
    return
  latest = steps[-1]
  if train_cfg.num_steps < latest:
    raise ValueError(
        f"config.training.num_steps={train_cfg.num_steps} is below step {latest}, already "
        f"saved in {workdir}. Pass --config.training.num_steps={latest} or more to continue "
        f"the run, or train in a new --workdir.")
  record = current_config_path(workdir)
  if record is None:
    logging.warning("%s has checkpoints but no config record; writing %s from this config.",
                    workdir, CONFIG_NAME)
    _write_json(os.path.join(workdir, CONFIG_NAME), new)
    return
  with open(record) as f:
    old = json.load(f)
  changes = [c for c in config_diff(old, new)
             if not (c[1] == "<absent>" and config_lib.ADDED_FIELD_DEFAULTS.get(c[0], c) == c[2])]
  trajectory = [c for c in changes if not trajectory_free(c[0])]
  free = [c for c in changes if trajectory_free(c[0])]
  if free:
    logging.info("Resuming with changed settings that do not change training: %s",
                 _format_changes(free))
  if not trajectory:
    return
  if not train_cfg.allow_config_change:
    raise ConfigDriftError(
        f"the config differs from the one the run in {workdir} was trained with "
        f"({os.path.basename(record)}) in fields that change training: "
        f"{_format_changes(trajectory)}. Resume with the saved values, train in a new "
        f"--workdir, or accept the change with --config.training.allow_config_change=True "
        f"(the run is then no longer exactly reproducible).")
  path = _new_record_path(workdir, latest, new)
  if path is not None:
    _write_json(path, new)
  logging.warning(
      "Config changed at step %d in fields that change training (%s); accepted by "
      "training.allow_config_change. The new config is saved as %s beside %s; the run is no "
      "longer exactly reproducible from one config.", latest, _format_changes(trajectory),
      os.path.basename(path or _records(workdir)[-1][1]), os.path.basename(record))


def current_config_path(workdir: str) -> Optional[str]:
  """The config record that describes the workdir's latest checkpoints, or None if none.

  That is the newest ``config.step<N>.json`` written by an accepted change, else
  ``config.json``.
  """
  records = _records(workdir)
  return records[-1][1] if records else None


def config_diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
  """``[(dotted key, old value, new value)]`` for every leaf that differs between two
  JSON-like configs (a key missing on one side has the value ``"<absent>"`` there)."""
  if isinstance(old, dict) and isinstance(new, dict):
    out = []
    for k in sorted(set(old) | set(new)):
      key = f"{prefix}{k}"
      if k not in old or k not in new:
        out.append((key, old.get(k, "<absent>"), new.get(k, "<absent>")))
      else:
        out.extend(config_diff(old[k], new[k], key + "."))
    return out
  return [] if old == new else [(prefix.rstrip("."), old, new)]


def trajectory_free(key: str) -> bool:
  """Whether changing config field ``key`` (dotted) leaves the training trajectory alone."""
  return (key in config_lib.TRAJECTORY_FREE_FIELDS
          or key.split(".", 1)[0] in config_lib.TRAJECTORY_FREE_SECTIONS)


def _format_changes(changes) -> str:
  def short(v):
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."
  return "; ".join(f"{k} {short(a)} -> {short(b)}" for k, a, b in changes)


def _records(workdir: str) -> list[tuple[tuple[int, int], str]]:
  """The config records, oldest first: ``config.json``, then ``config.step<N>[.<i>].json``."""
  try:
    names = os.listdir(workdir)
  except OSError:
    return []
  out = []
  for n in names:
    m = _RECORD.match(n)
    if m:
      out.append(((int(m.group(1)) + 1, int(m.group(2) or 0)), os.path.join(workdir, n)))
    elif n == CONFIG_NAME:
      out.append(((0, 0), os.path.join(workdir, n)))
  return sorted(out)


def _new_record_path(workdir: str, step: int, new: dict) -> Optional[str]:
  """A fresh name for the record of a change at ``step``; None if the same config is already
  recorded there."""
  for i in range(1000):
    name = f"config.step{step}.json" if i == 0 else f"config.step{step}.{i}.json"
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
      return path
    with open(path) as f:
      if json.load(f) == new:
        return None
  raise WorkdirError(f"too many config records for step {step} in {workdir}.")


def _write_json(path: str, obj: Any) -> None:
  """Writes ``obj`` to ``path`` atomically (a reader never sees half a file)."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
    f.write("\n")
  os.replace(tmp, path)
