"""unCLIP's decoder P(x | z_i, y): its conditioning paths, the guidance dropout and null
condition, text -> prior -> decoder and image variations on tiny trained runs, and clear errors
for a missing or incompatible CLIP workdir."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.clip.decoder import (EmbeddingTokens, decoder_context, decoder_null,
                                 drop_decoder_condition)

DATA = dict(shapes_num_train=64, shapes_num_test=32)


def test_drop_zeroes_the_embedding_and_drops_the_caption_independently_at_their_rates():
  b, e, l, d = 20000, 3, 5, 2
  cond = {"zi": jnp.ones((b, e)), "ctx": jnp.ones((b, l, d)), "ctx_mask": jnp.ones((b, l))}
  null = {"zi": jnp.zeros((e,)), "ctx": jnp.full((l, d), -1.0), "ctx_mask": jnp.zeros((l,))}
  out = drop_decoder_condition(jax.random.key(0), cond, null, 0.1, 0.5)
  z_drop = np.asarray(jnp.all(out["zi"] == 0, axis=1))
  c_drop = np.asarray(jnp.all(out["ctx"] == -1, axis=(1, 2)))
  assert np.all(np.asarray(jnp.all(out["zi"] == 1, axis=1)) == ~z_drop)  # whole rows only
  np.testing.assert_array_equal(c_drop, np.asarray(jnp.all(out["ctx_mask"] == 0, axis=1)))
  assert abs(z_drop.mean() - 0.1) < 0.01 and abs(c_drop.mean() - 0.5) < 0.015
  assert abs((z_drop & c_drop).mean() - 0.05) < 0.01    # independent: 0.1 * 0.5
  assert out["zi"].dtype == cond["zi"].dtype
  never = drop_decoder_condition(jax.random.key(1), cond, null, 0.0, 0.0)
  assert all(bool(jnp.all(never[k] == cond[k])) for k in cond)
  always = drop_decoder_condition(jax.random.key(1), cond, null, 1.0, 0.0)
  assert bool(jnp.all(always["zi"] == 0)) and bool(jnp.all(always["ctx"] == 1))


def test_null_condition_is_the_zero_embedding_and_the_empty_caption():
  cond = {"zi": jnp.ones((3, 4)), "ctx": jnp.ones((3, 5, 2)), "ctx_mask": jnp.ones((3, 5))}
  null = {"zi": jnp.zeros((4,)), "ctx": jnp.full((5, 2), 7.0),
          "ctx_mask": jnp.array([1.0, 1.0, 0, 0, 0])}
  out = decoder_null(cond, null)
  assert bool(jnp.all(out["zi"] == 0)) and bool(jnp.all(out["ctx"] == 7.0))
  np.testing.assert_array_equal(np.asarray(out["ctx_mask"][2]), [1, 1, 0, 0, 0])


def test_context_is_the_embedding_tokens_then_the_caption():
  toks = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3)
  cap = -jnp.ones((2, 5, 3))
  ctx, mask = decoder_context(toks, cap, jnp.array([[1, 1, 0, 0, 0]] * 2))
  assert ctx.shape == (2, 9, 3) and mask.shape == (2, 9)
  np.testing.assert_array_equal(np.asarray(ctx[:, :4]), np.asarray(toks))
  np.testing.assert_array_equal(np.asarray(mask[0]), [1, 1, 1, 1, 1, 1, 0, 0, 0])
  only, m = decoder_context(toks)
  assert only.shape == (2, 4, 3) and bool(jnp.all(m))
  with pytest.raises(ValueError, match="do not match"):
    decoder_context(toks, jnp.ones((2, 5, 7)))


def test_unet_output_depends_on_the_embedding_through_time_embedding_and_tokens():
  from genjax.nets.unet import UNet
  e, d = 6, 8
  net = UNet(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
             context_dim=d, num_heads=2, emb_dim=e, out_channels=1)
  tok = EmbeddingTokens(num_tokens=4, width=d)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  t = jnp.array([10, 500])
  z1 = jax.random.normal(jax.random.key(1), (2, e))
  z2 = jax.random.normal(jax.random.key(2), (2, e))
  tp = tok.init(jax.random.key(3), z1)["params"]
  ctx, mask = decoder_context(tok.apply({"params": tp}, z1))
  np_ = net.init(jax.random.key(4), x, t, emb=z1, context=ctx, context_mask=mask)["params"]
  # zero-initialised output layers would hide the dependence; perturb every parameter a little
  np_ = jax.tree.map(lambda a: a + 0.05 * jax.random.normal(jax.random.key(5), a.shape), np_)

  @jax.jit
  def out(netp, tokp, z):
    c, m = decoder_context(tok.apply({"params": tokp}, z))
    return net.apply({"params": netp}, x, t, emb=z, context=c, context_mask=m)

  base = out(np_, tp, z1)
  assert float(jnp.max(jnp.abs(out(np_, tp, z2) - base))) > 1e-4
  # (a) the time-embedding path alone: the tokens no longer see z
  tp0 = jax.tree.map(lambda a: a, tp)
  tp0["proj"]["kernel"] = jnp.zeros_like(tp["proj"]["kernel"])
  assert float(jnp.max(jnp.abs(out(np_, tp0, z2) - out(np_, tp0, z1)))) > 1e-4
  # (b) the context-token path alone: the time embedding no longer sees z
  np0 = jax.tree.map(lambda a: a, np_)
  np0["emb_proj"]["kernel"] = jnp.zeros_like(np_["emb_proj"]["kernel"])
  assert float(jnp.max(jnp.abs(out(np0, tp, z2) - out(np0, tp, z1)))) > 1e-4
  # neither: the output does not depend on z
  np.testing.assert_allclose(np.asarray(out(np0, tp0, z2)), np.asarray(out(np0, tp0, z1)),
                             atol=1e-6)


# -- tiny trained runs: CLIP -> prior -> decoder ---------------------------------------------


def _train(config, workdir):
  from genjax.training.run import train_and_evaluate
  train_and_evaluate(config, str(workdir))
  return str(workdir)


def _tiny(config, steps=2, batch=8):
  for k, v in DATA.items():
    config.data[k] = v
  config.training.num_steps = steps
  config.training.batch_size = batch
  config.training.sample_every = 0
  config.training.ckpt_every = steps
  config.training.log_every = 1
  config.training.progress = False
  config.training.tensorboard = False
  return config


def _clip_config():
  from configs import clip_shapes
  c = _tiny(clip_shapes.get_config(), steps=1)
  c.clip.image_width, c.clip.text_width, c.clip.text_depth = 4, 8, 1
  c.clip.embed_dim, c.clip.eval_num = 8, 16
  return c


def _decoder_config(clip, prior=""):
  from configs import unclip_decoder_shapes
  c = _tiny(unclip_decoder_shapes.get_config())
  c.unclip.clip_workdir, c.unclip.prior_workdir, c.unclip.first_stage_workdir = clip, prior, ""
  c.unclip.eval_num = 8
  c.model.ch, c.model.ch_mult, c.model.attn_resolutions, c.model.num_heads = 4, (1, 2), (16,), 2
  c.diffusion.num_timesteps = 20
  c.sampling.steps, c.sampling.guidance_scale = 3, 2.0
  return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A tiny CLIP and a tiny prior on it, trained one step each by the trainer."""
  from configs import unclip_prior_shapes
  root = tmp_path_factory.mktemp("unclip")
  clip = _train(_clip_config(), root / "clip")
  p = _tiny(unclip_prior_shapes.get_config(), steps=1)
  p.unclip.clip_workdir, p.unclip.width, p.unclip.depth, p.unclip.eval_num = clip, 16, 1, 8
  p.diffusion.num_timesteps, p.sampling.steps = 20, 3
  prior = _train(p, root / "prior")
  return {"root": root, "clip": clip, "prior": prior}


