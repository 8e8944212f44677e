"""DDPM / DDIM samplers on Gaussian data, whose exact noise predictor is known in closed form.

For data ``x_0 ~ N(mu, s^2)`` (independent dimensions), ``q(x_t) = N(sqrt(abar) mu,
abar s^2 + 1 - abar)`` and the exact (Bayes-optimal) noise predictor is
``eps*(x_t, t) = sqrt(1 - abar_t) (x_t - sqrt(abar_t) mu) / (abar_t s^2 + 1 - abar_t)``.

Fed ``eps*``, every sampler step is affine in ``x`` plus Gaussian noise, so the output is exactly
Gaussian and its mean and variance follow from a scalar recursion. ``_reference_moments`` runs
that recursion in float64 from the papers' update rules, written independently of the library
(Ho et al. 2020 eq. 11 / Algorithm 2 for DDPM; Song et al. 2021 eq. 12 and 16 for DDIM). The
tests then check, per dimension:

1. the sampler's empirical mean / variance against the reference recursion, to 5 standard
   errors of the estimate (this is the tight check: any wrong coefficient fails it);
2. the same empirical moments against the data's ``mu, s^2``, to 5 standard errors plus the
   method's own discretisation bias (a few % for DDPM; see ``ACCURATE``), and the reference
   recursion against ``mu, s^2`` to that bias alone.
"""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import diffusion as d
from genjax import sampling as gs

MU = np.array([0.5, -0.3, 0.8, -1.0])
S = np.array([0.1, 0.3, 1.0, 1.5])
N = 10000  # samples per configuration
T = 1000


def gaussian_eps_fn(sched):
  abar = sched.alphas_cumprod
  mu, s2 = jnp.asarray(MU, abar.dtype), jnp.asarray(S**2, abar.dtype)

  def eps_fn(x, t, cond=None):
    assert t.dtype == jnp.int32 and t.shape == ()  # samplers pass one t for the whole batch
    a = abar[t]
    return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * mu) / (a * s2 + 1 - a)

  return eps_fn


def _reference_moments(betas, kind, *, var_type=None, eta=0.0, timesteps=None):
  """Exact output mean / variance of the sampler on Gaussian data, float64, from the papers."""
  alphas = 1.0 - betas
  abar = np.cumprod(alphas)
  s2 = S**2
  m, v = np.zeros_like(MU), np.ones_like(MU)

  def eps_coefs(a):  # eps* = e1 x + e0
    den = a * s2 + 1 - a
    return np.sqrt(1 - a) / den, -np.sqrt(1 - a) * np.sqrt(a) * MU / den

  if kind == "ddpm":  # Ho et al. Algorithm 2 line 4 (paper step k = t + 1).
    for t in range(len(betas) - 1, -1, -1):
      e1, e0 = eps_coefs(abar[t])
      k = betas[t] / np.sqrt(1 - abar[t])
      A, c = (1 - k * e1) / np.sqrt(alphas[t]), -k * e0 / np.sqrt(alphas[t])
      if t == 0:
        sig2 = 0.0
      elif var_type == "fixed_large":
        sig2 = betas[t]
      else:
        sig2 = betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
      m, v = A * m + c, A * A * v + sig2
    return m, v
  # DDIM, Song et al. eq. 12 with sigma from eq. 16; abar of "step -1" is 1.
  prev = list(timesteps[1:]) + [None]
  for t, tp in zip(timesteps, prev):
    a, ap = abar[t], (1.0 if tp is None else abar[tp])
    e1, e0 = eps_coefs(a)
    sig = eta * np.sqrt((1 - ap) / (1 - a)) * np.sqrt(1 - a / ap)
    dcoef = np.sqrt(1 - ap - sig**2)
    A = np.sqrt(ap) * (1 - np.sqrt(1 - a) * e1) / np.sqrt(a) + dcoef * e1
    c = np.sqrt(ap) * (-np.sqrt(1 - a) * e0) / np.sqrt(a) + dcoef * e0
    m, v = A * m + c, A * A * v + sig**2
  return m, v


