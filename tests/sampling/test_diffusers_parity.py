"""Parity with diffusers' schedulers on the same model outputs (diffusers is a test-only extra).

The model is the exact noise predictor of Gaussian data, a function of ``(x, alpha_t, sigma_t)``
only, so both sides evaluate the same outputs when they visit the same noise levels: diffusers
at its integer ``timesteps`` (``alpha = sqrt(abar_t)``), genjax on the discrete schedule (PNDM)
or its continuous view at ``t_n = (n + 1) / N`` (the exponential integrators; the same ``abar``),
and Euler-ancestral at diffusers' own sigmas. diffusers runs its updates in float32, so the
tolerance is 1e-5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from genjax import sampling as gs  # noqa: E402
from genjax.sampling import dpm_solver as dpm  # noqa: E402
from genjax.sampling import edm, pndm, thresholding  # noqa: E402

MU = np.array([0.5, -0.3, 1.0, -1.0])
S = np.array([0.1, 0.3, 1.0, 1.5])
SHAPE = (6, 1, 2, 4)  # [B, C, H, W] for diffusers' thresholding; genjax is layout-free
N_T = 1000


def _eps(x, a, s):
  return s * (x - a * MU) / (a**2 * S**2 + s**2)


def _schedule():
  betas = np.linspace(1e-4, 0.02, N_T, dtype=np.float32).astype(np.float64)  # diffusers' float32
  return gs.make_schedule(betas, dtype=jnp.float64)


def _x_T():
  return np.random.default_rng(0).normal(size=SHAPE)


def _run_diffusers(sch, x, model, generator_noises=None):
  xt = torch.tensor(x, dtype=torch.float64)
  for t in sch.timesteps:
    xt = sch.step(model(xt, t), t, xt).prev_sample.to(torch.float64)
  return xt.numpy()


def _abar_model(sch):
  abar = sch.alphas_cumprod.double()
  def model(x, t):
    a = abar[int(t)].sqrt()
    return torch.tensor(_eps(x.numpy(), a.item(), (1 - abar[int(t)]).sqrt().item()))
  return model


def _genjax_eps(ns, fn=None):
  def eps_fn(x, t, cond=None):
    return _eps(x, ns.marginal_alpha(t), ns.marginal_std(t))
  return thresholding.threshold_denoiser(eps_fn, ns, fn)


@pytest.mark.parametrize("order,steps,thr", [(2, 10, False), (2, 20, True), (1, 8, False)])
def test_dpmsolver_pp_multistep(order, steps, thr):
  sch = diffusers.DPMSolverMultistepScheduler(
      num_train_timesteps=N_T, algorithm_type="dpmsolver++", solver_order=order,
      thresholding=thr, sample_max_value=1.5)
  sch.set_timesteps(steps)
  ref = _run_diffusers(sch, _x_T(), _abar_model(sch))
  with jax.enable_x64(True):
    ns = _schedule().continuous()
    fn = thresholding.x0_processor("dynamic", percentile=0.995, max_value=1.5) if thr else None
    ts = dpm.timesteps_from_discrete(sch.timesteps.numpy(), N_T)
    x = dpm.dpm_solver_sample(_genjax_eps(ns, fn), ns, jax.random.key(0), SHAPE, order=order,
                              method="multistep", algorithm="dpmsolver++", timesteps=ts,
                              x_T=jnp.asarray(_x_T()), denoise_to_zero=True,
                              lower_order_final=True)
  np.testing.assert_allclose(np.asarray(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order,variant,steps", [(1, "bh2", 6), (2, "bh2", 10), (2, "bh1", 10),
                                                 (3, "bh2", 12), (3, "bh1", 20)])
def test_unipc(order, variant, steps):
  # bh1's B(h) = -h is infinite on diffusers' final step to sigma = 0 (NaN there): with bh1 both
  # sides end at the first level instead.
  final = "zero" if variant == "bh2" else "sigma_min"
  sch = diffusers.UniPCMultistepScheduler(num_train_timesteps=N_T, solver_order=order,
                                          solver_type=variant, predict_x0=True,
                                          final_sigmas_type=final)
  sch.set_timesteps(steps)
  ref = _run_diffusers(sch, _x_T(), _abar_model(sch))
  with jax.enable_x64(True):
    ns = _schedule().continuous()
    grid = sch.timesteps.numpy() if final == "zero" else np.append(sch.timesteps.numpy(), 0)
    x = dpm.dpm_solver_sample(_genjax_eps(ns), ns, jax.random.key(0), SHAPE, order=order,
                              method="multistep", algorithm="unipc", variant=variant,
                              timesteps=dpm.timesteps_from_discrete(grid, N_T),
                              x_T=jnp.asarray(_x_T()), denoise_to_zero=final == "zero",
                              lower_order_final=True)
  np.testing.assert_allclose(np.asarray(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order,steps", [(1, 8), (2, 10), (3, 12), (3, 20)])
def test_deis_log_rho(order, steps):
  sch = diffusers.DEISMultistepScheduler(num_train_timesteps=N_T, solver_order=order)
  sch.set_timesteps(steps)
  ref = _run_diffusers(sch, _x_T(), _abar_model(sch))
  with jax.enable_x64(True):
    ns = _schedule().continuous()
    grid = np.append(sch.timesteps.numpy(), 0)  # diffusers' last step goes to abar_0
    x = dpm.dpm_solver_sample(_genjax_eps(ns), ns, jax.random.key(0), SHAPE, order=order,
                              method="multistep", algorithm="deis", variant="log_rho",
                              timesteps=dpm.timesteps_from_discrete(grid, N_T),
                              x_T=jnp.asarray(_x_T()), lower_order_final=True)
  # diffusers' DEIS keeps its log-rho coefficients in float32: at order 3 over 20 steps its
  # rounding reaches 2.5e-5 (diffusers 0.37); genjax runs in float64.
  np.testing.assert_allclose(np.asarray(x), ref, rtol=5e-5, atol=5e-5)


@pytest.mark.parametrize("steps", [10, 30])
def test_pndm(steps):
  sch = diffusers.PNDMScheduler(num_train_timesteps=N_T, skip_prk_steps=False)
  sch.set_timesteps(steps)
  ref = _run_diffusers(sch, _x_T(), _abar_model(sch))
  assert len(sch.timesteps) == pndm.pndm_nfe(steps)
  with jax.enable_x64(True):
    sched = _schedule()

    def eps_fn(x, t, cond=None):
      return _eps(x, sched.marginal_alpha(t), sched.marginal_std(t))

    x = pndm.pndm_sample(eps_fn, sched, jax.random.key(0), SHAPE, num_steps=steps,
                         spacing="leading", set_alpha_to_one=False, x_T=jnp.asarray(_x_T()))
  np.testing.assert_allclose(np.asarray(x), ref, rtol=1e-5, atol=1e-5)


def test_euler_ancestral(monkeypatch):
  steps = 12
  sch = diffusers.EulerAncestralDiscreteScheduler(num_train_timesteps=N_T)
  sch.set_timesteps(steps)
  sigmas = sch.sigmas.numpy().astype(np.float64)
  key = jax.random.key(3)
  k_steps = jax.random.split(key)[1]
  with jax.enable_x64(True):
    noises = [np.asarray(jax.random.normal(k, SHAPE, jnp.float64))
              for k in jax.random.split(k_steps, steps)]
  from diffusers.schedulers import scheduling_euler_ancestral_discrete as mod
  it = iter(noises)
  monkeypatch.setattr(mod, "randn_tensor", lambda *a, **k: torch.tensor(next(it)))
  z = _x_T()
  xt = torch.tensor(z * float(sch.init_noise_sigma), dtype=torch.float64)
  for t in sch.timesteps:
    sig = float(sch.sigmas[sch.step_index if sch.step_index is not None else 0])
    x_in = sch.scale_model_input(xt, t)
    a = 1.0 / np.sqrt(sig**2 + 1.0)
    m = torch.tensor(_eps(x_in.numpy(), a, sig * a))
    xt = sch.step(m, t, xt).prev_sample.to(torch.float64)
  with jax.enable_x64(True):
    ns = _schedule().continuous()
    x = edm.euler_ancestral_sample(_genjax_eps(ns), ns, key, SHAPE, sigmas=sigmas,
                                   x_T=jnp.asarray(z))
  np.testing.assert_allclose(np.asarray(x), xt.numpy(), rtol=1e-5, atol=1e-5)
