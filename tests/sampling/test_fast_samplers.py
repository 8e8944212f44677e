"""DPM-Solver++, UniPC, DEIS, PNDM, Euler(-ancestral), thresholding, Analytic-DPM, optimal
sub-trajectories and zero-terminal SNR against closed forms.

Gaussian data ``x_0 ~ N(mu, s^2)`` (independent dimensions): the exact noise predictor is
``eps*(x, t) = sigma_t (x - alpha_t mu) / (alpha_t^2 s^2 + sigma_t^2)`` and the probability-flow
ODE keeps each dimension's z-score, so ``x_t`` given ``x_T`` is known exactly.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import sampling as gs
from genjax.sampling import analytic, catalog, dpm_solver as dpm, edm, pndm, registry
from genjax.sampling import thresholding as thr

MU = np.array([0.5, -0.3, 0.8, -1.0])
S = np.array([0.1, 0.3, 1.0, 1.5])


def exact_eps_fn(ns, mu=MU, s=S):
  def eps_fn(x, t, cond=None):
    t = jnp.broadcast_to(t, x.shape[:1])
    a = ns.marginal_alpha(t).reshape((-1,) + (1,) * (x.ndim - 1))
    sg = ns.marginal_std(t).reshape((-1,) + (1,) * (x.ndim - 1))
    return sg * (x - a * mu) / (a**2 * s**2 + sg**2)
  return eps_fn


def exact_flow(ns, x_start, t_start, t_end, mu=MU, s=S):
  a0, s0 = float(ns.marginal_alpha(t_start)), float(ns.marginal_std(t_start))
  a1, s1 = float(ns.marginal_alpha(t_end)), float(ns.marginal_std(t_end))
  return a1 * mu + np.sqrt(a1**2 * s**2 + s1**2) / np.sqrt(a0**2 * s**2 + s0**2) * (
      np.asarray(x_start) - a0 * mu)


# ------------------------------------------------------------------------------------------------
# Thresholding.
# ------------------------------------------------------------------------------------------------


def test_dynamic_threshold_formula_and_identity():
  rng = np.random.default_rng(0)
  x0 = rng.normal(size=(5, 3, 4, 2)) * np.array([0.3, 1.0, 2.0, 3.0, 0.5])[:, None, None, None]
  got = np.asarray(thr.dynamic_threshold(jnp.asarray(x0), 0.9))
  for b in range(5):
    s = max(1.0, np.quantile(np.abs(x0[b]), 0.9))
    np.testing.assert_allclose(got[b], np.clip(x0[b], -s, s) / s, rtol=1e-6, atol=1e-7)
  small = jnp.asarray(np.clip(x0, -1, 1))
  np.testing.assert_array_equal(thr.dynamic_threshold(small, 0.995), small)
  np.testing.assert_allclose(thr.dynamic_threshold(jnp.asarray(x0), 0.995, max_value=1.0),
                             np.clip(x0, -1, 1), rtol=1e-6)
  assert thr.dynamic_threshold(small.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_threshold_denoiser_processes_x0():
  sched = gs.get_schedule("linear", 100)
  x = jax.random.normal(jax.random.key(0), (4, 6)) * 3
  eps_fn = lambda x, t, c=None: -x
  fn = thr.x0_processor("static")
  out = thr.threshold_denoiser(eps_fn, sched, fn)(x, jnp.asarray(40), None)
  a, s = sched.marginal_alpha(40), sched.marginal_std(40)
  np.testing.assert_allclose((x - s * out) / a, np.clip((x + s * x) / a, -1, 1), rtol=1e-5,
                             atol=1e-5)
  assert thr.threshold_denoiser(eps_fn, sched, None) is eps_fn
  with pytest.raises(ValueError, match="thresholding"):
    thr.x0_processor("soft")


# ------------------------------------------------------------------------------------------------
# Convergence orders on the closed-form probability-flow ODE (float64).
# ------------------------------------------------------------------------------------------------

CASES = [  # (name, kwargs, expected order)
    ("dpm++2s", dict(algorithm="dpmsolver++", order=2, method="singlestep"), 2),
    ("dpm++2m", dict(algorithm="dpmsolver++", order=2, method="multistep"), 2),
    ("unipc1", dict(algorithm="unipc", order=1, method="multistep"), 2),
    ("unipc2", dict(algorithm="unipc", order=2, method="multistep"), 3),
    ("unipc2-bh1", dict(algorithm="unipc", order=2, method="multistep", variant="bh1"), 3),
    ("deis1", dict(algorithm="deis", order=1, method="multistep"), 1),
    ("deis2", dict(algorithm="deis", order=2, method="multistep"), 2),
]


def _slope(n, errs):
  return -np.polyfit(np.log(n), np.log(errs), 1)[0]


@pytest.mark.parametrize("name,kw,expected", CASES, ids=[c[0] for c in CASES])
def test_convergence_order(name, kw, expected):
  """Global error against the exact flow from t = 0.8 to 0.2 falls as h^p (slope within 0.2).

  The window avoids the ends of the VP SDE, where the exact solution's derivatives in lambda
  are large and the asymptotic regime needs many more steps. UniPC-p with its corrector is of
  order p + 1 (Zhao et al. 2023, Thm. 3.1): measured 2.00 (UniPC-1), 2.96 / 3.01 (UniPC-2 bh2 /
  bh1), though the last step of a run is an uncorrected predictor. Third-order multistep runs start
  with first- and second-order steps whose local errors bound the global order by 2
  asymptotically; they are checked by their local order below."""
  with jax.enable_x64(True):
    ns = gs.VPSDE()
    x_T = jax.random.normal(jax.random.key(0), (8, 4), jnp.float64)
    t0, t1 = 0.8, 0.2
    ref = exact_flow(ns, x_T, t0, t1)
    ms = np.array([32, 64, 128])
    errs = []
    for m in ms:
      lam = jnp.linspace(ns.marginal_lambda(t0), ns.marginal_lambda(t1), m + 1)
      ts = np.array(ns.inverse_lambda(lam))
      ts[0], ts[-1] = t0, t1
      x = dpm.dpm_solver_sample(exact_eps_fn(ns), ns, None, x_T.shape, timesteps=ts, x_T=x_T,
                                **kw)
      errs.append(float(np.abs(np.asarray(x) - ref).max()))
    slope = _slope(ms, errs)
    assert abs(slope - expected) < 0.2, (name, slope, errs)


def test_dpmpp_multistep_local_order():
  """One DPM-Solver++ 2M / 3M update from exact history: local error O(h^3) / O(h^4). (A full 3M
  run's global slope over 32-128 steps measures 3.5, still pre-asymptotic.)"""
  with jax.enable_x64(True):
    ns = gs.VPSDE()
    eps_fn = exact_eps_fn(ns)
    x_half = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)))
    lam0 = float(ns.marginal_lambda(0.5))
    hs = np.array([0.1, 0.05, 0.025])
    err2, err3, errd = [], [], []
    for h in hs:
      ts = [float(ns.inverse_lambda(lam0 + k * h)) for k in (-2, -1, 0, 1)]
      xs = [jnp.asarray(exact_flow(ns, x_half, 0.5, t)) for t in ts]
      es = [eps_fn(x, jnp.asarray(t)) for x, t in zip(xs, ts)]
      xd = dpm.deis_update(ns, xs[2], es[:3], jnp.asarray(ts[:3]), ts[3], 3, "t")
      errd.append(float(jnp.abs(xd - xs[3]).max()))
      x0s = [(x - ns.marginal_std(t) * eps_fn(x, jnp.asarray(t))) / ns.marginal_alpha(t)
             for x, t in zip(xs, ts)]
      x2 = dpm.dpmpp_multistep_second_update(ns, xs[2], x0s[1:3], ts[1:3], ts[3])
      x3 = dpm.dpmpp_multistep_third_update(ns, xs[2], x0s[:3], ts[:3], ts[3])
      err2.append(float(jnp.abs(x2 - xs[3]).max()))
      err3.append(float(jnp.abs(x3 - xs[3]).max()))
    assert abs(_slope(1 / hs, err2) - 3) < 0.2, err2
    assert abs(_slope(1 / hs, err3) - 4) < 0.2, err3
    assert abs(_slope(1 / hs, errd) - 4) < 0.2, errd  # DEIS-3 (tAB)