def test_text_goes_through_prior_and_decoder_and_images_through_clip(runs):
  """The decoder method built on the tiny CLIP and prior, with perturbed initial params: the
  samples depend on z_i, text uses the prior's z_i, and variations use CLIP's."""
  from genjax.clip.decoder_method import build_unclip_decoder
  from genjax.clip.score import load_clip
  from genjax.data import DataConfig, load_dataset
  from genjax.text import tokenize
  config = _decoder_config(runs["clip"], runs["prior"])
  data = load_dataset(DataConfig(dataset="shapes", image_size=32, **DATA))
  method = build_unclip_decoder(config, data.spec)
  assert "text" in method.modes and method.sample_tag.startswith("unclip_ddim")
  batch = {k: jnp.asarray(v) for k, v in data.train.get(np.arange(2)).items()}
  params, _ = method.init(jax.random.key(0), batch)
  params = jax.tree.map(lambda a: a + 0.05 * jax.random.normal(jax.random.key(5), a.shape),
                        params)
  loss, metrics = method.loss(params, batch, jax.random.key(1))
  assert np.isfinite(float(loss))
  sample = jax.jit(lambda k, inp: method.sample(params, k, 2, inputs=inp))
  clip = load_clip(runs["clip"])
  z = clip.encode_image(batch["x"])
  k = jax.random.key(0)
  a = sample(k, {"image_embed": z})
  assert a.shape == (2, 32, 32, 3) and bool(jnp.all(jnp.isfinite(a)))
  assert float(jnp.max(jnp.abs(a - sample(k, {"image_embed": z[::-1]})))) > 1e-5
  np.testing.assert_allclose(np.asarray(sample(k, {"images": batch["x"]})), np.asarray(a),
                             atol=2e-3)                       # variations: z_i = CLIP(x)
  tok = jnp.asarray(tokenize(["a red circle", "a large blue square at the top"], 32), jnp.int32)
  c = sample(k, {"text": tok})
  assert bool(jnp.all(jnp.isfinite(c)))
  assert float(jnp.max(jnp.abs(c - sample(k, {"text": tok, "image_embed": z})))) > 1e-5
  no_prior = build_unclip_decoder(_decoder_config(runs["clip"]), data.spec)
  with pytest.raises(ValueError, match="needs the prior"):
    no_prior.sample(params, k, 2, inputs={"text": tok})


