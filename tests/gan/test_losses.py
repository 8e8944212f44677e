"""Each GAN loss against its formula on fixed logits; saturating vs non-saturating gradients;
WGAN-GP's gradient penalty and R1 against a direct computation of the input-gradient norms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import gan

REAL = np.array([-3.0, -0.5, 0.0, 0.7, 2.5, 6.0], np.float32)
FAKE = np.array([-4.0, -1.2, 0.3, 1.1, -0.1, 3.0], np.float32)


def _sig(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


FORMULAS = {  # name -> (library value, numpy formula in float64)
    "value_function": (lambda: gan.value_function(REAL, FAKE),
                       lambda: np.mean(np.log(_sig(REAL))) + np.mean(np.log(1 - _sig(FAKE)))),
    "discriminator_loss": (lambda: gan.discriminator_loss(REAL, FAKE),
                           lambda: -np.mean(np.log(_sig(REAL))) - np.mean(np.log(1 - _sig(FAKE)))),
    "g_saturating": (lambda: gan.generator_loss_saturating(FAKE),
                     lambda: np.mean(np.log(1 - _sig(FAKE)))),
    "g_non_saturating": (lambda: gan.generator_loss_non_saturating(FAKE),
                         lambda: -np.mean(np.log(_sig(FAKE)))),
    "lsgan_d": (lambda: gan.lsgan_discriminator_loss(REAL, FAKE),
                lambda: 0.5 * np.mean((REAL - 1.0) ** 2) + 0.5 * np.mean(FAKE ** 2)),
    "lsgan_g": (lambda: gan.lsgan_generator_loss(FAKE), lambda: 0.5 * np.mean((FAKE - 1.0) ** 2)),
    "hinge_d": (lambda: gan.hinge_discriminator_loss(REAL, FAKE),
                lambda: np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))),
    "hinge_g": (lambda: gan.hinge_generator_loss(FAKE), lambda: -np.mean(FAKE)),
    "wgan_d": (lambda: gan.wasserstein_critic_loss(REAL, FAKE),
               lambda: np.mean(FAKE) - np.mean(REAL)),
    "wgan_g": (lambda: gan.wasserstein_generator_loss(FAKE), lambda: -np.mean(FAKE)),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_loss_matches_formula(name):
  lib, ref = FORMULAS[name]
  np.testing.assert_allclose(float(jax.jit(lib)()), ref(), rtol=1e-5, atol=1e-6)


def test_losses_are_stable_and_batch_shape_agnostic():
  big = jnp.array([[-200.0, 200.0], [80.0, -80.0]])  # sigmoid saturates in float32
  for v in (gan.value_function(big, big), gan.discriminator_loss(big, big),
            gan.generator_loss_saturating(big), gan.generator_loss_non_saturating(big)):
    assert np.isfinite(float(v))
  np.testing.assert_allclose(float(gan.generator_loss_non_saturating(jnp.array([-200.0]))), 200.0)
  # D = 1/2 everywhere: V = -log 4 and the D loss is log 4.
  np.testing.assert_allclose(float(gan.value_function(jnp.zeros((3, 4)), jnp.zeros(7))),
                             -np.log(4.0), rtol=1e-6)


def test_loss_pairs_and_unknown_name():
  assert gan.get_loss_pair("saturating") == (gan.discriminator_loss,
                                             gan.generator_loss_saturating)
  assert gan.get_loss_pair("non_saturating")[1] is gan.generator_loss_non_saturating
  with pytest.raises(ValueError, match="wgan_gp"):
    gan.get_loss_pair("wgan")


def test_saturating_and_non_saturating_gradients():
  """Same fixed point and direction, different strength when D rejects the samples."""
  grad_s = jax.grad(gan.generator_loss_saturating)
  grad_ns = jax.grad(gan.generator_loss_non_saturating)
  # At D(G(z)) = 1/2 (the equilibrium D* = 1/2 of p_g = p_data) the gradients are identical.
  half = jnp.zeros(4)
  np.testing.assert_allclose(grad_s(half), grad_ns(half), rtol=1e-6)
  np.testing.assert_allclose(grad_s(half), -0.5 / 4, rtol=1e-6)
  # Both always push the logits up (minimising either raises D(G(z))).
  logits = jnp.linspace(-12.0, 12.0, 25)
  assert np.all(grad_s(logits) < 0) and np.all(grad_ns(logits) < 0)
  # Near D(G(z)) = 0 the saturating gradient vanishes, -sigmoid(l) / B, while the
  # non-saturating one stays near -(1 - sigmoid(l)) / B = -1 / B.
  early = jnp.full((8,), -10.0)  # D(G(z)) = 4.5e-5
  gs, gns = np.asarray(grad_s(early)), np.asarray(grad_ns(early))
  np.testing.assert_allclose(gs, -_sig(-10.0) / 8, rtol=1e-4)
  np.testing.assert_allclose(gns, -(1 - _sig(-10.0)) / 8, rtol=1e-5)
  assert np.all(np.abs(gns) > 1e4 * np.abs(gs))


def _critic(x, v, w):
  """f(x) = tanh(x . v) + 1/2 sum_j w_j x_j^2, per example; grad = v (1 - tanh^2) + w x."""
  flat = x.reshape(x.shape[0], -1)
  return jnp.tanh(flat @ v) + 0.5 * jnp.sum(w * flat ** 2, axis=-1)


def test_gradient_penalty_matches_direct_norm():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(6, 2, 2, 1)).astype(np.float32)
  fake = rng.normal(size=(6, 2, 2, 1)).astype(np.float32) + 1.0
  v = rng.normal(size=4).astype(np.float32)
  w = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
  key = jax.random.key(3)
  gp = jax.jit(lambda r, f: gan.gradient_penalty(lambda x: _critic(x, v, w), r, f, key))(
      real, fake)
  # Direct: the documented interpolation draw, then the analytic input gradient.
  eps = np.asarray(jax.random.uniform(key, (6,)), np.float64)
  x_hat = (eps[:, None] * real.reshape(6, -1) + (1 - eps[:, None]) * fake.reshape(6, -1))
  t = np.tanh(x_hat @ v)
  grads = v[None, :] * (1 - t[:, None] ** 2) + w[None, :] * x_hat
  expected = np.mean((np.linalg.norm(grads, axis=1) - 1.0) ** 2)
  np.testing.assert_allclose(float(gp), expected, rtol=1e-4)
  # The interpolates lie on the segments.
  np.testing.assert_allclose(np.asarray(gan.interpolates(real, fake, key)).reshape(6, -1), x_hat,
                             rtol=1e-5, atol=1e-6)


def test_r1_penalty_matches_direct_norm():
  rng = np.random.default_rng(1)
  real = rng.normal(size=(5, 3)).astype(np.float32)
  v = rng.normal(size=3).astype(np.float32)
  w = rng.uniform(0.5, 2.0, size=3).astype(np.float32)
  r1 = gan.r1_penalty(lambda x: _critic(x, v, w), real)
  t = np.tanh(real @ v)
  grads = v[None, :] * (1 - t[:, None] ** 2) + w[None, :] * real
  np.testing.assert_allclose(float(r1), np.mean(np.sum(grads ** 2, axis=1)), rtol=1e-4)
