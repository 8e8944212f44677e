"""The GAN networks: shapes, the stateless batch normalization (batch statistics in training, a
fixed reference batch when sampling) and its global statistics on 8 data-parallel devices."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nets.dcgan import BatchStatNorm, DCGANDiscriminator, DCGANGenerator
from genjax.nets.gan_mlp import MLPDiscriminator, MLPGenerator


@pytest.mark.parametrize("side,base", [(8, 2), (16, 4)])
def test_dcgan_shapes(side, base):
  g = DCGANGenerator((side, side, 3), ch=8, base_size=base)
  d = DCGANDiscriminator(ch=8, base_size=base)
  z = jax.random.normal(jax.random.key(0), (4, 10))
  gp = g.init(jax.random.key(1), z)["params"]
  x = g.apply({"params": gp}, z, True)
  assert x.shape == (4, side, side, 3) and np.all(np.abs(np.asarray(x)) <= 1.0)
  dp = d.init(jax.random.key(2), x)["params"]
  assert d.apply({"params": dp}, x, True).shape == (4,)


def test_bad_shapes_and_norms_fail_clearly():
  with pytest.raises(ValueError, match="power"):
    DCGANGenerator((12, 12, 1), base_size=4).init(jax.random.key(0), jnp.zeros((2, 3)))
  with pytest.raises(ValueError, match="norm"):
    DCGANDiscriminator(norm="spectral").init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)))


def test_batch_stat_norm_formula_and_reference_rows():
  x = jax.random.normal(jax.random.key(0), (6, 3, 3, 4)) * 2.0 + 1.0
  bn = BatchStatNorm()
  p = {"scale": jnp.full((4,), 1.5), "bias": jnp.full((4,), 0.25)}
  xn = np.asarray(x)
  ref = xn[:4]
  mean, var = ref.mean(axis=(0, 1, 2)), ref.var(axis=(0, 1, 2))
  np.testing.assert_allclose(bn.apply({"params": p}, x, 4), (xn - mean) / np.sqrt(var + 1e-5) *
                             1.5 + 0.25, rtol=1e-4, atol=1e-5)
  mean, var = xn.mean(axis=(0, 1, 2)), xn.var(axis=(0, 1, 2))
  np.testing.assert_allclose(bn.apply({"params": p}, x), (xn - mean) / np.sqrt(var + 1e-5) *
                             1.5 + 0.25, rtol=1e-4, atol=1e-5)


def test_reference_batch_makes_samples_independent_of_each_other():
  g = DCGANGenerator((8, 8, 1), ch=8, base_size=2)
  ref = jax.random.normal(jax.random.key(0), (32, 10))
  z = jax.random.normal(jax.random.key(1), (5, 10))
  p = g.init(jax.random.key(2), z)["params"]
  apply = jax.jit(lambda zz: g.apply({"params": p}, jnp.concatenate([ref, zz]), False, 32)[32:])
  np.testing.assert_allclose(apply(z)[:1], apply(z[:1]), rtol=1e-5, atol=1e-6)
  # Without the reference batch, a sample depends on its batch-mates.
  plain = g.apply({"params": p}, z, True)
  assert not np.allclose(plain[:1], g.apply({"params": p}, z[:2], True)[:1], atol=1e-4)


def test_mlp_gan_nets():
  g = MLPGenerator((8, 8, 1), hidden=(16,))
  z = jnp.ones((3, 5))
  gp = g.init(jax.random.key(0), z)["params"]
  x = g.apply({"params": gp}, z)
  assert x.shape == (3, 8, 8, 1)
  d = MLPDiscriminator(hidden=(6,), maxout_pieces=3, dropout=0.5, input_dropout=0.2)
  dp = d.init(jax.random.key(1), x)["params"]
  out = d.apply({"params": dp}, x, False)  # no dropout: maxout by hand
  h = np.asarray(x).reshape(3, -1) @ dp["dense_0"]["kernel"] + dp["dense_0"]["bias"]
  h = h.reshape(3, 6, 3).max(-1)
  np.testing.assert_allclose(out, (h @ dp["logit"]["kernel"] + dp["logit"]["bias"])[:, 0],
                             rtol=1e-5, atol=1e-5)
  drop = d.apply({"params": dp}, x, True, rngs={"dropout": jax.random.key(2)})
  assert drop.shape == (3,) and not np.allclose(drop, out)


SCRIPT = textwrap.dedent(r"""
    import jax, numpy as np
    assert jax.device_count() == 8, jax.devices()
    from configs import dcgan
    from genjax.data import BatchIterator, DataConfig, load_dataset
    from genjax.gan.method import build_gan
    from genjax.training import trainer
    from genjax.training.config import OptimConfig, TrainConfig

    config = dcgan.get_config()
    config.generator.ch = 8
    config.discriminator.ch = 8
    ds = load_dataset(DataConfig(dataset="digits"))
    method = build_gan(config, ds.spec)
    cfg = TrainConfig(batch_size=16, ema_decay=0.9)
    it = BatchIterator(ds.train, 16, seed=0, batches_per_step=method.batches_per_step)
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = trainer.make_mesh(devices)
      tx = method.make_optimizer(OptimConfig(beta1=0.5, grad_clip=0.0), 100)
      example = jax.tree.map(lambda a: a[0], it.batch_at(0))
      state = trainer.init_state(method, tx, jax.random.key(0), example, cfg, mesh)
      step = jax.jit(trainer.make_train_step(method, cfg))
      rows = []
      for s in range(2):
        batch = jax.device_put(it.batch_at(s), trainer.batch_sharding(mesh, method.batches_per_step))
        state, metrics = step(state, batch)
        rows.append({k: float(v) for k, v in metrics.items()})
      assert len(batch["x"].sharding.device_set) == len(devices)
      results.append((rows, jax.device_get(state.params)))
    (m1, p1), (m8, p8) = results
    # Per-device batch statistics would change every loss, D(x), D(G(z)) and gradient norm.
    for r1, r8 in zip(m1, m8):
      for k in r1:
        np.testing.assert_allclose(r1[k], r8[k], rtol=2e-4, err_msg=k)
    # Adam's first steps are lr * sign(g): a tiny gradient whose sign flips with the reduction
    # order moves a weight by 2 lr at most.
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)):
      np.testing.assert_allclose(a, b, atol=2 * 2 * 2e-4 + 1e-6)
    print("GAN_PARALLEL_OK")
""")


def test_batch_norm_gan_step_on_eight_devices_matches_one(python):
  """Batch statistics under the global-view jit are those of the global batch."""
  proc = python(["-c", SCRIPT],
                env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}, check=True)
  assert "GAN_PARALLEL_OK" in proc.stdout
