"""Sparse and contractive AE penalties: the k-sparse mask and its gradient, the KL sparsity
penalty, and the contractive penalty against a finite-difference Jacobian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import autoencoders as ae


@pytest.mark.parametrize("k", [1, 3, 7])
def test_k_sparse_keeps_exactly_k_units_and_passes_gradient_through_them_only(k):
  h = jax.random.normal(jax.random.key(0), (9, 7))
  h = h.at[0].set(jnp.full(7, 0.5))  # ties: still exactly k
  mask = np.asarray(ae.topk_mask(h, k))
  assert set(np.unique(mask)) <= {0.0, 1.0}
  np.testing.assert_array_equal(mask.sum(-1), k)
  hn = np.asarray(h)
  for i in range(1, 9):  # the kept units are the k largest
    kept = np.sort(hn[i][mask[i] == 1])
    dropped = hn[i][mask[i] == 0]
    assert dropped.size == 0 or kept.min() >= dropped.max()
  np.testing.assert_array_equal(ae.k_sparse(h, k), h * mask)
  w = jax.random.normal(jax.random.key(1), h.shape)
  g = jax.grad(lambda v: jnp.sum(w * ae.k_sparse(v, k)))(h)
  np.testing.assert_allclose(g, w * mask)  # zero off the top k
  np.testing.assert_array_equal(np.asarray(g)[mask == 0], 0.0)


def test_kl_sparsity_penalty_matches_eq3():
  h = jax.nn.sigmoid(jax.random.normal(jax.random.key(0), (32, 6)))
  rho = 0.05
  rho_hat = np.asarray(h).mean(0)
  expected = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
  np.testing.assert_allclose(ae.kl_sparsity_penalty(h, rho), expected, rtol=1e-5)
  assert float(ae.kl_sparsity_penalty(jnp.full((4, 3), rho), rho)) == pytest.approx(0.0, abs=1e-6)


def _encoder(params, x):
  """A two-layer encoder of [B, 2, 3, 1] images -> [B, 4] codes."""
  h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
  return jax.nn.sigmoid(h @ params["w2"])


def test_contractive_penalty_equals_finite_difference_jacobian_and_estimator():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    params = {"w1": jnp.asarray(rng.normal(size=(6, 5))), "b1": jnp.asarray(rng.normal(size=5)),
              "w2": jnp.asarray(rng.normal(size=(5, 4)))}
    x = jnp.asarray(rng.normal(size=(3, 2, 3, 1)))
    enc = jax.jit(lambda v: _encoder(params, v))
    exact = np.asarray(ae.contractive_penalty(enc, x))
    # Central finite differences, one input dimension at a time.
    eps = 1e-6
    fd = np.zeros(3)
    flat = np.asarray(x).reshape(3, -1)
    for i in range(flat.shape[1]):
      dx = np.zeros_like(flat)
      dx[:, i] = eps
      up = np.asarray(enc(jnp.asarray((flat + dx).reshape(x.shape))))
      down = np.asarray(enc(jnp.asarray((flat - dx).reshape(x.shape))))
      fd += np.sum(((up - down) / (2 * eps)) ** 2, axis=-1)
    np.testing.assert_allclose(exact, fd, rtol=1e-7)
    # The Hutchinson estimator is unbiased: its mean over many projections converges.
    for dist in ("rademacher", "gaussian"):
      est = jax.jit(lambda k: ae.contractive_penalty_hutchinson(k, enc, x, 4_000, dist))
      np.testing.assert_allclose(est(jax.random.key(1)), exact, rtol=0.08)


def test_contractive_penalty_has_rifais_closed_form_for_a_sigmoid_layer():
  """Rifai et al. 2011, eq. 5: ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2."""
  w = jax.random.normal(jax.random.key(0), (6, 4))
  b = jax.random.normal(jax.random.key(1), (4,))
  x = jax.random.normal(jax.random.key(2), (5, 6))
  enc = lambda v: jax.nn.sigmoid(v @ w + b)
  h = enc(x)
  closed = jnp.sum((h * (1 - h)) ** 2 * jnp.sum(w ** 2, axis=0), axis=-1)
  np.testing.assert_allclose(ae.contractive_penalty(enc, x, event_ndim=1), closed, rtol=1e-5)
