"""Tests of genjax.nets.layers against closed forms and reference formulas."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nets.layers import (AttnBlock, Downsample, Dropout, GroupNorm, ResBlock, Upsample,
                                default_init, num_groups, timestep_embedding, variance_scaling)


def _random_params(tree, seed=0, scale=0.2):
  """Replace every leaf of a shape tree (or array tree) by Gaussian noise (no compile)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), tree)


def _ddpm_reference_embedding(t, dim):
  # diffusion_tf/nn.py::get_timestep_embedding, in float64.
  half = dim // 2
  freqs = np.exp(np.arange(half) * -(math.log(10000) / (half - 1)))
  args = np.asarray(t, np.float64)[:, None] * freqs[None]
  emb = np.concatenate([np.sin(args), np.cos(args)], axis=1)
  return np.pad(emb, [(0, 0), (0, dim % 2)])


def _improved_reference_embedding(t, dim, max_period=10000):
  # improved_diffusion/nn.py::timestep_embedding, in float64.
  half = dim // 2
  freqs = np.exp(-math.log(max_period) * np.arange(half) / half)
  args = np.asarray(t, np.float64)[:, None] * freqs[None]
  emb = np.concatenate([np.cos(args), np.sin(args)], axis=1)
  return np.pad(emb, [(0, 0), (0, dim % 2)])


@pytest.mark.parametrize("dim", [4, 7, 128])
def test_timestep_embedding_matches_ddpm_reference(dim):
  t = np.array([0, 1, 17, 500, 999])
  got = timestep_embedding(jnp.asarray(t), dim)
  assert got.shape == (5, dim) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, _ddpm_reference_embedding(t, dim), atol=2e-4)


@pytest.mark.parametrize("dim", [6, 128])
def test_timestep_embedding_matches_improved_diffusion(dim):
  t = np.array([0, 3, 250, 999])
  got = timestep_embedding(jnp.asarray(t), dim, flip_sin_to_cos=True, freq_shift=0)
  np.testing.assert_allclose(got, _improved_reference_embedding(t, dim), atol=2e-4)


def test_timestep_embedding_int_float_and_batch_shapes():
  t_int = jnp.array([[0, 5], [10, 999]])
  t_float = t_int.astype(jnp.float32)
  a = timestep_embedding(t_int, 32)
  assert a.shape == (2, 2, 32)
  np.testing.assert_array_equal(a, timestep_embedding(t_float, 32))
  np.testing.assert_array_equal(a[1, 0], timestep_embedding(jnp.array(10), 32))
  # Continuous times are embedded as given (not rounded).
  c = timestep_embedding(jnp.array([0.25, 0.5]), 32)
  assert not np.allclose(c[0], c[1])
  # Works under jit and vmap.
  np.testing.assert_allclose(jax.jit(lambda t: timestep_embedding(t, 32))(t_int), a, atol=1e-4)
  np.testing.assert_allclose(jax.vmap(lambda t: timestep_embedding(t, 32))(t_int), a, atol=1e-4)


def test_timestep_embedding_rejects_tiny_dim():
  with pytest.raises(ValueError, match="too small"):
    timestep_embedding(jnp.array([1]), 2)


@pytest.mark.parametrize("c, g", [(128, 32), (256, 32), (512, 32), (64, 16), (32, 8), (16, 4),
                                  (8, 2), (4, 1), (3, 1), (1, 1), (48, 12), (96, 24), (40, 10),
                                  (200, 25)])
def test_num_groups(c, g):
  assert num_groups(c) == g
  assert c % num_groups(c) == 0


