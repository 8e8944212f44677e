"""DPM-Solver (Lu et al. 2022) and the VP processes it runs on, on Gaussian data.

For data ``x_0 ~ N(mu, s^2)`` (independent dimensions) under a VP schedule, the marginal is
``N(alpha_t mu, alpha_t^2 s^2 + sigma_t^2)``, the exact noise predictor is
``eps*(x, t) = sigma_t (x - alpha_t mu) / (alpha_t^2 s^2 + sigma_t^2)``, and the diffusion ODE
maps ``x_T`` to ``x_t`` by keeping each dimension's z-score (an affine map, known in closed
form). The tests check:

1. the noise schedules against their closed forms and ``inverse_lambda`` as an inverse;
2. DPM-Solver-1 == DDIM (eta = 0) on the same discrete steps, with a nonlinear network;
3. the convergence order of DPM-Solver-2 / -3 (float64): global error against a 1000-step
   reference vs. the number of steps, slope ~2 and ~3 on log-log axes; and the local error of
   one multistep update, slope ~3 and ~4 (orders 2 and 3);
4. sample mean / std against the data's marginal;
5. trajectories, vmap over keys, and clear errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import diffusion as d
from genjax import sampling as gs
from genjax.sampling import dpm_solver as dpm

MU = np.array([0.5, -0.3, 0.8, -1.0])
S = np.array([0.1, 0.3, 1.0, 1.5])


def exact_eps_fn(ns, mu=MU, s=S):
  def eps_fn(x, t, cond=None):
    t = jnp.broadcast_to(t, x.shape[:1])
    a, sg = ns.marginal_alpha(t)[:, None], ns.marginal_std(t)[:, None]
    return sg * (x - a * mu) / (a**2 * s**2 + sg**2)
  return eps_fn


def exact_flow(ns, x_start, t_start, t_end, mu=MU, s=S):
  """The diffusion ODE's solution for Gaussian data: the z-score is constant along the flow."""
  a0, s0 = float(ns.marginal_alpha(t_start)), float(ns.marginal_std(t_start))
  a1, s1 = float(ns.marginal_alpha(t_end)), float(ns.marginal_std(t_end))
  return a1 * mu + np.sqrt(a1**2 * s**2 + s1**2) / np.sqrt(a0**2 * s**2 + s0**2) * (
      np.asarray(x_start) - a0 * mu)