# (name, sampler kwargs, allowed method bias vs (mu, s^2) as (|mean - mu| / s, |var / s^2 - 1|),
# or None where the method is not expected to recover the data distribution). The biases are
# the exact recursion's, rounded up: DDPM with beta~ underestimates the variance of the s = 0.1
# dimension by 7% (it drops coef1^2 Var[x_0 | x_t] per step); 50-step DDIM and the quadratic
# spacing (which starts from N(0, I) at t = 0.8 T) are markedly biased on low-variance data.
CONFIGS = [
    ("ddpm_large", dict(sampler="ddpm", var_type="fixed_large"), (0.001, 0.03)),
    ("ddpm_small", dict(sampler="ddpm", var_type="fixed_small"), (0.001, 0.09)),
    ("ddim_eta0_1000_uniform", dict(sampler="ddim", eta=0.0, num_steps=1000), (0.01, 0.04)),
    ("ddim_eta1_1000_uniform", dict(sampler="ddim", eta=1.0, num_steps=1000), (0.001, 0.09)),
    ("ddim_eta0_50_uniform", dict(sampler="ddim", eta=0.0, num_steps=50), None),
    ("ddim_eta1_50_uniform", dict(sampler="ddim", eta=1.0, num_steps=50), None),
    ("ddim_eta0_1000_quadratic",
     dict(sampler="ddim", eta=0.0, num_steps=1000, spacing="quadratic"), (0.05, 0.04)),
    ("ddim_eta1_1000_quadratic",
     dict(sampler="ddim", eta=1.0, num_steps=1000, spacing="quadratic"), (0.005, 0.09)),
    ("ddim_eta0_50_quadratic",
     dict(sampler="ddim", eta=0.0, num_steps=50, spacing="quadratic"), None),
    ("ddim_eta1_50_quadratic",
     dict(sampler="ddim", eta=1.0, num_steps=50, spacing="quadratic"), None),
]


@pytest.fixture(scope="module")
def linear():
  return d.get_schedule("linear", T)


def _run(sched, cfg, key, n=N):
  cfg = dict(cfg)
  sampler = cfg.pop("sampler")
  fn = gs.ddpm_sample if sampler == "ddpm" else gs.ddim_sample
  run = jax.jit(functools.partial(fn, gaussian_eps_fn(sched), shape=(n, len(MU)), **cfg))
  return np.asarray(run(sched, key), dtype=np.float64)


def _reference(betas, cfg):
  cfg = dict(cfg)
  if cfg.pop("sampler") == "ddpm":
    return _reference_moments(betas, "ddpm", var_type=cfg["var_type"])
  ts = gs.ddim_timesteps(len(betas), cfg["num_steps"], cfg.get("spacing", "uniform"))
  return _reference_moments(betas, "ddim", eta=cfg["eta"], timesteps=ts)


def _check_moments(x, mean, var, bias=None, k=5.0):
  n = x.shape[0]
  emp_m, emp_v = x.mean(0), x.var(0, ddof=1)
  se_m, se_v = np.sqrt(var / n), var * np.sqrt(2 / (n - 1))
  np.testing.assert_array_less(np.abs(emp_m - mean), k * se_m,
                               err_msg=f"mean {emp_m} vs reference {mean}")
  np.testing.assert_array_less(np.abs(emp_v - var), k * se_v,
                               err_msg=f"var {emp_v} vs reference {var}")
  if bias is not None:
    bm, bv = bias
    se_m, se_v = np.sqrt(S**2 / n), S**2 * np.sqrt(2 / (n - 1))
    np.testing.assert_array_less(np.abs(mean - MU), bm * S, err_msg="reference mean vs mu")
    np.testing.assert_array_less(np.abs(var / S**2 - 1), bv, err_msg="reference var vs s^2")
    np.testing.assert_array_less(np.abs(emp_m - MU), k * se_m + bm * S,
                                 err_msg=f"mean {emp_m} vs mu {MU}")
    np.testing.assert_array_less(np.abs(emp_v - S**2), k * se_v + bv * S**2,
                                 err_msg=f"var {emp_v} vs s^2 {S**2}")


