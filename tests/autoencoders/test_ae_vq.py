"""VQ-VAE gradients (straight-through, stop-gradients of eq. 12) and the EMA codebook (eq. 13)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import autoencoders as ae
from genjax.autoencoders.prior_method import PriorConfig, first_stage_config_path
from genjax.nets.pixelcnn import GatedPixelCNN


def _setup():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
  w_enc = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)   # encoder: z_e = x W
  codebook = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  target = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  return x, w_enc, codebook, target


def _tree_norm(t):
  return float(sum(jnp.sum(jnp.abs(v)) for v in jax.tree.leaves(t)))


def test_quantize_picks_the_nearest_code():
  x, w, cb, _ = _setup()
  z_e = x @ w
  z_q, codes = ae.quantize(z_e, cb)
  d = np.sum((np.asarray(z_e)[:, None] - np.asarray(cb)[None]) ** 2, -1)
  np.testing.assert_array_equal(codes, d.argmin(-1))
  np.testing.assert_array_equal(z_q, np.asarray(cb)[d.argmin(-1)])


def test_straight_through_gradient_reaches_the_encoder():
  x, w, cb, target = _setup()

  def decoder_loss(params):
    z_e = x @ params["enc"]
    z_q, _ = ae.quantize(z_e, params["cb"])
    return jnp.sum(jnp.square(ae.straight_through(z_e, z_q) - target))

  g = jax.grad(decoder_loss)({"enc": w, "cb": cb})
  z_q, _ = ae.quantize(x @ w, cb)
  # d L / d z_e := d L / d z_q = 2 (z_q - target), then through z_e = x W.
  np.testing.assert_allclose(g["enc"], x.T @ (2.0 * (z_q - target)), rtol=1e-5, atol=1e-5)
  assert _tree_norm(g["enc"]) > 0
  np.testing.assert_array_equal(g["cb"], 0.0)  # nothing reaches the codebook on this path
  # The forward value is the quantized one.
  np.testing.assert_allclose(ae.straight_through(x @ w, z_q), z_q, atol=1e-6)


def test_codebook_loss_moves_only_the_codebook_and_commitment_only_the_encoder():
  x, w, cb, _ = _setup()

  def losses(params):
    z_e = x @ params["enc"]
    z_q, _ = ae.quantize(z_e, params["cb"])
    return ae.vq_losses(z_e, z_q)

  params = {"enc": w, "cb": cb}
  g_codebook = jax.grad(lambda p: losses(p)[0])(params)
  g_commit = jax.grad(lambda p: losses(p)[1])(params)
  np.testing.assert_array_equal(g_codebook["enc"], 0.0)
  assert _tree_norm(g_codebook["cb"]) > 0
  np.testing.assert_array_equal(g_commit["cb"], 0.0)
  assert _tree_norm(g_commit["enc"]) > 0
  # The values are equal (the stop-gradients change only where the gradient goes) ...
  a, b = losses(params)
  np.testing.assert_allclose(a, b, rtol=1e-6)
  # ... and the codebook gradient is the mean-squared-error one: 2 (e_k - z_e) / numel per use.
  z_e = np.asarray(x @ w)
  _, codes = ae.quantize(x @ w, cb)
  expected = np.zeros_like(np.asarray(cb))
  for j, k in enumerate(np.asarray(codes)):
    expected[k] += 2.0 * (np.asarray(cb)[k] - z_e[j]) / z_e.size
  np.testing.assert_allclose(g_codebook["cb"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("epsilon", [0.0, 1e-2])
def test_ema_update_equals_eq13_by_hand(epsilon):
  rng = np.random.default_rng(3)
  k, d, gamma = 5, 3, 0.9
  codebook = rng.normal(size=(k, d)).astype(np.float64)
  ema = ae.ema_codebook(decay=gamma, epsilon=epsilon, init_count=1.0)
  state = ema.init(jnp.asarray(codebook, jnp.float32))
  n_hand, m_hand = np.ones(k), codebook.copy()
  for step in range(3):
    z = rng.normal(size=(20, d))
    codes = rng.integers(0, k - 1, size=20)       # code k-1 is never used
    new_cb, state = ema.update(jnp.asarray(z, jnp.float32), jnp.asarray(codes), state)
    # eq. 13: N_i <- g N_i + (1-g) n_i ; m_i <- g m_i + (1-g) sum_j z_ij ; e_i = m_i / N_i
    n_i = np.array([(codes == i).sum() for i in range(k)])
    sums = np.stack([z[codes == i].sum(0) for i in range(k)])
    n_hand = gamma * n_hand + (1 - gamma) * n_i
    m_hand = gamma * m_hand + (1 - gamma) * sums
    total = n_hand.sum()
    smoothed = (n_hand + epsilon) / (total + k * epsilon) * total  # Laplace; = N when eps = 0
    e_hand = m_hand / smoothed[:, None]
    np.testing.assert_allclose(state.cluster_size, n_hand, rtol=1e-5)
    np.testing.assert_allclose(state.embed_sum, m_hand, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_cb, e_hand, rtol=1e-4, atol=1e-5)
  if epsilon == 0.0:  # an unused code keeps its position (m and N decay together)
    np.testing.assert_allclose(new_cb[k - 1], codebook[k - 1], rtol=1e-5)


def test_dead_codes_are_restarted_on_encoder_outputs():
  z = jax.random.normal(jax.random.key(0), (50, 3))
  cb = jnp.zeros((4, 3))
  state = ae.CodebookEmaState(jnp.array([5.0, 0.01, 3.0, 0.0]), jnp.zeros((4, 3)))
  new_cb, new_state, n = ae.restart_dead_codes(jax.random.key(1), cb, state, z, threshold=0.1)
  assert int(n) == 2
  zs = np.asarray(z)
  for i in (1, 3):
    assert np.any(np.all(np.isclose(zs, np.asarray(new_cb[i])), axis=1))
    assert float(new_state.cluster_size[i]) == pytest.approx(0.1)
  np.testing.assert_array_equal(new_cb[np.array([0, 2])], 0.0)


def test_pixelcnn_is_causal_in_raster_order():
  """Changing the code at position p changes no logits at positions <= p (no blind leak)."""
  net = GatedPixelCNN(num_codes=5, hidden=8, num_layers=3, cond_hidden=4)
  codes = jax.random.randint(jax.random.key(0), (1, 4, 4), 0, 5)
  cond = jax.random.normal(jax.random.key(1), (1, 4, 4, 2))
  params = net.init(jax.random.key(2), codes, cond)["params"]
  base = net.apply({"params": params}, codes, cond)
  for p in range(16):
    r, c = divmod(p, 4)
    changed = codes.at[0, r, c].set((codes[0, r, c] + 1) % 5)
    diff = np.abs(np.asarray(net.apply({"params": params}, changed, cond) - base)).max(-1)[0]
    flat = diff.reshape(-1)
    np.testing.assert_array_equal(flat[:p + 1], 0.0)
    if p < 15:
      assert flat[p + 1] > 0  # the next position does see it (no blind spot)


def test_the_prior_reads_the_first_stage_record_of_its_latest_checkpoints(tmp_path):
  wd = str(tmp_path)
  for name in ("config.json", "config.step4.json"):  # a resume accepted a change at step 4
    (tmp_path / name).write_text("{}")
  assert first_stage_config_path(PriorConfig(vqvae_workdir=wd)) == str(
      tmp_path / "config.step4.json")
  assert first_stage_config_path(PriorConfig(vqvae_workdir=wd, vqvae_config="a.py")) == "a.py"
