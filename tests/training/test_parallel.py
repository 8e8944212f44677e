"""The data-parallel train step on 8 emulated CPU devices equals the 1-device step."""

import textwrap

SCRIPT = textwrap.dedent(r"""
    import jax, jax.numpy as jnp, numpy as np
    assert jax.device_count() == 8, jax.devices()
    from jax.sharding import NamedSharding, PartitionSpec as P
    from genjax.data import BatchIterator, DataConfig, load_dataset
    from genjax.diffusion.method import build_ddpm
    from genjax.training import optim, trainer
    from genjax.training.config import OptimConfig, TrainConfig
    import ml_collections
    from configs import ddpm_2d

    config = ddpm_2d.get_config()   # the MLP DDPM: compiles in seconds on 8 emulated devices
    config.model.hidden = 64
    ds = load_dataset(DataConfig(dataset="moons", num_points=2000, num_test_points=100))
    method = build_ddpm(config, ds.spec)
    cfg = TrainConfig(batch_size=16, ema_decay=0.9)
    it = BatchIterator(ds.train, 16, seed=0)
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = trainer.make_mesh(devices)
      tx = optim.make_optimizer(OptimConfig(learning_rate=1e-3), 100)
      state = trainer.init_state(method, tx, jax.random.key(0), it.batch_at(0), cfg, mesh)
      step = jax.jit(trainer.make_train_step(method, cfg))
      for s in range(3):
        batch = jax.device_put(it.batch_at(s), trainer.batch_sharding(mesh))
        state, metrics = step(state, batch)
      assert len(batch["x"].sharding.device_set) == len(devices)
      results.append((jax.device_get(state.params), float(metrics["loss"])))
    (p1, l1), (p8, l8) = results
    np.testing.assert_allclose(l1, l8, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    try:
      trainer.check_batch_divides(12, trainer.make_mesh())
      raise SystemExit("no error for batch 12 on 8 devices")
    except ValueError as e:
      assert "does not divide" in str(e)
    print("PARALLEL_OK")
""")


def test_eight_devices_match_one(python):
  proc = python(["-c", SCRIPT],
                env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}, check=True)
  assert "PARALLEL_OK" in proc.stdout
