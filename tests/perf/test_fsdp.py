"""FSDP (params and optimizer state sharded over the mesh), gradient accumulation and remat
give the replicated, one-batch step's params on 8 emulated CPU devices."""

import textwrap

SCRIPT = textwrap.dedent(r"""
    import jax, jax.numpy as jnp, numpy as np
    assert jax.device_count() == 8, jax.devices()
    from jax.sharding import PartitionSpec as P
    from genjax.data import BatchIterator, DataConfig, load_dataset
    from genjax.diffusion.method import build_ddpm
    from genjax.training import optim, trainer
    from genjax.training.config import OptimConfig, TrainConfig
    from genjax.training.method import Method
    from configs import ddpm_2d

    trainer.FSDP_MIN_SIZE = 512  # shard the small test MLP's 64x64 kernels too
    config = ddpm_2d.get_config()
    config.model.hidden = 64
    ds = load_dataset(DataConfig(dataset="moons", num_points=2000, num_test_points=100))
    it = BatchIterator(ds.train, 32, seed=0)
    mesh = trainer.make_mesh()

    def run(method, steps=3, **cfg):
      cfg = TrainConfig(batch_size=32, ema_decay=0.9, **cfg)
      tx = optim.make_optimizer(OptimConfig(learning_rate=1e-3), 100)
      state = trainer.init_state(method, tx, jax.random.key(0), it.batch_at(0), cfg, mesh)
      shard = trainer.state_shardings(state, mesh, cfg.param_sharding)
      step = jax.jit(trainer.make_train_step(method, cfg), out_shardings=(shard, None))
      for s in range(steps):
        state, metrics = step(state, jax.device_put(it.batch_at(s), trainer.batch_sharding(mesh)))
      return state, float(metrics["loss"])

    # 1. FSDP equals replicated; its big params and Adam moments are sharded.
    ddpm = build_ddpm(config, ds.spec)
    rep, l_rep = run(ddpm)
    fsdp, l_fsdp = run(ddpm, param_sharding="fsdp")
    specs = [x.sharding.spec for x in jax.tree.leaves(fsdp.params)]
    assert P("data") in specs, specs
    mu = [x.sharding.spec for x in jax.tree.leaves(fsdp.opt_state) if x.size >= 512]
    assert mu and all(s == P("data") for s in mu), mu  # Adam's moments of the big kernels
    assert all(x.sharding.spec == P() for x in jax.tree.leaves(rep.params))
    np.testing.assert_allclose(l_rep, l_fsdp, rtol=1e-5)
    for a, b in zip(jax.tree.leaves((rep.params, rep.ema_params, rep.opt_state)),
                    jax.tree.leaves((fsdp.params, fsdp.ema_params, fsdp.opt_state))):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)

    # 2. Gradient accumulation: a loss without randomness gives the one-batch step.
    def init(key, batch):
      return {"w": jax.random.normal(key, (2, 64)), "v": jnp.zeros((64, 2))}, {}
    def loss(params, batch, key):
      h = jnp.tanh(batch["x"] @ params["w"]) @ params["v"]
      l = jnp.mean((h - batch["x"][:, ::-1]) ** 2)
      return l, {"mse": l}
    toy = Method(name="toy", init=init, loss=loss, sample=lambda p, k, n: jnp.zeros((n, 2)))
    one, l1 = run(toy, steps=4)
    acc, l4 = run(toy, steps=4, grad_accum_steps=4)
    np.testing.assert_allclose(l1, l4, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(acc.params)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    try:
      trainer.check_batch_divides(32, mesh, grad_accum_steps=3)
      raise SystemExit("no error for batch 32 on 8 devices x 3 micro-batches")
    except ValueError as e:
      assert "devices x training.grad_accum_steps (8 x 3)" in str(e), e
    print("FSDP_OK")
""")


def test_fsdp_and_grad_accumulation_match_replicated(python):
  proc = python(["-c", SCRIPT],
                env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}, check=True)
  assert "FSDP_OK" in proc.stdout
