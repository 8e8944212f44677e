"""DALL-E's transformer: masks, causality, the key-value cache against recomputation, the
top-k / top-p filters against transformers' warpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.dalle import sampling
from genjax.nets.dalle_transformer import DalleTransformer, attention_mask

L, GRID, TV, K = 5, (3, 4), 11, 13


def _net(attention=("dense",), last=None):
  net = DalleTransformer(text_vocab=TV, image_vocab=K, text_len=L, grid=GRID, dim=32, depth=3,
                         num_heads=4, attention=attention, last_attention=last, conv_kernel=3)
  tokens = _tokens(jax.random.key(0), 2)
  params = net.init(jax.random.key(1), tokens[:, :-1])["params"]
  return net, params, tokens


def _tokens(key, b):
  k1, k2 = jax.random.split(key)
  text = jax.random.randint(k1, (b, L), 0, TV)
  img = jax.random.randint(k2, (b, GRID[0] * GRID[1]), 0, K)
  return jnp.concatenate([text, img], 1)


def test_masks_follow_the_paper():
  h, w = GRID
  n = h * w
  for kind in ("dense", "row", "column", "conv"):
    m = attention_mask(kind, L, GRID)
    assert m.shape == (L + n, L + n)
    assert not np.triu(m, 1).any()                          # causal
    assert m[L:, :L].all()                                  # image attends to all text
    np.testing.assert_array_equal(m[:L, :L], np.tril(np.ones((L, L), bool)))
    assert np.diag(m).all()
  row = attention_mask("row", L, GRID)[L:, L:]
  # the previous w tokens and itself: the farthest is the same column of the previous row
  a = 2 * w + 1
  assert row[a, a - w] and not row[a, a - w - 1]
  col = attention_mask("column", L, GRID)[L:, L:]
  assert col[a].nonzero()[0].tolist() == [1, w + 1, 2 * w + 1]
  conv = attention_mask("conv", L, GRID)[L:, L:]
  # (row 2, col 1): its 3x3 causal neighbourhood
  want = sorted([1 * w + 0, 1 * w + 1, 1 * w + 2, 2 * w + 0, 2 * w + 1])
  assert conv[a].nonzero()[0].tolist() == want


@pytest.mark.parametrize("attention,last", [(("dense",), None), (("row", "column"), "conv")])
def test_a_change_at_position_i_changes_no_logits_before_i(attention, last):
  net, params, tokens = _net(attention, last)
  f = jax.jit(lambda t: jnp.concatenate(net.apply({"params": params}, t), -1))
  base = np.asarray(f(tokens))
  for i in (0, 2, L - 1, L, L + 5, tokens.shape[1] - 1):
    changed = tokens.at[:, i].set((tokens[:, i] + 1) % min(TV, K))
    out = np.asarray(f(changed))
    np.testing.assert_array_equal(out[:, :i], base[:, :i])
    assert np.abs(out[:, i] - base[:, i]).max() > 1e-6         # position i itself does change


def test_sparse_masks_block_what_they_exclude():
  net, params, tokens = _net(("column",), None)   # every layer: column attention
  f = jax.jit(lambda t: net.apply({"params": params}, t)[1])
  h, w = GRID
  q = L + 2 * w + 1                # query: image row 2, column 1
  base = np.asarray(f(tokens))[:, q]
  other_col = L + 1 * w + 2        # row 1, column 2: not in column 1
  same_col = L + 1 * w + 1
  np.testing.assert_allclose(np.asarray(f(tokens.at[:, other_col].add(1) % K))[:, q], base,
                             atol=1e-6)
  assert np.abs(np.asarray(f(tokens.at[:, same_col].add(1) % K))[:, q] - base).max() > 1e-6


@pytest.mark.parametrize("attention,last", [(("dense",), None), (("row", "column"), "conv")])
def test_cached_step_matches_full_forward(attention, last):
  net, params, tokens = _net(attention, last)
  full_t, full_i = net.apply({"params": params}, tokens)
  cache = net.init_cache(tokens.shape[0])
  step = jax.jit(lambda tok, p, c: net.apply({"params": params}, tok, p, c,
                                             method=DalleTransformer.step))
  for p in range(tokens.shape[1]):
    (lt, li), cache = step(tokens[:, p], jnp.int32(p), cache)
    np.testing.assert_allclose(np.asarray(lt), np.asarray(full_t[:, p]), atol=2e-5)
    np.testing.assert_allclose(np.asarray(li), np.asarray(full_i[:, p]), atol=2e-5)


@pytest.mark.parametrize("top_k,top_p,temp", [(0, 1.0, 1.0), (4, 0.9, 0.7)])
def test_cached_sampler_gives_the_same_tokens_as_recomputing(top_k, top_p, temp):
  net, params, tokens = _net(("row", "column"), "conv")
  text = tokens[:, :L]
  n = GRID[0] * GRID[1]
  step = lambda tok, p, c: net.apply({"params": params}, tok, p, c, method=DalleTransformer.step)
  key = jax.random.key(7)
  cached = jax.jit(lambda k: sampling.sample_tokens(step, net.init_cache(2), k, text, n, temp,
                                                    top_k, top_p))(key)
  full = jax.jit(lambda k: sampling.sample_tokens_uncached(
      lambda s: net.apply({"params": params}, s)[1], k, text, n, temp, top_k, top_p))(key)
  np.testing.assert_array_equal(np.asarray(cached), np.asarray(full))
  assert cached.shape == (2, n) and len(np.unique(np.asarray(cached))) > 1


def test_sampler_is_one_scan():
  net, params, tokens = _net()
  step = lambda tok, p, c: net.apply({"params": params}, tok, p, c, method=DalleTransformer.step)
  jaxpr = jax.make_jaxpr(lambda k: sampling.sample_tokens(step, net.init_cache(2), k,
                                                          tokens[:, :L], 12))(jax.random.key(0))
  scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
  assert len(scans) == 1 and scans[0].params["length"] == L + 12 - 1


def test_top_k_top_p_match_transformers_warpers():
  torch = pytest.importorskip("torch")
  tr = pytest.importorskip("transformers")
  logits = np.random.default_rng(0).normal(size=(6, 50)).astype(np.float32) * 2
  for k in (1, 5, 20):
    ref = tr.TopKLogitsWarper(top_k=k)(None, torch.tensor(logits)).numpy()
    got = np.asarray(sampling.top_k_filter(jnp.asarray(logits), k))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    np.testing.assert_allclose(got[~np.isinf(got)], ref[~np.isinf(ref)])
  for p in (0.1, 0.5, 0.9, 0.99):
    ref = tr.TopPLogitsWarper(top_p=p)(None, torch.tensor(logits)).numpy()
    got = np.asarray(sampling.top_p_filter(jnp.asarray(logits), p))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
  # nucleus closed form: the kept set is the smallest prefix with mass >= p
  probs = np.asarray(jax.nn.softmax(jnp.asarray(logits[0])))
  order = np.argsort(-probs)
  cum = np.cumsum(probs[order])
  m = int(np.searchsorted(cum, 0.5) + 1)
  kept = ~np.isinf(np.asarray(sampling.top_p_filter(jnp.asarray(logits[0]), 0.5)))
  assert set(np.nonzero(kept)[0]) == set(order[:m])


def test_top_k_samples_only_from_the_top_k():
  logits = jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1]))
  draws = jax.random.categorical(jax.random.key(0), sampling.filter_logits(logits, 1.0, 2),
                                 shape=(5000,))
  counts = np.bincount(np.asarray(draws), minlength=4) / 5000
  np.testing.assert_allclose(counts, [0.4 / 0.7, 0.3 / 0.7, 0, 0], atol=0.03)
