"""Imagen's text-conditioned cascade: the frozen text encoder gets no gradient, optimizer state
or EMA and stays bitwise unchanged; a jointly trained one is trained; the encoder from a CLIP
workdir and from CLIPTextModel weights (with and without a CLIP tokenizer beside them); a
wrong or missing encoder source refused in one line; and (slow) the chain through the CLI."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import clip_shapes, imagen_shapes_base
from genjax import text
from genjax.cascade import method as cm
from genjax.cascade import text as ct
from genjax.types import DataSpec
from tests.conftest import run_python

SPEC16 = DataSpec((16, 16, 3), 0)
CAPTIONS = ["a small red circle at the top left", "a large blue square above a green triangle",
            ""]

CLIP_TINY = ["--config.clip.embed_dim=8", "--config.clip.image_width=4",
             "--config.clip.image_mult=(1,)", "--config.clip.text_width=16",
             "--config.clip.text_depth=1", "--config.clip.text_heads=2",
             "--config.data.image_size=16", "--config.training.batch_size=8",
             "--config.training.num_steps=1", "--config.training.ckpt_every=1",
             "--config.training.log_every=1", "--config.training.progress=False",
             "--config.optim.warmup_steps=0"]


def _tiny(config, encoder="joint", path=""):
  config.model.ch = 4
  config.model.ch_mult = (1,)
  config.model.attn_resolutions = (16,)  # cross-attention to the text at 16x16 and the middle
  config.model.norm_groups = 2         # GroupNorm of 1 channel would cancel the pooled embedding
  config.model.num_heads = 2
  config.diffusion.num_timesteps = 20
  config.sampling.steps = 2
  config.training.batch_size = 4
  config.optim.warmup_steps = 0        # the zero-initialised output layers move at step 0
  config.text_encoder.width = 16
  config.text_encoder.depth = 1
  config.cascade.text_encoder = encoder
  config.cascade.text_encoder_path = path
  if config.cascade.low_size:
    config.cascade.max_aug_level = 10
    config.cascade.sample_aug_level = 3
  return config


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
  """A CLIP trained for one step (in process): a workdir as configs/clip_shapes.py makes."""
  from genjax.training import run as run_lib
  workdir = str(tmp_path_factory.mktemp("clip"))
  config = clip_shapes.get_config()
  for flag in CLIP_TINY:
    key, value = flag[len("--config."):].split("=")
    section, field = key.split(".")
    config[section][field] = eval(value) if value[0] in "(0123456789" or value in (
        "True", "False") else value
  run_lib.train_and_evaluate(config, workdir)
  return workdir


def _batch(n=4, size=16):
  from genjax.data import shapes
  b = shapes.generate(np.arange(n), shapes.ShapesConfig(image_size=size))
  return {"x": jnp.asarray(b["x"]), "text": jnp.asarray(b["text"])}


def _train(config, spec, steps=2):
  """``(method, state0, state)`` after ``steps`` steps of the trainer's own jitted step."""
  from genjax.training import optim as optim_lib
  from genjax.training import trainer
  from genjax.training.config import OptimConfig, TrainConfig
  from genjax.typed_config import from_section
  method = cm.build_cascade(config, spec)
  tcfg = from_section(TrainConfig, config.training, where="training")
  ocfg = from_section(OptimConfig, config.optim, where="optim")
  tx = optim_lib.make_optimizer(ocfg, 10)
  batch = _batch(4, spec.shape[0])
  state0 = trainer.init_state(method, tx, jax.random.key(0), batch, tcfg, trainer.make_mesh())
  state0 = jax.tree.map(lambda a: a, state0)
  step = jax.jit(trainer.make_train_step(method, tcfg))
  state = state0
  for _ in range(steps):
    state, metrics = step(state, batch)
    assert np.isfinite(float(metrics["loss"]))
  return method, state0, state


