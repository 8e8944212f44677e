"""The dVAE's posterior-usage figures (mean posterior entropy, aggregate-posterior perplexity)
against their closed forms, and the shapes dVAE config's KL weight, which holds the codebook
open from the first step (docs/dalle_mae.md, "Codebook collapse")."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from genjax.dalle import gumbel


def test_posterior_usage_of_uniform_and_one_hot_posteriors():
  k = 16
  ent, agg = gumbel.posterior_usage(jnp.zeros((4, 3, 3, k)))
  np.testing.assert_allclose(float(ent), math.log(k), rtol=1e-6)
  np.testing.assert_allclose(float(agg), k, rtol=1e-5)
  # one-hot posteriors over m distinct codes, each code used equally: entropy 0, perplexity m
  m = 4
  codes = jnp.arange(32) % m
  logits = 50.0 * jax.nn.one_hot(codes, k)
  ent, agg = gumbel.posterior_usage(logits)
  assert float(ent) < 1e-6
  np.testing.assert_allclose(float(agg), m, rtol=1e-5)


def test_posterior_usage_against_numpy_float64():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 7, 11)) * 2.0
  q = np.exp(logits - logits.max(-1, keepdims=True))
  q /= q.sum(-1, keepdims=True)
  ent_ref = np.mean(-np.sum(q * np.log(q), -1))
  qb = q.reshape(-1, 11).mean(0)
  agg_ref = np.exp(-np.sum(qb * np.log(qb)))
  ent, agg = gumbel.posterior_usage(jnp.asarray(logits, jnp.float32))
  np.testing.assert_allclose(float(ent), ent_ref, rtol=1e-5)
  np.testing.assert_allclose(float(agg), agg_ref, rtol=1e-5)
  # KL to the uniform prior is log K minus the entropy, position by position
  kl = np.mean(np.asarray(gumbel.kl_to_uniform(jnp.asarray(logits, jnp.float32))))
  np.testing.assert_allclose(kl, math.log(11) - ent_ref, rtol=1e-4)


def test_shapes_config_weights_the_kl_from_the_first_step():
  from configs import dvae_shapes
  from genjax.dalle.dvae import DVAEConfig
  from genjax.typed_config import from_section
  cfg = from_section(DVAEConfig, dvae_shapes.get_config().dvae, where="dvae")
  beta0 = float(gumbel.cosine_anneal(0, cfg.kl_weight_start, cfg.kl_weight_end,
                                     cfg.kl_anneal_steps))
  assert beta0 > 0.0 and beta0 == cfg.kl_weight_end
