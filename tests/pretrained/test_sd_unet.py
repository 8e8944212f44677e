"""diffusers UNet2DConditionModel (Stable Diffusion 1.x layout) -> genjax U-Net with
cross-attention: parity at a tiny size (float32) and the refused layouts."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from genjax.nets.unet import UNet  # noqa: E402
from genjax.pretrained import sd  # noqa: E402
from genjax.pretrained.io import PretrainedError  # noqa: E402

TINY = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(128, 128),
            layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
            attention_head_dim=4, norm_num_groups=32)


@pytest.mark.slow
def test_sd_unet_parity(tmp_path):
  torch.manual_seed(0)
  m = diffusers.UNet2DConditionModel(**TINY).eval()
  with torch.no_grad():
    for p in m.parameters():
      p.add_(0.02 * torch.randn_like(p))
  folder = str(tmp_path / "unet")
  m.save_pretrained(folder)
  kw, shape, params = sd.load_unet2d_condition(folder)
  assert kw["num_heads"] == 4 and kw["context_dim"] == 16 and kw["attn_resolutions"] == (8,)
  rng = np.random.RandomState(0)
  x = rng.randn(2, 4, 8, 8).astype(np.float32)
  ctx = rng.randn(2, 5, 16).astype(np.float32)
  t = np.array([10, 980])
  with torch.no_grad():
    ref = m(torch.from_numpy(x), torch.from_numpy(t),
            encoder_hidden_states=torch.from_numpy(ctx)).sample.numpy()
  out = jax.jit(lambda p, x, t, c: UNet(**kw).apply({"params": p}, x, t, context=c))(
      params, jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(t), jnp.asarray(ctx))
  out = np.asarray(out).transpose(0, 3, 1, 2)
  assert np.abs(ref).max() > 0.1
  np.testing.assert_array_less(np.abs(out - ref).max(), 1e-5)
  cfg = json.load(open(os.path.join(folder, "config.json")))
  with pytest.raises(PretrainedError, match="use_linear_projection=True"):
    sd.unet_kwargs(dict(cfg, use_linear_projection=True))
  with pytest.raises(PretrainedError, match="addition_embed_type='text_time'"):
    sd.unet_kwargs(dict(cfg, addition_embed_type="text_time"))
