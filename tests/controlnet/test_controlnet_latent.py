"""ControlNet on a text-conditioned latent diffusion base: the caption's context reaches the
base and the trainable copy, the mask encoder works down to the latent grid, guidance's null
branch is the empty caption, and at initialisation the guided denoiser is the base's bit for bit
(fast); on a tiny trained configs/ldm_shapes.py run (slow: two trainings), the whole method
(first-stage encoding, decoding, the trainer) starts exactly at the base, trains with it
frozen, and samples with prompts and masks."""

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
  # Its one step must move the zero-initialised conv_out: with a warmup the learning rate of
  # step 0 is 0, the base's output ignores its input, and no gradient reaches a ControlNet.
  c.optim.warmup_steps = 0
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


def test_guided_controlnet_on_a_text_latent_unet_is_the_base_at_init_and_reads_the_caption():
  from genjax.controlnet.model import controlled_apply, make_condition, null_condition
  from genjax.nets.controlnet import controlnet_like, init_from_base
  from genjax.nets.text import TextEncoder
  from genjax.nets.unet import UNet
  from genjax.sampling.guidance import classifier_free_guidance
  from genjax.text import tokenize, vocab_size
  enc = TextEncoder(vocab_size=vocab_size(), max_len=12, width=8, depth=1, num_heads=2)
  tokens = jnp.asarray(tokenize(["a red circle", "a small blue square", "a green cross"], 12))
  empty = np.asarray(tokenize([""], 12)[0])
  text_p = enc.init(jax.random.key(5), tokens)["params"]
  ctx = lambda tok: dict(zip(("context", "context_mask"),
                             (enc.apply({"params": text_p}, tok)[0], tok != 0)))
  unet = UNet(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4, 2), dropout=0.0,
              context_dim=8, num_heads=2, out_channels=4)
  z, t = jax.random.normal(jax.random.key(1), (3, 4, 4, 4)), jnp.array([3, 20, 45])
  base = unet.init(jax.random.key(0), z, t, **ctx(tokens))["params"]
  base = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(7), p.shape), base)
  net = controlnet_like(unet, hint_channels=(4, 8, 8), hint_downsample=4)  # 16x16 -> 4x4
  masks = (jax.random.uniform(jax.random.key(2), (3, 16, 16, 1)) > 0.7).astype(jnp.float32)
  ctrl = init_from_base(net.init(jax.random.key(3), z, t, control=masks, **ctx(tokens))["params"],
                        base)

  def controlled(p):
    fn = lambda x, tt, c: controlled_apply(unet, [net], base, [p], x, tt, dict(c, **ctx(c["text"])))
    return classifier_free_guidance(fn, 2.0, null_condition(None, False, empty))

  plain = classifier_free_guidance(
      lambda x, tt, c: unet.apply({"params": base}, x, t=tt, **ctx(c["text"])), 2.0,
      lambda c: dict(c, text=jnp.broadcast_to(jnp.asarray(empty), c["text"].shape)))
  cond = dict(make_condition([masks], [1.5]), text=tokens)
  ours = jax.jit(lambda: controlled(ctrl)(z, t, cond))()
  theirs = jax.jit(lambda: plain(z, t, {"text": tokens}))()
  np.testing.assert_array_equal(_bits(ours), _bits(theirs))
  # once the zero convolutions are not zero, the copy's residuals follow the mask and the caption
  moved = {k: (jax.tree.map(lambda a: a + 0.05, v) if k.startswith(("zero", "hint_conv_out"))
               else v) for k, v in ctrl.items()}
  fn = jax.jit(lambda c: controlled(moved)(z, t, c))
  out = fn(cond)
  assert not np.allclose(out, theirs, atol=1e-4)
  assert not np.allclose(fn(dict(cond, text=tokens[::-1])), out, atol=1e-5)
  assert not np.allclose(fn(dict(cond, control=(1.0 - masks,))), out, atol=1e-5)
  # the null branch is the empty caption, the control kept (guess mode would zero its scale)
  null = null_condition(None, False, empty)(cond)
  np.testing.assert_array_equal(null["text"], np.broadcast_to(empty, tokens.shape))
  assert null["control"] is cond["control"] and null["scale"] is cond["scale"]
  assert not np.any(null_condition(None, True, empty)(cond)["scale"])


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_latent_base_refuses_a_hint_encoder_at_another_resolution(latent_base):
  base_wd, _, _ = latent_base
  cfg = tiny_masks_config(base_wd)
  cfg.controlnet.hint_downsample = 1
  with pytest.raises(ValueError, match=r"hint_downsample=1: .* 4x smaller; set it to 4"):
    run_lib.build_run(cfg)