def test_noise_schedules_closed_forms():
  with jax.enable_x64(True):
    sched = d.get_schedule("linear", 1000, dtype=jnp.float64)
    disc = sched.continuous()
    n = np.array([0, 1, 499, 998, 999])
    tn = (n + 1) / 1000.0
    np.testing.assert_allclose(disc.marginal_log_mean_coeff(jnp.asarray(tn)),
                               0.5 * np.log(np.asarray(sched.alphas_cumprod)[n]), rtol=1e-12)
    np.testing.assert_allclose(disc.discrete_time_input(jnp.asarray(tn)), n, atol=1e-9)
    lin = gs.VPSDE(beta_min=0.1, beta_max=20.0)
    t = np.linspace(1e-3, 1.0, 7)
    # log alpha_t = -1/2 int_0^t beta(s) ds, beta(s) = 0.1 + 19.9 s (Song et al. 2021, VP SDE).
    np.testing.assert_allclose(lin.marginal_log_mean_coeff(jnp.asarray(t)),
                               -0.5 * (0.1 * t + 19.9 * t**2 / 2), rtol=1e-12)
    cos = gs.CosineVPSDE()
    f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2)
    tc = np.linspace(1e-3, cos.T, 7)
    np.testing.assert_allclose(cos.marginal_alpha(jnp.asarray(tc)) ** 2, (f(tc) / f(0)) ** 2,
                               rtol=1e-10)
    for ns, ts in ((disc, np.linspace(1e-3, 1.0, 9)), (lin, t), (cos, tc)):
      ts = jnp.asarray(ts)
      np.testing.assert_allclose(ns.marginal_alpha(ts) ** 2 + ns.marginal_std(ts) ** 2, 1.0,
                                 rtol=1e-12)
      lam = ns.marginal_lambda(ts)
      np.testing.assert_allclose(lam, np.log(ns.marginal_alpha(ts) / ns.marginal_std(ts)),
                                 rtol=1e-10)
      assert np.all(np.diff(np.asarray(lam)) < 0)
      np.testing.assert_allclose(ns.inverse_lambda(lam), ts, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("schedule,spacing", [("linear", "uniform"), ("cosine", "quadratic")])
def test_order1_equals_ddim_on_the_same_steps(schedule, spacing):
  """DPM-Solver-1 on t_n = (n+1)/N of DDIM's steps n (plus the final x0 step) is DDIM, eta=0.

  The network is nonlinear in x and t, and DPM-Solver calls it at (t - 1/N) N, which must be
  DDIM's integer step.
  """
  num_t = 1000
  sched = d.get_schedule(schedule, num_t)
  ns = sched.continuous()

  def net(x, t, cond=None):  # a stand-in network: t is the zero-based step (int or float)
    tf = jnp.asarray(t, jnp.float32)
    return jnp.tanh(x * (1.0 + tf / num_t)) + 0.1 * jnp.sin(tf / 37.0)

  tau = gs.ddim_timesteps(num_t, 10, spacing)
  key = jax.random.key(0)
  shape = (3, 4, 4, 1)
  x_T = jax.random.normal(key, shape)
  ddim = gs.ddim_sample(net, sched, key, shape, timesteps=tau, x_T=x_T)
  ts = dpm.timesteps_from_discrete(tau, num_t)
  eps_c = gs.denoiser(lambda x, t, c: net(x, ns.discrete_time_input(t)), ns)
  for method in ("singlestep", "multistep"):
    out = dpm.dpm_solver_sample(eps_c, ns, key, shape, order=1, method=method, timesteps=ts,
                                x_T=x_T, denoise_to_zero=True)
    np.testing.assert_allclose(out, ddim, rtol=1e-4, atol=2e-5)


def _global_errors(ns, order, method, num_intervals, x_T, ref, t_end):
  lam_T, lam_0 = ns.marginal_lambda(1.0), ns.marginal_lambda(t_end)
  errs = []
  for m in num_intervals:
    ts = np.array(ns.inverse_lambda(jnp.linspace(lam_T, lam_0, m + 1)))
    ts[0], ts[-1] = 1.0, t_end
    x = dpm.dpm_solver_sample(exact_eps_fn(ns), ns, None, x_T.shape, order=order, method=method,
                              timesteps=ts, x_T=x_T)
    errs.append(float(np.abs(np.asarray(x) - ref).max()))
  return np.array(errs)


def _slope(ns_, errs):
  return -np.polyfit(np.log(ns_), np.log(errs), 1)[0]


def test_convergence_order():
  """Error vs. a 1000-step reference falls as h^2 / h^3 (uniform logSNR steps, float64)."""
  with jax.enable_x64(True):
    ns = gs.VPSDE()
    t_end = 1e-3
    x_T = jax.random.normal(jax.random.key(0), (16, 4), jnp.float64)
    lam = jnp.linspace(ns.marginal_lambda(1.0), ns.marginal_lambda(t_end), 1001)
    ts_ref = np.array(ns.inverse_lambda(lam))
    ts_ref[0], ts_ref[-1] = 1.0, t_end
    ref = np.asarray(dpm.dpm_solver_sample(exact_eps_fn(ns), ns, None, x_T.shape, order=3,
                                           timesteps=ts_ref, x_T=x_T))
    # The reference itself is the exact flow to ~1e-10.
    np.testing.assert_allclose(ref, exact_flow(ns, x_T, 1.0, t_end), atol=1e-8)
    m = np.array([10, 20, 40])
    e2 = _global_errors(ns, 2, "singlestep", m, x_T, ref, t_end)
    e3 = _global_errors(ns, 3, "singlestep", m, x_T, ref, t_end)
    em2 = _global_errors(ns, 2, "multistep", 2 * m, x_T, ref, t_end)
    assert 1.8 < _slope(m, e2) < 2.4, e2
    assert 2.7 < _slope(m, e3) < 3.6, e3
    assert 1.8 < _slope(m, em2) < 2.3, em2
    assert e3[-1] < 1e-4 and e3[-1] > 1e3 * np.abs(ref - exact_flow(ns, x_T, 1.0, t_end)).max()


def test_multistep_local_order():
  """One multistep update from exact history: local error O(h^3) (order 2), O(h^4) (order 3).

  (A full multistep-3 run starts with one order-1 and one order-2 step, as the reference does,
  whose O(h^2) local error bounds its global order in the limit.)
  """
  with jax.enable_x64(True):
    ns = gs.VPSDE()
    eps_fn = exact_eps_fn(ns)
    x_half = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)))
    lam0 = float(ns.marginal_lambda(0.5))
    hs = np.array([0.2, 0.1, 0.05])
    err2, err3 = [], []
    for h in hs:
      ts = [float(ns.inverse_lambda(lam0 + k * h)) for k in (-2, -1, 0, 1)]
      xs = [jnp.asarray(exact_flow(ns, x_half, 0.5, t)) for t in ts]
      es = [eps_fn(x, jnp.asarray(t)) for x, t in zip(xs, ts)]
      x2 = dpm.multistep_second_update(ns, xs[2], es[1:3], ts[1:3], ts[3])
      x3 = dpm.multistep_third_update(ns, xs[2], es[:3], ts[:3], ts[3])
      err2.append(float(jnp.abs(x2 - xs[3]).max()))
      err3.append(float(jnp.abs(x3 - xs[3]).max()))
    assert 2.7 < _slope(1 / hs, err2) < 3.3, err2
    assert 3.7 < _slope(1 / hs, err3) < 4.3, err3


@pytest.mark.parametrize("order,method", [(2, "singlestep"), (3, "singlestep"),
                                          (2, "multistep"), (3, "multistep")])
