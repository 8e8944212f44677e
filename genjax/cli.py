"""What train.py and sample.py share: flag parsing and errors as one line, with exit codes.

:func:`run` replaces ``absl.app.run``. A command that cannot work prints one line on stderr,
``error: <what is wrong and how to fix it>``, with no traceback, and exits with:

* ``2`` (usage): the command line itself is wrong: an unknown flag or config field (with the
  closest name), a value of the wrong type, a missing config file or one that fails to load
  (with its file and line), an out-of-range flag (``--num=0``), or a ``--workdir``/``--out``
  that cannot be used;
* ``1``: the command is well formed but the run cannot go on: an invalid config setting, an
  unknown dataset, a workdir in use by another run, a config that differs from the one the
  checkpoints were trained with, a damaged or mismatched checkpoint, a non-finite loss, a full
  disk;
* ``130``: stopped by SIGINT/SIGTERM (after a checkpoint).

Errors that are none of these (bugs) keep their traceback. ``--verbosity=0`` (or any explicit
``--verbosity``) also prints the traceback under the one-line message and lets the libraries
log at that level; by default only warnings are logged, and none of orbax's logs (a failed save
logs dozens of errors, each with its own traceback) because the error that ends the run names
their cause.

Nothing here imports JAX.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import re
import sys
import traceback
import warnings
from typing import Callable, Optional

from absl import app, flags

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
  """A flag value that cannot work (exit status 2)."""
  exit_code = EXIT_USAGE


def run(main: Callable[[list], Optional[int]]) -> None:
  """Parses the flags and runs ``main`` like ``absl.app.run``, with one-line errors."""
  app.run(_guarded(main), flags_parser=parse_flags)


# -- parsing --------------------------------------------------------------------------------


def parse_flags(argv: list) -> list:
  """``FLAGS(argv)``, with every parse error as one line on stderr and exit status 2."""
  FLAGS = flags.FLAGS
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    _usage_exit(_flag_error_message(e, argv))
  except Exception as e:  # a config file that fails to load, or an unknown config field
    _usage_exit(_config_error_message(e, argv))
  for name in FLAGS:  # ml_collections defers a config file's load failure to its first use
    value = FLAGS[name].value
    if type(value).__name__ == "_ErrorConfig":
      _usage_exit(_config_error_message(object.__getattribute__(value, "_error"), argv))
  return rest


def _usage_exit(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(EXIT_USAGE)


def _config_path(argv: list, name: str = "config") -> Optional[str]:
  for arg in argv:
    m = re.match(rf"^--?{name}=(.*)$", arg)
    if m:
      return m.group(1).split(":", 1)[0]
  return None


def _flag_error_message(e: Exception, argv: list) -> str:
  text = str(e)
  if "Error whilst parsing config file" in text:  # get_config raised TypeError/ValueError
    return _config_file_error(text, _config_path(argv))
  m = re.search(r"Flag --(\S+) must have a value other than None", text)
  if m:
    example = " (e.g. --config=configs/ddpm.py)" if m.group(1) == "config" else ""
    return f"--{m.group(1)} is required{example}."
  text = re.sub(r"^flag (--\S+?): ", r"\1: ", text.strip())
  return " ".join(text.split())


def _config_file_error(trace_text: str, path: Optional[str]) -> str:
  """``config file F, line N: Type: message`` from a formatted traceback."""
  line = None
  if path:
    for m in re.finditer(r'File "([^"]+)", line (\d+)', trace_text):
      if os.path.abspath(m.group(1)) == os.path.abspath(path):
        line = m.group(2)
  last = [l for l in trace_text.strip().splitlines() if l.strip()][-1].strip()
  where = f"config file {path}" + (f", line {line}" if line else "")
  return f"{where}: {last}"


def _config_error_message(e: BaseException, argv: list) -> str:
  path = _config_path(argv)
  text = str(e)
  if isinstance(e, OSError) and ("Failed loading config file" in text
                                 or "earlier failure to load" in text):
    cause = getattr(e, "__cause__", None) or e
    reason = re.findall(r"\[Errno \d+\] ([^:\n]+)", str(cause))
    if path and not os.path.exists(path):
      return f"config file {path} does not exist (--config={path})."
    return f"config file {path} cannot be read: {reason[-1] if reason else text.splitlines()[0]}."
  if isinstance(e, SyntaxError) and e.filename:
    return f"config file {e.filename}, line {e.lineno}: syntax error: {e.msg}."
  frames = traceback.extract_tb(e.__traceback__)
  if path and any(os.path.abspath(f.filename) == os.path.abspath(path) for f in frames):
    line = [f.lineno for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)][-1]
    return f"config file {path}, line {line}: {type(e).__name__}: {_one_line(text)}"
  if isinstance(e, (AttributeError, KeyError)):
    return _unknown_field_message(text, argv, path)
  return f"{type(e).__name__}: {_one_line(text)}"


def _unknown_field_message(text: str, argv: list, path: Optional[str]) -> str:
  """Names the override whose field does not exist, and the field it probably meant."""
  text = text.replace("\\n", "\n").replace("\\'", "'")
  key = re.search(r"'(\w+)'", text)
  suggestion = re.search(r'Did you mean "(\w+)"', text)
  key = key.group(1) if key else None
  for arg in argv:
    m = re.match(r"^--?(?:no)?config\.([\w.]+)", arg)
    if not m or key is None or key not in m.group(1).split("."):
      continue
    parts = m.group(1).split(".")
    i = parts.index(key)
    section = ".".join(["config"] + parts[:i])
    message = f"--config.{m.group(1)}: {section} has no field {key!r}"
    if suggestion:
      fixed = ".".join(parts[:i] + [suggestion.group(1)] + parts[i + 1:])
      return message + f"; did you mean --config.{fixed}?"
    valid = _fields_of(path, parts[:i])
    return message + (f"; valid fields: {', '.join(valid)}." if valid else ".")
  return f"unknown config field: {_one_line(text)}"


def _fields_of(path: Optional[str], section: list) -> list:
  """The field names of ``config.<section>`` in config file ``path`` ([] if unknown)."""
  try:
    spec = importlib.util.spec_from_file_location("_genjax_cli_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    node = module.get_config()
    for part in section:
      node = node[part]
    return sorted(node.keys())
  except Exception:  # only a hint for a message
    return []


# -- running --------------------------------------------------------------------------------


def _guarded(main: Callable) -> Callable:
  def guarded(argv):
    verbose = flags.FLAGS["verbosity"].present
    if not verbose:
      _quiet_library_logs()
    try:
      return main(argv)
    except SystemExit:
      raise
    except KeyboardInterrupt as e:  # the trainer's TrainingInterrupted says how to resume
      print(f"\n{e}" if str(e) else "\nInterrupted.", file=sys.stderr)
      sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
      code = exit_code(e)
      if code is None:
        raise  # a bug: keep its traceback
      print(f"error: {format_error(e)}", file=sys.stderr)
      if verbose:
        traceback.print_exc()
      sys.exit(code)
  return guarded


def exit_code(e: BaseException) -> Optional[int]:
  """The exit status for an error that a user can fix, or None for a bug."""
  code = getattr(e, "exit_code", None)
  if isinstance(code, int):
    return code
  if isinstance(e, (ValueError, OSError, FloatingPointError)):
    return EXIT_ERROR
  if type(e).__module__.startswith("genjax."):
    return EXIT_ERROR
  return None


def format_error(e: BaseException) -> str:
  """One line for an error: its message, or for an OS error what failed on which file."""
  if isinstance(e, OSError) and e.strerror:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
      return f"no space left on device while writing {e.filename or 'a file'}."
    return f"{e.strerror}: {e.filename}." if e.filename else f"{e.strerror}."
  return _one_line(str(e)) or type(e).__name__


def _one_line(text: str) -> str:
  return " ".join(str(text).split())


class _DropOrbaxLogs(logging.Filter):
  """Drops orbax's logs: a failed save logs dozens of errors, each with a traceback, and the
  error that stops the run names their cause; its warnings are about its own internals. Also
  drops the reports of orbax's abandoned asyncio tasks ('Task exception was never retrieved')."""

  def filter(self, record: logging.LogRecord) -> bool:
    if _in_orbax(record.pathname or ""):
      return False
    if record.name == "asyncio" and "orbax" in record.getMessage():
      return False  # a future of orbax's, abandoned when its save failed, collected at exit
    exc = record.exc_info[2] if record.exc_info else None
    return not any(_in_orbax(f.filename) for f in traceback.extract_tb(exc))