@pytest.mark.parametrize("name,cfg,bias", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_gaussian_data_exact_eps(linear, name, cfg, bias):
  x = _run(linear, cfg, jax.random.key(zlib.crc32(name.encode())))
  assert np.all(np.isfinite(x))
  mean, var = _reference(d.get_beta_schedule("linear", T), cfg)
  _check_moments(x, mean, var, bias)


# A coarse chain (T = 50, beta up to 0.4) makes every per-step coefficient matter: an off-by-one
# in t, a sqrt(abar_t) for a sqrt(abar_{t-1}), noise at the last step or a 5% error in beta~ moves
# the output moments by 10-300 standard errors here, while at T = 1000 such errors are below
# one standard error. The method itself is then far from (mu, s^2), so only check 1 applies.
COARSE = [
    ("ddpm_large", dict(sampler="ddpm", var_type="fixed_large")),
    ("ddpm_small", dict(sampler="ddpm", var_type="fixed_small")),
    ("ddim_eta0_all", dict(sampler="ddim", eta=0.0, num_steps=50)),
    ("ddim_eta1_10", dict(sampler="ddim", eta=1.0, num_steps=10)),
    ("ddim_eta05_10_quadratic", dict(sampler="ddim", eta=0.5, num_steps=10, spacing="quadratic")),
]


@pytest.mark.parametrize("name,cfg", COARSE, ids=[c[0] for c in COARSE])
def test_gaussian_data_exact_eps_coarse_chain(name, cfg):
  sched = d.get_schedule("linear", 50)
  x = _run(sched, cfg, jax.random.key(zlib.crc32(name.encode())), n=100000)
  mean, var = _reference(d.get_beta_schedule("linear", 50), cfg)
  _check_moments(x, mean, var)


def test_gaussian_data_cosine_schedule_ddpm():
  sched = d.get_schedule("cosine", T)
  cfg = dict(sampler="ddpm", var_type="fixed_large")
  x = _run(sched, cfg, jax.random.key(11))
  mean, var = _reference(d.get_beta_schedule("cosine", T), cfg)
  _check_moments(x, mean, var, (0.001, 0.03))


def test_ddim_eta1_all_steps_is_ddpm_fixed_small(linear):
  """Song et al. 2021 Sec. 4.1: eta = 1 on all steps is ancestral sampling with beta~."""
  eps_fn = gaussian_eps_fn(linear)
  key = jax.random.key(5)
  shape = (64, len(MU))
  a = jax.jit(lambda k: gs.ddpm_sample(eps_fn, linear, k, shape, var_type="fixed_small"))(key)
  b = jax.jit(lambda k: gs.ddim_sample(eps_fn, linear, k, shape, eta=1.0, num_steps=T))(key)
  np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-4)


def test_ddim_timesteps_follow_the_official_code():
  np.testing.assert_array_equal(gs.ddim_timesteps(1000, 50), np.arange(0, 1000, 20)[::-1])
  np.testing.assert_array_equal(gs.ddim_timesteps(1000, 1000), np.arange(1000)[::-1])
  assert len(gs.ddim_timesteps(1000, 3)) == 4  # range(0, 1000, 333), as the reference
  q = gs.ddim_timesteps(1000, 50, "quadratic")
  ref = sorted({int(s) for s in np.linspace(0, np.sqrt(800), 50) ** 2}, reverse=True)
  np.testing.assert_array_equal(q, ref)
  assert q[0] == 800 and q[-1] == 0
  q = gs.ddim_timesteps(1000, 1000, "quadratic")
  assert np.all(np.diff(q) < 0) and q[-1] == 0  # duplicates dropped
  for bad in [dict(num_steps=0), dict(num_steps=1001), dict(num_steps=10, spacing="log")]:
    with pytest.raises(ValueError):
      gs.ddim_timesteps(1000, **bad)


