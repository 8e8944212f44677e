"""A tiny diffusers DiTPipeline (DiT transformer + AutoencoderKL + DDIM) saved by diffusers and
sampled by genjax from the same initial latents with classifier-free guidance: the same images;
and sample.py --pretrained on it."""

import os

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from genjax.pretrained import pipeline  # noqa: E402
from tests.conftest import run_python  # noqa: E402


def _save_tiny_dit(folder):
  torch.manual_seed(0)
  # ImageNet's 1,000 classes: DiTPipeline's null label is 1000, hard-coded.
  dit = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=16,
                                        in_channels=4, out_channels=8, num_layers=2,
                                        sample_size=4, patch_size=2,
                                        num_embeds_ada_norm=1000).eval()
  vae = diffusers.AutoencoderKL(block_out_channels=(128, 128), layers_per_block=1,
                                down_block_types=("DownEncoderBlock2D",) * 2,
                                up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                                sample_size=8, scaling_factor=0.5).eval()
  with torch.no_grad():  # away from the zero-initialised adaLN and output layers
    for m in (dit, vae):
      for p in m.parameters():
        p.add_(0.05 * torch.randn_like(p))
    for blk in dit.transformer_blocks[1:]:  # one time/label embedder, as the published DiT
      blk.norm1.emb.load_state_dict(dit.transformer_blocks[0].norm1.emb.state_dict())
  sched = diffusers.DDIMScheduler(clip_sample=False)
  pipe = diffusers.DiTPipeline(transformer=dit, vae=vae, scheduler=sched)
  pipe.save_pretrained(folder)
  pipe.set_progress_bar_config(disable=True)
  return pipe


def test_dit_pipeline_matches_diffusers(tmp_path):
  folder = str(tmp_path / "dit-tiny")
  pipe = _save_tiny_dit(folder)
  labels = [0, 7]
  with torch.no_grad():
    ref = pipe(class_labels=labels, guidance_scale=3.0, num_inference_steps=5,
               generator=torch.Generator().manual_seed(0), output_type="np").images
  latents = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(0)).numpy()
  model = pipeline.load(folder)
  assert model.kind == "dit" and model.num_classes == 1000 and model.learned_variance
  # diffusers' guidance_scale s is genjax's w = s - 1 (Ho & Salimans 2022, eq. 6).
  cfg = pipeline.sampling_config(model, sampler="ddim", steps=5, guidance_scale=2.0)
  out = pipeline.sample(model, cfg, jax.random.key(0), 2, labels=labels,
                        x_T=latents.transpose(0, 2, 3, 1))
  img = np.clip((out + 1) / 2, 0, 1)
  assert ref.shape == img.shape == (2, 8, 8, 3)
  assert np.abs(ref - 0.5).max() > 0.05  # not a flat image
  np.testing.assert_array_less(np.abs(img - ref).max(), 1e-4)
  # The guidance matters: w = 0 gives other images.
  plain = pipeline.sample(model, pipeline.sampling_config(model, sampler="ddim", steps=5),
                          jax.random.key(0), 2, labels=labels, x_T=latents.transpose(0, 2, 3, 1))
  assert np.abs(np.clip((plain + 1) / 2, 0, 1) - ref).max() > 1e-3


def test_sample_py_pretrained_dit_end_to_end(tmp_path):
  folder, out = str(tmp_path / "dit-tiny"), str(tmp_path / "out")
  _save_tiny_dit(folder)
  proc = run_python(["sample.py", f"--pretrained={folder}", "--sampler=ddpm", "--steps=4",
                     "--num=3", "--label=5", "--guidance_scale=1", f"--out={out}"], check=True)
  assert "Wrote" in proc.stdout
  npz = [f for f in os.listdir(out) if f.endswith(".npz")]
  x = np.load(os.path.join(out, npz[0]))["samples"]
  assert x.shape == (3, 8, 8, 3) and np.isfinite(x).all()
  # A DiT pipeline without its VAE: one line naming what is missing.
  import shutil
  shutil.rmtree(os.path.join(folder, "vae"))
  proc = run_python(["sample.py", f"--pretrained={folder}", "--num=1", f"--out={out}2"])
  assert proc.returncode != 0 and "no vae/" in proc.stderr and "Traceback" not in proc.stderr
