import os
import subprocess
import sys

# The suite compiles hundreds of small programs and runs each for a few steps, so XLA's
# compile time, not run time, dominates it on CPU (the tfds mock run: 69 s of compiling at the
# default level, 29 s with these flags). Set before jax is imported, and inherited by the CLI
# subprocesses. GENJAX_TEST_FULL_OPT=1 runs the suite at XLA's default optimisation instead.
FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                      "--xla_cpu_use_fusion_emitters=false")
if os.environ.get("GENJAX_TEST_FULL_OPT") != "1":
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FAST_COMPILE_FLAGS).strip()

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, env_extra=None, timeout=600, cwd=ROOT, check=False):
  """Runs ``python <args>`` in a subprocess from the repo root; returns CompletedProcess."""
  env = dict(os.environ)
  env.setdefault("JAX_PLATFORMS", "cpu")
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env.update(env_extra or {})
  if env_extra and "XLA_FLAGS" in env_extra and os.environ.get("GENJAX_TEST_FULL_OPT") != "1":
    env["XLA_FLAGS"] = env_extra["XLA_FLAGS"] + " " + FAST_COMPILE_FLAGS
  proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"command failed ({proc.returncode}): {args}\n--- stdout\n"
                         f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
  return proc


@pytest.fixture
def python():
  return run_python
