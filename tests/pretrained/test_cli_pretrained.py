"""sample.py --pretrained end to end on a tiny diffusers pipeline folder the test saves, and its
one-line errors."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from tests.conftest import run_python  # noqa: E402


def _pipeline(folder):
  torch.manual_seed(0)
  unet = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3,
                               block_out_channels=(32, 64), layers_per_block=1,
                               down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                               up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
                               attention_head_dim=None, downsample_padding=0,
                               flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6)
  sched = diffusers.DDPMScheduler(num_train_timesteps=20, beta_schedule="linear",
                                  beta_start=1e-2, beta_end=0.5)
  diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder)


def test_sample_py_pretrained_end_to_end(tmp_path):
  folder, out = str(tmp_path / "ddpm-tiny"), str(tmp_path / "out")
  _pipeline(folder)
  proc = run_python(["sample.py", f"--pretrained={folder}", "--sampler=ddim", "--steps=5",
                     "--num=3", "--batch=2", "--seed=1", f"--out={out}"], check=True)
  assert "Wrote" in proc.stdout
  files = sorted(os.listdir(out))
  assert files == ["pretrained_ddim5_eta0.0.npz", "pretrained_ddim5_eta0.0.png"], files
  x = np.load(os.path.join(out, files[0]))["samples"]
  assert x.shape == (3, 8, 8, 3) and np.isfinite(x).all() and np.abs(x).max() <= 1.0


@pytest.mark.slow
def test_sample_py_pretrained_model_folder_defaults_to_the_schedulers_sampler(tmp_path):
  folder, out = str(tmp_path / "ddpm-tiny"), str(tmp_path / "out")
  _pipeline(folder)
  # The unet/ folder alone: the scheduler from ../scheduler; DDPMScheduler -> ancestral DDPM.
  proc = run_python(["sample.py", f"--pretrained={os.path.join(folder, 'unet')}", "--num=2",
                     f"--out={out}"], check=True)
  assert "pretrained_ddpm" in proc.stdout


@pytest.mark.parametrize("args, code, message", [
    (["--pretrained={missing}", "--out={out}"], 1, "no such file or folder"),
    (["--pretrained={tmp}"], 2, "--pretrained needs --out"),
    (["--out={out}"], 2, "--config is required"),
])
def test_sample_py_pretrained_errors(tmp_path, args, code, message):
  fmt = dict(missing=str(tmp_path / "nope"), out=str(tmp_path / "o"), tmp=str(tmp_path))
  proc = run_python(["sample.py"] + [a.format(**fmt) for a in args])
  assert proc.returncode == code, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], proc.stderr
