"""ControlNet's network (genjax.nets.controlnet) and its combination with a frozen U-Net."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.controlnet import model as cm
from genjax.nets.controlnet import COPY, controlnet_like, init_from_base
from genjax.nets.unet import UNet

KW = dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)


def _bits(a):
  return np.asarray(a).view(np.uint32)


@pytest.fixture(scope="module")
def setup():
  unet = UNet(**KW)
  x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
  t = jnp.array([3, 500, 999])
  base = jax.jit(unet.init)(jax.random.key(0), x, t)["params"]
  # a base that is not at its initialisation (conv_out is zero at init)
  base = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(7), p.shape), base)
  net = controlnet_like(unet, hint_channels=(8, 16))
  c = jnp.zeros((3, 8, 8, 1))
  ctrl = init_from_base(jax.jit(net.init)(jax.random.key(2), x, t, control=c)["params"], base)
  return unet, net, base, ctrl, x, t


def test_unet_residual_arguments_are_additive(setup):
  unet, net, base, ctrl, x, t = setup
  plain = unet.apply({"params": base}, x, t)
  downs, mid = net.apply({"params": ctrl}, x, t, control=jnp.ones((3, 8, 8, 1)))
  zeros = [jnp.zeros_like(d) for d in downs]
  same = unet.apply({"params": base}, x, t, down_residuals=zeros, mid_residual=jnp.zeros_like(mid))
  np.testing.assert_array_equal(_bits(plain), _bits(same))
  # a residual on one skip changes the output
  bumped = list(zeros)
  bumped[0] = jnp.ones_like(zeros[0])
  assert not np.allclose(unet.apply({"params": base}, x, t, down_residuals=bumped), plain)
  with pytest.raises(ValueError, match="one residual per skip"):
    unet.apply({"params": base}, x, t, down_residuals=zeros[:-1])


def test_controlnet_copies_the_base_and_starts_at_zero(setup):
  unet, net, base, ctrl, x, t = setup
  shared = set(ctrl[COPY])
  assert shared == {k for k in base if not k.startswith(("up_", "norm_out", "conv_out"))}
  for k in shared:
    for a, b in zip(jax.tree.leaves(ctrl[COPY][k]), jax.tree.leaves(base[k])):
      np.testing.assert_array_equal(_bits(a), _bits(b))
  zero = [k for k in ctrl if k.startswith("zero_conv")] + ["hint_conv_out"]
  assert len([k for k in ctrl if k.startswith("zero_conv_") and k != "zero_conv_mid"]) == 4
  for k in zero:
    assert all(not np.any(np.asarray(a)) for a in jax.tree.leaves(ctrl[k])), k


def test_at_initialisation_controlnet_plus_base_is_the_base_bitwise(setup):
  unet, net, base, ctrl, x, t = setup
  f = jax.jit(lambda bp, cp, c, s: cm.controlled_apply(unet, [net], bp, [cp], x, t,
                                                       cm.make_condition([c], s)))
  plain = jax.jit(lambda bp: unet.apply({"params": bp}, x, t))(base)
  for seed, scale in [(0, 1.0), (1, 1.7), (2, -3.0)]:  # any condition, any scale
    c = jax.random.uniform(jax.random.key(seed + 10), (3, 8, 8, 1)) * 5 - 2
    np.testing.assert_array_equal(_bits(f(base, ctrl, c, jnp.array([scale]))), _bits(plain))


def test_zero_convolutions_get_nonzero_gradients_first(setup):
  unet, net, base, ctrl, x, t = setup
  c = jax.random.uniform(jax.random.key(3), (3, 8, 8, 1))
  cond = cm.make_condition([c], [1.0])
  target = jax.random.normal(jax.random.key(4), x.shape)

  def loss(cp):
    out = cm.controlled_apply(unet, [net], base, [cp], x, t, cond)
    return jnp.mean((out - target) ** 2)

  grad_fn = jax.jit(jax.grad(loss))
  sq = lambda g: {k: float(sum(jnp.sum(a ** 2) for a in jax.tree.leaves(v))) for k, v in g.items()}
  norm = sq(grad_fn(ctrl))
  for k in [k for k in norm if k.startswith("zero_conv")]:
    assert norm[k] > 0, k
  # Behind the output zero convs nothing gets a gradient at the first step: the trainable copy
  # and the condition encoder (with its input zero conv Z_z1) start moving once the output
  # zero convs are non-zero (the paper's Sec. 3.1 / its zero-convolution FAQ).
  assert norm[COPY] == 0 and norm["hint_conv_out"] == 0
  stepped = {k: (jax.tree.map(lambda p, g: p - 0.1 * g, v, grads_k) if k.startswith("zero_conv")
                 else v) for (k, v), grads_k in zip(ctrl.items(), grad_fn(ctrl).values())}
  norm2 = sq(grad_fn(stepped))
  assert norm2["hint_conv_out"] > 0 and norm2[COPY] > 0 and norm2["hint_conv_in"] == 0


def test_several_controlnets_sum_their_scaled_residuals(setup):
  unet, net, base, ctrl, x, t = setup
  # two ControlNets with non-zero zero convs (as after training)
  bump = lambda p, s: {k: (jax.tree.map(lambda a: a + 0.01 * s, v) if k.startswith(("zero",
                                                                                      "hint"))
                           else v) for k, v in p.items()}
  p1, p2 = bump(ctrl, 1.0), bump(ctrl, -2.0)
  c1 = jax.random.uniform(jax.random.key(5), (3, 8, 8, 1))
  c2 = jax.random.uniform(jax.random.key(6), (3, 8, 8, 1))
  out = cm.controlled_apply(unet, [net, net], base, [p1, p2], x, t,
                            cm.make_condition([c1, c2], [0.5, 2.0]))
  r1 = cm.control_residuals(net, p1, x, t, None, c1, 0.5)
  r2 = cm.control_residuals(net, p2, x, t, None, c2, 2.0)
  downs = [a + b for a, b in zip(r1[0], r2[0])]
  ref = unet.apply({"params": base}, x, t, down_residuals=downs, mid_residual=r1[1] + r2[1])
  np.testing.assert_allclose(out, ref, atol=1e-5)
  # scale 0 on both: the base exactly
  off = cm.controlled_apply(unet, [net, net], base, [p1, p2], x, t,
                            cm.make_condition([c1, c2], [0.0, 0.0]))
  np.testing.assert_allclose(off, unet.apply({"params": base}, x, t), atol=0)
  # per-example scales: example 0 off, the others on
  s = jnp.array([[0.0, 0.0], [0.5, 2.0], [0.5, 2.0]])
  mixed = cm.controlled_apply(unet, [net, net], base, [p1, p2], x, t,
                              {"control": (c1, c2), "scale": s})
  np.testing.assert_allclose(mixed[0], off[0], atol=1e-6)
  np.testing.assert_allclose(mixed[1:], out[1:], atol=1e-5)


def test_guess_mode_weights_and_null_condition():
  w = cm.guess_mode_weights(13)
  np.testing.assert_allclose(w, [0.825 ** (12 - i) for i in range(13)], rtol=0.02)
  assert w[0] == pytest.approx(0.1) and w[-1] == 1.0
  cond = cm.make_condition([jnp.ones((2, 4, 4, 1))], [1.5], label=jnp.array([3, 4]))
  null = cm.null_condition(10, guess_mode=True)(cond)
  np.testing.assert_array_equal(null["label"], [10, 10])
  np.testing.assert_array_equal(null["scale"], 0)
  keep = cm.null_condition(10, guess_mode=False)(cond)
  np.testing.assert_array_equal(keep["scale"], cond["scale"])


def test_bad_control_maps_fail_clearly(setup):
  unet, net, base, ctrl, x, t = setup
  with pytest.raises(ValueError, match=r"control map must be \[B, H\*1, W\*1, C\]"):
    net.apply({"params": ctrl}, x, t, control=jnp.zeros((3, 4, 4, 1)))
  with pytest.raises(ValueError, match="needs a control map"):
    net.apply({"params": ctrl}, x, t)
  latent = controlnet_like(UNet(**KW), hint_channels=(8, 16, 32), hint_downsample=4)
  shapes = jax.eval_shape(latent.init, jax.random.key(0), x, t, control=jnp.zeros((3, 32, 32, 3)))
  assert "hint_block_1_b" in shapes["params"]
  with pytest.raises(ValueError, match="architecture must be the base's"):
    init_from_base(ctrl, {k: v for k, v in base.items() if k != "mid_block_1"})


def test_controlnet_copies_a_cross_attention_base():
  """A text-conditioned base (cross-attention): the copy takes the same context."""
  unet = UNet(**KW, context_dim=6, num_heads=2)
  x, t = jnp.ones((2, 8, 8, 1)), jnp.array([1, 2])
  ctx = jax.random.normal(jax.random.key(0), (2, 3, 6))
  base = jax.jit(unet.init)(jax.random.key(0), x, t, context=ctx)["params"]
  net = controlnet_like(unet, hint_channels=(4, 8))
  ctrl = jax.jit(net.init)(jax.random.key(1), x, t, control=jnp.zeros((2, 8, 8, 1)),
                           context=ctx)["params"]
  ctrl = init_from_base(ctrl, base)
  assert "mid_transformer_1" in ctrl[COPY]
  cond = dict(cm.make_condition([jnp.ones((2, 8, 8, 1))], [1.0]), context=ctx)
  out = jax.jit(lambda: cm.controlled_apply(unet, [net], base, [ctrl], x, t, cond))()
  ref = jax.jit(lambda: unet.apply({"params": base}, x, t, context=ctx))()
  np.testing.assert_array_equal(_bits(out), _bits(ref))


def test_guess_mode_through_the_sampling_cores_guidance(setup):
  """The cond pytree goes through the core's classifier-free guidance: in guess mode the null
  branch has scale 0 (the base), so (1 + w) eps(x, c) - w eps(x) guides by the control."""
  from genjax.sampling import registry, schedules
  unet, net, base, ctrl, x, t = setup
  sched = schedules.get_schedule("linear", 20)
  trained = {k: (jax.tree.map(lambda a: a + 0.02, v) if k.startswith("zero") else v)
             for k, v in ctrl.items()}
  c = jax.random.uniform(jax.random.key(9), (3, 8, 8, 1))
  cond = cm.make_condition([c], [1.0])

  def model(p, guess):
    fn = lambda xx, tt, cc: cm.controlled_apply(unet, [net], base, [p], xx, tt, cc,
                                                guess_mode=(guess,))
    return registry.Model(process=sched, model_fn=fn, null_cond=cm.null_condition(None, True))

  cfg = registry.SamplingConfig(sampler="ddim", steps=2, guidance_scale=1.0, eta=0.0)
  plain_cfg = registry.SamplingConfig(sampler="ddim", steps=2, eta=0.0)
  run = jax.jit(lambda p, conf: registry.run(model(p, True), conf, jax.random.key(0),
                                             (3, 8, 8, 1), cond=cond), static_argnums=1)
  base_only = registry.run(model(ctrl, True), plain_cfg, jax.random.key(0), (3, 8, 8, 1),
                           cond=cm.make_condition([c], [0.0]))
  # at initialisation both branches are the base: guidance changes nothing
  np.testing.assert_allclose(run(ctrl, cfg), base_only, atol=1e-5)
  # trained: the guided samples move further from the base than the unguided ones
  guided, unguided = run(trained, cfg), run(trained, plain_cfg)
  assert float(jnp.abs(guided - base_only).mean()) > float(jnp.abs(unguided - base_only).mean())