def test_samples_match_gaussian_data(order, method):
  """50 NFE, logSNR steps: the mean and std of x at t_end = 1/N match N(alpha mu, ...)."""
  sched = d.get_schedule("linear", 1000)
  ns = sched.continuous()
  n = 10_000
  x = np.asarray(dpm.dpm_solver_sample(exact_eps_fn(ns), ns, jax.random.key(1), (n, 4),
                                       steps=50, order=order, method=method,
                                       skip_type="logSNR"))
  t_end = 1e-3
  a, sg = float(ns.marginal_alpha(t_end)), float(ns.marginal_std(t_end))
  mean, std = a * MU, np.sqrt(a**2 * S**2 + sg**2)
  assert np.all(np.abs(x.mean(0) - mean) < 5 * std / np.sqrt(n)), x.mean(0)
  assert np.all(np.abs(x.std(0) / std - 1) < 0.03 + 5 / np.sqrt(2 * n)), x.std(0) / std


def test_trajectory_vmap_and_errors():
  ns = gs.CosineVPSDE()
  eps_fn = exact_eps_fn(ns)
  shape = (5, 4)
  key = jax.random.key(2)
  for method, steps in (("singlestep", 8), ("multistep", 5)):  # orders [3, 3, 2] / 5 steps
    sample = jax.jit(lambda k, m=method, n=steps: dpm.dpm_solver_sample(
        eps_fn, ns, k, shape, steps=n, order=3, method=m, skip_type="logSNR",
        t_end=1e-3, trajectory_stride=2))
    x, traj = sample(key)
    n_steps = len(dpm.singlestep_orders(steps, 3)) if method == "singlestep" else steps
    assert traj.shape == (len(gs.trajectory_steps(n_steps, 2)),) + shape
    x_T = jax.random.normal(jax.random.split(key)[0], shape)  # the prior draw's key
    np.testing.assert_allclose(traj[0], x_T, rtol=1e-6)  # jit vs eager: ulps
    np.testing.assert_allclose(traj[-1], x)
    if method == "singlestep":
      keys = jax.random.split(key, 3)
      xs = jax.vmap(lambda k: sample(k)[0])(keys)
      np.testing.assert_allclose(xs[1], sample(keys[1])[0], rtol=1e-5, atol=1e-6)
  assert dpm.singlestep_orders(9, 3) == [3, 3, 2, 1]
  assert dpm.singlestep_orders(10, 3) == [3, 3, 3, 1]
  assert dpm.singlestep_orders(11, 3) == [3, 3, 3, 2]
  assert dpm.singlestep_orders(7, 2) == [2, 2, 2, 1]
  for steps, order in ((9, 3), (7, 2), (5, 1)):
    ts, orders = dpm.singlestep_timesteps(ns, steps, order, "time_uniform", ns.T, 1e-3)
    assert sum(orders) == steps and ts.shape == (len(orders) + 1,)
    np.testing.assert_allclose([ts[0], ts[-1]], [ns.T, 1e-3], rtol=1e-6)
  with pytest.raises(ValueError, match="order"):
    dpm.dpm_solver_sample(eps_fn, ns, key, shape, order=4)
  with pytest.raises(ValueError, match="skip_type"):
    dpm.dpm_solver_sample(eps_fn, ns, key, shape, skip_type="logsnr")
  with pytest.raises(ValueError, match="method"):
    dpm.dpm_solver_sample(eps_fn, ns, key, shape, method="adaptive")
  with pytest.raises(ValueError, match="decreasing"):
    dpm.dpm_solver_sample(eps_fn, ns, key, shape, timesteps=[0.1, 0.5])
  with pytest.raises(ValueError, match="x_T"):
    dpm.dpm_solver_sample(eps_fn, ns, key, shape, x_T=jnp.zeros((2, 4)))


def test_model_wrappers_convert_to_eps():
  """x0-, v- and score-networks become the same eps_fn(x, t_continuous) (continuous alpha, sigma)
  through genjax.sampling.denoiser on the schedule's continuous view."""
  sched = d.get_schedule("cosine", 100)
  ns = sched.continuous()
  eps_true = exact_eps_fn(ns)
  x = jax.random.normal(jax.random.key(0), (6, 4))
  t = jnp.linspace(0.02, 0.97, 6)
  a, s = ns.marginal_alpha(t)[:, None], ns.marginal_std(t)[:, None]
  step = lambda tin: (tin + 1.0) / 100  # the network's input is the zero-based step
  outs = {
      "eps": lambda xx, tin: eps_true(xx, step(tin)),
      "x0": lambda xx, tin: (xx - s * eps_true(xx, step(tin))) / a,
      "v": lambda xx, tin: a * eps_true(xx, step(tin)) - s * (xx - s * eps_true(xx, step(tin))) / a,
      "score": lambda xx, tin: -eps_true(xx, step(tin)) / s,
  }
  for model_type, fn in outs.items():
    net = lambda xx, tt, c, fn=fn: fn(xx, ns.discrete_time_input(tt))
    got = gs.denoiser(net, ns, prediction=model_type)(x, t, None)
    np.testing.assert_allclose(got, eps_true(x, t), rtol=2e-4, atol=2e-5, err_msg=model_type)
  with pytest.raises(ValueError, match="prediction"):
    gs.denoiser(outs["eps"], ns, prediction="noise")
