"""Goodfellow et al. 2014 Prop. 1 and Thm. 1: training only D on two fixed 1-D Gaussians reaches
D* = p_data / (p_data + p_g), and V(D*, G) = -log 4 + 2 JSD(p_data || p_g) by quadrature."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import gan

MU_D, SD_D = 0.0, 1.0    # p_data
MU_G, SD_G = 1.0, 1.5    # p_g: a fixed generator G(z) = 1 + 1.5 z


def _logpdf(x, mu, sd):
  return -0.5 * ((x - mu) / sd) ** 2 - jnp.log(sd) - 0.5 * jnp.log(2 * jnp.pi)


def _quadrature():
  x = np.linspace(-20.0, 20.0, 200_001)
  w = np.full_like(x, x[1] - x[0])
  w[[0, -1]] *= 0.5  # trapezoid
  return x, w


def _d_logit(params, x):
  """A discriminator whose logit is quadratic in x: it can represent D* of two Gaussians."""
  return params["a"] * x ** 2 + params["b"] * x + params["c"]


def _train_discriminator(steps=1500, batch=4096):
  """Algorithm 2's inner loop with G fixed: D ascends V on fresh minibatches of data and noise."""
  sched = optax.cosine_decay_schedule(0.05, steps)
  tx = optax.adam(sched)
  params = {"a": jnp.zeros(()), "b": jnp.zeros(()), "c": jnp.zeros(())}

  def loss(p, key):
    kd, kz = jax.random.split(key)
    x = MU_D + SD_D * jax.random.normal(kd, (batch,))
    fake = MU_G + SD_G * jax.random.normal(kz, (batch,))
    return gan.discriminator_loss(_d_logit(p, x), _d_logit(p, fake))

  def step(carry, key):
    p, s = carry
    g = jax.grad(loss)(p, key)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)),
                                jax.random.split(jax.random.key(0), steps))
  return params


def test_trained_discriminator_reaches_d_star_and_value_matches_jsd():
  params = jax.jit(_train_discriminator)()
  x = np.linspace(-3.0, 4.0, 141).astype(np.float32)  # where both densities have mass
  d_star = gan.optimal_discriminator(np.exp(_logpdf(x, MU_D, SD_D)), np.exp(_logpdf(x, MU_G, SD_G)))
  d_trained = jax.nn.sigmoid(_d_logit(params, x))
  np.testing.assert_allclose(d_trained, d_star, atol=0.02)
  # The log-domain form agrees with the ratio form.
  np.testing.assert_allclose(
      jax.nn.sigmoid(gan.optimal_discriminator_logit(_logpdf(x, MU_D, SD_D), _logpdf(x, MU_G, SD_G))),
      d_star, atol=1e-6)

  with jax.enable_x64(True):
    xq, w = _quadrature()
    lp, lq = _logpdf(xq, MU_D, SD_D), _logpdf(xq, MU_G, SD_G)
    p, q = np.exp(lp), np.exp(lq)
    m = 0.5 * (p + q)
    jsd = 0.5 * np.sum(w * p * (lp - np.log(m))) + 0.5 * np.sum(w * q * (lq - np.log(m)))
    assert 0.0 < jsd < np.log(2.0)
    np.testing.assert_allclose(float(gan.jensen_shannon_divergence(p, q, w)), jsd, rtol=1e-10)
    # V(D*, G) by quadrature equals -log 4 + 2 JSD (Theorem 1).
    logit_star = gan.optimal_discriminator_logit(lp, lq)
    v_star = (np.sum(w * p * np.asarray(jax.nn.log_sigmoid(logit_star)))
              + np.sum(w * q * np.asarray(jax.nn.log_sigmoid(-logit_star))))
    np.testing.assert_allclose(v_star, float(gan.optimal_value(jsd)), rtol=1e-8)
    # The trained D's value is within a hair of the maximum (V is flat at D*) and never above.
    lt = np.asarray(_d_logit({k: np.float64(v) for k, v in params.items()}, xq))
    v_trained = (np.sum(w * p * np.asarray(jax.nn.log_sigmoid(lt)))
                 + np.sum(w * q * np.asarray(jax.nn.log_sigmoid(-lt))))
    assert v_trained <= v_star + 1e-9
    np.testing.assert_allclose(v_trained, v_star, atol=1e-3)
  # value_function on samples estimates the same number.
  k1, k2 = jax.random.split(jax.random.key(7))
  xs = MU_D + SD_D * jax.random.normal(k1, (200_000,))
  fs = MU_G + SD_G * jax.random.normal(k2, (200_000,))
  v_mc = float(gan.value_function(_d_logit(params, xs), _d_logit(params, fs)))
  np.testing.assert_allclose(v_mc, v_star, atol=0.01)


def test_optimum_of_identical_distributions_is_minus_log_4():
  np.testing.assert_allclose(gan.optimal_value(0.0), -np.log(4.0))
  np.testing.assert_allclose(gan.optimal_value(np.log(2.0)), 0.0, atol=1e-12)
  d = gan.optimal_discriminator(jnp.array([0.3, 0.0, 2.0]), jnp.array([0.3, 0.0, 0.0]))
  np.testing.assert_allclose(d, [0.5, 0.5, 1.0])
