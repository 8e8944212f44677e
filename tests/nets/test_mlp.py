"""Tests of genjax.nets.MLP and genjax.nets.MLPDenoiser."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nets import MLP, MLPDenoiser


def _random_params(tree, seed=0, scale=0.3):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), tree)


def test_mlp_matches_closed_form():
  x = np.random.default_rng(0).standard_normal([5, 3]).astype(np.float32)
  mlp = MLP((4, 6, 2), activation=nn.tanh)
  p = _random_params(jax.eval_shape(mlp.init, jax.random.key(0), jnp.asarray(x))["params"])
  assert list(p) == ["dense_0", "dense_1", "dense_2"]
  h = x
  for i in range(3):
    h = h @ np.asarray(p[f"dense_{i}"]["kernel"]) + np.asarray(p[f"dense_{i}"]["bias"])
    if i < 2:
      h = np.tanh(h)
  out, final = jax.jit(lambda x: (mlp.apply({"params": p}, x),
                                  MLP((4, 6, 2), nn.tanh, activate_final=True).apply(
                                      {"params": p}, x)))(jnp.asarray(x))
  np.testing.assert_allclose(out, h, atol=1e-5)
  np.testing.assert_allclose(final, np.tanh(h), atol=1e-5)
  with pytest.raises(ValueError, match="at least one layer"):
    MLP(()).init(jax.random.key(0), jnp.asarray(x))


def test_mlp_denoiser_shapes_labels_time_and_dropout():
  net = MLPDenoiser(hidden=32, depth=2, time_dim=16, num_classes=4, dropout=0.5, out_dim=3)
  x = jax.random.normal(jax.random.key(0), [6, 2])
  t = jnp.array([0, 1, 10, 100, 500, 999])
  y = jnp.array([0, 1, 2, 3, 4, 4])
  shapes = jax.eval_shape(net.init, jax.random.key(0), x, t, y)["params"]
  assert shapes["label_emb"]["embedding"].shape == (5, 32)  # num_classes + 1 (null label)
  p = _random_params(shapes)

  @jax.jit
  def run(key):
    f = lambda **kw: net.apply({"params": p}, x, **kw)
    return dict(
        init=net.apply(net.init(jax.random.key(1), x, t, y), x, t, y),
        eval=f(t=t, y=y),
        scalar_t=f(t=jnp.float32(10.0), y=y),
        other_y=f(t=t, y=jnp.full([6], 4)),
        train=f(t=t, y=y, train=True, rngs={"dropout": key}),
    )

  o = run(jax.random.key(2))
  assert o["eval"].shape == (6, 3) and o["init"].shape == (6, 3)
  assert all(np.isfinite(v).all() for v in o.values())
  np.testing.assert_allclose(o["scalar_t"][2], o["eval"][2], rtol=1e-5, atol=1e-6)
  assert np.abs(o["scalar_t"][0] - o["eval"][0]).max() > 1e-3
  np.testing.assert_allclose(o["other_y"][4:], o["eval"][4:], rtol=1e-5, atol=1e-6)
  assert np.abs(o["other_y"][:4] - o["eval"][:4]).max() > 1e-3
  assert np.abs(o["train"] - o["eval"]).max() > 1e-3
  # Defaults: output width = input width.
  d = MLPDenoiser()
  out = jax.eval_shape(lambda: d.init_with_output(jax.random.key(0), jnp.zeros([7, 5]),
                                                  jnp.zeros([7]))[0])
  assert out.shape == (7, 5)


def test_mlp_denoiser_bad_inputs():
  net = MLPDenoiser(hidden=8, depth=1, time_dim=8)
  with pytest.raises(ValueError, match=r"\[B, D\]"):
    net.init(jax.random.key(0), jnp.zeros([2]), jnp.zeros([2]))
  with pytest.raises(ValueError, match="t must be"):
    net.init(jax.random.key(0), jnp.zeros([2, 2]), jnp.zeros([3]))
  with pytest.raises(ValueError, match="num_classes=0"):
    net.init(jax.random.key(0), jnp.zeros([2, 2]), jnp.zeros([2]), jnp.zeros([2], jnp.int32))
  with pytest.raises(ValueError, match="needs labels"):
    MLPDenoiser(num_classes=3).init(jax.random.key(0), jnp.zeros([2, 2]), jnp.zeros([2]))


def test_mlp_denoiser_image_shaped_input():
  """[B, H, W, C] is flattened: the output is [B, H, W, out_dim or C], and every pixel of the
  output depends on every input pixel (a dense net, not a per-pixel one)."""
  net = MLPDenoiser(hidden=16, depth=1, time_dim=8)
  x = jax.random.normal(jax.random.key(1), [3, 4, 4, 1])
  t = jnp.arange(3)
  params = net.init(jax.random.key(0), x, t)["params"]
  assert params["dense_in"]["kernel"].shape == (16, 16)
  out = net.apply({"params": params}, x, t)
  assert out.shape == (3, 4, 4, 1)
  jac = jax.jacobian(lambda v: net.apply({"params": params}, v[None], t[:1])[0])(x[0])
  assert np.all(np.abs(np.asarray(jac).reshape(16, 16)) > 0)
  wide = MLPDenoiser(hidden=16, depth=1, time_dim=8, out_dim=2)
  out2 = wide.init_with_output(jax.random.key(0), x, t)[0]
  assert out2.shape == (3, 4, 4, 2)