def test_trajectories_vmap_jit_and_validation():
  sched = d.get_schedule("cosine", 20)
  eps_fn = lambda x, t, c=None: 0.5 * x * (1 + t / 20)
  shape = (2, 4, 4, 1)
  key = jax.random.key(0)
  x_T = jax.random.normal(jax.random.key(1), shape)

  @jax.jit
  def ddpm_runs(key, x_T):
    kw = dict(x_T=x_T, clip_x0=(-1.0, 1.0))
    return (gs.ddpm_sample(eps_fn, sched, key, shape, **kw),
            gs.ddpm_sample(eps_fn, sched, key, shape, trajectory_stride=5, **kw),
            gs.ddpm_sample(eps_fn, sched, key, shape, trajectory_stride=1, **kw))

  x0, (x0_5, traj), (x0_1, full) = ddpm_runs(key, x_T)
  assert traj.shape == (5,) + shape  # states after 0, 5, 10, 15, 20 steps
  assert full.shape == (21,) + shape
  np.testing.assert_array_equal(traj[0], x_T)
  np.testing.assert_allclose(traj[-1], x0, atol=1e-6)
  np.testing.assert_allclose(x0_5, x0, atol=1e-6)
  np.testing.assert_allclose(x0_1, x0, atol=1e-6)
  np.testing.assert_allclose(traj, full[::5], atol=1e-6)
  assert np.all(np.isfinite(full))

  # DDIM: range(0, 20, 2) is 10 steps -> states 0, 3, 6, 9, 10; vmap over keys; determinism.
  @jax.jit
  @jax.vmap
  def ddim_runs(key):
    x0, traj = gs.ddim_sample(eps_fn, sched, key, shape, num_steps=7, eta=0.5, trajectory_stride=3)
    det = gs.ddim_sample(eps_fn, sched, key, shape, timesteps=[19, 10, 4, 0], x_T=x_T)
    return x0, traj, det

  keys = jax.random.split(jax.random.key(2), 3)
  x0, traj, det = ddim_runs(keys)
  assert len(gs.ddim_timesteps(20, 7)) == 10 and len(gs.trajectory_steps(10, 3)) == 5
  assert x0.shape == (3,) + shape and traj.shape == (3, 5) + shape
  np.testing.assert_allclose(traj[:, -1], x0, atol=1e-6)
  assert np.all(np.isfinite(traj)) and not np.allclose(x0[0], x0[1])
  np.testing.assert_allclose(det[0], det[2], atol=1e-6)  # eta = 0 from the same x_T
  one = jax.jit(lambda k: gs.ddim_sample(eps_fn, sched, k, shape, num_steps=7, eta=0.5))(keys[1])
  np.testing.assert_allclose(one, x0[1], atol=1e-5)

  with pytest.raises(ValueError, match="decreasing"):
    gs.ddim_sample(eps_fn, sched, key, shape, timesteps=[0, 10])
  with pytest.raises(ValueError, match="x_T"):
    gs.ddpm_sample(eps_fn, sched, key, shape, x_T=x_T[:1])
  with pytest.raises(ValueError, match="var_type"):
    gs.ddpm_sample(eps_fn, sched, key, shape, var_type="learned")
  with pytest.raises(ValueError, match="trajectory_stride"):
    gs.ddpm_sample(eps_fn, sched, key, shape, trajectory_stride=0)
  with pytest.raises(ValueError, match="clip_x0"):
    gs.ddim_sample(eps_fn, sched, key, shape, clip_x0=1.0)


def test_ddim_eta_half_is_the_papers_sigma():
  """Song et al. 2021 eq. 16: sigma = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s),
  i.e. sigma^2 = eta^2 beta~ (seed 003 writes eta beta~; the paper is right). One step from a
  fixed x_t with a fixed eps: the output's mean is the deterministic update and its variance
  sigma^2, which at eta = 0.5 is a quarter of beta~ (not a half)."""
  sched = d.get_schedule("linear", 1000)
  abar = np.cumprod(1 - d.get_beta_schedule("linear", 1000))
  t, s = 600, 400
  eta = 0.5
  n = 200000
  x_t = jnp.full((n, 1), 0.7)
  eps = lambda x, tt, c=None: jnp.full_like(x, 0.3)
  out = np.asarray(jax.jit(lambda k: gs.ddim_sample(eps, sched, k, (n, 1), timesteps=[t, s],
                                                    eta=eta, x_T=x_t))(jax.random.key(0)))
  # The first step (t -> s) then the deterministic last step to x0: x0 = (x_s - sqrt(1-a_s)
  # eps) / sqrt(a_s), an affine map with slope 1 / sqrt(a_s).
  a_t, a_s = abar[t], abar[s]
  sigma = eta * np.sqrt((1 - a_s) / (1 - a_t)) * np.sqrt(1 - a_t / a_s)
  x0 = (0.7 - np.sqrt(1 - a_t) * 0.3) / np.sqrt(a_t)
  x_s = np.sqrt(a_s) * x0 + np.sqrt(1 - a_s - sigma**2) * 0.3
  final = (x_s - np.sqrt(1 - a_s) * 0.3) / np.sqrt(a_s)
  assert abs(out.mean() - final) < 5 * sigma / np.sqrt(a_s) / np.sqrt(n)
  np.testing.assert_allclose(out.var() * a_s, sigma**2, rtol=0.02)
  beta_tilde = (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)
  np.testing.assert_allclose(sigma**2, eta**2 * beta_tilde, rtol=1e-12)
  assert abs(out.var() * a_s / (eta * beta_tilde) - 1) > 0.4  # not the seed's eta beta~


