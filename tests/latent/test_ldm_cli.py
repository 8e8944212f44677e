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


@pytest.mark.slow
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


SHAPES_TINY = ["--config.data.image_size=16", "--config.data.shapes_num_test=64"]


@pytest.mark.slow
def test_text_to_image_trains_and_samples_from_prompts(tmp_path):
  """The text encoder and the diffusion model train jointly through the CLI on the shapes; the
  saved run samples from --prompt and --prompts_file with guidance; a model without text refuses
  --prompt in one line."""
  ae = str(tmp_path / "ae")
  run_python(["train.py", "--config=configs/autoencoder_kl_shapes.py", *COMMON, *AE_TINY,
              *SHAPES_TINY, "--config.first_stage.perceptual=none", f"--workdir={ae}"],
             check=True)
  wd = str(tmp_path / "ldm")
  ldm = ["--config=configs/ldm_shapes.py", *COMMON, *UNET_TINY, *SHAPES_TINY,
         "--config.model.attn_resolutions=(4,2)", "--config.model.num_heads=2",
         "--config.text_encoder.width=16", "--config.text_encoder.depth=1",
         "--config.text_encoder.num_heads=2", f"--config.ldm.first_stage_workdir={ae}"]
  run_python(["train.py", *ldm, f"--workdir={wd}"], check=True)
  rows = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))]
  assert np.isfinite(rows[-1]["loss"])
  prompts = tmp_path / "prompts.txt"
  prompts.write_text("a small blue square\n")
  proc = run_python(["sample.py", *ldm, f"--workdir={wd}", "--prompt=a red circle",
                     f"--prompts_file={prompts}", "--num_per_prompt=2", "--guidance_scale=2",
                     f"--out={tmp_path / 'out'}"], check=True)
  npz = [f for f in os.listdir(tmp_path / "out") if f.endswith("_prompts.npz")]
  assert len(npz) == 1, proc.stdout
  got = np.load(tmp_path / "out" / npz[0])
  assert got["samples"].shape == (4, 16, 16, 3) and list(got["prompts"]) == [
      "a red circle", "a small blue square"]
  assert got["tokens"].shape == (2, 32) and got["tokens"][0, 0] == 1  # BOS
  bad = run_python(["sample.py", "--config=configs/autoencoder_kl_shapes.py", *COMMON, *AE_TINY,
                    *SHAPES_TINY, "--config.first_stage.perceptual=none", f"--workdir={ae}",
                    "--prompt=a red circle", f"--out={tmp_path / 'bad'}"])
  assert bad.returncode != 0 and "text-conditioned" in bad.stderr.strip().splitlines()[-1]
