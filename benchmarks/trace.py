"""Reading XLA's own CPU trace: which HLO instruction each thunk was, and how long it ran.

On the CPU backend every thunk an executable runs (a fusion, a YNNPACK library call, a copy) is
one event on an XLA worker thread, named after its HLO instruction; the compiled HLO's metadata
(``op_name``) says which line of the model it came from. Used by ``benchmarks.unet_profile`` and
``benchmarks.sampler_speed --profile``.
"""

from __future__ import annotations

import collections
import glob
import re
import tempfile
import time

import jax

_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\w+\[[\d,]*\])?.*?metadata=\{([^}]*)\}")
_OPNAME = re.compile(r'op_name="([^"]*)"')


def hlo_metadata(hlo_text: str) -> dict[str, tuple[str, str]]:
  """Instruction name -> (its ``op_name`` metadata, its result shape such as ``f32[8,3]``), for
  every instruction of the HLO text that has an ``op_name``."""
  out = {}
  for line in hlo_text.splitlines():
    m = _INSTR.match(line)
    if m:
      op = _OPNAME.search(m.group(3))
      if op:
        out[m.group(1)] = (op.group(1), m.group(2) or "")
  return out


_NAME = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = ")


def hlo_instruction_names(hlo_text: str) -> set[str]:
  """The names of all instructions of the HLO text."""
  return {m.group(1) for m in map(_NAME.match, hlo_text.splitlines()) if m}


def trace_events(fn, steps: int, names: set[str] | None = None) -> tuple[dict[str, float], float]:
  """Runs ``fn`` ``steps`` times under the profiler; returns ({event name: total ns}, wall
  seconds). Counted: every event on XLA's worker threads (but the executor's own spans), and on
  any thread the events named after an instruction in ``names`` (a small executable runs its
  thunks on the calling thread)."""
  with tempfile.TemporaryDirectory() as d:
    jax.profiler.start_trace(d)
    t0 = time.perf_counter()
    for _ in range(steps):
      fn()
    wall = time.perf_counter() - t0
    jax.profiler.stop_trace()
    files = glob.glob(f"{d}/**/*.xplane.pb", recursive=True)
    if not files:
      raise RuntimeError("the profiler wrote no trace")
    data = jax.profiler.ProfileData.from_file(files[0])
  totals = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      worker = "XLAEigen" in line.name  # not host-side dispatch or 'wait for completion'
      for ev in line.events:
        if (worker and not ev.name.startswith(("ThunkExecutor", "ThreadpoolListener", "end: "))
            or names is not None and ev.name in names):
          totals[ev.name] += ev.duration_ns
  return totals, wall