def test_euler_sigma_space_orders():
  """Euler (order 1) and Heun (order 2) in sigma space on the EDM process."""
  with jax.enable_x64(True):
    ns = gs.EDMProcess() if hasattr(gs, "EDMProcess") else None
    ns = gs.VPSDE()
    x_T = jax.random.normal(jax.random.key(1), (8, 4), jnp.float64)
    t0, t1 = 0.8, 0.2
    s0, s1 = (float(np.exp(-ns.marginal_lambda(t))) for t in (t0, t1))
    ref = exact_flow(ns, x_T, t0, t1) / float(ns.marginal_alpha(t1))  # in x^ = x / alpha
    x_hat0 = x_T / ns.marginal_alpha(t0)
    errs = {"euler": [], "heun": []}
    ms = np.array([16, 32, 64])
    for m in ms:
      sig = np.geomspace(s0, s1, m + 1)

      def d_of(x, s):
        t = ns.inverse_lambda(-jnp.log(s))
        return exact_eps_fn(ns)(ns.marginal_alpha(t) * x, t)

      for solver in errs:
        x = x_hat0
        for a, b in zip(sig[:-1], sig[1:]):
          x = edm.ode_step(d_of, x, a, b, solver)
        errs[solver].append(float(np.abs(np.asarray(x) - ref).max()))
    assert abs(_slope(ms, errs["euler"]) - 1) < 0.2, errs
    assert abs(_slope(ms, errs["heun"]) - 2) < 0.2, errs


