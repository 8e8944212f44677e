"""configs/controlnet_digits_edges.py end to end through the CLI on a tiny base and ControlNet."""

import json
import os

import numpy as np
import pytest

from tests.conftest import run_python

BASE = [
    "--config=configs/ddpm.py", "--config.model.ch=8", "--config.model.ch_mult=(1,2)",
    "--config.model.num_res_blocks=1", "--config.model.attn_resolutions=()",
    "--config.diffusion.num_timesteps=20", "--config.sampling.steps=4",
    "--config.training.batch_size=16", "--config.training.num_steps=3",
    "--config.training.log_every=3", "--config.training.sample_every=0",
    "--config.training.ckpt_every=3", "--config.training.progress=False",
    "--config.training.tensorboard=False",
]


def _cn(base_wd):
  return ["--config=configs/controlnet_digits_edges.py",
          f"--config.controlnet.base_workdir={base_wd}", "--config.controlnet.hint_channels=(4,8)",
          "--config.sampling.steps=4", "--config.training.batch_size=16",
          "--config.training.num_steps=2", "--config.training.log_every=1",
          "--config.training.sample_every=2", "--config.training.ckpt_every=2",
          "--config.training.num_sample_images=4", "--config.training.progress=False",
          "--config.training.tensorboard=False", "--config.optim.warmup_steps=0"]


@pytest.mark.slow
def test_controlnet_train_and_sample_through_the_cli(tmp_path):
  base_wd, wd = str(tmp_path / "base"), str(tmp_path / "cn")
  run_python(["train.py", *BASE, f"--workdir={base_wd}"], check=True)
  run_python(["train.py", *_cn(base_wd), f"--workdir={wd}"], check=True)
  rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
  assert rows[-1]["step"] == 2 and np.isfinite(rows[-1]["loss"])
  assert os.path.exists(os.path.join(wd, "samples", "step_0000002.png"))

  run_python(["sample.py", *_cn(base_wd), f"--workdir={wd}", "--control=edges",
              "--control_image=test", "--control_scale=0,1", "--num=4"], check=True)
  npz = [f for f in os.listdir(wd) if f.endswith("_control.npz")]
  assert len(npz) == 1 and os.path.exists(os.path.join(wd, npz[0][:-4] + ".png"))
  data = np.load(os.path.join(wd, npz[0]))
  assert data["samples"].shape == (2, 4, 8, 8, 1) and data["maps"].shape == (4, 8, 8, 1)
  np.testing.assert_array_equal(data["scales"], [0.0, 1.0])

  bad = run_python(["sample.py", *_cn(base_wd), f"--workdir={wd}", "--control=sobel"])
  assert bad.returncode != 0
  last = bad.stderr.strip().splitlines()[-1]
  assert "trained on 'edges' maps" in last and "Traceback" not in bad.stderr

  wrong = run_python(["sample.py", *BASE, f"--workdir={base_wd}", "--control_image=test"])
  assert wrong.returncode != 0 and "need a controlnet run" in wrong.stderr
  assert "Traceback" not in wrong.stderr
