"""configs/iddpm.py end to end through the CLI: train (importance-sampled t), NLL, DPM-Solver."""

import json
import os

import numpy as np

from tests.conftest import run_python

TINY = [
    "--config=configs/iddpm.py",
    "--config.model.ch=8", "--config.model.ch_mult=(1,)", "--config.model.num_res_blocks=1",
    "--config.model.attn_resolutions=()", "--config.diffusion.num_timesteps=10",
    "--config.training.batch_size=16", "--config.training.log_every=2",
    "--config.training.sample_every=4", "--config.training.ckpt_every=4",
    "--config.training.num_sample_images=4", "--config.training.progress=False",
    "--config.diffusion.timestep_sampler=loss-second-moment",
]


def test_iddpm_train_nll_and_dpm_solver(tmp_path):
  wd = str(tmp_path / "run")
  run_python(["train.py", *TINY, "--config.training.num_steps=4", f"--workdir={wd}"], check=True)
  rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
  assert rows[-1]["step"] == 4 and np.isfinite(rows[-1]["loss"]) and "vb" in rows[-1]
  assert os.path.exists(os.path.join(wd, "samples", "step_0000004.png"))  # ancestral, learned var

  run_python(["sample.py", *TINY, f"--workdir={wd}", "--eval=nll", "--num=8"], check=True)
  res = json.load(open(os.path.join(wd, "eval.json")))["nll"]
  assert res["num_examples"] == 8 and res["decoder_bins"] == 256
  assert np.isfinite(res["bpd"]) and 0 < res["bpd_17bins"] < res["bpd"]
  np.testing.assert_allclose(res["bpd"], res["prior_bpd"] + res["kl_bpd"] + res["decoder_bpd"],
                             rtol=1e-4)

  run_python(["sample.py", *TINY, f"--workdir={wd}", "--sampler=dpm-solver-2", "--steps=4",
              "--num=4"], check=True)
  samples = np.load(os.path.join(wd, "dpm-solver-2_4.npz"))["samples"]
  assert samples.shape == (4, 8, 8, 1) and np.all(np.abs(samples) <= 1)