def test_ddim_last_step_conventions():
  """set_alpha_to_one=True ends on the predicted x0; False lands on abar_0 (diffusers'
  DDIMScheduler(set_alpha_to_one=False)): from step 0 that is the identity."""
  sched = d.get_schedule("linear", 100)
  x_T = jax.random.normal(jax.random.key(0), (4, 3))
  eps = lambda x, t, c=None: 0.2 * x + 0.01 * t
  one = gs.ddim_sample(eps, sched, jax.random.key(1), (4, 3), timesteps=[50, 0], x_T=x_T)
  first = gs.ddim_sample(eps, sched, jax.random.key(1), (4, 3), timesteps=[50, 0], x_T=x_T,
                         set_alpha_to_one=False)
  a = np.asarray(sched.alphas_cumprod)
  x0 = (x_T - np.sqrt(1 - a[50]) * eps(x_T, 50)) / np.sqrt(a[50])
  x_0 = np.sqrt(a[0]) * x0 + np.sqrt(1 - a[0]) * eps(x_T, 50)   # the step 50 -> 0
  np.testing.assert_allclose(first, x_0, rtol=1e-5, atol=1e-6)      # then 0 -> abar_0: x_0
  e0 = eps(x_0, 0)
  np.testing.assert_allclose(one, (x_0 - np.sqrt(1 - a[0]) * e0) / np.sqrt(a[0]), rtol=1e-5,
                             atol=1e-5)


def test_ddpm_classifier_guidance_is_a_mean_shift_by_sigma():
  """Dhariwal & Nichol 2021 Algorithm 1: x_{t-1} ~ N(mu + s Sigma grad, Sigma) with the
  sampler's own Sigma: beta~ (fixed_small), beta (fixed_large) or the learned one. The eps-form
  shift s beta / sqrt(alpha) grad would differ by (1 - abar_{t-1}) / (1 - abar_t) / sqrt(alpha)."""
  sched = d.get_schedule("linear", 50)
  n = 8
  x_T = jnp.linspace(-1, 1, n * 2).reshape(n, 2)
  g = jnp.asarray([0.4, -0.2])
  eps = lambda x, t, c=None: 0.1 * x
  guided = gs.classifier_guidance(eps, lambda x, t, c: jnp.broadcast_to(g, x.shape), 2.0)
  for var_type, var_values in (("fixed_small", None), ("fixed_large", None),
                               ("learned_range", 0.3)):
    def with_var(fn):
      if var_values is None:
        return fn
      return lambda x, t, c=None: gs.Prediction(gs.as_prediction(fn(x, t, c)).eps,
                                                jnp.full_like(x, var_values),
                                                gs.as_prediction(fn(x, t, c)).log_p_grad)
    plain = gs.ddpm_sample(with_var(eps), sched, jax.random.key(0), (n, 2), var_type=var_type,
                           x_T=x_T, t_start=9, respacing=None)
    shifted = gs.ddpm_sample(with_var(guided), sched, jax.random.key(0), (n, 2),
                             var_type=var_type, x_T=x_T, t_start=9)
    # One step at a time with the same key: run just the first step (t = 9 -> 8) both ways.
    step = lambda fn: gs.ancestral.ddpm_step_fn(fn, sched, var_type=var_type)(
        x_T, (jnp.asarray(9), jax.random.key(3)))
    out_p, out_g = step(with_var(eps)), step(with_var(guided))
    _, log_var = d.model_variance(sched, jnp.asarray(9), (n, 2), var_type,
                                  None if var_values is None else jnp.full((n, 2), var_values))
    np.testing.assert_allclose(out_g - out_p,
                               np.broadcast_to(2.0 * np.exp(np.asarray(log_var)) * g, (n, 2)),
                               rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(np.asarray(plain))) and np.all(np.isfinite(np.asarray(shifted)))
