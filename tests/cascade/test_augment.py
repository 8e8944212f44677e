"""Noise-conditioning augmentation (Ho et al. 2021, Sec. 3.2) and the U-Net's optional
augmentation-level and vector embeddings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.cascade import augment
from genjax.cascade.method import truncated_chain_grid
from genjax.nets import UNet
from genjax.sampling.schedules import get_schedule

SCHED = get_schedule("linear", 1000)


def test_corrupted_condition_is_the_forward_process_at_level_s():
  """z_s = sqrt(abar_s) x + sqrt(1 - abar_s) eps exactly (float64, the same eps), and over
  many draws its mean and variance are the forward process's at the paper's step s."""
  abar = np.asarray(SCHED.alphas_cumprod, np.float64)
  x = np.linspace(-1.0, 1.0, 6).reshape(1, 6, 1, 1)
  with jax.enable_x64(True):
    for s in (1, 10, 250, 999, 1000):
      key = jax.random.key(s)
      xb = jnp.asarray(np.repeat(x, 4, axis=0))
      z = np.asarray(augment.augment_condition(SCHED, key, xb, jnp.full((4,), s)))
      eps = np.asarray(jax.random.normal(key, xb.shape, jnp.float64))
      want = np.sqrt(abar[s - 1]) * np.asarray(xb) + np.sqrt(1.0 - abar[s - 1]) * eps
      np.testing.assert_allclose(z, want, rtol=0, atol=1e-14)
      assert z.dtype == np.float64
  n = 20_000
  for s in (50, 400):
    xb = jnp.asarray(np.repeat(x, n, axis=0), jnp.float32)
    z = np.asarray(augment.augment_condition(SCHED, jax.random.key(0), xb, jnp.full((n,), s)),
                   np.float64)
    mean, var = np.sqrt(abar[s - 1]) * x[0], 1.0 - abar[s - 1]
    se = np.sqrt(var / n)
    assert np.all(np.abs(z.mean(0) - mean) < 5 * se)
    np.testing.assert_allclose(z.var(0), var, rtol=0.05)


def test_level_zero_leaves_the_condition_unchanged():
  x = jax.random.uniform(jax.random.key(1), (4, 3, 3, 2), minval=-1, maxval=1)
  z = augment.augment_condition(SCHED, jax.random.key(2), x, jnp.zeros((4,), jnp.int32))
  assert np.array_equal(np.asarray(z), np.asarray(x))
  s = jnp.array([0, 5, 0, 700])  # per example: only the nonzero levels are corrupted
  z = np.asarray(augment.augment_condition(SCHED, jax.random.key(2), x, s))
  assert np.array_equal(z[[0, 2]], np.asarray(x)[[0, 2]])
  assert not np.allclose(z[[1, 3]], np.asarray(x)[[1, 3]])
  alpha, sigma = augment.augmentation_coeffs(SCHED, jnp.array([0, 1000]))
  np.testing.assert_allclose(np.asarray(alpha), [1.0, np.sqrt(SCHED.alphas_cumprod[-1])],
                             rtol=1e-6)
  assert float(sigma[0]) == 0.0


def test_dtypes_levels_and_resizing():
  x = jnp.ones((2, 4, 4, 1), jnp.bfloat16)
  assert augment.augment_condition(SCHED, jax.random.key(0), x, 3).dtype == jnp.bfloat16
  s = augment.sample_aug_levels(jax.random.key(0), 10_000, 7)
  assert s.dtype == jnp.int32 and int(s.min()) == 0 and int(s.max()) == 7
  counts = np.bincount(np.asarray(s), minlength=8)
  assert counts.min() > 1000  # uniform on {0..7}
  img = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
  low = augment.downsample(img, 8)
  assert low.shape == (2, 8, 8, 3)
  from genjax.data import resize_images
  np.testing.assert_allclose(np.asarray(low), resize_images(np.asarray(img), 8), atol=1e-5)
  # A constant image stays constant through both resizes.
  c = jnp.full((1, 4, 4, 1), 0.3)
  for m in augment.UPSAMPLE_METHODS:
    np.testing.assert_allclose(np.asarray(augment.upsample(c, 8, m)), 0.3, atol=1e-6)
  with pytest.raises(ValueError, match="upsample method"):
    augment.upsample(c, 8, "area")


def test_truncated_grid_ends_at_the_level():
  g = truncated_chain_grid(1000, 100, 20)
  assert g[0] == 999 and g[-1] == 99 and np.all(np.diff(g) < 0) and len(g) == 20
  assert list(truncated_chain_grid(10, 9, 50)) == [9, 8]


def _init(net, x, **kw):
  return net.init(jax.random.key(0), x, jnp.zeros((x.shape[0],), jnp.int32), **kw)["params"]


def test_unet_extra_embeddings_are_optional_and_additive():
  """Defaults keep the U-Net as it was: no new parameters and the same outputs; with
  aug_cond / emb_dim only aug_dense0/1 / emb_proj are added, and a zero contribution
  reproduces the plain network bitwise."""
  kw = dict(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 2))
  t = jnp.array([3, 700])
  plain = UNet(**kw)
  p0 = jax.tree.map(lambda a: a + 0.05 * jnp.cos(jnp.arange(a.size).reshape(a.shape)),
                    _init(plain, x))  # conv_out starts at zero: make the output nonzero
  assert not any(k.startswith(("aug_", "emb_")) for k in p0)
  out0 = plain.apply({"params": p0}, x, t)
  both = UNet(aug_cond=True, emb_dim=5, **kw)
  p1 = _init(both, x, aug_level=jnp.zeros((2,), jnp.int32), emb=jnp.zeros((2, 5)))
  assert set(p1) - set(p0) == {"aug_dense0", "aug_dense1", "emb_proj"}
  assert jax.tree.map(jnp.shape, {k: p1[k] for k in p0}) == jax.tree.map(jnp.shape, p0)
  p1 = dict(p1)
  p1.update({k: p0[k] for k in p0})
  p1["aug_dense1"] = jax.tree.map(jnp.zeros_like, p1["aug_dense1"])
  out1 = both.apply({"params": p1}, x, t, aug_level=jnp.array([0, 400]), emb=jnp.zeros((2, 5)))
  assert np.array_equal(np.asarray(out0), np.asarray(out1))
  p1["aug_dense1"] = jax.tree.map(lambda a: a + 0.1, p1["aug_dense1"])
  out2 = both.apply({"params": p1}, x, t, aug_level=jnp.array([0, 400]), emb=jnp.zeros((2, 5)))
  assert not np.allclose(np.asarray(out0), np.asarray(out2))
  with pytest.raises(ValueError, match="aug_cond=False"):
    plain.apply({"params": p0}, x, t, aug_level=jnp.zeros((2,)))
  with pytest.raises(ValueError, match="needs aug_level"):
    both.apply({"params": p1}, x, t, emb=jnp.zeros((2, 5)))
  with pytest.raises(ValueError, match="emb_dim=5 needs emb"):
    both.apply({"params": p1}, x, t, aug_level=jnp.zeros((2,)), emb=jnp.zeros((2, 4)))
