"""Pieces of latent diffusion that need no trained first stage: the inpainting masks, the
low-resolution condition, the first stage's shapes and scale factor, and the prompts reader."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.latent import autoencoder, ldm, prompts
from genjax.nets.first_stage import FirstStage, PatchDiscriminator


def test_random_box_masks_are_boxes_of_the_requested_size():
  m = np.asarray(ldm.random_box_masks(jax.random.key(0), 64, 16, 12))
  assert m.shape == (64, 16, 12, 1) and set(np.unique(m)) <= {0.0, 1.0}
  for i in range(64):
    rows, cols = np.nonzero(m[i, ..., 0] == 0)
    hh, ww = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert (m[i, ..., 0] == 0).sum() == hh * ww          # one filled rectangle
    assert 4 <= hh <= 12 and 3 <= ww <= 9                 # 25%..75% of each side


def test_area_downsample_is_the_block_mean():
  x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
  got = np.asarray(ldm.area_downsample(x, 2))
  want = np.asarray(x).reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("ch_mult,reg", [((1,), "kl"), ((1, 2), "vq"), ((1, 2, 2, 2), "kl")])
def test_first_stage_latent_shapes_for_each_factor(ch_mult, reg):
  """f = 2^(len(ch_mult) - 1); KL encodes mean and log-variance, VQ one latent."""
  net = FirstStage(ch=8, ch_mult=ch_mult, num_res_blocks=1, z_channels=3, embed_dim=2,
                   out_channels=3, regularizer=reg, num_codes=16)
  x = jnp.zeros((2, 16, 16, 3))
  params = jax.eval_shape(net.init, jax.random.key(0), x)["params"]
  f = 2 ** (len(ch_mult) - 1)
  enc = jax.eval_shape(lambda p: net.apply({"params": p}, x, method="encode"), params)
  assert enc.shape == (2, 16 // f, 16 // f, 4 if reg == "kl" else 2)
  dec = jax.eval_shape(lambda p: net.apply({"params": p}, jnp.zeros((2, 16 // f, 16 // f, 2)),
                                           method="decode"), params)
  assert dec.shape == (2, 16, 16, 3)
  names = set(params)
  assert {"encoder", "decoder", "quant_conv", "post_quant_conv"} <= names
  assert ("quantize" in names) == (reg == "vq")
  assert params["quant_conv"]["kernel"].shape == (6 if reg == "kl" else 3, 4 if reg == "kl" else 2)
  enc_names = set(params["encoder"])
  assert {"conv_in", "mid_block_1", "mid_attn_1", "mid_block_2", "norm_out", "conv_out"} <= enc_names
  assert ("down_0_downsample" in enc_names) == (f > 1)
  logits = jax.eval_shape(lambda: PatchDiscriminator(8, 2).init_with_output(
      jax.random.key(0), x)[0])
  assert logits.shape[0] == 2 and logits.ndim == 3


def test_scale_factor_is_one_over_the_latent_std():
  stats = {"mean": jnp.asarray(0.5), "sq": jnp.asarray(0.5 ** 2 + 4.0), "count": jnp.asarray(3.0)}
  np.testing.assert_allclose(float(autoencoder.scale_factor({"latent_stats": stats})), 0.5,
                             rtol=1e-6)
  stats["count"] = jnp.asarray(0.0)
  assert float(autoencoder.scale_factor({"latent_stats": stats})) == 1.0


def test_read_prompts(tmp_path):
  f = tmp_path / "p.txt"
  f.write_text("a red circle\n\n# comment\na blue square\n")
  assert prompts.read_prompts(["x y"], str(f)) == ["x y", "a red circle", "a blue square"]
  with pytest.raises(ValueError, match="No prompt"):
    prompts.read_prompts([], None)
  with pytest.raises(ValueError, match="empty"):
    prompts.read_prompts(["  "], None)
  with pytest.raises(ValueError, match="does not exist"):
    prompts.read_prompts([], str(tmp_path / "missing"))


def test_prompt_grid_writes_one_column_per_prompt(tmp_path):
  from PIL import Image
  x = np.linspace(-1, 1, 6 * 8 * 8 * 3).reshape(6, 8, 8, 3)
  path = prompts.save_prompt_grid(x, ["a red circle", "a small blue square left of a circle"],
                                  str(tmp_path / "g.png"))
  img = Image.open(path)
  assert img.size == (2 * (prompts.CELL + 4) + 4, 3 * (prompts.CELL + 4) + 4 + prompts.CAPTION_H)
