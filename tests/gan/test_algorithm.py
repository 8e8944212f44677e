"""Algorithm 2 through the trainer's Method interface: k discriminator updates per generator
update, two optimizers, and neither player's loss moving the other's parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import gan_2d
from genjax.data import BatchIterator, DataConfig, load_dataset
from genjax.gan import algorithm
from genjax.gan.method import build_gan, build_gan_model
from genjax.training import trainer
from genjax.training.config import OptimConfig, TrainConfig


def _tiny_config(k=3, **gan_fields):
  config = gan_2d.get_config()
  config.gan.k = k
  config.gan.z_dim = 4
  config.generator.hidden = (16, 16)
  config.discriminator.hidden = (16, 16)
  config.optim_d.learning_rate = 1e-2
  config.optim_g.learning_rate = 3e-3
  for name, value in gan_fields.items():
    config.gan[name] = value
  return config


def _dataset():
  return load_dataset(DataConfig(dataset="8gaussians", num_points=512, num_test_points=64))


@pytest.fixture(scope="module")
def setup():
  """A tiny 2-D GAN with k = 3, its Method and an initialised TrainState (built once)."""
  config, ds = _tiny_config(k=3), _dataset()
  method = build_gan(config, ds.spec)
  cfg = TrainConfig(batch_size=32, ema_decay=0.5)
  it = BatchIterator(ds.train, 32, seed=0, batches_per_step=method.batches_per_step)
  mesh = trainer.make_mesh(jax.devices()[:1])
  tx = method.make_optimizer(OptimConfig(beta1=0.5, grad_clip=0.0), 100)
  example = jax.tree.map(lambda a: a[0], it.batch_at(0))
  state = trainer.init_state(method, tx, jax.random.key(0), example, cfg, mesh)
  return build_gan_model(config, ds.spec), method, cfg, it, state


def _count(opt_state):
  """Adam's update counter (scale_by_adam counts the updates it has applied)."""
  adam = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
          if isinstance(s, optax.ScaleByAdamState)]
  assert len(adam) == 1
  return int(adam[0].count)


def _flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def test_k3_discriminator_updates_three_times_per_generator_update(setup):
  _, method, cfg, it, state = setup
  assert method.batches_per_step == 4 and it.batch_at(0)["x"].shape == (4, 32, 2)
  assert isinstance(state.tx, algorithm.GANOptimizers)
  step = jax.jit(trainer.make_train_step(method, cfg))
  for s in range(2):
    state, metrics = step(state, it.batch_at(s))
  assert _count(state.opt_state["d"]) == 6 and _count(state.opt_state["g"]) == 2
  for name in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "value",
               "modes_covered", "hq_fraction", "loss"):
    assert np.isfinite(float(metrics[name])), name
  # The trainer's EMA follows the generator only.
  assert jax.tree.structure(state.ema_params) == jax.tree.structure(state.params["g"])


def test_train_step_is_k_sequential_d_steps_then_one_g_step(setup):
  """Replaying Algorithm 2 by hand with the same pure losses gives the same parameters: D takes
  3 updates on minibatches 0, 1, 2 (each from the previous D, G fixed), then G takes one update
  on fresh noise against the updated D."""
  model, method, _, it, state = setup
  batch, key = it.batch_at(0), jax.random.key(11)
  new, _ = jax.jit(method.train_step)(state, batch, key)

  tx = state.tx

  @jax.jit
  def replay(params, opt_state, batch, key):
    g, d = params["g"], params["d"]
    d_opt, g_opt = opt_state["d"], opt_state["g"]
    key_d, key_g = jax.random.split(key)
    d_values = [d]
    for i, k_i in enumerate(jax.random.split(key_d, 3)):  # unrolled: no scan
      mb = jax.tree.map(lambda a: a[i], batch)
      grads = jax.grad(lambda dd: model.d_loss_fn({"g": g, "d": dd}, mb, k_i)[0])(d)
      u, d_opt = tx.d.update(grads, d_opt, d)
      d = optax.apply_updates(d, u)
      d_values.append(d)
    mb = jax.tree.map(lambda a: a[3], batch)
    grads = jax.grad(lambda gg: model.g_loss_fn({"g": gg, "d": d}, mb, key_g)[0])(g)
    u, g_opt = tx.g.update(grads, g_opt, g)
    return optax.apply_updates(g, u), d_values

  g, d_values = replay(state.params, state.opt_state, batch, key)
  np.testing.assert_allclose(_flat(new.params["d"]), _flat(d_values[-1]), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(_flat(new.params["g"]), _flat(g), rtol=1e-5, atol=1e-6)
  flats = [_flat(v) for v in d_values]  # three distinct D updates per G update
  assert all(not np.allclose(flats[i], flats[i + 1]) for i in range(3))
  assert not np.allclose(_flat(new.params["g"]), _flat(state.params["g"]))


@pytest.mark.parametrize("loss", ["saturating", "non_saturating", "lsgan", "hinge", "wgan_gp"])
def test_neither_players_loss_updates_the_others_params(loss):
  model = build_gan_model(_tiny_config(k=1, loss=loss, r1_gamma=1.0), _dataset().spec)
  params, _ = model.init(jax.random.key(0), {"x": jnp.ones((4, 2))})
  batch = {"x": jax.random.normal(jax.random.key(1), (16, 2))}
  # Eager (op by op): after the first case every primitive is already compiled.
  gd = jax.grad(lambda p: model.d_loss_fn(p, batch, jax.random.key(2))[0])(params)
  gg = jax.grad(lambda p: model.g_loss_fn(p, batch, jax.random.key(3))[0])(params)
  assert not np.any(_flat(gd["g"])) and not np.any(_flat(gg["d"]))  # exactly zero
  assert np.any(_flat(gd["d"])) and np.any(_flat(gg["g"]))


def test_bad_configs_fail_clearly():
  ds = _dataset()
  with pytest.raises(ValueError, match="gan.k"):
    build_gan(_tiny_config(k=0), ds.spec)
  config = _tiny_config()
  config.optim.learning_rate = 1e-3
  with pytest.raises(ValueError, match="optim_d.learning_rate"):
    build_gan(config, ds.spec)
  with pytest.raises(ValueError, match="Unknown GAN loss"):
    build_gan(_tiny_config(loss="wgan"), ds.spec)
