import jax.numpy as jnp
import numpy as np
import optax

from genjax.training import optim
from genjax.training.config import OptimConfig


def test_ema_matches_formula_with_warmup():
  init, update = optim.ema(0.99, start_step=2, warmup=True)
  p0 = {"w": jnp.zeros(3)}
  state = init(p0)
  ref = np.zeros(3)
  for step in range(50):
    p = {"w": jnp.full(3, float(step))}
    state = update(p, state, step)
    n = step - 2
    d = 0.0 if n < 0 else min(0.99, (1 + n) / (10 + n))
    ref = d * ref + (1 - d) * step
    np.testing.assert_allclose(state.ema["w"], ref, rtol=1e-5)


def test_ema_without_warmup_is_plain_polyak():
  init, update = optim.ema(0.9, warmup=False)
  state = update({"w": jnp.ones(2)}, init({"w": jnp.zeros(2)}), 0)
  np.testing.assert_allclose(state.ema["w"], 0.1, rtol=1e-6)


def test_learning_rate_warmup_then_cosine():
  cfg = OptimConfig(learning_rate=1.0, warmup_steps=10, schedule="cosine", end_lr_factor=0.0)
  lr = optim.learning_rate_schedule(cfg, num_steps=110)
  np.testing.assert_allclose(lr(5), 0.5, rtol=1e-6)
  np.testing.assert_allclose(lr(10), 1.0, rtol=1e-6)
  np.testing.assert_allclose(lr(60), 0.5, atol=1e-6)
  np.testing.assert_allclose(lr(110), 0.0, atol=1e-6)


def test_gradient_clipping_in_chain():
  tx = optim.make_optimizer(OptimConfig(name="adam", learning_rate=1.0, grad_clip=1.0), 10)
  params = {"w": jnp.zeros(4)}
  state = tx.init(params)
  grads = {"w": jnp.full(4, 100.0)}
  updates, _ = tx.update(grads, state, params)
  assert np.all(np.isfinite(updates["w"]))
  assert isinstance(tx, optax.GradientTransformation)
