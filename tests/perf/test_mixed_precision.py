"""training.compute_dtype="bfloat16": bfloat16 activations, float32 master params, optimizer
state and EMA; 50 steps track the float32 run's loss.

Tolerance (stated, measured): with the same keys (so the same timesteps and noise draws), the
bfloat16 loss of each step is within 10% of the float32 loss of that step, and the mean over
each 10-step window within 3%. bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9 =
0.2%) per operation; what the test catches is a wrong dtype reaching the params or the
optimizer (the runs then drift apart) or a network that silently stays in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.training import run as run_lib
from genjax.training import netopts, optim, trainer

STEPS = 50


def _losses(config, steps=STEPS):
  run = run_lib.build_run(config)
  mesh = trainer.make_mesh(jax.devices()[:1])
  tx = optim.make_optimizer(run.optim, run.train.num_steps)
  state = trainer.init_state(run.method, tx, jax.random.key(0), run.iterator.batch_at(0),
                             run.train, mesh)
  step = jax.jit(trainer.make_train_step(run.method, run.train))
  losses = []
  for s in range(steps):
    state, metrics = step(state, run.iterator.batch_at(s))
    losses.append(metrics["loss"])
  return np.asarray(jax.device_get(losses)), state, run, step


def _check_tracks(config):
  f32, s32, run32, step32 = _losses(config)
  config.training.compute_dtype = "bfloat16"
  bf16, s16, run, step = _losses(config)
  # Master params, optimizer state and EMA stay float32.
  for tree in (s16.params, s16.opt_state, s16.ema_params):
    dtypes = {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}
    assert dtypes == {jnp.dtype(jnp.float32)}, dtypes
  # The network does compute in bfloat16.
  batch = run.iterator.batch_at(0)
  hlo = step.lower(s16, batch).as_text()
  assert "bf16" in hlo
  assert "bf16" not in step32.lower(s32, run32.iterator.batch_at(0)).as_text()
  rel = np.abs(bf16 - f32) / np.abs(f32)
  assert rel.max() < 0.10, (rel.max(), f32, bf16)
  w32, w16 = f32.reshape(-1, 10).mean(1), bf16.reshape(-1, 10).mean(1)
  np.testing.assert_allclose(w16, w32, rtol=0.03)
  assert w32[-1] < 0.8 * w32[0]  # and both runs are learning
  return f32, bf16


def test_bfloat16_tracks_float32_on_the_mlp_ddpm():
  from configs import ddpm_2d
  config = ddpm_2d.get_config()
  config.model.hidden, config.model.time_dim = 64, 32
  config.training.batch_size, config.training.num_steps = 64, STEPS
  config.optim.learning_rate = 1e-3
  _check_tracks(config)


@pytest.mark.slow
def test_bfloat16_tracks_float32_on_the_unet_ddpm():
  from configs import ddpm
  config = ddpm.get_config()
  config.model.ch, config.model.dropout = 16, 0.0
  config.training.batch_size, config.training.num_steps = 32, STEPS
  _check_tracks(config)


def test_options_reach_the_network_sections_only_of_families_that_take_them():
  from configs import ddpm, gan, vae
  c = netopts.apply_network_options(ddpm.get_config(), "bfloat16", remat=True)
  assert c.model.dtype == jnp.bfloat16 and c.model.remat
  g = netopts.apply_network_options(gan.get_config(), "bfloat16")
  assert g.generator.dtype == jnp.bfloat16 and g.discriminator.dtype == jnp.bfloat16
  base = gan.get_config()
  assert netopts.apply_network_options(base) is base and "dtype" not in base.generator
  with pytest.raises(ValueError, match="config.method 'vae' has none"):
    netopts.apply_network_options(vae.get_config(), "bfloat16")
  with pytest.raises(ValueError, match="training.remat=True"):
    netopts.apply_network_options(gan.get_config(), remat=True)
  # The GAN's players build with the bfloat16 dtype.
  from genjax.gan.method import build_gan
  from genjax.types import DataSpec
  build_gan(g, DataSpec(shape=(2,), num_classes=0))
