import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, env_extra=None, timeout=600, cwd=ROOT, check=False):
  """Runs ``python <args>`` in a subprocess from the repo root; returns CompletedProcess."""
  env = dict(os.environ)
  env.setdefault("JAX_PLATFORMS", "cpu")
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env.update(env_extra or {})
  proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"command failed ({proc.returncode}): {args}\n--- stdout\n"
                         f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
  return proc


@pytest.fixture
def python():
  return run_python
