"""Cross-attention (seed 003 eq. 47-48) against softmax(Q K^T / sqrt(d)) V by hand, with padded
context tokens masked; the U-Net and DiT with their new options off are bitwise today's
networks, and with them on they condition on the context."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nets import attention as A
from genjax.nets.dit import DiT
from genjax.nets.unet import UNet


def _load(name):
  """The frozen copies of the networks before cross-attention (files beside this test)."""
  import importlib.util
  import os
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"_latent_{name}", path)
  module = importlib.util.module_from_spec(spec)
  import sys
  sys.modules[spec.name] = module  # dataclasses look their module up while defining the class
  spec.loader.exec_module(module)
  return module


unet_reference = _load("unet_reference")
dit_reference = _load("dit_reference")


def _softmax(a):
  a = a - a.max(axis=-1, keepdims=True)
  e = np.exp(a)
  return e / e.sum(axis=-1, keepdims=True)


def test_dot_product_attention_matches_the_formula_with_a_mask():
  rng = np.random.default_rng(0)
  b, n, m, h, d = 2, 5, 7, 3, 4
  q, k, v = (rng.normal(size=s) for s in ((b, n, h, d), (b, m, h, d), (b, m, h, d)))
  mask = np.ones((b, m), bool)
  mask[0, 4:] = False
  mask[1, 2:] = False
  got = np.asarray(A.dot_product_attention(*(jnp.asarray(a, jnp.float32) for a in (q, k, v)),
                                           jnp.asarray(mask)))
  for i in range(b):
    keep = mask[i]
    for j in range(h):
      w = _softmax(q[i, :, j] @ k[i, keep, j].T / np.sqrt(d))  # only the real tokens
      np.testing.assert_allclose(got[i, :, j], w @ v[i, keep, j], rtol=1e-5, atol=1e-5)
  # Padded tokens are ignored: changing their keys and values changes nothing.
  k2, v2 = k.copy(), v.copy()
  k2[0, 4:] = 100.0
  v2[0, 4:] = -100.0
  got2 = np.asarray(A.dot_product_attention(*(jnp.asarray(a, jnp.float32) for a in (q, k2, v2)),
                                            jnp.asarray(mask)))
  np.testing.assert_array_equal(got2, got)


def test_cross_attention_module_is_eq_47_48():
  """Q = W_Q x from the image tokens, K = W_K c and V = W_V c from the context, per head."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 6, 8)), jnp.float32)
  c = jnp.asarray(rng.normal(size=(2, 5, 12)), jnp.float32)
  mask = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
  mod = A.CrossAttention(num_heads=2, head_dim=3)
  params = mod.init(jax.random.key(0), x, c, mask)["params"]
  assert params["to_k"]["kernel"].shape == (12, 6) and "bias" not in params["to_q"]
  got = np.asarray(mod.apply({"params": params}, x, c, mask))
  p = jax.tree.map(np.asarray, params)
  xn, cn, mn = np.asarray(x), np.asarray(c), np.asarray(mask).astype(bool)
  out = np.zeros((2, 6, 6))
  for i in range(2):
    q = xn[i] @ p["to_q"]["kernel"]
    k = cn[i][mn[i]] @ p["to_k"]["kernel"]
    v = cn[i][mn[i]] @ p["to_v"]["kernel"]
    for hd in range(2):
      s = slice(3 * hd, 3 * hd + 3)
      out[i, :, s] = _softmax(q[:, s] @ k[:, s].T / np.sqrt(3)) @ v[:, s]
  want = out @ p["to_out"]["kernel"] + p["to_out"]["bias"]
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_transformer_block_layout_is_diffusers():
  mod = A.SpatialTransformer(num_heads=2, depth=1)
  x = jnp.zeros((1, 4, 4, 16))
  c = jnp.zeros((1, 3, 10))
  params = jax.eval_shape(mod.init, jax.random.key(0), x, c)["params"]
  assert set(params) == {"norm", "proj_in", "transformer_blocks_0", "proj_out"}
  blk = params["transformer_blocks_0"]
  assert set(blk) == {"norm1", "attn1", "norm2", "attn2", "norm3", "ff"}
  assert blk["attn2"]["to_k"]["kernel"].shape == (10, 16)
  assert blk["ff"]["net_0_proj"]["kernel"].shape == (16, 128)  # GEGLU: 2 * 4 * dim
  assert blk["ff"]["net_2"]["kernel"].shape == (64, 16)


