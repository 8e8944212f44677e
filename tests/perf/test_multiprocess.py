"""Multi-process data parallelism on JAX's distributed runtime (CPU processes, gloo).

Two ``train.py`` processes with 4 CPU devices each form one 8-device mesh (each reads its own
rows of every batch, orbax saves and restores the checkpoints together); they are killed
(SIGKILL, both) after their first checkpoint and started again, and the resumed run ends with
the params of one process with 8 devices that ran straight through.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.conftest import FAST_COMPILE_FLAGS, ROOT

ARGS = [
    "--config=configs/ddpm_2d.py", "--config.model.hidden=16", "--config.model.time_dim=16",
    "--config.data.num_points=256", "--config.data.num_test_points=64",
    "--config.training.batch_size=16", "--config.training.log_every=2",
    "--config.training.sample_every=0", "--config.training.ckpt_every=1",
    "--config.training.progress=False", "--config.training.tensorboard=False",
    "--config.training.num_sample_images=8",
]


def _port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  flags = f"--xla_force_host_platform_device_count={devices}"
  if os.environ.get("GENJAX_TEST_FULL_OPT") != "1":
    flags += " " + FAST_COMPILE_FLAGS
  env["XLA_FLAGS"] = flags
  for k in ("GENJAX_COORDINATOR", "GENJAX_NUM_PROCESSES", "GENJAX_PROCESS_ID"):
    env.pop(k, None)
  return env


def _launch(workdir, steps, extra=(), processes=2, devices=4):
  port = _port()
  procs = []
  for i in range(processes):
    cmd = [sys.executable, "train.py", *ARGS, *extra, f"--workdir={workdir}",
           f"--config.training.num_steps={steps}"]
    if processes > 1:
      cmd += [f"--coordinator_address=localhost:{port}", f"--num_processes={processes}",
              f"--process_id={i}"]
    procs.append(subprocess.Popen(cmd, cwd=ROOT, env=_env(devices), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True))
  return procs


def _finish(procs, timeout=400):
  outs = []
  for p in procs:
    out, _ = p.communicate(timeout=timeout)
    outs.append(out)
    assert p.returncode == 0, out[-3000:]
  return outs


def _steps(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def _params(workdir, steps, extra=()):
  """The restored params, EMA and optimizer state (in this 1-device process) of ARGS + extra."""
  from genjax.training import run as run_lib
  from configs import ddpm_2d
  config = ddpm_2d.get_config()
  config.model.hidden, config.model.time_dim = 16, 16
  config.data.num_points, config.data.num_test_points = 256, 64
  config.training.batch_size, config.training.num_steps = 16, steps
  for e in extra:
    key, value = e[len("--config."):].split("=")
    sec, field = key.split(".")
    config[sec][field] = type(config[sec][field])(value) if not isinstance(
        config[sec][field], bool) else value == "True"
  _, state = run_lib.restore(config, workdir)
  return [np.asarray(x) for x in jax.tree.leaves((state.params, state.ema_params,
                                                   state.opt_state))], int(state.step)


def _kill_after_first_checkpoint(procs, workdir, timeout=300):
  t0 = time.time()
  while not _steps(workdir):
    if any(p.poll() is not None for p in procs):
      outs = [p.communicate()[0] for p in procs]
      raise AssertionError("a process ended before the first checkpoint:\n"
                           + "\n---\n".join(o[-2000:] for o in outs))
    assert time.time() - t0 < timeout, "no checkpoint in time"
    time.sleep(0.05)
  for p in procs:
    os.killpg(p.pid, signal.SIGKILL)
  for p in procs:
    p.wait()


def _check(tmp_path, steps, extra=()):
  ref, mp = str(tmp_path / "one_by_8"), str(tmp_path / "two_by_4")
  single = _launch(ref, steps, extra, processes=1, devices=8)
  multi = _launch(mp, steps, extra)
  _kill_after_first_checkpoint(multi, mp)
  killed_at = _steps(mp)[-1]
  assert killed_at < steps, f"the run finished ({killed_at}) before it was killed"
  _finish(_launch(mp, steps, extra))  # both processes again: they resume from killed_at
  _finish(single)
  a, sa = _params(ref, steps, extra)
  b, sb = _params(mp, steps, extra)
  assert sa == sb == steps
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6)
  return killed_at


def test_two_processes_by_4_devices_resume_and_match_one_by_8(tmp_path):
  _check(tmp_path, steps=6)


@pytest.mark.slow
def test_two_processes_fsdp_longer_run(tmp_path):
  """Longer, with params and optimizer state sharded over the 8 devices of 2 processes (the
  checkpoint gathers and scatters them across processes) and gradient accumulation."""
  _check(tmp_path, steps=40, extra=("--config.training.param_sharding=fsdp",
                                    "--config.training.grad_accum_steps=2",
                                    "--config.model.hidden=128"))
