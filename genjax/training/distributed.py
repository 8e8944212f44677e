"""Multi-process training on JAX's distributed runtime (``jax.distributed``).

One training run can span several processes (hosts, or several processes on one machine):
each process drives its local devices, the device mesh spans every process's devices, each
process reads only its own rows of every global batch, and orbax writes and restores the
checkpoints together (the primary process writes the metadata). Launch one process per host
(GPU: one per host with all its GPUs, or one per GPU; TPU: one per VM) with the same command
and config, and either

* the flags ``train.py --coordinator_address=HOST:PORT --num_processes=N --process_id=I``,
* the environment ``GENJAX_COORDINATOR``, ``GENJAX_NUM_PROCESSES``, ``GENJAX_PROCESS_ID``, or
* ``--distributed=auto`` on a Cloud TPU pod, SLURM or Open MPI, where JAX finds them itself.

On the CPU backend the processes exchange data with gloo collectives
(``jax_cpu_collectives_implementation="gloo"``, set before :func:`jax.distributed.initialize`),
so several local CPU processes make one mesh; that is how the tests run it (docs/scale.md).

This module imports JAX only inside :func:`initialize`; :func:`process_index_hint` reads the
environment only, for the workdir checks that run before JAX is imported.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

ENV_COORDINATOR = "GENJAX_COORDINATOR"
ENV_NUM_PROCESSES = "GENJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "GENJAX_PROCESS_ID"


@dataclasses.dataclass(frozen=True)
class DistributedSpec:
  """How this process joins a multi-process run.

  Attributes:
    coordinator_address: ``host:port`` of process 0's coordinator; None with ``auto``.
    num_processes: processes in the run.
    process_id: this process, ``0 .. num_processes - 1``.
    auto: let JAX detect the cluster (Cloud TPU, SLURM, Open MPI).
  """
  coordinator_address: Optional[str] = None
  num_processes: int = 1
  process_id: int = 0
  auto: bool = False

  @property
  def multi_process(self) -> bool:
    return self.auto or self.num_processes > 1


def spec_from(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
              process_id: Optional[int] = None, auto: bool = False,
              environ=None) -> DistributedSpec:
  """The spec from explicit values, falling back on ``GENJAX_*`` environment variables.

  Raises:
    ValueError: an incomplete or inconsistent setting (named, with the fix).
  """
  env = os.environ if environ is None else environ

  def num(value, name):
    if value is not None:
      return value
    raw = env.get(name)
    if raw in (None, ""):
      return None
    try:
      return int(raw)
    except ValueError:
      raise ValueError(f"{name}={raw!r} is not an integer.") from None

  coordinator = coordinator_address or env.get(ENV_COORDINATOR) or None
  n = num(num_processes, ENV_NUM_PROCESSES)
  pid = num(process_id, ENV_PROCESS_ID)
  if auto:
    return DistributedSpec(coordinator, n or 1, pid or 0, auto=True)
  if coordinator is None and n in (None, 1) and pid in (None, 0):
    return DistributedSpec()
  missing = [flag for flag, v in (("--coordinator_address", coordinator),
                                  ("--num_processes", n), ("--process_id", pid)) if v is None]
  if missing:
    raise ValueError(
        f"A multi-process run needs --coordinator_address, --num_processes and --process_id "
        f"(or {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}); missing "
        f"{', '.join(missing)}. On a TPU pod, SLURM or Open MPI pass --distributed=auto.")
  if n < 1 or not 0 <= pid < n:
    raise ValueError(f"--process_id={pid} must be in 0..{n - 1} (--num_processes={n}).")
  if ":" not in coordinator:
    raise ValueError(f"--coordinator_address={coordinator!r} must be host:port, e.g. "
                     f"10.0.0.1:1234 (process 0's address and a free port).")
  return DistributedSpec(coordinator, n, pid)


def export(spec: DistributedSpec) -> None:
  """Records the process index in the environment (``GENJAX_PROCESS_ID``), for the checks that
  run before JAX is imported (the workdir lock and config record)."""
  if spec.multi_process and not spec.auto:
    os.environ[ENV_PROCESS_ID] = str(spec.process_id)
    os.environ[ENV_NUM_PROCESSES] = str(spec.num_processes)


def process_index_hint() -> int:
  """This process's index as far as the environment says (0 when not multi-process)."""
  try:
    return int(os.environ.get(ENV_PROCESS_ID) or 0)
  except ValueError:
    return 0


def initialize(spec: DistributedSpec) -> None:
  """Joins the run: gloo collectives on CPU, then ``jax.distributed.initialize``.

  A single-process spec does nothing. Must run before any JAX computation.
  """
  if not spec.multi_process:
    return
  import jax
  platforms = (os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms or "").lower()
  if platforms in ("", "cpu") or platforms.startswith("cpu"):
    # CPU processes need a collectives implementation to form one mesh; GPU uses NCCL and TPU
    # its ICI/DCN, whatever this says.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if spec.auto:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(spec.coordinator_address, spec.num_processes, spec.process_id)
