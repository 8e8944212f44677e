"""A small run (the 2-D MLP DDPM: it compiles in seconds) and the helpers that damage, compare
and re-run it, for the tests of checkpoints, resumes and the command line."""

import os
import subprocess
import sys

import jax
import numpy as np

from tests.conftest import ROOT

# The same run as a command line, for the tests that go through train.py / sample.py.
TINY_2D_ARGS = [
    "--config=configs/ddpm_2d.py", "--config.model.hidden=16", "--config.model.time_dim=16",
    "--config.data.num_points=256", "--config.data.num_test_points=64",
    "--config.training.batch_size=8", "--config.training.num_steps=4",
    "--config.training.log_every=2", "--config.training.sample_every=0",
    "--config.training.ckpt_every=2", "--config.training.progress=False",
    "--config.training.tensorboard=False", "--config.training.num_sample_images=4",
]


def tiny_2d_config():
  """``configs/ddpm_2d.py`` with the overrides of :data:`TINY_2D_ARGS`."""
  from configs import ddpm_2d
  config = ddpm_2d.get_config()
  config.model.hidden, config.model.time_dim = 16, 16
  config.data.num_points, config.data.num_test_points = 256, 64
  t = config.training
  t.batch_size, t.num_steps, t.log_every, t.sample_every, t.ckpt_every = 8, 4, 2, 0, 2
  t.progress, t.tensorboard, t.num_sample_images = False, False, 4
  return config


def leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(
      (state.params, state.ema_params, state.opt_state, state.step))]


def damage(step_dir, rng=None):
  """Writes 4 KiB of random bytes into the middle of every data file of a checkpoint step
  (a file smaller than that is overwritten whole); returns the files damaged."""
  rng = rng or np.random.default_rng(0)
  damaged = []
  for root, _, files in os.walk(os.path.join(step_dir, "state")):
    if os.path.basename(root) != "d":
      continue
    for f in files:
      path = os.path.join(root, f)
      size = os.path.getsize(path)
      n = min(4096, size)
      with open(path, "r+b") as fh:
        fh.seek((size - n) // 2)
        fh.write(rng.bytes(n))
      damaged.append(path)
  assert damaged, f"no data files under {step_dir}"
  return damaged


HOLDER = ("import sys, time\n"
          "from genjax.training import workdir\n"
          "held = workdir.lock(sys.argv[1])\n"
          "held.__enter__()\n"
          "print('locked', flush=True)\n"
          "time.sleep(600)\n")


def hold_lock(wd):
  """A process that holds ``wd``'s lock until it is killed (it imports no JAX)."""
  os.makedirs(wd, exist_ok=True)
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.Popen([sys.executable, "-c", HOLDER, wd], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "locked"
  return proc
