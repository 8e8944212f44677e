"""The converters' rules against the full-size published layouts, built by diffusers and
transformers on PyTorch's meta device (shapes only, no memory): every key of the real
checkpoint is read by exactly one rule (or check), with the shape the rule expects. This is the
fast, full-size counterpart of the tiny parity tests."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from genjax.pretrained import convert as cv  # noqa: E402
from genjax.pretrained import counts, dit, sd, unet2d, vae  # noqa: E402


def _meta_shapes(build):
  with torch.device("meta"):
    m = build()
  return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def _check(rules, expected, shapes, checks=()):
  want = {k: v.shape for k, v in cv.flatten(expected).items()}
  assert {r.target for r in rules} == set(want)
  read = [s for r in rules for s in r.sources] + [c.key for c in checks]
  assert len(read) == len(set(read))
  assert set(read) == set(shapes), (sorted(set(shapes) - set(read))[:3],
                                    sorted(set(read) - set(shapes))[:3])
  for r in rules:  # the rule's source layout of a zero-stride array: shapes only
    for s, a in zip(r.sources, r.layout.to_torch(np.broadcast_to(np.float32(0), want[r.target]))):
      assert tuple(a.shape) == shapes[s], (s, a.shape, shapes[s])
  return sum(int(np.prod(v)) for v in shapes.values())


def test_ddpm_cifar10_layout():
  cfg = {k: v for k, v in counts.DDPM_CIFAR10_CONFIG.items() if not k.startswith("_")}
  shapes = _meta_shapes(lambda: diffusers.UNet2DModel(**cfg))
  kw, shape = unet2d.unet_kwargs(counts.DDPM_CIFAR10_CONFIG)
  exp = unet2d.expected_params(kw, shape)
  assert _check(unet2d.rules(exp, 4), exp, shapes) == 35_746_307


def test_stable_diffusion_1_unet_and_vae_layouts():
  cfg = {k: v for k, v in sd.SD1_UNET_CONFIG.items() if not k.startswith("_")}
  shapes = _meta_shapes(lambda: diffusers.UNet2DConditionModel(**cfg))
  kw, shape = sd.unet_kwargs(sd.SD1_UNET_CONFIG)
  exp = sd.expected_params(kw, shape)
  assert _check(sd.rules(exp, 4), exp, shapes) == 859_520_964
  vcfg = {k: v for k, v in sd.SD1_VAE_CONFIG.items() if not k.startswith("_")}
  shapes = _meta_shapes(lambda: diffusers.AutoencoderKL(**vcfg))
  vkw, vshape, _ = vae.first_stage_kwargs(sd.SD1_VAE_CONFIG)
  exp = vae.expected_params(vkw, vshape)
  assert _check(vae.rules(exp, 4), exp, shapes) == 83_653_863


def test_dit_xl_2_diffusers_layout():
  cfg = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8,
             num_layers=28, sample_size=32, patch_size=2, num_embeds_ada_norm=1000)
  shapes = _meta_shapes(lambda: diffusers.DiTTransformer2DModel(**cfg))
  kw, shape = dit.dit_kwargs_from_diffusers(dict(cfg, _class_name="DiTTransformer2DModel"))
  exp = dit.expected_params(kw, shape)
  rules, checks = dit.diffusers_rules(kw, 4)
  _check(rules, exp, shapes, checks)
  assert counts.count(exp) + 256 * 1152 == 675_129_632


def test_clip_l14_text_layout():
  transformers = pytest.importorskip("transformers")
  from genjax.pretrained import clip_text
  cfg = transformers.CLIPTextConfig(**{k: v for k, v in counts.CLIP_L14_TEXT.items()})
  shapes = _meta_shapes(lambda: transformers.CLIPTextModel(cfg))
  kw = clip_text.encoder_kwargs(counts.CLIP_L14_TEXT)
  exp = clip_text.expected_params(kw)
  shapes.pop("text_model.embeddings.position_ids", None)  # a non-persistent buffer today
  assert _check(clip_text.rules(kw["depth"]), exp, shapes) == 123_060_480
