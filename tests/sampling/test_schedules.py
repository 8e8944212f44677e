"""Schedules against their formulas (Ho et al. 2020; Nichol & Dhariwal 2021 eq. 17 / seed eq. 34)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.diffusion import (
    SCHEDULE_NAMES,
    DiffusionSchedule,
    extract,
    get_beta_schedule,
    get_schedule,
    make_schedule,
)


def test_linear_matches_ho_and_improved_diffusion_scaling():
  np.testing.assert_allclose(get_beta_schedule("linear", 1000), np.linspace(1e-4, 0.02, 1000),
                             rtol=0, atol=1e-15)
  # improved-diffusion: scale = 1000 / T on both ends.
  b = get_beta_schedule("linear", 250)
  assert b.dtype == np.float64 and b.shape == (250,)
  np.testing.assert_allclose(b[[0, -1]], [4e-4, 0.08], rtol=1e-12)
  assert np.allclose(np.diff(b), np.diff(b)[0])
  b = get_beta_schedule("linear", 250, rescale=False, beta_start=1e-3, beta_end=0.05)
  np.testing.assert_allclose(b[[0, -1]], [1e-3, 0.05], rtol=1e-12)


def test_quadratic_and_sigmoid_match_references_at_t1000():
  q = get_beta_schedule("quadratic", 1000)
  np.testing.assert_allclose(np.sqrt(q), np.linspace(1e-2, math.sqrt(0.02), 1000), rtol=1e-12)
  s = get_beta_schedule("sigmoid", 1000)
  u = np.linspace(-6, 6, 1000)
  np.testing.assert_allclose(s, (0.02 - 1e-4) / (1 + np.exp(-u)) + 1e-4, rtol=1e-12)
  assert np.all(np.diff(s) > 0) and np.all(np.diff(q) > 0)


def test_cosine_matches_eq34_computed_independently():
  T, s = 1000, 0.008
  f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
  abar = f(np.arange(T + 1) / T) / f(0.0)  # abar[k] = paper's abar_k, k = 0..T
  expected = np.minimum(1 - abar[1:] / abar[:-1], 0.999)
  betas = get_beta_schedule("cosine", T)
  np.testing.assert_allclose(betas, expected, rtol=1e-10, atol=1e-14)
  assert betas.max() == pytest.approx(0.999) and betas.min() > 0
  # Where no clipping happened, alphas_cumprod[t] is abar_{t+1} of eq. 34.
  with jax.enable_x64(True):
    sched = make_schedule(betas, dtype=jnp.float64)
    unclipped = expected < 0.999
    first_clip = np.argmin(unclipped)
    np.testing.assert_allclose(np.asarray(sched.alphas_cumprod)[:first_clip],
                               abar[1:first_clip + 1], rtol=1e-10)


def test_unknown_name_and_keyword_raise():
  with pytest.raises(ValueError, match="linear, cosine, quadratic, sigmoid"):
    get_beta_schedule("exponential", 10)
  with pytest.raises(ValueError, match="beta_start"):
    get_beta_schedule("cosine", 10, beta_start=0.1)
  with pytest.raises(ValueError, match="positive integer"):
    get_beta_schedule("linear", 0)
  with pytest.raises(ValueError, match=r"\(0, 1\]"):
    make_schedule(np.array([0.1, 1.5]))
  with pytest.raises(ValueError, match="1-D"):
    make_schedule(np.ones((2, 2)) * 0.1)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_derived_arrays_against_formulas(name):
  T = 64
  betas = get_beta_schedule(name, T)
  with jax.enable_x64(True):
    sc = make_schedule(betas, dtype=jnp.float64)
    g = {k: np.asarray(getattr(sc, k)) for k in sc.__dataclass_fields__}
  assert sc.num_timesteps == T
  # Direct loops, written from the papers' definitions (paper step k = t + 1).
  abar, a = [], 1.0
  for b in betas:
    a *= 1 - b
    abar.append(a)
  abar = np.array(abar)
  prev = np.r_[1.0, abar[:-1]]
  np.testing.assert_allclose(g["alphas"], 1 - betas, rtol=1e-14)
  np.testing.assert_allclose(g["alphas_cumprod"], abar, rtol=1e-12)
  np.testing.assert_allclose(g["alphas_cumprod_prev"], prev, rtol=1e-12)
  np.testing.assert_allclose(g["alphas_cumprod_next"], np.r_[abar[1:], 0.0], rtol=1e-12)
  np.testing.assert_allclose(g["sqrt_alphas_cumprod"] ** 2, abar, rtol=1e-12)
  np.testing.assert_allclose(g["sqrt_one_minus_alphas_cumprod"] ** 2, 1 - abar, rtol=1e-12)
  np.testing.assert_allclose(np.exp(g["log_one_minus_alphas_cumprod"]), 1 - abar, rtol=1e-12)
  np.testing.assert_allclose(g["sqrt_recip_alphas_cumprod"] ** 2 * abar, 1.0, rtol=1e-12)
  np.testing.assert_allclose(g["sqrt_recipm1_alphas_cumprod"] ** 2, (1 - abar) / abar,
                             rtol=1e-10)
  # Seed eq. 21, first form: beta~ = 1 / (alpha/beta + 1/(1 - abar_prev)) for t >= 1.
  tilde = 1.0 / ((1 - betas[1:]) / betas[1:] + 1.0 / (1 - prev[1:]))
  np.testing.assert_allclose(g["posterior_variance"][1:], tilde, rtol=1e-10)
  assert g["posterior_variance"][0] == 0.0
  np.testing.assert_allclose(g["posterior_log_variance_clipped"],
                             np.log(np.r_[tilde[0], tilde]), rtol=1e-10)
  # Seed eq. 22, last line.
  np.testing.assert_allclose(g["posterior_mean_coef1"], np.sqrt(prev) * betas / (1 - abar),
                             rtol=1e-10)
  np.testing.assert_allclose(g["posterior_mean_coef2"],
                             np.sqrt(1 - betas) * (1 - prev) / (1 - abar), rtol=1e-10)


def test_schedule_is_a_pytree_dtype_and_extract():
  sched = get_schedule("linear", 100)
  assert isinstance(sched, DiffusionSchedule)
  assert sched.betas.dtype == jnp.float32
  leaves = jax.tree_util.tree_leaves(sched)
  assert len(leaves) == 14 and all(l.shape == (100,) for l in leaves)

  @jax.jit
  def f(s, t):
    return extract(s.alphas_cumprod, t, (3, 4, 5, 1)) * s.num_timesteps

  out = f(sched, jnp.array([0, 50, 99]))
  assert out.shape == (3, 1, 1, 1)
  np.testing.assert_allclose(out[:, 0, 0, 0], np.asarray(sched.alphas_cumprod)[[0, 50, 99]] * 100,
                             rtol=1e-6)
  with pytest.raises(Exception):
    sched.betas = None  # frozen
  with jax.enable_x64(True):
    assert get_schedule("cosine", 10, dtype=jnp.float64).betas.dtype == jnp.float64
