"""Latent diffusion end to end through the command line on tiny configs: a KL first stage
trains and reports --eval=recon; a class-conditional LDM trains on its latents and samples
with guidance; a first stage of another shape is refused with one line; (text) a saved
text-to-image run samples from --prompt."""

import json
import os

import numpy as np
import pytest

from tests.conftest import run_python

COMMON = [
    "--config.training.batch_size=8", "--config.training.num_steps=2",
    "--config.training.log_every=1", "--config.training.sample_every=2",
    "--config.training.ckpt_every=2", "--config.training.num_sample_images=4",
    "--config.training.progress=False", "--config.training.tensorboard=False",
]
AE_TINY = ["--config.model.ch=8", "--config.model.num_res_blocks=1",
           "--config.first_stage.disc_start=1", "--config.first_stage.disc_ndf=8"]
UNET_TINY = ["--config.model.ch=8", "--config.model.num_res_blocks=1",
             "--config.model.attn_resolutions=()", "--config.diffusion.num_timesteps=50",
             "--config.sampling.steps=3"]


@pytest.fixture(scope="module")
def first_stage(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("latent") / "ae")
  run_python(["train.py", "--config=configs/autoencoder_kl.py", *COMMON, *AE_TINY,
              f"--workdir={wd}"], check=True)
  return wd


def test_first_stage_trains_and_reports_reconstruction(first_stage):
  rows = [json.loads(l) for l in open(os.path.join(first_stage, "metrics.jsonl"))]
  assert rows[-1]["step"] == 2 and np.isfinite(rows[-1]["loss"])
  assert rows[-1]["disc_factor"] == 1.0 and rows[0]["disc_factor"] == 0.0
  proc = run_python(["sample.py", "--config=configs/autoencoder_kl.py", *COMMON, *AE_TINY,
                     f"--workdir={first_stage}", "--eval=recon,psnr", "--num=16"], check=True)
  res = json.load(open(os.path.join(first_stage, "eval.json")))
  rec = res["recon"]
  assert rec["latent_shape"] == [4, 4, 2] and rec["factor"] == 2
  assert rec["scale_factor"] > 0 and rec["rate_bits_per_latent"] > 0
  assert np.isfinite(rec["psnr_db"]) and -1 <= rec["ssim"] <= 1
  assert "reconstruction" in res, proc.stdout


def test_ldm_class_conditional_trains_samples_and_refuses_another_shape(first_stage, tmp_path):
  wd = str(tmp_path / "ldm")
  ldm = ["--config=configs/ldm_digits.py", *COMMON, *UNET_TINY,
         f"--config.ldm.first_stage_workdir={first_stage}"]
  run_python(["train.py", *ldm, f"--workdir={wd}"], check=True)
  run_python(["sample.py", *ldm, f"--workdir={wd}", "--num=4", "--batch=4",
              "--guidance_scale=1.5", "--label=3"], check=True)
  files = [f for f in os.listdir(wd) if f.endswith(".npz")]
  assert files == ["ldm_ddim3_eta1.0_w1.5_label3.npz"], files
  x = np.load(os.path.join(wd, files[0]))["samples"]
  assert x.shape == (4, 8, 8, 1) and np.all(np.abs(x) <= 1.0)
  bad = run_python(["train.py", *ldm, "--config.data.image_size=16",
                    f"--workdir={tmp_path / 'bad'}"])
  assert bad.returncode != 0
  lines = bad.stderr.strip().splitlines()
  assert "another shape" in lines[-1] and "(8, 8, 1)" in lines[-1] and "(16, 16, 1)" in lines[-1]
  assert "Traceback" not in bad.stderr
