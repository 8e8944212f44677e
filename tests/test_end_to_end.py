"""End to end through the command line: train, checkpoint, resume, sample, and clear errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests.conftest import ROOT, run_python

TINY = [
    "--config=configs/ddpm.py",
    "--config.model.ch=8", "--config.model.ch_mult=(1,)", "--config.model.num_res_blocks=1",
    "--config.model.attn_resolutions=()", "--config.diffusion.num_timesteps=20",
    "--config.training.batch_size=16", "--config.training.log_every=2",
    "--config.training.sample_every=4", "--config.training.ckpt_every=4",
    "--config.training.num_sample_images=4", "--config.sampling.steps=5",
]


def test_train_then_sample_digits(tmp_path):
  wd = str(tmp_path / "run")
  run_python(["train.py", *TINY, "--config.training.num_steps=8", f"--workdir={wd}"], check=True)
  assert sorted(os.listdir(os.path.join(wd, "checkpoints")))[-1] == "8"
  for f in ("metrics.jsonl", "loss.png", "config.json", "samples/step_0000008.png"):
    assert os.path.exists(os.path.join(wd, f)), f
  rows = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))]
  assert rows[-1]["step"] == 8 and np.isfinite(rows[-1]["loss"])

  run_python(["sample.py", *TINY, f"--workdir={wd}", "--sampler=ddim", "--steps=5",
              "--num=6", "--batch=4"], check=True)
  npz = np.load(os.path.join(wd, "ddim5_eta1.0.npz"))
  assert npz["samples"].shape == (6, 8, 8, 1) and int(npz["step"]) == 8
  assert os.path.exists(os.path.join(wd, "ddim5_eta1.0.png"))
  run_python(["sample.py", *TINY, f"--workdir={wd}", "--sampler=ddpm", "--num=4"], check=True)
  assert np.load(os.path.join(wd, "ddpm.npz"))["samples"].shape == (4, 8, 8, 1)

  run_python(["sample.py", *TINY, f"--workdir={wd}", "--eval=fid,kid,is,pr", "--num=40",
              "--batch=20"], check=True)
  ev = json.load(open(os.path.join(wd, "eval.json")))
  q = ev["sample_quality"]
  assert q["num_samples"] == 40 and ev["step"] == 8
  for k in ("fd_digits", "kid_digits", "is_digits", "precision_digits", "recall_digits"):
    assert np.isfinite(q[k]), k
  assert q["baseline"]["fd_digits"] < q["fd_digits"]  # 8 steps: far from the real-data floor


def test_mistyped_override_fails_naming_it(tmp_path):
  proc = run_python(["train.py", *TINY, "--config.training.batch_sizee=8",
                     f"--workdir={tmp_path}"])
  assert proc.returncode != 0
  assert "batch_sizee" in proc.stderr


def test_unknown_dataset_fails_clearly(tmp_path):
  proc = run_python(["train.py", *TINY, "--config.data.dataset=imagenet_typo",
                     f"--workdir={tmp_path}"])
  assert proc.returncode == 1
  assert "imagenet_typo" in proc.stderr and "mnist" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_sampling_from_empty_workdir_fails_clearly(tmp_path):
  proc = run_python(["sample.py", *TINY, f"--workdir={tmp_path}"])
  assert proc.returncode == 1
  assert "No checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_then_resume_is_exact(tmp_path):
  """A run stopped by SIGTERM and started again ends bitwise equal to an uninterrupted one."""
  args = ["train.py", "--config=configs/ddpm_2d.py", "--config.model.hidden=32",
          "--config.data.num_points=4000", "--config.training.batch_size=64",
          "--config.training.log_every=50", "--config.training.sample_every=0",
          "--config.training.ckpt_every=200", "--config.training.num_steps=1000",
          "--config.training.progress=False"]
  full, split = str(tmp_path / "full"), str(tmp_path / "split")
  run_python([*args, f"--workdir={full}"], check=True)

  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen([sys.executable, *args, f"--workdir={split}"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  ckpts = os.path.join(split, "checkpoints")
  deadline = time.time() + 300
  while time.time() < deadline and not (os.path.isdir(ckpts) and any(
      d.isdigit() for d in os.listdir(ckpts))):
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 130, (proc.returncode, err[-2000:])
  assert "resume" in err
  stopped_at = max(int(d) for d in os.listdir(ckpts) if d.isdigit())
  assert 0 < stopped_at < 1000
  run_python([*args, f"--workdir={split}"], check=True)

  import orbax.checkpoint as ocp
  def params(wd):
    mngr = ocp.CheckpointManager(os.path.join(wd, "checkpoints"))
    return mngr.restore(1000, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  a, b = params(full), params(split)
  import jax
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
