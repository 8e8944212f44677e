"""unCLIP's prior (Ramesh et al. 2022, Sec. 2.1) on Gaussian embeddings with a known conditional
law: z = A y + 0.2 n. Trained with the DDPM loss predicting z directly and sampled through the
sampling core, it reproduces the conditional mean A y and spread 0.2; with the text dropped
(the null condition) it reproduces the marginal."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.clip.prior import PriorMLP, drop_text, preconditioned
from genjax.diffusion import make_ddpm_loss
from genjax.sampling import registry
from genjax.sampling.catalog import SamplingConfig
from genjax.sampling.schedules import get_schedule

A = np.array([[1.0, 0.5], [-0.5, 1.0]])
NOISE = 0.2


def test_prior_reproduces_the_conditional_mean_of_gaussian_embeddings():
  sched = get_schedule("cosine", 100)
  net = PriorMLP(width=64, depth=2)
  params = net.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros((1,)), jnp.zeros((1, 2)))
  f = preconditioned(net.apply, sched, 1.0)
  model_fn = lambda p, z, t, y, k: f(p, z, t, y)
  loss_fn = make_ddpm_loss(model_fn, sched, "x0")
  tx = optax.adam(optax.cosine_decay_schedule(3e-3, 2000))

  @jax.jit
  def step(params, opt, key):
    k_y, k_n, k_drop, k_loss = jax.random.split(key, 4)
    y = jax.random.normal(k_y, (512, 2))
    z = y @ A.T + NOISE * jax.random.normal(k_n, (512, 2))
    batch = {"x": z, "label": drop_text(k_drop, y, 0.1)}
    loss, grads = jax.value_and_grad(lambda p: loss_fn(p, batch, k_loss)[0])(params)
    upd, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, upd), opt, loss

  opt = tx.init(params)
  for i in range(2000):
    params, opt, _ = step(params, opt, jax.random.fold_in(jax.random.key(1), i))
  model = registry.Model(process=sched, model_fn=lambda z, t, y: f(params, z, t, y),
                         prediction="x0", null_cond=jnp.zeros_like)
  cfg = SamplingConfig(sampler="ddim", steps=50, eta=1.0)
  n = 3000
  for y0 in ([1.0, 0.0], [-1.0, 1.5], [0.5, -0.5]):  # (0, 0) is the null condition
    y = jnp.tile(jnp.asarray(y0)[None], (n, 1))
    z = np.asarray(registry.run(model, cfg, jax.random.key(2), (n, 2), cond=y))
    np.testing.assert_allclose(z.mean(0), A @ np.asarray(y0), atol=0.06)
    np.testing.assert_allclose(z.std(0), NOISE, rtol=0.2)
  # The null condition (10% of the training steps) gives roughly the marginal
  # N(0, A A^T + 0.04 I) = N(0, 1.29 I).
  z = np.asarray(registry.run(model, cfg, jax.random.key(3), (n, 2), cond=jnp.zeros((n, 2))))
  np.testing.assert_allclose(z.mean(0), 0.0, atol=0.1)
  np.testing.assert_allclose(np.diag(np.cov(z.T)), 1.29, rtol=0.25)