# ------------------------------------------------------------------------------------------------
# Moments at 20 steps, and guidance.
# ------------------------------------------------------------------------------------------------

SAMPLERS_20 = ["dpm-solver++-2s", "dpm-solver++-2m", "dpm-solver++-3m", "unipc-2", "unipc-3",
               "deis-2", "deis-3", "pndm", "edm-euler", "euler-ancestral", "edm-heun"]


def _gaussian_model(sched, mu=MU, s=S, cond_shift=None):
  def net(x, t, c):
    ab = jnp.interp(jnp.asarray(t, jnp.float32), jnp.arange(sched.num_timesteps, dtype=jnp.float32),
                    sched.alphas_cumprod)
    a, sg = jnp.sqrt(ab).reshape(-1, 1), jnp.sqrt(1 - ab).reshape(-1, 1)
    m = mu if c is None else mu + cond_shift * (c[:, None] == 1)
    return sg * (x - a * m) / (a**2 * s**2 + sg**2)
  return net


@pytest.mark.parametrize("name", SAMPLERS_20)
def test_moments_at_20_steps(name):
  """The exact eps of Gaussian data: mean within 5 SE + 0.05, std within 10% at 20 steps
  (first-order ones and PNDM: more)."""
  sched = gs.get_schedule("linear", 1000)
  model = registry.Model(process=sched, model_fn=_gaussian_model(sched))
  # First-order samplers (Euler, Euler-ancestral) and PNDM's leading grid (whose last level is
  # abar_0 = 1 - 1e-4) need more steps for the narrowest dimension (s = 0.1).
  steps = {"edm-euler": 100, "euler-ancestral": 100, "pndm": 50}.get(name, 20)
  cfg = catalog.SamplingConfig(sampler=name, steps=steps, dpm_skip_type="logSNR")
  n = 4000
  x = np.asarray(registry.run(model, cfg, jax.random.key(1), (n, 4)))
  assert np.all(np.abs(x.mean(0) - MU) < 5 * S / np.sqrt(n) + 0.05), (name, x.mean(0))
  assert np.all(np.abs(x.std(0) / S - 1) < 0.1 + 5 / np.sqrt(2 * n)), (name, x.std(0) / S)