def test_missing_or_incompatible_clip_and_prior_workdirs_are_refused(runs, tmp_path):
  from genjax.clip.decoder_method import build_unclip_decoder
  from genjax.data import DataConfig, load_dataset
  spec = load_dataset(DataConfig(dataset="shapes", image_size=32, **DATA)).spec
  cases = [(_decoder_config(str(tmp_path / "none")), "holds no trained run"),
           (_decoder_config(runs["clip"], str(tmp_path / "none")), "prior_workdir=.* holds no"),
           (_decoder_config(runs["prior"]), "holds a 'unclip_prior' run, not a CLIP"),
           (_decoder_config(runs["clip"], runs["clip"]), "holds a 'clip' run, not an unCLIP prior"),
           (_decoder_config(""), "must name a trained CLIP")]
  for config, msg in cases:
    with pytest.raises(ValueError, match=msg):
      build_unclip_decoder(config, spec)
  small = _decoder_config(runs["clip"])
  small.data.image_size = 16
  spec16 = load_dataset(DataConfig(dataset="shapes", image_size=16, **DATA)).spec
  with pytest.raises(ValueError, match=r"is a CLIP of another shape: 32x32 images, this data "
                                       r"16x16"):
    build_unclip_decoder(small, spec16)


def test_cli_refuses_a_missing_clip_workdir_in_one_line(tmp_path):
  from tests.conftest import run_python
  r = run_python(["train.py", "--config=configs/unclip_decoder_shapes.py",
                  f"--config.unclip.clip_workdir={tmp_path / 'no_clip'}",
                  "--config.data.shapes_num_train=64", "--config.data.shapes_num_test=32",
                  f"--workdir={tmp_path / 'w'}"])
  assert r.returncode == 1, r.stderr
  last = r.stderr.strip().splitlines()
  assert len(last) == 1 and last[0].startswith("error: unclip.clip_workdir=") and \
      "holds no trained run" in last[0]