def _in_orbax(path: str) -> bool:
  return f"{os.sep}orbax{os.sep}" in path


def _quiet_library_logs() -> None:
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, _DropOrbaxLogs) for f in handler.filters):
    handler.addFilter(_DropOrbaxLogs())
  sys.unraisablehook = _drop_orbax_unraisable(sys.unraisablehook)
  # The writes of a failed save that orbax never awaited, reported at exit (genjax has no
  # coroutines of its own).
  warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited", RuntimeWarning)


def _drop_orbax_unraisable(hook):
  """After orbax fails to read a damaged checkpoint (an error that is reported on its own),
  its abandoned reads report 'Exception ignored' and tensorstore's callbacks for reads still in
  flight find orbax's event loop closed, each with a traceback; this hook drops exactly those."""
  def unraisablehook(unraisable):
    frames = traceback.extract_tb(unraisable.exc_traceback)
    closed_loop = (unraisable.exc_type is RuntimeError
                   and str(unraisable.exc_value) == "Event loop is closed"
                   and frames and f"{os.sep}asyncio{os.sep}" in frames[-1].filename)
    if closed_loop or any(_in_orbax(f.filename) for f in frames):
      return
    hook(unraisable)
  return unraisablehook


# -- paths ----------------------------------------------------------------------------------


def check_workdir_to_read(path: Optional[str], flag: str = "--workdir") -> None:
  """A run's workdir that is only read must exist; nothing is created.

  Raises:
    UsageError: it is missing, or not a directory.
  """
  if not path:
    raise UsageError(f"{flag} is required: the workdir of a trained run.")
  if not os.path.exists(path):
    raise UsageError(f"{flag}={path} does not exist; pass the workdir of a trained run.")
  if not os.path.isdir(path):
    raise UsageError(f"{flag}={path} is a file, not a directory; pass the workdir of a "
                     f"trained run.")


def check_output_dir(path: str, flag: str = "--out") -> None:
  """An output directory must be a writable directory, or creatable; nothing is created yet.

  Args:
    path: the directory the outputs go to.
    flag: the flag that named it (``--workdir`` when the outputs go there by default).

  Raises:
    UsageError: it is a file, or neither it nor its nearest existing parent is writable.
  """
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise UsageError(f"{flag}={path} is a file, not a directory; pass a directory for the "
                       f"outputs with --out.")
    if not os.access(path, os.W_OK):
      raise UsageError(f"{flag}={path} is not writable; write the outputs elsewhere with "
                       f"--out=DIR.")
    return
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
    raise UsageError(f"cannot create {flag}={path}: {parent} is not a writable directory.")