def test_guided_mixture_is_tilted():
  """Classifier-free guidance w on a two-Gaussian mixture model: the conditional is N(mu_c, s^2),
  the unconditional the equal mixture. With the exact eps of each, the guided score is
  (1 + w) s_c - w s_u; at small noise its samples concentrate on the class's mode. We check the
  guided DPM-Solver++/UniPC samples against the same guidance run with a 200-step DDIM."""
  sched = gs.get_schedule("linear", 1000)
  mu = np.array([1.0, -1.0])
  s = np.array([0.3, 0.3])

  def net(x, t, c):
    ab = jnp.interp(jnp.asarray(t, jnp.float32), jnp.arange(1000, dtype=jnp.float32),
                    sched.alphas_cumprod)
    a, sg = jnp.sqrt(ab).reshape(-1, 1), jnp.sqrt(1 - ab).reshape(-1, 1)
    var = a**2 * s**2 + sg**2
    e_pos = sg * (x - a * mu) / var
    e_neg = sg * (x + a * mu) / var
    lp = lambda m: -jnp.sum((x - a * m) ** 2 / (2 * var), -1, keepdims=True)
    wpos = jax.nn.sigmoid(lp(mu) - lp(-mu))
    e_u = wpos * e_pos + (1 - wpos) * e_neg
    return jnp.where((c == 0)[:, None], e_pos, jnp.where((c == 1)[:, None], e_neg, e_u))

  model = registry.Model(process=sched, model_fn=net, null_cond=lambda y: jnp.full_like(y, 2))
  n = 3000
  cond = jnp.zeros((n,), jnp.int32)
  ref = np.asarray(registry.run(model, catalog.SamplingConfig(sampler="ddim", steps=200,
                                                              guidance_scale=2.0),
                                jax.random.key(0), (n, 2), cond=cond))
  for name in ("dpm-solver++-2m", "unipc-2"):
    x = np.asarray(registry.run(model, catalog.SamplingConfig(sampler=name, steps=20,
                                                              guidance_scale=2.0),
                                jax.random.key(0), (n, 2), cond=cond))
    np.testing.assert_allclose(x.mean(0), ref.mean(0), atol=0.05)
    np.testing.assert_allclose(x.std(0), ref.std(0), rtol=0.1)
  # The tilted density p(x|c)^(1+w) p(x)^(-w) is tighter than the class's own N(mu, s^2) and
  # pushed away from the other class's mode.
  assert np.all(ref.std(0) < s) and np.all(ref.mean(0) * np.sign(mu) > np.abs(mu))


# ------------------------------------------------------------------------------------------------
# Analytic-DPM, optimal sub-trajectories, spacings, zero-terminal SNR.
# ------------------------------------------------------------------------------------------------


def test_analytic_variance_gaussian_closed_form():
  """For Gaussian data Gamma_t = E||E[eps|x_t]||^2 / d = mean(sigma^2 / (alpha^2 s^2 + sigma^2)),
  and the optimal variance is lambda^2 + c^2 E Var(x0 | x_t) with c the x0-coefficient of the
  DDIM-family mean (Bao et al. 2022, Thm. 1, derived directly)."""
  sched = gs.get_schedule("linear", 1000, dtype=jnp.float64) if False else None
  del sched
  abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
  t, sidx = 600, 550
  a_t, a_s = abar[t], abar[sidx]
  alpha, sigma = np.sqrt(a_t), np.sqrt(1 - a_t)
  gamma = np.mean(sigma**2 / (alpha**2 * S**2 + sigma**2))
  post_var_x0 = np.mean(S**2 * sigma**2 / (alpha**2 * S**2 + sigma**2))
  for lam2 in (0.0, (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)):
    c = np.sqrt(a_s) - np.sqrt(1 - a_s - lam2) * np.sqrt(a_t) / np.sqrt(1 - a_t)
    want = lam2 + c**2 * post_var_x0
    got = float(analytic.analytic_variance(gamma, a_t, a_s, lam2))
    np.testing.assert_allclose(got, want, rtol=1e-6)
  # Theorem 2's clipping: Gamma > 1 gives lambda^2, Gamma < 0 the upper bound.
  assert float(analytic.analytic_variance(1.5, a_t, a_s, 0.0)) == 0.0


def test_analytic_ddim_runs_with_moments(tmp_path):
  """Moments estimated on data match the closed form; Analytic-DDIM / -DDPM then sample the
  data's moments. (Isotropic data: Analytic-DPM's variance is one number per step.)"""
  S = np.full(4, 0.5)  # noqa: N806
  sched = gs.get_schedule("linear", 1000)
  net = _gaussian_model(sched, s=S)
  eps_fn = lambda x, t: net(x, t, None)
  data = [jnp.asarray(MU + S * np.random.default_rng(0).normal(size=(256, 4)), jnp.float32)]
  ts = np.arange(1000)
  m = analytic.estimate_moments(eps_fn, sched, data, jax.random.key(0))
  abar = np.asarray(sched.alphas_cumprod, np.float64)
  al, sg = np.sqrt(abar)[:, None], np.sqrt(1 - abar)[:, None]
  exact = np.mean(sg**2 / (al**2 * S**2 + sg**2), axis=1)
  # 1024 values per step: a relative standard error of ~4%; compared over windows of 50 steps.
  np.testing.assert_allclose(m["eps_sq"].reshape(20, 50).mean(1), exact.reshape(20, 50).mean(1),
                             rtol=0.06)
  path = str(tmp_path / "analytic_moments.npz")
  analytic.save_moments(path, m)
  model = registry.Model(process=sched, model_fn=net)
  for eta in (0.0, 1.0):
    cfg = catalog.SamplingConfig(sampler="ddim", steps=20, eta=eta, analytic_moments=path)
    x = np.asarray(registry.run(model, cfg, jax.random.key(1), (4000, 4)))
    assert np.all(np.abs(x.mean(0) - MU) < 0.05) and np.all(np.abs(x.std(0) / S - 1) < 0.15), (
        eta, x.std(0) / S)
  cfg = catalog.SamplingConfig(sampler="ddim", steps=10, spacing="optimal", analytic_moments=path)
  assert np.all(np.isfinite(np.asarray(registry.run(model, cfg, jax.random.key(1), (64, 4)))))
  with pytest.raises(ValueError, match="analytic_moments"):
    catalog.validate_config(catalog.SamplingConfig(sampler="ddim", spacing="optimal"))
  del ts