def _tree_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))


@pytest.mark.parametrize("kw", [dict(ch=16, ch_mult=(1, 2), attn_resolutions=(4,)),
                                dict(ch=16, ch_mult=(1, 2), attn_resolutions=(), num_classes=3)])
def test_unet_without_context_is_bitwise_the_reference(kw):
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
  t = jnp.array([3, 700])
  y = jnp.array([0, 2]) if kw.get("num_classes") else None
  new, old = UNet(**kw), unet_reference.UNet(**kw)
  p_new = new.init(jax.random.key(0), x, t, y)["params"]
  p_old = old.init(jax.random.key(0), x, t, y)["params"]
  _tree_equal(p_new, p_old)
  p = jax.tree.map(lambda a: a + 0.01 * jnp.cos(jnp.arange(a.size).reshape(a.shape)), p_old)
  np.testing.assert_array_equal(np.asarray(new.apply({"params": p}, x, t, y)),
                                np.asarray(old.apply({"params": p}, x, t, y)))


def test_dit_without_context_is_bitwise_the_reference():
  kw = dict(patch_size=2, hidden_size=32, depth=2, num_heads=2, num_classes=3)
  x = jax.random.normal(jax.random.key(1), (2, 4, 4, 2))
  t, y = jnp.array([3, 700]), jnp.array([0, 3])
  p_new = DiT(**kw).init(jax.random.key(0), x, t, y)["params"]
  p_old = dit_reference.DiT(**kw).init(jax.random.key(0), x, t, y)["params"]
  _tree_equal(p_new, p_old)
  p = jax.tree.map(lambda a: a + 0.01 * jnp.cos(jnp.arange(a.size).reshape(a.shape)), p_old)
  np.testing.assert_array_equal(np.asarray(DiT(**kw).apply({"params": p}, x, t, y)),
                                np.asarray(dit_reference.DiT(**kw).apply({"params": p}, x, t, y)))


def _perturbed(params):
  """Params moved off their zero-initialized output layers so that every path is live."""
  return jax.tree.map(lambda a: a + 0.05 * jnp.sin(1.0 + jnp.arange(a.size).reshape(a.shape)),
                      params)


@pytest.mark.parametrize("net", [
    UNet(ch=16, ch_mult=(1, 2), attn_resolutions=(4,), context_dim=6, num_heads=2),
    DiT(patch_size=2, hidden_size=16, depth=1, num_heads=2, context_dim=6)])
def test_context_conditions_and_padding_is_ignored(net):
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
  t = jnp.array([3, 700])
  ctx = jax.random.normal(jax.random.key(2), (2, 4, 6))
  mask = jnp.array([[1, 1, 0, 0], [1, 1, 1, 1]])
  params = _perturbed(net.init(jax.random.key(0), x, t, context=ctx, context_mask=mask)["params"])
  f = lambda c, m: np.asarray(net.apply({"params": params}, x, t, context=c, context_mask=m))
  base = f(ctx, mask)
  other = f(ctx.at[0, :2].set(-ctx[0, :2]), mask)
  assert np.abs(other[0] - base[0]).max() > 1e-4      # the real tokens matter
  np.testing.assert_array_equal(other[1], base[1])    # per example
  padded = f(ctx.at[0, 2:].set(50.0), mask)
  np.testing.assert_allclose(padded, base, atol=1e-6)  # the padded ones do not
  with pytest.raises(ValueError, match="context"):
    net.apply({"params": params}, x, t)
