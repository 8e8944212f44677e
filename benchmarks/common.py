"""What the benchmarks share: configs with overrides, training or reusing a run, sampling a
restored run, and timing helpers.

The benchmarks import genjax as an installed package (``pip install -e .``) and run as modules
from the repository root, so that the top-level ``configs`` package is importable::

    python -m benchmarks.quality --help
    python -m benchmarks.quality --smoke          # a quick end-to-end check of the script

A run that a benchmark trains lives in a workdir like any ``train.py`` run (checkpoints,
``config.json``, ``metrics.jsonl``), plus ``bench_train.json``: the wall-clock and CPU seconds
the training took and the time budget it ran under. A later call with the same config reuses
the finished run instead of training it again (:func:`train_or_reuse`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import statistics
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

RECORD_NAME = "bench_train.json"

Overrides = Union[Mapping[str, Any], Iterable[tuple[str, Any]]]


class BenchmarkError(ValueError):
  """A benchmark cannot go on as asked (the message says why and what to do)."""


def list_flag(name: str, kind: Callable[[str], Any] = int) -> list:
  """The values of the comma-separated list flag ``--name`` as ``kind`` (``int`` or ``float``).

  Raises:
    genjax.cli.UsageError: a value is not one, naming the flag.
  """
  from absl import flags
  from genjax import cli
  values = flags.FLAGS[name].value
  try:
    return [kind(v) for v in values]
  except ValueError:
    what = "integers" if kind is int else "numbers"
    raise cli.UsageError(f"--{name} must be {what}, got {','.join(values)}.") from None


# -- configs --------------------------------------------------------------------------------


def load_config(name: str, overrides: Overrides = ()):
  """A repo config with dotted overrides.

  Args:
    name: ``"ddpm"`` (the module ``configs.ddpm``), ``"configs/ddpm.py"``, or any path to a
      ``get_config()`` file.
    overrides: ``{"sampling.steps": 20, ...}`` or ``[(dotted, value), ...]``; see
      :func:`with_fields`.

  Returns:
    The ml_collections config.
  """
  if name.endswith(".py"):
    module_name = os.path.splitext(os.path.normpath(name))[0].replace(os.sep, ".")
    if module_name.startswith("configs.") and os.path.exists(name):
      config = importlib.import_module(module_name).get_config()
    else:
      spec = importlib.util.spec_from_file_location("_bench_config", name)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      config = module.get_config()
  else:
    config = importlib.import_module(f"configs.{name}").get_config()
  return with_fields(config, overrides, copy=False)


def with_fields(config, overrides: Overrides, copy: bool = True):
  """``config`` (a copy, unless ``copy=False``) with dotted fields set.

  A field the config does not have is an error, except a field of
  :class:`genjax.sampling.SamplingConfig` in the ``sampling`` section: the configs list only the
  sampling fields they change from the defaults.

  Raises:
    BenchmarkError: an unknown field.
  """
  from genjax.sampling import SamplingConfig
  sampling_fields = {f.name for f in dataclasses.fields(SamplingConfig)}
  if copy:
    config = config.copy_and_resolve_references()
  items = overrides.items() if isinstance(overrides, Mapping) else overrides
  with config.unlocked():
    for dotted, value in items:
      *parents, leaf = dotted.split(".")
      section = config
      for i, p in enumerate(parents):
        if p not in section:
          raise BenchmarkError(f"unknown config field {dotted!r}: the config has no section "
                               f"{'.'.join(parents[:i + 1])!r}.")
        section = section[p]
      if leaf not in section and not (parents == ["sampling"] and leaf in sampling_fields):
        raise BenchmarkError(f"unknown config field {dotted!r}.")
      section[leaf] = value
  return config


def with_sampling(config, **fields):
  """A copy of ``config`` with ``config.sampling.<field> = value`` (fields of
  :class:`genjax.sampling.SamplingConfig`)."""
  return with_fields(config, {f"sampling.{k}": v for k, v in fields.items()})


def method_for(config, **sampling_fields):
  """The trained method of ``config``, rebuilt with other sampling settings.

  ``method_for(config, sampler="dpm-solver-3", steps=20).sample`` samples the same params with
  DPM-Solver-3 (a restored state's ``ema_params`` fit every sampler of the method).
  """
  from genjax.training import run as run_lib
  return run_lib.build_run(with_sampling(config, **sampling_fields)).method


# -- training -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """A run that :func:`train_or_reuse` trained or found.

  Attributes:
    workdir: its workdir.
    step: its last saved step.
    train_s: wall-clock seconds its training took (compilation included); None if it was not
      trained by a benchmark (no record).
    train_cpu_s: CPU seconds of the training process over the same span (the clock of
      ``training.time_budget_clock=process``); None likewise.
    reused: it was found finished, not trained by this call.
  """
  workdir: str
  step: int
  train_s: Optional[float]
  train_cpu_s: Optional[float]
  reused: bool


def read_record(workdir: str) -> Optional[dict]:
  """The workdir's ``bench_train.json`` (how long its training took), or None."""
  path = os.path.join(workdir, RECORD_NAME)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def train_or_reuse(config, workdir: str, *, budget_s: Optional[float] = None,
                   clock: str = "process", progress: bool = False) -> TrainedRun:
  """Trains ``config`` in ``workdir`` through ``genjax.training.run.train_and_evaluate``,
  unless the workdir already holds a finished run of the same config.

  A run is finished when its last checkpoint is at ``training.num_steps``, or when a
  benchmark's record says it stopped there at its time budget, which must then be the one asked
  for now. It is the same config when the two differ only in fields that do not change the
  trained params (logging, checkpoint cadence, progress bars, the time budget, the ``sampling``
  and ``parzen`` sections). An unfinished run of the same config (e.g. an interrupted one) is
  resumed; a resumed budgeted run gets the whole budget again.

  Args:
    config: the run's config.
    workdir: the run's directory (created if missing).
    budget_s: stop training after this many seconds (``training.time_budget_s``), or at
      ``num_steps``, whichever comes first. None: the config's own setting.
    clock: what ``budget_s`` counts: ``"process"`` (CPU seconds of this process: other jobs on
      a shared machine do not eat into it) or ``"wall"``.
    progress: show the trainer's progress bar.

  Returns:
    The :class:`TrainedRun`, with the seconds its training took (recorded in
    ``workdir/bench_train.json``, so that a reused run reports them too).

  Raises:
    BenchmarkError: ``workdir`` holds a run of another config, or one that stopped at another
      time budget.
  """
  from genjax.training import run as run_lib
  from genjax.training import workdir as workdir_lib

  fields = {"training.progress": progress}
  if budget_s is not None:
    fields.update({"training.time_budget_s": float(budget_s),
                   "training.time_budget_clock": clock})
  config = with_fields(config, fields)
  steps = workdir_lib.saved_steps(workdir)
  record = read_record(workdir)
  if steps:
    changes = _changes(config, workdir)
    train = config.training
    budget = (train.time_budget_s, train.time_budget_clock)
    at_budget = (record is not None and record.get("budget_s") is not None
                 and record.get("step", steps[-1]) == steps[-1])
    finished = steps[-1] >= train.num_steps or at_budget
    if changes:
      raise BenchmarkError(
          f"{workdir} holds a {'finished' if finished else 'partial'} run of another config "
          f"({_format(changes)}). Pass another output directory, or remove {workdir} to train "
          f"it again.")
    if at_budget and steps[-1] < train.num_steps and (
        (record["budget_s"], record.get("clock", "process")) != budget):
      raise BenchmarkError(
          f"{workdir} holds a run stopped at step {steps[-1]} by a time budget of "
          f"{record['budget_s']:g} s ({record.get('clock', 'process')} clock), not the "
          f"{budget[0]} s ({budget[1]}) asked for now. Pass the same budget to reuse it, another "
          f"output directory, or remove {workdir} to train it again.")
    if finished:
      return TrainedRun(workdir, steps[-1], _get(record, "train_s"),
                        _get(record, "train_cpu_s"), reused=True)
  t0, c0 = time.time(), time.process_time()
  state = run_lib.train_and_evaluate(config, workdir)
  train_s, train_cpu_s = time.time() - t0, time.process_time() - c0
  step = int(jax.device_get(state.step))
  with open(os.path.join(workdir, RECORD_NAME), "w") as f:
    json.dump({"train_s": train_s, "train_cpu_s": train_cpu_s,
               "budget_s": config.training.time_budget_s,
               "clock": config.training.time_budget_clock, "step": step}, f, indent=1)
  return TrainedRun(workdir, step, train_s, train_cpu_s, reused=False)


def _get(record, key):
  return None if record is None or record.get(key) is None else float(record[key])


def _changes(config, workdir: str) -> list:
  """The differences from the workdir's config record in fields that change training
  (``genjax.training.workdir.trajectory_free``; the time budget is checked on its own)."""
  from genjax.training import workdir as workdir_lib
  path = workdir_lib.current_config_path(workdir)
  if path is None:
    return []
  with open(path) as f:
    old = json.load(f)
  new = json.loads(config.to_json_best_effort())
  return [c for c in workdir_lib.config_diff(old, new) if not workdir_lib.trajectory_free(c[0])]


def _format(changes) -> str:
  return "; ".join(f"{k}: {json.dumps(a)} there, {json.dumps(b)} now"
                   for k, a, b in changes[:5]) + ("; ..." if len(changes) > 5 else "")


# -- sampling -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Samples:
  """Samples of a restored run.

  Attributes:
    x: ``[num, *shape]`` as the sampler returned them.
    seconds: wall-clock seconds of the sampling, compilation included.
    tag: the sampler and its settings (``Method.sample_tag``, e.g. ``ddim50_eta1.0``).
  """
  x: np.ndarray
  seconds: float
  tag: str

  @property
  def finite(self) -> bool:
    return bool(np.all(np.isfinite(self.x)))

  def as_images(self) -> np.ndarray:
    """The samples as a PNG would hold them: non-finite pixels replaced, clipped to [-1, 1]."""
    return np.clip(np.nan_to_num(self.x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)


def sample(method, params, num: int, *, seed: int = 0, batch: Optional[int] = None,
           progress: bool = False) -> Samples:
  """Draws ``num`` samples of a restored run with its method's sampler
  (``genjax.training.sampling.generate``: jitted chunks of ``batch``, sharded over devices).

  Args:
    method: the run's method (``run.method``, or :func:`method_for` for other sampling
      settings).
    params: the params to sample (``state.ema_params``).
    num: number of samples.
    seed: the sampling seed (``jax.random.key(seed)``).
    batch: samples per jitted call (default: all at once).
    progress: show a progress bar over the batches.
  """
  from genjax.training.sampling import generate
  t0 = time.time()
  x = generate(method, params, jax.random.key(seed), num, batch or num, progress=progress)
  return Samples(np.asarray(x), time.time() - t0, method.sample_tag)


# -- captions (text-to-image on the shapes) ---------------------------------------------------


def seen_captions(run, num_steps: int) -> set:
  """Captions of every training image the run's batches held in its first ``num_steps``."""
  from genjax.data import shapes
  src = run.dataset.train
  idx = np.unique(np.concatenate([np.asarray(run.iterator.indices_at(s)).reshape(-1)
                                  for s in range(num_steps)]))
  return set(shapes.captions(idx + src.start, src.cfg))


def never_paired_prompts(run, num: int, seen: set, scan: int = 20_000):
  """The first ``num`` test indices whose caption is not in ``seen``."""
  from genjax.data import shapes
  src = run.dataset.test
  out = []
  for start in range(0, min(scan, len(src)), 1000):
    idx = np.arange(start, min(start + 1000, len(src)))
    caps = shapes.captions(idx + src.start, src.cfg)
    out += [int(i) for i, c in zip(idx, caps) if c not in seen]
    if len(out) >= num:
      break
  return np.asarray(out[:num])


# -- output ---------------------------------------------------------------------------------


def write_json(path: str, obj: Any) -> None:
  """Writes ``obj`` as indented JSON (numpy scalars as floats)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(obj, f, indent=1, default=float)


def fmt(value: Optional[float], spec: str = ".0f") -> str:
  """``format(value, spec)``, or ``-`` for a figure that is not known."""
  return "-" if value is None else format(value, spec)


# -- timing ---------------------------------------------------------------------------------


def time_fn(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
  """Median wall-clock seconds of ``fn()`` (its result blocked on) after ``warmup`` calls."""
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
  """GFLOP/s of a jitted n x n float32 matmul (2 n^3 flops) on the default device."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(jnp.matmul)
  sec = time_fn(lambda: f(a, b), repeats=repeats, warmup=2)
  return 2 * n ** 3 / sec / 1e9


def xla_flops(jitted, *args) -> float:
  """FLOPs of one call, from XLA's own cost analysis of the compiled executable."""
  cost = jitted.lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float(cost.get("flops", float("nan"))) if cost else float("nan")
