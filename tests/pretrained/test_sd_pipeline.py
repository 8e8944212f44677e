"""A tiny Stable Diffusion 1.x pipeline (CLIP text encoder + U-Net with cross-attention + VAE +
DDIM) saved by diffusers and run in genjax from the same initial latents: the same images."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from genjax.pretrained import sd  # noqa: E402
from tests.pretrained.test_clip_text import _write_tokenizer  # noqa: E402


def _save_tiny_sd(tmp_path):
  tok_dir = str(tmp_path / "tok")
  vocab_size = _write_tokenizer(tok_dir)
  tokenizer = transformers.CLIPTokenizer.from_pretrained(tok_dir)
  torch.manual_seed(0)
  text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
      vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
      num_attention_heads=4, max_position_embeddings=16, eos_token_id=2)).eval()
  unet = diffusers.UNet2DConditionModel(
      sample_size=8, in_channels=4, out_channels=4, block_out_channels=(128, 128),
      layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
      up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
      attention_head_dim=4).eval()
  vae = diffusers.AutoencoderKL(block_out_channels=(128, 128), layers_per_block=1,
                                down_block_types=("DownEncoderBlock2D",) * 2,
                                up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                                sample_size=16).eval()
  with torch.no_grad():
    for m in (unet, vae):
      for p in m.parameters():
        p.add_(0.02 * torch.randn_like(p))
  sched = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                  beta_end=0.012, clip_sample=False, set_alpha_to_one=False,
                                  steps_offset=1)
  pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer,
                                           unet=unet, scheduler=sched, safety_checker=None,
                                           feature_extractor=None, requires_safety_checker=False)
  folder = str(tmp_path / "sd-tiny")
  pipe.save_pretrained(folder)
  pipe.set_progress_bar_config(disable=True)
  return pipe, folder


@pytest.mark.slow
def test_text_to_image_pipeline_matches_diffusers(tmp_path):
  pipe, folder = _save_tiny_sd(tmp_path)
  prompts = ["a small red circle", "the blue square"]
  latents = np.random.RandomState(0).randn(2, 4, 8, 8).astype(np.float32)
  with torch.no_grad():
    ref = pipe(prompts, num_inference_steps=5, guidance_scale=3.0, height=16, width=16,
               latents=torch.from_numpy(latents), output_type="np").images
  model = sd.load_stable_diffusion(folder)
  out = sd.text_to_image(model, prompts, jax.random.key(0), steps=5, guidance_scale=3.0,
                         height=16, width=16, x_T=jnp.asarray(latents.transpose(0, 2, 3, 1)))
  img = np.clip((np.asarray(out) + 1) / 2, 0, 1)
  assert ref.shape == img.shape == (2, 16, 16, 3)
  np.testing.assert_array_less(np.abs(img - ref).max(), 1e-4)
  # The same with PNDM (diffusers' PNDMScheduler, skip_prk_steps=False) on the same grid.
  pipe.scheduler = diffusers.PNDMScheduler.from_config(pipe.scheduler.config)
  with torch.no_grad():
    ref = pipe(prompts, num_inference_steps=5, guidance_scale=3.0, height=16, width=16,
               latents=torch.from_numpy(latents), output_type="np").images
  cfg = sd.sampling_config(model, sampler="pndm", steps=5, guidance_scale=2.0)
  assert cfg.steps_offset == 1
  out = sd.text_to_image(model, prompts, jax.random.key(0), height=16, width=16, cfg=cfg,
                         x_T=jnp.asarray(latents.transpose(0, 2, 3, 1)))
  img = np.clip((np.asarray(out) + 1) / 2, 0, 1)
  np.testing.assert_array_less(np.abs(img - ref).max(), 1e-4)


@pytest.mark.slow
def test_sample_py_pretrained_prompt_end_to_end(tmp_path):
  from tests.conftest import run_python
  _, folder = _save_tiny_sd(tmp_path)
  out = str(tmp_path / "out")
  proc = run_python(["sample.py", f"--pretrained={folder}", "--prompt=a small red circle",
                     "--prompt=the blue square", "--num_per_prompt=2", "--steps=3",
                     "--guidance_scale=2", "--height=16", "--width=16", f"--out={out}"],
                    check=True)
  assert "pretrained_ddim3_eta0.0_lastabar0_leading_offset1_w2.0.png" in proc.stdout
  z = np.load(os.path.join(out, "pretrained_ddim3_eta0.0_lastabar0_leading_offset1_w2.0.npz"))
  assert z["samples"].shape == (4, 16, 16, 3) and np.isfinite(z["samples"]).all()
  assert list(z["prompts"]) == ["a small red circle"] * 2 + ["the blue square"] * 2
  # Any genjax sampler, through the same guidance.
  proc = run_python(["sample.py", f"--pretrained={folder}", "--prompt=a small red circle",
                     "--sampler=dpm-solver++-2m", "--steps=4", "--guidance_scale=2",
                     "--height=16", "--width=16", f"--out={out}"], check=True)
  assert "pretrained_dpm-solver++-2m_4_w2.0.png" in proc.stdout, proc.stdout
  # A setting the model cannot take: one line, before any sampling.
  proc = run_python(["sample.py", f"--pretrained={folder}", "--prompt=a small red circle",
                     "--sampler=pc", "--steps_offset=1", f"--out={out}"])
  assert proc.returncode != 0 and "steps_offset" in proc.stderr
  assert "Traceback" not in proc.stderr
