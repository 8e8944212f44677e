"""diffusers UNet2DModel <-> genjax UNet: parity on checkpoints the tests save, export round
trips, the scheduler's chain, and the errors for bad files.

The reference models are diffusers' own, built at tiny sizes with random weights and written
with ``save_pretrained``; the comparison is float32, max abs difference < 1e-5.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from genjax.nets.unet import UNet  # noqa: E402
from genjax.pretrained import convert as cv  # noqa: E402
from genjax.pretrained import io, scheduler, unet2d  # noqa: E402
from genjax.pretrained.io import PretrainedError  # noqa: E402

# diffusers' defaults (symmetric downsample padding, cosine-first embedding, multi-head
# attention, eps 1e-5) and Ho et al.'s CIFAR-10 layout (TF padding, sine-first with shift 1,
# single-head attention, eps 1e-6, here with class labels), both tiny.
CONFIGS = {
    "diffusers_defaults": dict(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                               down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                               up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
                               attention_head_dim=16),
    "ddpm_cifar10_layout": dict(sample_size=16, block_out_channels=(32, 64),
                                layers_per_block=1,
                                down_block_types=("AttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "AttnUpBlock2D"),
                                norm_num_groups=8, attention_head_dim=None, downsample_padding=0,
                                flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
                                num_class_embeds=4),
}


def _save(tmp_path, name, seed=0):
  torch.manual_seed(seed)
  m = diffusers.UNet2DModel(in_channels=3, out_channels=3, **CONFIGS[name]).eval()
  with torch.no_grad():  # zero-initialized layers would hide mistakes: perturb everything
    for p in m.parameters():
      p.add_(0.05 * torch.randn_like(p))
  folder = str(tmp_path / name)
  m.save_pretrained(folder)
  return m, folder


def _inputs(b=2, size=16, num_classes=0):
  rng = np.random.RandomState(1)
  x = rng.randn(b, 3, size, size).astype(np.float32)
  t = np.array([5, 901][:b])
  y = np.array([1, num_classes][:b]) if num_classes else None  # a class and the null label
  return x, t, y


def _torch_out(m, x, t, y):
  with torch.no_grad():
    return m(torch.from_numpy(x), torch.from_numpy(t),
             class_labels=None if y is None else torch.from_numpy(y)).sample.numpy()


def _jax_out(kw, params, x, t, y):
  out = jax.jit(UNet(**kw).apply)({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)),
                                  jnp.asarray(t), None if y is None else jnp.asarray(y))
  return np.asarray(out).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parity_with_diffusers(tmp_path, name):
  m, folder = _save(tmp_path, name)
  kw, shape, params = unet2d.load_unet2d(folder)
  ncls = kw["num_classes"]
  x, t, y = _inputs(num_classes=ncls)
  ref = _torch_out(m, x, t, y)
  out = _jax_out(kw, params, x, t, y)
  assert np.abs(ref).max() > 0.1
  np.testing.assert_array_less(np.abs(out - ref).max(), 1e-5)
  if name == "ddpm_cifar10_layout":  # Ho et al.'s layout is genjax's reference U-Net
    assert set(kw) == {"ch", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout",
                       "num_classes", "out_channels", "norm_groups"}
    assert kw["attn_resolutions"] == (16,) and ncls == 3


def test_export_round_trip_is_bitwise_and_opens_in_diffusers(tmp_path):
  m, folder = _save(tmp_path, "diffusers_defaults")
  kw, shape, params = unet2d.load_unet2d(folder)
  out_dir = unet2d.export_unet2d(str(tmp_path / "exported"), kw, shape, params)
  kw2, shape2, params2 = unet2d.load_unet2d(out_dir)
  assert kw2 == kw and shape2 == shape
  for k, v in cv.flatten(params).items():
    assert np.array_equal(v, cv.flatten(params2)[k]), k
  m2 = diffusers.UNet2DModel.from_pretrained(out_dir).eval()
  x, t, y = _inputs()
  np.testing.assert_array_less(np.abs(_torch_out(m2, x, t, y) - _torch_out(m, x, t, y)).max(),
                               1e-6)


@pytest.mark.slow
def test_a_genjax_trained_unet_exports_to_diffusers(tmp_path):
  """A model built in genjax (reference layout, label-conditional) opens in diffusers."""
  kw = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0,
            num_classes=2, norm_groups=8)
  net = UNet(**kw)
  x, t, y = _inputs(num_classes=2)
  xj = jnp.asarray(x.transpose(0, 2, 3, 1))
  shapes = jax.eval_shape(net.init, jax.random.key(0), xj, jnp.asarray(t), jnp.asarray(y))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: (0.05 * rng.standard_normal(s.shape)).astype(np.float32),
                        shapes["params"])
  folder = unet2d.export_unet2d(str(tmp_path / "g"), kw, (16, 16, 3), params)
  m = diffusers.UNet2DModel.from_pretrained(folder).eval()
  np.testing.assert_array_less(np.abs(_torch_out(m, x, t, y) - _jax_out(kw, params, x, t, y)
                                      ).max(), 1e-5)
  kw2, _, params2 = unet2d.load_unet2d(folder)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params),
                                                  jax.tree.leaves(params2)))
  # The reference config needs nothing beyond its defaults in the diffusers config and back.
  assert {k: v for k, v in kw2.items() if k != "out_channels"} == kw


def test_ho_et_al_cifar10_config_converts_to_the_default_unet():
  """google/ddpm-cifar10-32's config.json (as published) is genjax's default U-Net, 35.7M."""
  cfg = {"_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": None,
         "block_out_channels": [128, 256, 256, 256], "center_input_sample": False,
         "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
         "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3,
         "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06,
         "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
         "time_embedding_type": "positional",
         "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}
  kw, shape = unet2d.unet_kwargs(cfg)
  assert UNet(**kw) == UNet(dropout=0.0) and shape == (32, 32, 3)
  assert unet2d.param_count(kw, shape) == 35_746_307


def _truncate(path, keep):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:keep])


def test_bad_files_each_give_one_clear_error(tmp_path):
  _, folder = _save(tmp_path, "diffusers_defaults")
  weights = os.path.join(folder, "diffusion_pytorch_model.safetensors")
  # 1. A truncated safetensors file.
  bad = str(tmp_path / "trunc")
  shutil.copytree(folder, bad)
  _truncate(os.path.join(bad, "diffusion_pytorch_model.safetensors"), os.path.getsize(weights) // 2)
  with pytest.raises(PretrainedError, match="truncated safetensors"):
    unet2d.load_unet2d(bad)
  _truncate(os.path.join(bad, "diffusion_pytorch_model.safetensors"), 5)
  with pytest.raises(PretrainedError, match="not a safetensors file"):
    unet2d.load_unet2d(bad)
  # 2. A checkpoint of another architecture.
  other = str(tmp_path / "dit")
  diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                  num_layers=1, sample_size=8, num_embeds_ada_norm=3
                                  ).save_pretrained(other)
  with pytest.raises(PretrainedError, match="holds a DiTTransformer2DModel, not a UNet2DModel"):
    unet2d.load_unet2d(other)
  # 3. Config and weights that disagree: a wider second level, one more block, an extra key.
  for change, pattern in ((dict(block_out_channels=[32, 96]), r"has shape \[64\].*expects \[96\]"),
                          (dict(layers_per_block=2), "missing key 'down_blocks.0.resnets.1"),
                          (dict(layers_per_block=0), "unknown key")):
    mis = str(tmp_path / f"mis{len(os.listdir(tmp_path))}")
    shutil.copytree(folder, mis)
    cfg = json.load(open(os.path.join(mis, "config.json")))
    cfg.update(change)
    json.dump(cfg, open(os.path.join(mis, "config.json"), "w"))
    with pytest.raises(PretrainedError, match=pattern):
      unet2d.load_unet2d(mis)
  # 4. Configurations the U-Net cannot express are refused by name.
  cfg = json.load(open(os.path.join(folder, "config.json")))
  for field, value in (("time_embedding_type", "fourier"),
                       ("resnet_time_scale_shift", "scale_shift"),
                       ("up_block_types", ["UpBlock2D", "UpBlock2D"])):
    with pytest.raises(PretrainedError, match=field if field != "up_block_types" else "attention"):
      unet2d.unet_kwargs(dict(cfg, **{field: value}))
  # 5. No weights, no config.
  with pytest.raises(PretrainedError, match="no such folder"):
    unet2d.load_unet2d(str(tmp_path / "nowhere"))
  os.remove(os.path.join(bad, "diffusion_pytorch_model.safetensors"))
  with pytest.raises(PretrainedError, match="no weights file"):
    unet2d.load_unet2d(bad)


@pytest.mark.slow
def test_torch_bin_and_sharded_folders_read_the_same(tmp_path):
  m, folder = _save(tmp_path, "diffusers_defaults")
  _, _, params = unet2d.load_unet2d(folder)
  binf = str(tmp_path / "bin")
  m.save_pretrained(binf, safe_serialization=False)
  shard = str(tmp_path / "sharded")
  m.save_pretrained(shard, max_shard_size="100KB")
  assert any(f.endswith(".index.json") for f in os.listdir(shard))
  for f in (binf, shard):
    _, _, p = unet2d.load_unet2d(f)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p)))


def test_bfloat16_safetensors_read_without_torch_dtype_support(tmp_path):
  from safetensors.torch import save_file
  w = torch.randn(3, 5).to(torch.bfloat16)
  save_file({"w": w}, str(tmp_path / "b.safetensors"))
  got = io.read_safetensors(str(tmp_path / "b.safetensors"))["w"]
  assert got.dtype == np.float32 and np.array_equal(got, w.float().numpy())


@pytest.mark.parametrize("cfg", [
    dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, num_train_timesteps=1000),
    dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
         num_train_timesteps=1000, prediction_type="v_prediction"),
    dict(beta_schedule="squaredcos_cap_v2", num_train_timesteps=400),
    dict(beta_schedule="sigmoid", beta_start=1e-4, beta_end=0.02, num_train_timesteps=200),
])
def test_scheduler_chain_equals_diffusers(cfg):
  ref = diffusers.DDPMScheduler(**cfg)
  info = scheduler.scheduler_config(dict(ref.config, _class_name="DDPMScheduler"))
  np.testing.assert_allclose(info.betas, ref.betas.double().numpy(), rtol=1e-6, atol=1e-9)
  sched = info.schedule()
  np.testing.assert_allclose(np.asarray(sched.alphas_cumprod), ref.alphas_cumprod.numpy(),
                             rtol=2e-5)
  assert info.prediction == {"epsilon": "eps", "v_prediction": "v"}[ref.config.prediction_type]
  assert info.clip == (-1.0, 1.0)


def test_scheduler_errors():
  with pytest.raises(PretrainedError, match="beta_schedule='karras'"):
    scheduler.scheduler_config({"beta_schedule": "karras"})
  with pytest.raises(PretrainedError, match="prediction_type"):
    scheduler.scheduler_config({"prediction_type": "flow"})
  with pytest.raises(PretrainedError, match="FlowMatchEulerDiscreteScheduler"):
    scheduler.scheduler_config({"_class_name": "FlowMatchEulerDiscreteScheduler"})


@pytest.mark.slow
def test_ddim_sampling_matches_diffusers_from_the_same_noise(tmp_path):
  """genjax's DDIM (registry, eta=0) and diffusers' DDIMScheduler loop on the converted
  model, from the same x_T: the same samples."""
  from genjax import sampling
  m, folder = _save(tmp_path, "diffusers_defaults")
  kw, shape, params = unet2d.load_unet2d(folder)
  ref_sched = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                      clip_sample=False)
  ref_sched.set_timesteps(8)
  x_T = np.random.RandomState(3).randn(2, 3, 16, 16).astype(np.float32)
  x = torch.from_numpy(x_T)
  with torch.no_grad():
    for t in ref_sched.timesteps:
      x = ref_sched.step(m(x, t).sample, t, x).prev_sample
  info = scheduler.scheduler_config(dict(ref_sched.config, _class_name="DDIMScheduler"))
  net = UNet(**kw)
  sched = info.schedule()
  eps_fn = sampling.denoiser(lambda x, t, c: net.apply({"params": params}, x, t), sched, "eps")
  out = sampling.ddim_sample(eps_fn, sched, jax.random.key(0), (2, 16, 16, 3), num_steps=8,
                             x_T=jnp.asarray(x_T.transpose(0, 2, 3, 1)))
  assert np.asarray(ref_sched.timesteps).tolist() == sampling.ddim_timesteps(1000, 8).tolist()
  np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), x.numpy(), rtol=1e-5,
                             atol=1e-4)
