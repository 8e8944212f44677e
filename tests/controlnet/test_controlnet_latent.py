"""ControlNet on a text-conditioned latent diffusion base (configs/controlnet_shapes_masks.py on
a tiny configs/ldm_shapes.py run): it starts exactly at the base, carries the caption to the
trainable copy, trains with the base frozen, and samples with prompts and masks."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.training import run as run_lib

TRAIN = dict(batch_size=8, num_steps=1, log_every=1, sample_every=0, ckpt_every=1,
             num_sample_images=4, progress=False, tensorboard=False)
DATA = dict(image_size=16, shapes_num_test=32)


def _set(section, values):
  for k, v in values.items():
    section[k] = v


def _first_stage_config():
  from configs import autoencoder_kl_shapes
  c = autoencoder_kl_shapes.get_config()
  _set(c.data, DATA)
  _set(c.training, TRAIN)
  c.model.ch, c.model.num_res_blocks = 8, 1
  c.first_stage.disc_start, c.first_stage.disc_ndf, c.first_stage.perceptual = 1, 8, "none"
  return c


def _ldm_config(ae_wd):
  from configs import ldm_shapes
  c = ldm_shapes.get_config()
  _set(c.data, DATA)
  _set(c.training, TRAIN)
  c.ldm.first_stage_workdir = ae_wd
  c.model.ch, c.model.num_res_blocks, c.model.num_heads = 8, 1, 2
  c.model.attn_resolutions = (4, 2)
  c.text_encoder.width, c.text_encoder.depth, c.text_encoder.num_heads = 16, 1, 2
  c.diffusion.num_timesteps = 50
  c.sampling.steps = 3
  return c


def tiny_masks_config(base_wd, steps=2):
  from configs import controlnet_shapes_masks
  c = controlnet_shapes_masks.get_config()
  _set(c.data, DATA)
  _set(c.training, dict(TRAIN, num_steps=steps, ckpt_every=steps))
  c.controlnet.base_workdir = base_wd
  c.controlnet.hint_channels = (4, 8, 8)
  c.sampling.steps = 3
  c.optim.warmup_steps = 0
  return c


@pytest.fixture(scope="module")
def latent_base(tmp_path_factory):
  root = tmp_path_factory.mktemp("cn_latent")
  ae, ldm = str(root / "ae"), str(root / "ldm")
  run_lib.train_and_evaluate(_first_stage_config(), ae)
  state = run_lib.train_and_evaluate(_ldm_config(ae), ldm)
  return ldm, state, _ldm_config(ae)


def _bits(a):
  return np.asarray(a, np.float32).view(np.uint32)


def test_controlnet_on_the_latent_base_starts_exactly_at_it_and_trains_only_itself(
    latent_base, tmp_path):
  base_wd, base_state, base_cfg = latent_base
  cfg = tiny_masks_config(base_wd)
  run = run_lib.build_run(cfg)
  method = run.method
  assert "text" in method.modes
  params, model_state = method.init(jax.random.key(0), run.iterator.batch_at(0))
  # the condition encoder takes the 16x16 mask to the 4x4 latents (f = 4), and the trainable
  # copy has the base's cross-attention, initialised from it
  assert params["hint_conv_out"]["kernel"].shape[-1] == 8
  copy = params["trainable_copy"]
  attn = [k for k in copy if "attn" in k or "transformer" in k]
  assert attn, list(copy)
  for k in copy:
    for a, b in zip(jax.tree.leaves(copy[k]), jax.tree.leaves(base_state.ema_params["net"][k])):
      np.testing.assert_array_equal(_bits(a), _bits(b))

  data = run.dataset.test.get(np.arange(4))
  text = np.asarray(data["text"], np.int32)
  b_run = run_lib.build_run(base_cfg)
  inputs = {"images": data["x"], "mask": data["mask"], "text": text, "scale": np.float32(2.0)}

  # 1. At initialisation, with any mask and scale, the whole sampler (DDIM with guidance on the
  # caption, the null branch the empty caption, then the first stage's decoder) gives the latent
  # base's samples bit for bit (op by op; a compiled program may fuse the extra zero additions
  # differently, so jitted samples agree to float32 rounding).
  with jax.disable_jit():
    ours = method.sample(params, jax.random.key(3), 4, inputs=inputs)
    theirs = b_run.method.sample(base_state.ema_params, jax.random.key(3), 4,
                                 inputs={"text": text})
  np.testing.assert_array_equal(_bits(ours), _bits(theirs))
  jit_ours = jax.jit(lambda p: method.sample(p, jax.random.key(3), 4, inputs=inputs))(params)
  np.testing.assert_allclose(np.asarray(jit_ours), np.asarray(theirs), atol=1e-5)
  assert ours.shape == (4, 16, 16, 3)
  # the caption matters (the context reaches the base and the copy): another caption, another
  # sample
  other = method.sample(params, jax.random.key(3), 4, inputs=dict(inputs, text=text[::-1]))
  assert not np.allclose(np.asarray(other), np.asarray(jit_ours))

  # 2. Train two steps: the frozen base (U-Net and text encoder) is bitwise unchanged, the zero
  # convolutions moved, and the optimizer holds ControlNet's parameters only.
  wd = str(tmp_path / "cn")
  state = run_lib.train_and_evaluate(cfg, wd)
  assert set(state.model_state["base"]) == {"net", "text"}
  for a, b in zip(jax.tree.leaves(state.model_state["base"]),
                  jax.tree.leaves(base_state.ema_params)):
    np.testing.assert_array_equal(_bits(a), _bits(b))
  assert float(jnp.abs(state.params["zero_conv_mid"]["kernel"]).sum()) > 0
  n_params = sum(np.size(x) for x in jax.tree.leaves(state.params))
  assert sum(np.size(x) for x in jax.tree.leaves(state.opt_state)) < 2 * n_params + 10
  return wd


def test_prompts_and_masks_through_control_to_files(latent_base, tmp_path):
  """``sample.py --control=mask --control_image=test --prompt=...``'s library call: the prompts
  cycle over the control images and are recorded; a missing file names --control_image."""
  from genjax.controlnet.sampling import control_to_files
  base_wd, _, _ = latent_base
  cfg = tiny_masks_config(base_wd, steps=1)
  wd = str(tmp_path / "cn")
  run_lib.train_and_evaluate(cfg, wd)
  out = str(tmp_path / "out")
  paths = control_to_files(cfg, wd, out, control="mask", image="test", scales=[0.0, 1.0],
                           num=3, prompts=["a red circle", "a small blue square"])
  got = np.load(paths[1])
  assert got["samples"].shape == (2, 3, 16, 16, 3) and got["maps"].shape == (3, 16, 16, 1)
  assert list(got["prompts"]) == ["a red circle", "a small blue square", "a red circle"]
  assert got["tokens"].shape == (3, 32) and os.path.exists(paths[0])
  # a drawn mask as a file, no prompt: the empty caption
  from PIL import Image
  png = tmp_path / "mask.png"
  Image.fromarray((np.asarray(got["maps"][0, ..., 0]) * 255).astype(np.uint8)).save(png)
  paths = control_to_files(cfg, wd, str(tmp_path / "out2"), control="map", image=str(png),
                           num=2)
  assert np.load(paths[1])["samples"].shape == (1, 2, 16, 16, 3)
  with pytest.raises(ValueError, match=r"^--control_image '.*nothing.png' is neither"):
    control_to_files(cfg, wd, out, control="mask", image=str(tmp_path / "nothing.png"), num=2)


def test_latent_base_refuses_a_hint_encoder_at_another_resolution(latent_base):
  base_wd, _, _ = latent_base
  cfg = tiny_masks_config(base_wd)
  cfg.controlnet.hint_downsample = 1
  with pytest.raises(ValueError, match=r"hint_downsample=1: .* 4x smaller; set it to 4"):
    run_lib.build_run(cfg)
