"""unCLIP end to end through the command line (slow): a tiny CLIP, prior and pixel decoder
trained with train.py, then sample.py --prompt (text -> prior -> decoder), --variations of an
image file and of a split, and --eval=decoder."""

import json
import os

import numpy as np
import pytest

from tests.conftest import run_python

TINY = ["--config.training.num_steps=2", "--config.training.batch_size=8",
        "--config.training.progress=False", "--config.training.sample_every=0",
        "--config.data.shapes_num_train=64", "--config.data.shapes_num_test=32"]
CLIP = ["--config=configs/clip_shapes.py", *TINY, "--config.clip.eval_num=16",
        "--config.clip.image_width=4", "--config.clip.text_width=8", "--config.clip.text_depth=1",
        "--config.clip.embed_dim=8"]


@pytest.mark.slow
def test_prompt_and_variations_through_the_cli(tmp_path):
  clip, prior, dec = (str(tmp_path / n) for n in ("clip", "prior", "decoder"))
  run_python(["train.py", *CLIP, f"--workdir={clip}"], check=True)
  run_python(["train.py", "--config=configs/unclip_prior_shapes.py", *TINY,
              f"--config.unclip.clip_workdir={clip}", "--config.unclip.width=16",
              "--config.unclip.depth=1", "--config.diffusion.num_timesteps=20",
              "--config.sampling.steps=3", f"--workdir={prior}"], check=True)
  d = ["--config=configs/unclip_decoder_shapes.py", *TINY, f"--config.unclip.clip_workdir={clip}",
       f"--config.unclip.prior_workdir={prior}", "--config.unclip.first_stage_workdir=",
       "--config.unclip.eval_num=8", "--config.model.ch=4", "--config.model.attn_resolutions=16,",
       "--config.model.num_heads=2", "--config.diffusion.num_timesteps=20",
       "--config.sampling.steps=3"]
  run_python(["train.py", *d, f"--workdir={dec}"], check=True)
  r = run_python(["sample.py", *d, f"--workdir={dec}", "--prompt=a red circle",
                  "--prompt=a small blue square above a green triangle", "--num_per_prompt=2"],
                 check=True)
  npz = [p for p in r.stdout.split("Wrote ")[-1].strip().split(", ") if p.endswith(".npz")][0]
  got = np.load(npz)
  assert got["samples"].shape == (4, 32, 32, 3) and np.isfinite(got["samples"]).all()
  png = os.path.join(dec, os.path.basename(npz)[:-4] + ".png")
  assert os.path.isfile(png) and png.endswith("_prompts.png")
  r = run_python(["sample.py", *d, f"--workdir={dec}", f"--variations={png}",
                  "--num_per_prompt=3", "--num=3", f"--out={tmp_path / 'v'}"], check=True)
  got = np.load(str(tmp_path / "v" / os.listdir(tmp_path / "v")[0]).replace(".png", ".npz"))
  assert got["inputs"].shape == (1, 32, 32, 3) and got["samples"].shape == (3, 32, 32, 3)
  r = run_python(["sample.py", *d, f"--workdir={dec}", "--variations=test",
                  "--num_per_prompt=2", "--num=4", f"--out={tmp_path / 'w'}"], check=True)
  assert "_variations.png" in r.stdout
  run_python(["sample.py", *d, f"--workdir={dec}", "--eval=decoder", "--num=8"], check=True)
  ev = json.load(open(os.path.join(dec, "eval.json")))["decoder"]
  assert ev["num_images"] == 8 and -1 <= ev["cos_decoded_source"] <= 1
  bad = run_python(["sample.py", *d, f"--workdir={dec}", "--variations=nope.png"])
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
      "error: --variations 'nope.png' is neither an image file, a folder, an .npz, an .npy nor "
      "a dataset split (test, train).")
  bad = run_python(["sample.py", *CLIP, f"--workdir={clip}", "--variations=test"])
  assert bad.returncode == 1 and "needs an unCLIP decoder run" in bad.stderr