def test_optimal_path_hand_made_costs():
  """A cost table where the best 3-jump path is known, and brute force agrees on random tables."""
  n = 8
  costs = np.full((n, n), 10.0)
  for s_, t_ in ((0, 2), (2, 5), (5, 7)):
    costs[s_, t_] = 1.0
  np.testing.assert_array_equal(analytic.optimal_timesteps(costs, 4), [7, 5, 2, 0])
  rng = np.random.default_rng(0)
  for _ in range(5):
    c = rng.uniform(size=(n, n))
    for k in (2, 3, 4, 5):
      best = min((sum(c[p[i + 1], p[i]] for i in range(k - 1)), p)
                 for mid in itertools.combinations(range(n - 2, 0, -1), k - 2)
                 for p in [(n - 1,) + mid + (0,)])
      got = analytic.optimal_timesteps(c, k)
      assert tuple(got) == best[1], (k, got, best)


def test_spacings_and_zero_terminal_snr():
  np.testing.assert_array_equal(gs.ddim_timesteps(1000, 10, "leading"), np.arange(900, -1, -100))
  np.testing.assert_array_equal(gs.ddim_timesteps(1000, 10, "trailing"), np.arange(999, 0, -100))
  np.testing.assert_array_equal(gs.ddim_timesteps(1000, 4, "linspace"), [999, 666, 333, 0])
  from genjax.sampling import schedules
  base = schedules.get_beta_schedule("linear", 1000)
  zs = schedules.rescale_zero_terminal_snr(base)
  abar, abar0 = np.cumprod(1 - zs), np.cumprod(1 - base)
  assert abar[-1] == 0.0 and zs[-1] == 1.0
  np.testing.assert_allclose(abar[0], abar0[0], rtol=1e-12)
  # sqrt(abar) is an affine map of the original (Lin et al. 2024, Alg. 1).
  lin = np.polyfit(np.sqrt(abar0), np.sqrt(abar), 1)
  np.testing.assert_allclose(np.polyval(lin, np.sqrt(abar0)), np.sqrt(abar), atol=1e-12)
  floored = np.cumprod(1 - schedules.get_beta_schedule("linear_zsnr", 1000))
  np.testing.assert_allclose(floored[-1], min(2.0**-24, abar[-2] / 2), rtol=1e-9)
  assert np.all(np.diff(floored) < 0)
  np.testing.assert_allclose(floored[:-1], abar[:-1], rtol=1e-9)


def test_catalog_lists_new_samplers_and_errors():
  names = catalog.sampler_names("discrete")
  for n in ("dpm-solver++-2m", "unipc-3", "deis-2", "pndm", "euler-ancestral", "edm-euler"):
    assert n in names
  assert "thresholding" in catalog.SAMPLERS["unipc-2"].options
  with pytest.raises(ValueError, match="multistep"):
    dpm.dpm_solver_sample(exact_eps_fn(gs.VPSDE()), gs.VPSDE(), jax.random.key(0), (2, 4),
                          algorithm="unipc", method="singlestep")
  with pytest.raises(ValueError, match="at least 4"):
    pndm.pndm_sample(lambda x, t, c: x, gs.get_schedule("linear", 100), jax.random.key(0),
                     (2, 4), num_steps=3)
  np.testing.assert_array_equal(dpm.multistep_orders(6, 3, True, "unipc", True), [1, 2, 3, 3, 3, 2])
  np.testing.assert_array_equal(dpm.multistep_orders(5, 3, True, "dpmsolver++", False),
                                [1, 2, 3, 2, 1])