def _same(a, b):
  return jax.tree.structure(a) == jax.tree.structure(b) and all(
      np.array_equal(np.asarray(x), np.asarray(y))
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_a_changed_frozen_encoder_is_refused_on_restore(clip_run):
  """Sampling reads the encoder from its source: a checkpoint that recorded another one is
  refused in one line rather than sampled with the wrong encoder."""
  import types

  from genjax.training.checkpoint import CheckpointMismatchError
  config = _tiny(imagen_shapes_base.get_config(), "clip", clip_run)
  method = cm.build_cascade(config, SPEC16)
  from genjax.clip.score import load_clip
  enc = load_clip(clip_run).params["text_encoder"]
  method.check_restored(types.SimpleNamespace(model_state={"text": enc}))  # the same: passes
  other = jax.tree.map(lambda a: a + 1e-3, enc)
  with pytest.raises(CheckpointMismatchError, match=f"The frozen text encoder at {clip_run} is "
                     "not the one this run was trained with"):
    method.check_restored(types.SimpleNamespace(model_state={"text": other}))


def test_frozen_clip_encoder_is_unchanged_and_has_no_optimizer_state_or_ema(clip_run):
  from genjax.clip.score import load_clip
  config = _tiny(imagen_shapes_base.get_config(), "clip", clip_run)
  method, state0, state = _train(config, SPEC16)
  clip_text = load_clip(clip_run).params["text_encoder"]
  # The encoder rides in model_state: the CLIP's text tower, bitwise, before and after.
  assert _same(state.model_state["text"], clip_text)
  assert _same(state0.model_state["text"], clip_text)
  # Only the U-Net is trained: no encoder leaf in params, optimizer state or EMA.
  n_enc = sum(a.size for a in jax.tree.leaves(clip_text))
  n_net = sum(a.size for a in jax.tree.leaves(state.params))
  assert not any("token_embedding" in jax.tree_util.keystr(p)
                 for p, _ in jax.tree_util.tree_flatten_with_path(state.params)[0])
  n_opt = sum(a.size for a in jax.tree.leaves(state.opt_state) if a.ndim > 0)
  assert n_opt == 2 * n_net                 # Adam's two moments of the U-Net alone
  assert jax.tree.structure(state.ema_params) == jax.tree.structure(state.params)
  assert not _same(state.params, state0.params)   # the U-Net did train
  assert n_enc > 0
  # Text reaches the U-Net: the pooled embedding's projection and the cross-attention.
  assert state.params["emb_proj"]["kernel"].shape[0] == 16
  assert any("attn2" in jax.tree_util.keystr(p) or "cross" in jax.tree_util.keystr(p)
             for p, _ in jax.tree_util.tree_flatten_with_path(state.params)[0])
  assert method.modes == ("sample", "text")
  # Sampling from prompts: guidance needs the empty caption's encoding; every output in range.
  tokens = jnp.asarray(text.tokenize(CAPTIONS[:2], 32))
  out = method.sample(state.ema_params, jax.random.key(3), 2, inputs={"text": tokens})
  assert out.shape == (2, 16, 16, 3) and np.all(np.abs(np.asarray(out)) <= 1)


@pytest.mark.slow
def test_joint_encoder_is_trained_with_the_unet():
  config = _tiny(imagen_shapes_base.get_config(), "joint")
  # Three steps: the zero-initialised conv_out moves at step 0, the zero-initialised output
  # projections of the cross-attention at step 1, and only then does the text get a gradient.
  _, state0, state = _train(config, SPEC16, steps=3)
  assert set(state.params) == {"net", "text"} and state.model_state == {}
  assert not _same(state.params["text"], state0.params["text"])
  assert jax.tree.structure(state.ema_params) == jax.tree.structure(state.params)


def test_caption_dropout_and_guidance_use_the_empty_caption():
  config = _tiny(imagen_shapes_base.get_config(), "joint")
  stage = cm.build_stage(config, SPEC16)
  assert np.array_equal(np.asarray(stage.text.empty_tokens), text.tokenize([""], 32)[0])
  method = cm.build_cascade(config, SPEC16)
  params, _ = method.init(jax.random.key(0), _batch(1))
  model = stage.model_of(params)
  e = stage.text.encode(params["text"], jnp.asarray(text.tokenize(CAPTIONS, 32)))
  null = model.null_cond(dict(e))
  np.testing.assert_allclose(null["context"][0], e["context"][2], atol=1e-5)
  np.testing.assert_allclose(null["pooled"][1], e["pooled"][2], atol=1e-5)
  assert np.array_equal(null["context_mask"][0], e["context_mask"][2])


def _export_clip_text(folder, vocab_size, tokenizer=False, max_len=32):
  """A random transformers CLIPTextModel saved with save_pretrained (safetensors)."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  cfg = transformers.CLIPTextConfig(vocab_size=vocab_size, hidden_size=16,
                                    intermediate_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, max_position_embeddings=max_len,
                                    eos_token_id=text.EOS_ID if not tokenizer else vocab_size - 1,
                                    pad_token_id=0, bos_token_id=1)
  torch.manual_seed(0)
  model = transformers.CLIPTextModel(cfg).eval()
  model.save_pretrained(folder)
  return model


def test_frozen_encoder_from_clip_text_model_weights_matches_transformers(tmp_path):
  torch = pytest.importorskip("torch")
  folder = str(tmp_path / "clip_text")
  ref = _export_clip_text(folder, text.vocab_size())
  config = _tiny(imagen_shapes_base.get_config(), "weights", folder)
  tc = ct.build_text_conditioner("weights", folder, config, 32)
  tokens = np.asarray(text.tokenize(CAPTIONS, 32))
  got = tc.encode(tc.frozen_params, jnp.asarray(tokens))
  with torch.no_grad():
    want = ref(torch.as_tensor(tokens.astype(np.int64)))
  mask = tokens != 0   # positions up to EOS (pads follow EOS; the causal mask hides them)
  np.testing.assert_allclose(np.asarray(got["context"])[mask],
                             want.last_hidden_state.numpy()[mask], atol=1e-4)
  np.testing.assert_allclose(np.asarray(got["pooled"]), want.pooler_output.numpy(), atol=1e-4)
  # The stage takes it as its frozen encoder (in model_state, not in params).
  method = cm.build_cascade(config, SPEC16)
  params, state = method.init(jax.random.key(0), _batch(1))
  assert _same(state["text"], tc.frozen_params) and "emb_proj" in params
  assert method.loss is None and method.train_step is not None


def test_weights_with_a_clip_tokenizer_translate_the_captions(tmp_path):
  pytest.importorskip("tokenizers")
  from genjax.pretrained.clip_text import load_tokenizer
  from tests.pretrained.test_clip_text import _write_tokenizer
  folder = str(tmp_path / "clip_text_bpe")
  n = _write_tokenizer(folder)
  tok = load_tokenizer(folder)
  translate = ct.make_translation(tok, 40)
  caps = CAPTIONS[:2] + ["a red circle"]
  ids, mask = translate(jnp.asarray(text.tokenize(caps, 32)))
  want = tok(caps, 40)
  np.testing.assert_array_equal(np.asarray(ids), want)
  lengths = [len(tok([c], 40)[0][tok([c], 40)[0] != tok.pad_id]) for c in caps]
  # Real tokens: BOS .. EOS (the pad id may equal EOS's, so count from the translation).
  assert np.asarray(mask).sum(1).tolist()[2] >= 3
  assert all(m >= 2 for m in np.asarray(mask).sum(1)) and len(lengths) == 3
  # The folder with weights + tokenizer builds a conditioner whose ids are the tokenizer's.
  _export_clip_text(folder, n, tokenizer=True, max_len=40)
  config = _tiny(imagen_shapes_base.get_config(), "weights", folder)
  tc = ct.build_text_conditioner("weights", folder, config, 32)
  ids2, _ = tc.translate(jnp.asarray(text.tokenize(caps, 32)))
  np.testing.assert_array_equal(np.asarray(ids2), want)


def test_wrong_or_missing_encoder_sources_fail_in_one_line(tmp_path, clip_run):
  from genjax.training.checkpoint import CheckpointError
  base = imagen_shapes_base.get_config()
  cases = [("clip", "", "needs cascade.text_encoder_path"),
           ("clip", str(tmp_path / "nowhere"), "does not exist"),
           ("weights", clip_run, "not a CLIPTextModel folder"),
           ("joint", clip_run, "leave cascade.text_encoder_path empty"),
           ("none", clip_run, "cascade.text_encoder='none'"),
           ("t5", "", "must be one of")]
  for kind, path, match in cases:
    with pytest.raises(ValueError, match=match) as e:
      ct.build_text_conditioner(kind, path, base, 32)
    assert "\n" not in str(e.value)
  empty = tmp_path / "empty_run"
  empty.mkdir()
  with pytest.raises((CheckpointError, ValueError)):
    ct.build_text_conditioner("clip", str(empty), base, 32)
  weights = tmp_path / "w"
  weights.mkdir()
  (weights / "config.json").write_text(json.dumps({"architectures": ["CLIPTextModel"]}))
  with pytest.raises(ValueError, match="set cascade.text_encoder='weights'"):
    ct.build_text_conditioner("clip", str(weights), base, 32)
  # A vocabulary that is not the captions' and no tokenizer beside it.
  folder = str(tmp_path / "other_vocab")
  _export_clip_text(folder, text.vocab_size() + 5)
  with pytest.raises(ValueError, match="no tokenizer"):
    ct.build_text_conditioner("weights", folder, base, 32)
  # Digits have no captions.
  config = _tiny(imagen_shapes_base.get_config(), "joint")
  config.data.dataset = "digits"
  with pytest.raises(ValueError, match="captioned data"):
    cm.build_cascade(config, DataSpec((16, 16, 1), 10))


TINY_CLI = ["--config.model.ch=4", "--config.model.ch_mult=(1,)",
            "--config.model.attn_resolutions=()", "--config.model.num_heads=2",
            "--config.diffusion.num_timesteps=20", "--config.training.batch_size=4",
            "--config.training.log_every=1", "--config.training.sample_every=0",
            "--config.training.ckpt_every=1", "--config.training.num_steps=1",
            "--config.training.progress=False", "--config.sampling.steps=2"]


@pytest.mark.slow
def test_text_chain_end_to_end_through_the_cli(tmp_path, clip_run):
  b, s = str(tmp_path / "b16"), str(tmp_path / "s32")
  enc = [f"--config.cascade.text_encoder_path={clip_run}"]
  run_python(["train.py", "--config=configs/imagen_shapes_base.py", *TINY_CLI, *enc,
              f"--workdir={b}"], check=True)
  sr = ["--config=configs/imagen_shapes_sr.py", *TINY_CLI, *enc,
        f"--config.cascade.lower_workdir={b}", "--config.cascade.max_aug_level=10",
        "--config.cascade.sample_aug_level=3"]
  run_python(["train.py", *sr, f"--workdir={s}"], check=True)
  out = run_python(["sample.py", *sr, f"--workdir={s}", "--prompt=a large red circle",
                    "--prompt=a small blue square above a green triangle",
                    "--num_per_prompt=2", "--guidance_scale=3", "--thresholding=dynamic"],
                   check=True)
  npz = [f for f in os.listdir(s) if f.endswith("_prompts.npz")]
  assert len(npz) == 1, out.stdout
  got = np.load(os.path.join(s, npz[0]))
  assert got["stage0"].shape == (4, 16, 16, 3) and got["stage1"].shape == (4, 32, 32, 3)
  assert os.path.exists(os.path.join(s, npz[0].replace(".npz", "_stages.png")))
  # A missing encoder: one line, exit status 1, before any training.
  bad = run_python(["train.py", "--config=configs/imagen_shapes_base.py", *TINY_CLI,
                    f"--config.cascade.text_encoder_path={tmp_path / 'no_clip'}",
                    f"--workdir={tmp_path / 'bad'}"])
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith("error: cascade.text_encoder_path=")
  assert not os.path.exists(tmp_path / "bad" / "checkpoints")
