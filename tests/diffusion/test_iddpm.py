"""Improved DDPM (Nichol & Dhariwal 2021): learned variance, L_hybrid, importance sampling, NLL.

Closed forms in float64: the learned-range variance against eq. 15 (seed eq. 35), the L_vlb
terms against directly computed Gaussian KLs, the stop-gradient of the hybrid loss, and the
importance sampler against a transcription of improved-diffusion's LossSecondMomentResampler.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from genjax import diffusion as d
from genjax import sampling as gs
from genjax.diffusion import nll as nll_lib

T = 50


@pytest.fixture(scope="module")
def sched64():
  with jax.enable_x64(True):
    return d.get_schedule("cosine", T, dtype=jnp.float64)


def _np_sched(num=T):
  betas = d.get_beta_schedule("cosine", num)
  abar = np.cumprod(1 - betas)
  abar_prev = np.r_[1.0, abar[:-1]]
  tilde = betas * (1 - abar_prev) / (1 - abar)
  log_tilde_clipped = np.log(np.r_[tilde[1], tilde[1:]])
  return betas, abar, abar_prev, tilde, log_tilde_clipped


def test_learned_range_variance_is_eq35(sched64):
  """Sigma = exp(v log beta_t + (1 - v) log beta~_t) with v = (out + 1)/2 (eq. 15)."""
  betas, _, _, _, log_tilde = _np_sched()
  rng = np.random.default_rng(0)
  t = np.array([0, 1, 7, 30, T - 1])
  out = rng.uniform(-1.2, 1.2, size=(5, 3, 2))  # the range is not clipped (improved-diffusion)
  with jax.enable_x64(True):
    var, log_var = d.model_variance(sched64, jnp.asarray(t), out.shape, "learned_range",
                                    jnp.asarray(out))
    frac = (out + 1) / 2
    r = lambda a: a[:, None, None]
    expected = frac * r(np.log(betas[t])) + (1 - frac) * r(log_tilde[t])
    np.testing.assert_allclose(log_var, expected, rtol=1e-12)
    np.testing.assert_allclose(var, np.exp(expected), rtol=1e-12)
    # The ends: v = 1 -> beta_t, v = -1 -> beta~_t (its clipped log at t = 0).
    ones = jnp.ones(out.shape, jnp.float64)
    _, lv_hi = d.model_variance(sched64, jnp.asarray(t), out.shape, "learned_range", ones)
    _, lv_lo = d.model_variance(sched64, jnp.asarray(t), out.shape, "learned_range", -ones)
    _, lv_small = d.model_variance(sched64, jnp.asarray(t), out.shape, "fixed_small")
    np.testing.assert_allclose(lv_hi[:, 0, 0], np.log(betas[t]), rtol=1e-12)
    np.testing.assert_allclose(lv_lo, np.broadcast_to(lv_small, out.shape), rtol=1e-12)
    # p_mean_variance: the mean does not depend on the variance; the variance is eq. 15.
    xt, eps = rng.normal(size=out.shape), rng.normal(size=out.shape)
    learned = d.p_mean_variance(sched64, jnp.asarray(eps), jnp.asarray(xt), jnp.asarray(t),
                                "learned_range", var_values=jnp.asarray(out))
    fixed = d.p_mean_variance(sched64, jnp.asarray(eps), jnp.asarray(xt), jnp.asarray(t),
                              "fixed_small")
    np.testing.assert_allclose(learned["mean"], fixed["mean"], rtol=1e-12)
    np.testing.assert_allclose(learned["log_var"], expected, rtol=1e-12)
    with pytest.raises(ValueError, match="var_values"):
      d.model_variance(sched64, jnp.asarray(t), out.shape, "learned_range")
    with pytest.raises(ValueError, match="fixed"):
      d.model_variance(sched64, jnp.asarray(t), out.shape, "fixed_large", jnp.asarray(out))
    with pytest.raises(ValueError, match="Prediction"):
      gs.as_prediction((eps, out, eps))
    with pytest.raises(ValueError, match="2C"):
      gs.split_learned_output(jnp.zeros((2, 8, 8, 3)))


def _kl(m1, v1, m2, v2):
  return 0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


def test_vlb_terms_with_learned_variance_are_direct_kls(sched64):
  """L_t (t > 0) = KL(q(x_{t-1}|x_t,x_0) || N(mu, Sigma_learned)) in bits/dim; L_0 the decoder."""
  betas, abar, abar_prev, tilde, log_tilde = _np_sched()
  rng = np.random.default_rng(1)
  t = np.array([1, 2, 10, 25, T - 1])
  x0 = rng.uniform(-1, 1, size=(5, 4, 3))
  xt = rng.normal(size=x0.shape)
  mean = rng.normal(size=x0.shape)
  v = rng.uniform(-1, 1, size=x0.shape)
  with jax.enable_x64(True):
    _, log_var = d.model_variance(sched64, jnp.asarray(t), x0.shape, "learned_range",
                                  jnp.asarray(v))
    got = d.vlb_terms_bpd(sched64, jnp.asarray(mean), log_var, jnp.asarray(x0),
                          jnp.asarray(xt), jnp.asarray(t))
  r = lambda a: a[:, None, None]
  q_mean = (r(betas[t] * np.sqrt(abar_prev[t]) / (1 - abar[t])) * x0
            + r((1 - abar_prev[t]) * np.sqrt(1 - betas[t]) / (1 - abar[t])) * xt)
  frac = (v + 1) / 2
  p_var = np.exp(frac * r(np.log(betas[t])) + (1 - frac) * r(log_tilde[t]))
  expected = _kl(q_mean, r(tilde[t]), mean, p_var).mean(axis=(1, 2)) / math.log(2)
  np.testing.assert_allclose(got, expected, rtol=1e-10)

  # t = 0: the decoder on 256 bins, against the exact normal CDF (the code uses the tanh
  # approximation of improved-diffusion, good to ~1e-3 in probability).
  x0_grid = np.round((x0 + 1) * 127.5) / 127.5 - 1
  t0 = np.zeros(5, int)
  with jax.enable_x64(True):
    _, log_var0 = d.model_variance(sched64, jnp.asarray(t0), x0.shape, "learned_range",
                                   jnp.asarray(v))
    got0 = d.vlb_terms_bpd(sched64, jnp.asarray(x0_grid), log_var0, jnp.asarray(x0_grid),
                           jnp.asarray(xt), jnp.asarray(t0))
  sd = np.exp(0.5 * np.asarray(log_var0))
  hi = np.where(x0_grid > 1 - 1 / 255, np.inf, x0_grid + 1 / 255)
  lo = np.where(x0_grid < -1 + 1 / 255, -np.inf, x0_grid - 1 / 255)
  p = norm.cdf(hi, x0_grid, sd) - norm.cdf(lo, x0_grid, sd)
  np.testing.assert_allclose(got0, (-np.log(p)).mean(axis=(1, 2)) / math.log(2), rtol=2e-3)


def test_full_vlb_with_learned_variance_reduces_to_fixed_small(sched64):
  """eps_fn -> (eps, -1) is beta~_t everywhere: the same bound as fixed_small, term by term."""
  rng = np.random.default_rng(2)
  x0 = jnp.asarray(rng.integers(0, 17, size=(3, 4, 4, 1)) / 8.0 - 1.0)
  key = jax.random.key(3)
  with jax.enable_x64(True):
    x0 = x0.astype(jnp.float64)
    eps_fn = lambda x, t, c=None: 0.3 * x
    fixed = d.full_vlb_bpd(eps_fn, sched64, x0, key, "fixed_small")
    learned = d.full_vlb_bpd(lambda x, t, c: gs.Prediction(eps_fn(x, t), -jnp.ones_like(x)),
                             sched64, x0, key, "learned_range")
    np.testing.assert_allclose(learned["terms_bpd"], fixed["terms_bpd"], rtol=1e-10)
    np.testing.assert_allclose(learned["total_bpd"],
                               learned["terms_bpd"].sum(1) + learned["prior_bpd"], rtol=1e-12)
    # The decoder outputs re-create L_0; on 17 bins it is the digits' own grid.
    l0 = d.decoder_nll_bpd(x0, learned["decoder_mean"], learned["decoder_log_var"])
    np.testing.assert_allclose(l0, learned["terms_bpd"][:, 0], rtol=1e-10)
    with pytest.raises(ValueError, match="var_values"):
      d.full_vlb_bpd(eps_fn, sched64, x0, key, "learned_range")


def test_decoder_bins_on_the_digits_grid_sum_to_one():
  """17 bins: p(x_0 = k/8 - 1 | x_1) over k = 0..16 is a distribution; 256 bins is not on it."""
  levels = jnp.arange(17) / 8.0 - 1.0
  for mean, sd in [(0.1, 0.05), (-0.9, 0.3), (0.97, 0.01)]:
    lp17 = d.discretized_gaussian_log_likelihood(levels, mean, jnp.log(sd), num_bins=17)
    lp256 = d.discretized_gaussian_log_likelihood(levels, mean, jnp.log(sd), num_bins=256)
    np.testing.assert_allclose(float(jnp.exp(lp17).sum()), 1.0, atol=2e-3)
    assert float(jnp.exp(lp256).sum()) < 1.0
    assert np.all(np.asarray(lp17) >= np.asarray(lp256) - 1e-6)


def test_hybrid_loss_stop_gradient():
  """L_hybrid = L_simple + lambda T L_t: the L_vlb term has no gradient through the mean."""
  sched = d.get_schedule("cosine", 40)
  x = jax.random.uniform(jax.random.key(0), (16, 4, 4, 1), minval=-1, maxval=1)
  batch = {"x": x}
  key = jax.random.key(1)

  def model_fn(p, xt, t, y, k):  # mean part a * x_t, variance part b (constant)
    return jnp.concatenate([p["a"] * xt, jnp.full_like(xt, p["b"])], axis=-1)

  params = {"a": jnp.float32(0.7), "b": jnp.float32(0.2)}
  hybrid = d.make_ddpm_loss(model_fn, sched, loss_type="hybrid", var_type="learned_range")
  simple = d.make_ddpm_loss(lambda p, xt, t, y, k: p["a"] * xt, sched)
  g_h, m_h = jax.grad(hybrid, has_aux=True)(params, batch, key)
  g_s, m_s = jax.grad(simple, has_aux=True)(params, batch, key)
  # The mean's gradient comes from L_simple only (same t and noise: same key).
  np.testing.assert_allclose(g_h["a"], g_s["a"], rtol=1e-5)
  np.testing.assert_allclose(m_h["mse"], m_s["loss"], rtol=1e-6)
  np.testing.assert_allclose(m_h["loss"], m_h["mse"] + 0.001 * 40 * m_h["vb"], rtol=1e-6)
  assert abs(float(g_h["b"])) > 0

  # The vb term alone: zero gradient w.r.t. the mean part, nonzero without the stop-gradient.
  t = jnp.arange(16, dtype=jnp.int32) % 40
  xt = d.q_sample(sched, x, t, jax.random.normal(key, x.shape))
  v = jnp.full_like(x, 0.3)

  def vb(out, stop):
    return jnp.mean(d.vb_term_bpd(sched, out, v, x, xt, t, stop_grad_mean=stop))

  out = 0.5 * xt
  assert float(jnp.abs(jax.grad(vb)(out, True)).max()) == 0.0
  assert float(jnp.abs(jax.grad(vb)(out, False)).max()) > 0.0
  # "vlb" trains through the mean: T * L_t.
  vlb = d.make_ddpm_loss(model_fn, sched, loss_type="vlb", var_type="learned_range")
  g_v, m_v = jax.grad(vlb, has_aux=True)(params, batch, key)
  np.testing.assert_allclose(m_v["loss"], 40 * m_v["vb"], rtol=1e-6)
  assert abs(float(g_v["a"])) > 0
  with pytest.raises(ValueError, match="hybrid"):
    d.make_ddpm_loss(model_fn, sched, loss_type="simple", var_type="learned_range")
  one_channel = d.make_ddpm_loss(lambda p, xt, t, y, k: xt, sched, loss_type="hybrid",
                                 var_type="learned_range")
  with pytest.raises(ValueError, match="out_channels=2"):
    one_channel(params, batch, key)


class _Resampler:
  """improved-diffusion's LossSecondMomentResampler (resample.py), transcribed to numpy."""

  def __init__(self, num_t, history=10, uniform_prob=0.001):
    self.h, self.u = history, uniform_prob
    self.hist = np.zeros([num_t, history])
    self.counts = np.zeros([num_t], int)

  def weights(self):
    if not (self.counts == self.h).all():
      return np.ones(len(self.counts)) / len(self.counts)
    w = np.sqrt(np.mean(self.hist**2, axis=-1))
    w /= w.sum()
    return w * (1 - self.u) + self.u / len(w)

  def update(self, ts, losses):
    for t, loss in zip(ts, losses):
      if self.counts[t] == self.h:
        self.hist[t, :-1] = self.hist[t, 1:]
        self.hist[t, -1] = loss
      else:
        self.hist[t, self.counts[t]] = loss
        self.counts[t] += 1


