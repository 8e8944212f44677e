"""CLIP and unCLIP's prior end to end through the command line (slow): tiny runs trained with
train.py, evaluated with sample.py --eval, and a prior without a CLIP refused in one line."""

import json
import os

import pytest

from tests.conftest import run_python

CLIP = ["--config=configs/clip_shapes.py", "--config.training.num_steps=4",
        "--config.training.batch_size=16", "--config.training.log_every=2",
        "--config.training.progress=False", "--config.clip.eval_num=50",
        "--config.clip.image_width=4", "--config.clip.text_width=8", "--config.clip.text_depth=1"]


@pytest.mark.slow
def test_clip_then_prior_through_the_cli(tmp_path):
  clip = str(tmp_path / "clip")
  run_python(["train.py", *CLIP, f"--workdir={clip}"], check=True)
  run_python(["sample.py", *CLIP, f"--workdir={clip}", "--eval=zeroshot,retrieval",
              "--num=200"], check=True)
  ev = json.load(open(os.path.join(clip, "eval.json")))
  assert 0 <= ev["zeroshot"]["acc_colour"] <= 1 and ev["retrieval"]["num_pairs"] == 50
  prior = ["--config=configs/unclip_prior_shapes.py", f"--config.unclip.clip_workdir={clip}",
           "--config.training.num_steps=4", "--config.training.batch_size=16",
           "--config.training.progress=False", "--config.unclip.width=32",
           "--config.unclip.depth=1", "--config.diffusion.num_timesteps=20",
           "--config.sampling.steps=4", "--config.unclip.eval_num=20"]
  wd = str(tmp_path / "prior")
  run_python(["train.py", *prior, f"--workdir={wd}"], check=True)
  run_python(["sample.py", *prior, f"--workdir={wd}", "--eval=prior", "--num=20"], check=True)
  ev = json.load(open(os.path.join(wd, "eval.json")))["prior"]
  assert ev["num_pairs"] == 20 and -1 <= ev["cos_sample_true"] <= 1
  bad = run_python(["train.py", *prior, "--config.unclip.clip_workdir=", f"--workdir={tmp_path / 'b'}"])
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith(
      "error: unclip.clip_workdir must name")
