"""Tests of genjax.nets.UNet: parameter count, shapes, attention placement, dropout, errors.

Only one tiny configuration is compiled and run; everything else uses jax.eval_shape.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nets import AttnBlock, UNet


def _count(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _param_shapes(net, shape, num_classes=0):
  b = shape[0]
  y = jnp.zeros([b], jnp.int32) if num_classes else None
  return jax.eval_shape(net.init, jax.random.key(0), jnp.zeros(shape), jnp.zeros([b], jnp.int32),
                        y)["params"]


def _random_params(tree, seed=0, scale=0.1):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), tree)


def test_cifar10_config_has_the_papers_35_7m_parameters():
  """Ho et al. 2020, Sec. 4: 35.7M parameters; 35,746,307 exactly, as the official
  checkpoint (google/ddpm-cifar10-32 in diffusers) counts."""
  net = UNet(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
             dropout=0.1)
  shapes = _param_shapes(net, (1, 32, 32, 3))
  assert _count(shapes) == 35_746_307
  assert UNet() == net  # the defaults are the CIFAR-10 configuration
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(shapes))
  # Extras: 11 label embeddings of width 512; a doubled output conv (learned variance).
  assert _count(_param_shapes(UNet(num_classes=10), (1, 32, 32, 3), 10)) == 35_746_307 + 11 * 512
  doubled = _param_shapes(UNet(out_channels=6), (1, 32, 32, 3))
  assert _count(doubled) == 35_746_307 + 3 * 3 * 128 * 3 + 3
  # Parameters are float32 even when computing in bfloat16.
  bf16 = _param_shapes(UNet(dtype=jnp.bfloat16), (1, 32, 32, 3))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(bf16))


CONFIGS = [
    # (input shape, UNet kwargs)
    ((2, 8, 8, 1), dict(ch=16, ch_mult=(1, 2), attn_resolutions=(4,))),
    ((2, 8, 8, 1), dict(ch=16, ch_mult=(1, 2), attn_resolutions=(), num_classes=10)),
    ((3, 16, 16, 1), dict(ch=32, ch_mult=(1, 2, 2), attn_resolutions=(8,), out_channels=2)),
    ((2, 32, 32, 3), dict(ch=32, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,))),
    ((2, 32, 32, 3), dict(ch=32, num_classes=10, out_channels=6, resamp_with_conv=False)),
    ((2, 16, 8, 3), dict(ch=32, ch_mult=(1, 2, 2), attn_resolutions=(8, 4))),
]


@pytest.mark.parametrize("shape, kwargs", CONFIGS)
def test_output_shapes_and_attention_at_listed_resolutions(shape, kwargs):
  net = UNet(**kwargs)
  nc = kwargs.get("num_classes", 0)
  params = _param_shapes(net, shape, nc)
  y = jnp.zeros(shape[:1], jnp.int32) if nc else None
  out, state = jax.eval_shape(
      lambda p: net.apply({"params": p}, jnp.zeros(shape), jnp.zeros(shape[:1]), y, train=True,
                          rngs={"dropout": jax.random.key(0)},
                          capture_intermediates=lambda mdl, _: isinstance(mdl, AttnBlock),
                          mutable=["intermediates"]), params)
  out_ch = kwargs.get("out_channels") or shape[-1]
  assert out.shape == shape[:3] + (out_ch,)
  assert out.dtype == jnp.float32
  # Attention: after every ResBlock at a listed height, plus the middle one.
  heights = {name: v["__call__"][0].shape[1] for name, v in state["intermediates"].items()}
  mid_height = shape[1] // 2 ** (len(net.ch_mult) - 1)
  assert heights.pop("mid_attn_1") == mid_height
  attn = set(net.attn_resolutions)
  assert set(heights.values()) == attn
  # N attention blocks per listed resolution on the way down, N + 1 on the way up.
  assert len(heights) == len(attn) * (2 * net.num_res_blocks + 1)
  # ... each at the level of its name, owning parameters named like the reference's scopes.
  assert {n for n in params if "attn" in n} == set(heights) | {"mid_attn_1"}
  for name, h in heights.items():
    assert h == shape[1] // 2 ** int(name.split("_")[1])


def test_bfloat16_compute_float32_params_and_output():
  shape = (2, 16, 16, 3)
  net = UNet(ch=32, ch_mult=(1, 2), attn_resolutions=(8,), dtype=jnp.bfloat16)
  params = _param_shapes(net, shape)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
  jaxpr = jax.make_jaxpr(lambda p: net.apply({"params": p}, jnp.zeros(shape), jnp.zeros([2])))(
      params)
  convs = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "conv_general_dilated"]
  assert convs and all(e.outvars[0].aval.dtype == jnp.bfloat16 for e in convs)
  assert jaxpr.out_avals[0].dtype == jnp.float32 and jaxpr.out_avals[0].shape == shape


def test_tiny_unet_init_labels_times_and_grads():
  """The only compiled U-Net test: an 8x8x1 digits-sized U-Net with classes."""
  net = UNet(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.5,
             num_classes=3)
  x = jax.random.normal(jax.random.key(0), [2, 8, 8, 1])
  t = jnp.array([0, 999])
  y = jnp.array([0, 3])  # 3 = the null label
  rand = _random_params(_param_shapes(net, x.shape, 3))

  @jax.jit
  def run(p):
    init = net.init(jax.random.key(1), x, t, y)["params"]
    # Variants in one batch: as given; null labels; other (float) times.
    xs = jnp.concatenate([x] * 3)
    ts = jnp.concatenate([t, t, 999.0 - t + 0.5])
    ys = jnp.concatenate([y, jnp.array([3, 3]), y])

    def loss(q):
      out = net.apply({"params": q}, xs, ts, ys)
      return jnp.mean(out ** 2), out

    (_, out), grad = jax.value_and_grad(loss, has_aux=True)(p)
    return init, out, grad

  init, ev, grad = run(rand)

  # 1. Initialization (DDPM reference): the last layer of every residual branch and the
  # output conv start at zero, so the network outputs exactly zero.
  for name, sub in init.items():
    if "block" in name:
      assert not np.any(sub["conv2"]["kernel"]), name
    if "attn" in name:
      assert not np.any(sub["proj_out"]["kernel"]), name
  assert not np.any(init["conv_out"]["kernel"]) and not np.any(init["conv_out"]["bias"])
  # Other kernels: variance_scaling(1, fan_avg, uniform); biases zero.
  k = np.asarray(init["up_0_block_0"]["conv1"]["kernel"])  # [3, 3, 48, 16]
  limit = math.sqrt(3.0 / (9 * (48 + 16) / 2))
  assert 0.9 * limit < np.abs(k).max() <= limit
  assert not np.any(init["up_0_block_0"]["conv1"]["bias"])

  # 2. With random weights: finite; labels and (float) times change the output; every
  # parameter gets a gradient.
  assert all(np.isfinite(v).all() for v in jax.tree.leaves((ev, grad)))
  assert ev.shape == (6, 8, 8, 1) and np.abs(ev).mean() > 1e-3
  given, null, shifted = ev[:2], ev[2:4], ev[4:]
  np.testing.assert_allclose(null[1], given[1], rtol=1e-5, atol=1e-6)  # same label 3
  assert np.abs(null[0] - given[0]).max() > 1e-3
  assert np.abs(shifted - given).max() > 1e-3
  assert all(np.any(g) for g in jax.tree.leaves(grad))


def test_dropout_only_in_train_mode():
  """One dropout mask per ResBlock with train=True, none in eval mode. (The dropout
  itself is checked numerically in tests/nets/test_layers.py.)"""
  net = UNet(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.3)
  x, t = jnp.zeros([2, 8, 8, 1]), jnp.zeros([2], jnp.int32)
  params = _param_shapes(net, x.shape)

  def random_ops(train):
    jaxpr = jax.make_jaxpr(lambda p, k: net.apply({"params": p}, x, t, train=train,
                                                  rngs={"dropout": k}))(params, jax.random.key(0))
    return str(jaxpr).count("name=_bernoulli")

  num_res_blocks = sum("block" in name for name in params)
  assert random_ops(False) == 0
  assert random_ops(True) == num_res_blocks
  no_dropout = UNet(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)
  jaxpr = jax.make_jaxpr(lambda p: no_dropout.apply({"params": p}, x, t, train=True))(params)
  assert "random_bits" not in str(jaxpr)


@pytest.mark.parametrize("shape, kwargs, match", [
    ((2, 12, 12, 3), dict(ch=32, ch_mult=(1, 2, 2, 2)),
     r"not divisible by 2\^\(len\(ch_mult\)-1\) = 8"),
    ((2, 8, 6, 1), dict(ch=16, ch_mult=(1, 2, 2), attn_resolutions=()), "8x6"),
    ((2, 8, 8, 1), dict(ch=16, ch_mult=(1, 2)), "attn_resolutions \\(16,\\)"),
    ((8, 8, 1), dict(ch=16, ch_mult=(1, 2), attn_resolutions=()), "NHWC"),
])
def test_bad_input_raises_clear_value_error(shape, kwargs, match):
  net = UNet(**kwargs)
  with pytest.raises(ValueError, match=match):
    net.init(jax.random.key(0), jnp.zeros(shape), jnp.zeros(shape[:1], jnp.int32))


def test_bad_labels_and_times_raise():
  x = jnp.zeros([2, 8, 8, 1])
  t = jnp.zeros([2], jnp.int32)
  cond = UNet(ch=16, ch_mult=(1, 2), attn_resolutions=(), num_classes=10)
  with pytest.raises(ValueError, match="needs labels"):
    cond.init(jax.random.key(0), x, t)
  with pytest.raises(ValueError, match="y must have shape"):
    cond.init(jax.random.key(0), x, t, jnp.zeros([3], jnp.int32))
  uncond = UNet(ch=16, ch_mult=(1, 2), attn_resolutions=())
  with pytest.raises(ValueError, match="num_classes=0"):
    uncond.init(jax.random.key(0), x, t, jnp.zeros([2], jnp.int32))
  with pytest.raises(ValueError, match="t must be a scalar or have shape"):
    uncond.init(jax.random.key(0), x, jnp.zeros([3], jnp.int32))