def test_importance_sampler_matches_reference():
  num_t, h = 6, 3
  ref = _Resampler(num_t, h)
  hist = d.init_loss_history(num_t, h)
  update = jax.jit(d.update_loss_history)
  rng = np.random.default_rng(0)
  np.testing.assert_allclose(d.loss_second_moment_probs(hist), np.full(num_t, 1 / num_t))
  for _ in range(12):  # repeated t within a batch, and histories that overflow
    ts = rng.integers(0, num_t, size=5)
    losses = rng.uniform(0.1, 3.0, size=5) * (1 + np.arange(num_t)[ts])
    ref.update(ts, losses)
    hist = update(hist, jnp.asarray(ts, jnp.int32), jnp.asarray(losses, jnp.float32))
    np.testing.assert_allclose(hist["loss_history"], ref.hist, rtol=1e-6)
    np.testing.assert_array_equal(hist["loss_counts"], ref.counts)
    np.testing.assert_allclose(d.loss_second_moment_probs(hist), ref.weights(), rtol=1e-5)
  p = np.asarray(d.loss_second_moment_probs(hist))
  assert (ref.counts == h).all() and np.ptp(p) > 0.05  # warmed up, far from uniform

  # Weights 1/(T p_t): E_p[w_t f_t] = mean_t f_t (unbiased), and draws follow p.
  n = 200_000
  t, w = jax.jit(d.sample_timesteps, static_argnums=2)(jax.random.key(0), jnp.asarray(p), n)
  t, w = np.asarray(t), np.asarray(w)
  np.testing.assert_allclose(w, 1 / (num_t * p[t]), rtol=1e-6)
  f = rng.normal(size=num_t)
  np.testing.assert_allclose(np.sum(p * (1 / (num_t * p)) * f), f.mean(), rtol=1e-6)
  freq = np.bincount(t, minlength=num_t) / n
  assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))
  np.testing.assert_allclose(np.mean(w * f[t]), f.mean(), atol=5 * np.std(w * f[t]) / np.sqrt(n))


