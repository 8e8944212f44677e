"""The first stage's losses: the KL term against its closed form, the adaptive GAN weight of
Esser et al. 2021 eq. 7 against the formula on a toy linear decoder, and the gradients of the
weighted loss that the train step takes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.latent import losses as L



@pytest.fixture(autouse=True)
def _float64():
  with jax.enable_x64(True):
    yield


def test_gaussian_kl_matches_the_closed_form_and_a_monte_carlo_estimate():
  rng = np.random.default_rng(0)
  mean = rng.normal(size=(3, 2, 2, 4))
  logvar = rng.normal(size=(3, 2, 2, 4)) * 0.5
  got = np.asarray(L.gaussian_kl(jnp.asarray(mean), jnp.asarray(logvar)))
  # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2)/2 - 1/2 per dimension.
  s2 = np.exp(logvar)
  want = np.sum(-0.5 * logvar + 0.5 * (s2 + mean ** 2) - 0.5, axis=(1, 2, 3))
  np.testing.assert_allclose(got, want, rtol=1e-12)
  # Monte Carlo: E_q[log q(z) - log p(z)] for the first example.
  z = mean[0] + np.sqrt(s2[0]) * rng.normal(size=(200_000,) + mean.shape[1:])
  log_q = -0.5 * ((z - mean[0]) ** 2 / s2[0] + logvar[0] + np.log(2 * np.pi))
  log_p = -0.5 * (z ** 2 + np.log(2 * np.pi))
  mc = np.mean(np.sum(log_q - log_p, axis=(1, 2, 3)))
  assert abs(mc - want[0]) < 0.05
  # Rate: KL / (ln 2 * D) bits per latent dimension; zero at the prior.
  np.testing.assert_allclose(np.asarray(L.kl_rate_bits(jnp.asarray(mean), jnp.asarray(logvar))),
                             want / (np.log(2) * 16), rtol=1e-12)
  assert float(L.gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3)))[0]) == 0.0


def test_split_moments_clamps_the_log_variance_as_ldm():
  m, lv = L.split_moments(jnp.array([[1.0, 2.0, -50.0, 40.0]]))
  np.testing.assert_array_equal(np.asarray(m), [[1.0, 2.0]])
  np.testing.assert_array_equal(np.asarray(lv), [[-30.0, 20.0]])


def _toy(seed=0):
  """A linear decoder x_hat = z W + b ("conv_out") and a linear discriminator D(x) = x . a."""
  rng = np.random.default_rng(seed)
  z = jnp.asarray(rng.normal(size=(5, 3)))
  x = jnp.asarray(rng.normal(size=(5, 4)))
  a = jnp.asarray(rng.normal(size=(4,)))
  params = {"enc": {"s": jnp.asarray(1.3)},
            "decoder": {"conv_out": {"kernel": jnp.asarray(rng.normal(size=(3, 4))),
                                     "bias": jnp.asarray(rng.normal(size=(4,)))}}}

  def terms(p):
    zz = p["enc"]["s"] * z
    x_hat = zz @ p["decoder"]["conv_out"]["kernel"] + p["decoder"]["conv_out"]["bias"]
    rec = jnp.mean(jnp.sum(jnp.abs(x - x_hat), axis=1))
    reg = 0.5 * jnp.sum(jnp.square(zz))
    g = -jnp.mean(x_hat @ a)
    return (rec, reg, g), {"x_hat": x_hat}

  return params, terms, (x, z, a)


def test_adaptive_weight_equals_eq7_on_a_toy_decoder():
  params, terms, (x, z, a) = _toy()
  w = params["decoder"]["conv_out"]["kernel"]
  s = params["enc"]["s"]
  x_hat = np.asarray(s * z @ w + params["decoder"]["conv_out"]["bias"])
  zz = np.asarray(s * z)
  n = x.shape[0]
  # By hand: d rec / d W = -(1/n) zz^T sign(x - x_hat);  d g / d W = -(1/n) zz^T 1 a^T.
  g_rec = -(zz.T @ np.sign(np.asarray(x) - x_hat)) / n
  g_gan = -(zz.T @ np.ones((n, 1))) @ np.asarray(a)[None] / n
  want = np.linalg.norm(g_rec) / (np.linalg.norm(g_gan) + 1e-4)
  got = float(L.adaptive_weight(jnp.asarray(g_rec), jnp.asarray(g_gan)))
  np.testing.assert_allclose(got, want, rtol=1e-12)
  # Clipped to [0, 1e4] and detached.
  assert float(L.adaptive_weight(jnp.ones(3), jnp.zeros(3))) == 1e4
  gr = jax.grad(lambda v: L.adaptive_weight(v, jnp.ones(3)))(jnp.ones(3))
  np.testing.assert_array_equal(np.asarray(gr), 0.0)

  # first_stage_grads: the same lambda, and the gradient of rec + r reg + d lambda g.
  last = lambda g: g["decoder"]["conv_out"]["kernel"]
  grads, (rec, reg, g), lam, gw, aux = L.first_stage_grads(terms, params, 0.1, 0.5, last)
  np.testing.assert_allclose(float(lam), want, rtol=1e-10)
  np.testing.assert_allclose(float(gw), 0.5 * want, rtol=1e-10)
  total = lambda p: (lambda t: t[0] + 0.1 * t[1] + 0.5 * want * t[2])(terms(p)[0])
  ref = jax.grad(total)(params)
  for got_leaf, want_leaf in zip(jax.tree.leaves(grads), jax.tree.leaves(ref)):
    np.testing.assert_allclose(np.asarray(got_leaf), np.asarray(want_leaf), rtol=1e-10)
  np.testing.assert_allclose(np.asarray(aux["x_hat"]), x_hat, rtol=1e-12)


@pytest.mark.parametrize("seed", [1, 2])
def test_adaptive_weight_balances_the_two_gradients(seed):
  """With lambda from eq. 7, the GAN gradient at the last layer has the norm of the
  reconstruction gradient (up to delta)."""
  params, terms, _ = _toy(seed)
  last = lambda g: g["decoder"]["conv_out"]["kernel"]
  g_rec = last(jax.grad(lambda p: terms(p)[0][0])(params))
  g_gan = last(jax.grad(lambda p: terms(p)[0][2])(params))
  lam = L.adaptive_weight(g_rec, g_gan)
  np.testing.assert_allclose(float(jnp.linalg.norm(lam * g_gan)), float(jnp.linalg.norm(g_rec)),
                             rtol=1e-3)
