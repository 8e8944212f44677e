"""diffusers AutoencoderKL / VQModel <-> genjax FirstStage: parity of encode and decode at a
tiny size (float32, < 1e-5), the bitwise export round trip, and a refused configuration."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from genjax.nets.first_stage import FirstStage  # noqa: E402
from genjax.pretrained import vae  # noqa: E402
from genjax.pretrained.io import PretrainedError  # noqa: E402

TINY = dict(in_channels=3, out_channels=3, block_out_channels=(128, 128), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4, norm_num_groups=32, sample_size=16)


def _save(tmp_path, cls, **extra):
  torch.manual_seed(0)
  m = getattr(diffusers, cls)(**TINY, **extra).eval()
  with torch.no_grad():
    for p in m.parameters():
      p.add_(0.02 * torch.randn_like(p))
  folder = str(tmp_path / cls)
  m.save_pretrained(folder)
  return m, folder


def _nhwc(a):
  return jnp.asarray(a.transpose(0, 2, 3, 1))


def _nchw(a):
  return np.asarray(a).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("cls", ["AutoencoderKL", pytest.param("VQModel", marks=pytest.mark.slow)])
def test_first_stage_parity_and_round_trip(tmp_path, cls):
  m, folder = _save(tmp_path, cls, **({"scaling_factor": 0.18215} if cls == "AutoencoderKL"
                                       else {"num_vq_embeddings": 16}))
  kw, shape, scale, params = vae.load_vae(folder)
  net = FirstStage(**kw)
  x = np.random.RandomState(0).randn(2, 3, 16, 16).astype(np.float32)
  z = np.random.RandomState(1).randn(2, 4, 8, 8).astype(np.float32)
  with torch.no_grad():
    if cls == "AutoencoderKL":
      ref_enc = m.encode(torch.from_numpy(x)).latent_dist.parameters.numpy()
      ref_dec = m.decode(torch.from_numpy(z)).sample.numpy()
    else:
      ref_enc = m.encode(torch.from_numpy(x)).latents.numpy()
      ref_dec = m.decode(torch.from_numpy(z), force_not_quantize=True).sample.numpy()
  enc = _nchw(jax.jit(lambda p, x: net.apply({"params": p}, x, method="encode"))(params, _nhwc(x)))
  dec = _nchw(jax.jit(lambda p, z: net.apply({"params": p}, z, method="decode"))(params, _nhwc(z)))
  np.testing.assert_array_less(np.abs(enc - ref_enc).max(), 1e-5)
  np.testing.assert_array_less(np.abs(dec - ref_dec).max(), 1e-5)
  if cls == "VQModel":
    np.testing.assert_array_equal(np.asarray(params["quantize"]["embedding"]),
                                  m.quantize.embedding.weight.detach().numpy())
    return
  assert scale == pytest.approx(0.18215)
  out = vae.export_vae(str(tmp_path / "exported"), kw, shape, params, scale)
  kw2, _, scale2, params2 = vae.load_vae(out)
  assert kw2 == kw and scale2 == scale
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params),
                                                  jax.tree.leaves(params2)))
  m2 = diffusers.AutoencoderKL.from_pretrained(out).eval()
  with torch.no_grad():
    np.testing.assert_array_less(
        np.abs(m2.decode(torch.from_numpy(z)).sample.numpy() - ref_dec).max(), 1e-6)


def test_refused_configurations(tmp_path):
  _, folder = _save(tmp_path, "AutoencoderKL")
  cfg = json.load(open(os.path.join(folder, "config.json")))
  with pytest.raises(PretrainedError, match="AttnDownEncoderBlock2D"):
    vae.first_stage_kwargs(dict(cfg, down_block_types=["AttnDownEncoderBlock2D"] * 2))
  with pytest.raises(PretrainedError, match="norm_num_groups=16"):
    vae.first_stage_kwargs(dict(cfg, norm_num_groups=16))
  cfg["layers_per_block"] = 2
  json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))
  with pytest.raises(PretrainedError, match="missing key 'decoder.up_blocks.0.resnets.2"):
    vae.load_vae(folder)