def test_ddpm_sample_with_learned_variance_uses_it():
  """Ancestral sampling with v = -1 (beta~) equals fixed_small for the same key; v = +1 differs."""
  sched = d.get_schedule("cosine", 30)
  eps_fn = lambda x, t, c=None: 0.1 * x
  key = jax.random.key(0)
  a = gs.ddpm_sample(eps_fn, sched, key, (4, 3), var_type="fixed_small")
  b = gs.ddpm_sample(lambda x, t, c: gs.Prediction(eps_fn(x, t), -jnp.ones_like(x)), sched, key,
                     (4, 3), var_type="learned_range")
  c = gs.ddpm_sample(lambda x, t, c: gs.Prediction(eps_fn(x, t), jnp.ones_like(x)), sched, key,
                     (4, 3), var_type="learned_range")
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(a - c).max()) > 1e-3
  # DDIM ignores the variance part.
  np.testing.assert_allclose(
      gs.ddim_sample(eps_fn, sched, key, (4, 3), num_steps=5),
      gs.ddim_sample(lambda x, t, c: gs.Prediction(eps_fn(x, t), jnp.ones_like(x)), sched, key,
                     (4, 3), num_steps=5), rtol=1e-6)


def test_nll_bpd_batches_and_extra_bins():
  """nll_bpd pads the last batch and reports bpd_<k>bins = bpd - L_0(256) + L_0(k)."""
  sched = d.get_schedule("cosine", 8)
  x = np.asarray(np.random.default_rng(0).integers(0, 17, size=(5, 4, 4, 1)) / 8.0 - 1.0,
                 np.float32)
  eps_fn_of = lambda p: (lambda xt, t, y: gs.Prediction(p * xt, jnp.zeros_like(xt)))
  fn = nll_lib.make_nll_fn(eps_fn_of, sched, var_type="learned_range", clip_x0=(-1.0, 1.0),
                           extra_bins=(17,))
  key = jax.random.key(0)
  res = nll_lib.nll_bpd(fn, jnp.float32(0.1), x, None, key, batch_size=2, progress=False)
  assert res["num_examples"] == 5
  per = [jax.tree.map(np.asarray, fn(jnp.float32(0.1), jnp.asarray(x[i:i + 2]), None,
                                     jax.random.fold_in(key, i // 2))) for i in (0, 2, 4)]
  bpd = np.concatenate([p["bpd"] for p in per])[:5]
  np.testing.assert_allclose(res["bpd"], bpd.mean(), rtol=1e-5)
  b17 = np.concatenate([p["bpd_17bins"] for p in per])[:5]
  np.testing.assert_allclose(res["bpd_17bins"], b17.mean(), rtol=1e-5)
  assert res["bpd_17bins"] < res["bpd"]  # coarser bins hold more mass
  np.testing.assert_allclose(res["bpd"], res["prior_bpd"] + res["kl_bpd"] + res["decoder_bpd"],
                             rtol=1e-5)


@pytest.mark.parametrize("parameterization", ["eps", "v"])
def test_method_samplers_with_learned_variance(parameterization):
  """build_ddpm with a learned variance: 2D outputs, and every sampler runs (DPM-Solver calls
  the network at fractional steps and converts v with the continuous alpha_t, sigma_t)."""
  import ml_collections
  from configs import iddpm_2d
  from genjax.diffusion.method import build_ddpm
  from genjax.types import DataSpec

  config = iddpm_2d.get_config()
  config.model.hidden = 16
  config.diffusion.num_timesteps = 10
  config.diffusion.parameterization = parameterization
  method = build_ddpm(config, DataSpec(shape=(2,), kind="points"))
  batch = {"x": jnp.zeros((4, 2)), "label": jnp.zeros((4,), jnp.int32)}
  params, model_state = method.init(jax.random.key(0), batch)
  assert model_state == {}
  assert params["dense_out"]["kernel"].shape[-1] == 4  # 2C outputs
  loss, metrics = jax.jit(method.loss)(params, batch, jax.random.key(1))
  assert np.isfinite(float(loss)) and "vb" in metrics
  outs = {}
  for sampler, respacing in (("ddpm", ""), ("ddpm", "10"), ("ddpm", "4"), ("ddim", ""),
                             ("dpm-solver-2", "")):
    config.sampling.sampler, config.sampling.respacing = sampler, respacing
    config.sampling.steps = 4
    m = build_ddpm(config, DataSpec(shape=(2,), kind="points"))
    x = jax.jit(m.sample, static_argnums=2)(params, jax.random.key(2), 3)
    assert x.shape == (3, 2) and np.all(np.isfinite(np.asarray(x)))
    outs[sampler, respacing] = np.asarray(x)
  # Respacing that keeps all T = 10 steps is plain ancestral sampling; 4 steps is not.
  np.testing.assert_allclose(outs["ddpm", "10"], outs["ddpm", ""], rtol=1e-4, atol=1e-5)
  assert np.abs(outs["ddpm", "4"] - outs["ddpm", ""]).max() > 1e-3
  bad = ml_collections.ConfigDict(config.to_dict())
  bad.sampling.sampler, bad.sampling.respacing = "ddpm", "11"
  with pytest.raises(ValueError, match="cannot take"):
    build_ddpm(bad, DataSpec(shape=(2,), kind="points"))
  bad = ml_collections.ConfigDict(config.to_dict())
  bad.sampling.sampler = "dpm-solver-4"
  with pytest.raises(ValueError, match="dpm-solver-3"):
    build_ddpm(bad, DataSpec(shape=(2,), kind="points"))


def test_space_timesteps_sections_and_ddim_stride():
  """improved-diffusion's respace.space_timesteps: its docstring example (300 steps, sections
  10, 15, 20 over three thirds), 'ddimN', and a plain count."""
  kept = d.space_timesteps(300, "10,15,20")
  assert [int(np.sum((kept >= a) & (kept < a + 100))) for a in (0, 100, 200)] == [10, 15, 20]
  assert {0, 99, 100, 199, 200, 299} <= set(kept.tolist())  # each section from end to end
  np.testing.assert_array_equal(d.space_timesteps(1000, "ddim50"), np.arange(0, 1000, 20))
  kept = d.space_timesteps(1000, "250")
  assert len(kept) == 250 and kept[0] == 0 and kept[-1] == 999
  np.testing.assert_array_equal(d.space_timesteps(7, [7]), np.arange(7))
  with pytest.raises(ValueError, match="cannot take"):
    d.space_timesteps(10, "11")
  with pytest.raises(ValueError, match="no integer stride"):
    d.space_timesteps(10, "ddim7")


def test_respace_keeps_alphas_cumprod_and_is_identity_on_all_steps():
  """Nichol & Dhariwal Sec. 4: the respaced chain keeps abar at the kept steps; keeping every
  step gives the original schedule back."""
  sched = d.get_schedule("cosine", 100)
  same, tmap = d.respace(sched, np.arange(100))
  np.testing.assert_array_equal(tmap, np.arange(100))
  for name in ("betas", "alphas_cumprod", "posterior_variance", "posterior_mean_coef1",
               "posterior_mean_coef2", "posterior_log_variance_clipped"):
    np.testing.assert_allclose(getattr(same, name), getattr(sched, name), rtol=1e-5, atol=1e-7)
  keep = d.space_timesteps(100, "10")
  spaced, tmap = d.respace(sched, keep)
  assert spaced.num_timesteps == 10
  np.testing.assert_allclose(spaced.alphas_cumprod, np.asarray(sched.alphas_cumprod)[keep],
                             rtol=3e-5)  # from the float32-stored betas
  b = np.asarray(spaced.betas)
  assert np.all((b > 0) & (b <= 1)) and b[0] == pytest.approx(float(sched.betas[0]), rel=1e-5)


def test_respaced_ancestral_sampling_of_gaussian_data():
  """Gaussian data N(mu, s^2), 25 respaced steps of a T = 1000 chain, the network called at the
  original timesteps. The exact reverse step q(x_{k-1} | x_k) has mean c1 E[x0|x_k] + c2 x_k and
  variance beta~_k + c1^2 Var[x0|x_k]; given through the learned-range v on the *respaced*
  [beta~_k, beta_k], ancestral sampling reproduces the data's mean and std. beta~ alone
  (fixed_small) misses c1^2 Var[x0|x_k] and shrinks the std: why few-step sampling needs the
  learned variance (Nichol & Dhariwal 2021, Sec. 3.1 and 4)."""
  mu, s = 0.7, 0.3
  sched = d.get_schedule("linear", 1000)
  spaced, tmap = d.respace(sched, d.space_timesteps(1000, "25"))
  abar = sched.alphas_cumprod

  def eps_exact(x, t):  # t: the trained model's zero-based timesteps
    a = abar[t]
    return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * mu) / (a * s ** 2 + 1 - a)

  def v_exact(x, k):  # the exact reverse variance as eq. 15's interpolation, in [-1, 1]
    a = abar[jnp.asarray(tmap)[k]]
    var_x0 = s ** 2 * (1 - a) / (a * s ** 2 + 1 - a)
    c1 = spaced.posterior_mean_coef1[k]
    log_small = spaced.posterior_log_variance_clipped[k]
    log_large = jnp.log(spaced.betas[k])
    log_var = jnp.log(spaced.posterior_variance[k] + c1 ** 2 * var_x0)
    frac = (log_var - log_small) / (log_large - log_small)
    return jnp.broadcast_to(2 * frac - 1, x.shape)

  def model(x, k, c=None):
    return gs.Prediction(eps_exact(x, jnp.asarray(tmap)[k]), v_exact(x, k))

  key = jax.random.key(0)
  x = np.asarray(gs.ddpm_sample(model, spaced, key, (20000, 1), var_type="learned_range"))
  assert abs(x.mean() - mu) < 0.01 and abs(x.std() - s) < 0.01
  small = np.asarray(gs.ddpm_sample(lambda x, k, c: model(x, k).eps, spaced, key, (20000, 1),
                                    var_type="fixed_small"))
  assert small.std() < s - 0.05
  # The same chain through ddpm_sample's own respacing of the full schedule: the denoiser sees
  # the original steps.
  full = lambda x, t, c: gs.Prediction(eps_exact(x, t), v_exact(
      x, jnp.searchsorted(jnp.asarray(tmap), t)))
  y = np.asarray(gs.ddpm_sample(full, sched, key, (20000, 1), var_type="learned_range",
                                respacing="25"))
  np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)
