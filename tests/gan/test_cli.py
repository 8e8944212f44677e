"""Each GAN config end to end through the command line: train (with the fixed-noise grids and
their GIF), sample, and the evaluations (--eval=parzen, --eval=modes on 8 Gaussians)."""

import json
import os

import numpy as np
import pytest

from tests.conftest import run_python

COMMON = [
    "--config.training.batch_size=16", "--config.training.num_steps=4",
    "--config.training.log_every=2", "--config.training.sample_every=2",
    "--config.training.ckpt_every=4", "--config.training.progress=False",
    "--config.training.tensorboard=False", "--config.parzen.num_samples=200",
    "--config.parzen.val_size=40",
]
TINY = {
    "gan": ["--config=configs/gan.py", "--config.generator.hidden=(16,)",
            "--config.discriminator.hidden=(8,)", "--config.discriminator.maxout_pieces=2",
            "--config.training.num_sample_images=4"],
    "dcgan": ["--config=configs/dcgan.py", "--config.generator.ch=4",
              "--config.discriminator.ch=4", "--config.gan.bn_ref_size=8",
              "--config.training.num_sample_images=4"],
    "lsgan": ["--config=configs/lsgan.py", "--config.generator.ch=4",
              "--config.discriminator.ch=4", "--config.gan.bn_ref_size=8",
              "--config.training.num_sample_images=4"],
    "wgan_gp": ["--config=configs/wgan_gp.py", "--config.generator.ch=4",
                "--config.discriminator.ch=4", "--config.gan.bn_ref_size=8",
                "--config.gan.k=2", "--config.training.num_sample_images=4"],
    "gan_2d": ["--config=configs/gan_2d.py", "--config.generator.hidden=(16,)",
               "--config.discriminator.hidden=(16,)", "--config.data.num_points=2000",
               "--config.data.num_test_points=300", "--config.training.num_sample_images=200",
               "--config.gan.mode_eval_samples=300"],
}


def _train_and_sample(name, wd):
  args = TINY[name] + COMMON
  run_python(["train.py", *args, f"--workdir={wd}"], check=True)
  assert sorted(os.listdir(os.path.join(wd, "checkpoints")))[-1] == "4"
  for f in ("metrics.jsonl", "samples/step_0000002.png", "samples/step_0000004.png",
            "samples/progress.gif"):
    assert os.path.exists(os.path.join(wd, f)), f
  rows = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))]
  for key in ("loss", "d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"):
    assert np.isfinite(rows[-1][key]), key
  assert rows[-1]["train_step_traces"] == 1
  run_python(["sample.py", *args, f"--workdir={wd}", "--num=6", "--batch=4"], check=True)
  npz = np.load(os.path.join(wd, "samples.npz"))
  assert int(npz["step"]) == 4 and os.path.exists(os.path.join(wd, "samples.png"))
  return args, rows, npz["samples"]


def test_dcgan_train_sample_and_parzen(tmp_path):
  wd = str(tmp_path / "dcgan")
  args, _, samples = _train_and_sample("dcgan", wd)
  assert samples.shape == (6, 8, 8, 1) and np.all(np.abs(samples) <= 1)
  proc = run_python(["sample.py", *args, f"--workdir={wd}", "--eval=parzen", "--num=60"],
                    check=True)
  result = json.load(open(os.path.join(wd, "eval.json")))["parzen"]
  assert np.isfinite(result["log_likelihood"]) and result["stderr"] > 0
  assert result["num_test"] == 60 and result["num_val"] == 40 and result["num_samples"] == 200
  assert result["sigma"] in result["sigmas"] and "parzen" in proc.stdout


def test_gan_2d_train_sample_modes_and_parzen(tmp_path):
  wd = str(tmp_path / "gan_2d")
  args, rows, samples = _train_and_sample("gan_2d", wd)
  assert samples.shape == (6, 2)
  assert 0 <= rows[-1]["modes_covered"] <= 8 and 0 <= rows[-1]["hq_fraction"] <= 1
  run_python(["sample.py", *args, f"--workdir={wd}", "--eval=modes,parzen", "--num=100"],
             check=True)
  result = json.load(open(os.path.join(wd, "eval.json")))
  assert result["modes"]["num_samples"] == 300 and len(result["modes"]["mode_counts"]) == 8
  assert result["parzen"]["units"] == "data units" and result["parzen"]["num_test"] == 100


@pytest.mark.slow  # ~25 s each; dcgan and gan_2d above cover both code paths in CI
@pytest.mark.parametrize("name", ["gan", "lsgan", "wgan_gp"])
def test_other_configs_train_and_sample(tmp_path, name):
  _, rows, samples = _train_and_sample(name, str(tmp_path / name))
  assert samples.shape == (6, 8, 8, 1)
  if name == "wgan_gp":
    assert "gp" in rows[-1] and "value" not in rows[-1]


def test_mistyped_gan_override_fails_clearly(tmp_path):
  proc = run_python(["train.py", *TINY["gan"], *COMMON, "--config.gan.loss=wgan",
                     f"--workdir={tmp_path}"])
  assert proc.returncode == 1 and "Unknown GAN loss" in proc.stderr
  assert "Traceback" not in proc.stderr