@pytest.mark.parametrize("shape", [(2, 4, 4, 64), (3, 6, 48)])
def test_group_norm_matches_closed_form_and_flax(shape):
  rng = np.random.default_rng(0)
  x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
  c = shape[-1]
  gn = GroupNorm()
  params = {"scale": jnp.asarray(rng.standard_normal(c), jnp.float32),
            "bias": jnp.asarray(rng.standard_normal(c), jnp.float32)}
  g = num_groups(c)
  flax_gn = nn.GroupNorm(num_groups=g, epsilon=1e-6)
  got, flax_got = jax.jit(lambda x: (gn.apply({"params": params}, x),
                                     flax_gn.apply({"params": params}, x)))(jnp.asarray(x))
  # float64 closed form: (x - mean_g) / sqrt(var_g + eps) * scale + bias.
  xg = x.astype(np.float64).reshape(shape[0], -1, g, c // g)
  mean = xg.mean(axis=(1, 3), keepdims=True)
  var = xg.var(axis=(1, 3), keepdims=True)
  want = ((xg - mean) / np.sqrt(var + 1e-6)).reshape(shape) * params["scale"] + params["bias"]
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(got, flax_got, atol=1e-4)


def test_group_norm_bfloat16_output_dtype():
  x = jnp.ones([2, 4, 4, 32], jnp.bfloat16) * jnp.arange(32, dtype=jnp.bfloat16)
  gn = GroupNorm(dtype=jnp.bfloat16)
  params = gn.init(jax.random.key(0), x)["params"]
  assert params["scale"].dtype == jnp.float32
  assert gn.apply({"params": params}, x).dtype == jnp.bfloat16


def test_attn_block_matches_reference_formula():
  rng = np.random.default_rng(1)
  x = rng.standard_normal([2, 4, 4, 8]).astype(np.float32)
  block = AttnBlock()
  p = _random_params(jax.eval_shape(block.init, jax.random.key(0), jnp.asarray(x))["params"])
  got = block.apply({"params": p}, jnp.asarray(x))
  # diffusion_tf/models/unet.py::attn_block, in numpy.
  h = np.asarray(GroupNorm().apply({"params": p["norm"]}, jnp.asarray(x)), np.float64)
  q, k, v = (h @ np.asarray(p[n]["kernel"], np.float64) + np.asarray(p[n]["bias"])
             for n in "qkv")
  w = np.einsum("bhwc,bHWc->bhwHW", q, k) * 8 ** -0.5
  w = w.reshape(2, 4, 4, 16)
  w = np.exp(w - w.max(-1, keepdims=True))
  w = (w / w.sum(-1, keepdims=True)).reshape(2, 4, 4, 4, 4)
  a = np.einsum("bhwHW,bHWc->bhwc", w, v)
  want = x + a @ np.asarray(p["proj_out"]["kernel"]) + np.asarray(p["proj_out"]["bias"])
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_res_block_shortcut_dropout_and_time_embedding():
  x = jax.random.normal(jax.random.key(0), [2, 4, 4, 8])
  temb = jax.random.normal(jax.random.key(1), [2, 32])
  res = ResBlock(out_ch=16, dropout=0.5)
  shapes = jax.eval_shape(res.init, jax.random.key(0), x, temb)["params"]
  assert set(shapes) == {"norm1", "conv1", "temb_proj", "norm2", "conv2", "nin_shortcut"}
  assert shapes["nin_shortcut"]["kernel"].shape == (8, 16)
  p = {"params": _random_params(shapes)}

  @jax.jit
  def run(k1, k2):
    return (res.apply(p, x, temb), res.apply(p, x, temb + 1.0),
            res.apply(p, x, temb, train=True, rngs={"dropout": k1}),
            res.apply(p, x, temb, train=True, rngs={"dropout": k2}))

  y_eval, y_temb, y1, y2 = run(jax.random.key(1), jax.random.key(2))
  assert y_eval.shape == (2, 4, 4, 16)
  assert np.abs(y1 - y_eval).max() > 1e-2 and np.abs(y1 - y2).max() > 1e-2
  # The time embedding reaches the output even with 16 channels: num_groups keeps >= 4
  # channels per group (one-channel groups would subtract the per-channel time shift).
  assert np.abs(y_temb - y_eval).max() > 1e-2
  conv = ResBlock(out_ch=16, conv_shortcut=True)
  cs = jax.eval_shape(conv.init, jax.random.key(0), x, temb)["params"]
  assert cs["conv_shortcut"]["kernel"].shape == (3, 3, 8, 16)


def test_dropout_keeps_expected_fraction_and_mean():
  x = jnp.ones([64, 8, 8, 4])
  y = jax.jit(lambda k: Dropout(0.25).apply({}, x, False, rngs={"dropout": k}))(jax.random.key(0))
  kept = np.asarray(y) != 0
  assert abs(kept.mean() - 0.75) < 0.01
  np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.75, rtol=1e-6)
  np.testing.assert_array_equal(Dropout(0.25).apply({}, x, True), x)


def test_flat_initializers_have_the_reference_distribution():
  """variance_scaling(1, fan_avg, uniform) for a [3, 3, 64, 128] conv kernel."""
  k = np.asarray(jax.jit(lambda key: default_init(key, (3, 3, 64, 128)))(jax.random.key(0)))
  limit = math.sqrt(3.0 / ((9 * 64 + 9 * 128) / 2))
  assert k.shape == (3, 3, 64, 128) and 0.99 * limit < np.abs(k).max() <= limit
  np.testing.assert_allclose(k.std(), limit / math.sqrt(3), rtol=0.02)
  trunc = variance_scaling(2.0, "fan_in", "truncated_normal")
  ln = np.asarray(trunc(jax.random.key(1), (256, 512)))
  np.testing.assert_allclose(ln.std(), math.sqrt(2.0 / 256), rtol=0.02)
  assert np.abs(ln).max() <= 2 * math.sqrt(2.0 / 256) / .87962566103423978 + 1e-6


def test_upsample_is_nearest_and_downsample_halves():
  x = jax.random.normal(jax.random.key(0), [2, 3, 4, 5])
  up = Upsample(with_conv=False)
  np.testing.assert_array_equal(up.apply({}, x), np.repeat(np.repeat(x, 2, 1), 2, 2))
  upc = Upsample()
  assert jax.eval_shape(lambda: upc.init_with_output(jax.random.key(0), x)[0]).shape == (2, 6, 8, 5)
  down = Downsample(with_conv=False)
  y = np.asarray(x)[:, :2]
  want = y.reshape(2, 1, 2, 2, 2, 5).mean(axis=(2, 4))
  np.testing.assert_allclose(down.apply({}, jnp.asarray(y)), want, atol=1e-6)
  downc = Downsample()
  out = jax.eval_shape(lambda: downc.init_with_output(jax.random.key(0), jnp.ones([1, 8, 8, 3]))[0])
  assert out.shape == (1, 4, 4, 3)
  # TF 'SAME' padding for a stride-2 3x3 conv on an even size pads only at the
  # bottom/right, so kernel tap (0, 0) of output (i, j) reads input (2i, 2j).
  k = jnp.zeros([3, 3, 1, 1]).at[0, 0].set(1.0)
  img = jnp.arange(16.0).reshape(1, 4, 4, 1)
  got = downc.apply({"params": {"conv": {"kernel": k, "bias": jnp.zeros([1])}}}, img)
  np.testing.assert_array_equal(got[0, :, :, 0], [[0.0, 2.0], [8.0, 10.0]])
