"""The floor under every diffusion-style family: noise processes, converters, guidance, the
trajectory scan, every sampler, and the registry that names them.

Modules:
  schedules     the discrete DDPM chain (beta schedules, respacing) as a noise process
  processes     VP / sub-VP / VE SDEs, cosine and discrete-view VP, the EDM sigma process
  posterior     q(x_t | x_0), the posterior q(x_{t-1} | x_t, x_0), p(x_{t-1} | x_t)
  convert       eps / x0 / v / score conversions and the denoiser contract
  guidance      classifier-free and classifier guidance as transforms of a denoiser
  scan          the one lax.scan trajectory loop
  ancestral     ancestral DDPM and DDIM
  sde           predictor-corrector and probability-flow ODE samplers
  dpm_solver    DPM-Solver 1/2/3, singlestep and multistep
  edm           Karras sigmas and the EDM Heun sampler
  langevin      annealed Langevin dynamics (NCSN)
  consistency   multistep consistency sampling
  conditional   inpainting, RePaint, colorization, SDEdit
  catalog       SamplingConfig and the samplers' catalog (no JAX: sample.py's flags)
  registry      the sampler registry: Model, run()

Every sampler is a pure function ``sampler(eps_fn, process, key, shape, *, cond=None, ...)``
of a denoiser ``eps_fn(x, t, cond)``: one ``lax.scan``, jit-able and vmap-able over keys. The
names below load their module on first use, so importing the catalog costs no JAX.

Example:
  >>> from genjax import sampling
  >>> sched = sampling.get_schedule("linear", 1000)
  >>> eps_fn = sampling.denoiser(lambda x, t, c: net(x, t, c), sched, prediction="eps")
  >>> x = sampling.ddim_sample(eps_fn, sched, jax.random.key(0), (16, 8, 8, 1), num_steps=50)
  >>> ns = sched.continuous()   # DPM-Solver runs in continuous time
  >>> eps_c = sampling.denoiser(lambda x, t, c: net(x, ns.discrete_time_input(t), c), ns)
  >>> x = sampling.dpm_solver_sample(eps_c, ns, jax.random.key(0), (16, 8, 8, 1), steps=20)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CORRECTORS": "sde",
    "CosineVPSDE": "processes",
    "DDIM_SPACINGS": "ancestral",
    "DiffusionSchedule": "schedules",
    "DiscreteVPSDE": "processes",
    "EDMProcess": "processes",
    "LEARNED_VAR_TYPES": "posterior",
    "MODES": "catalog",
    "Model": "registry",
    "ODEResult": "ode",
    "ODE_METHODS": "sde",
    "PREDICTIONS": "convert",
    "PREDICTORS": "sde",
    "Prediction": "convert",
    "ReverseSDE": "processes",
    "SAMPLERS": "catalog",
    "SCHEDULE_NAMES": "schedules",
    "SDE_NAMES": "processes",
    "SamplingConfig": "catalog",
    "SubVPSDE": "processes",
    "VAR_TYPES": "posterior",
    "VESDE": "processes",
    "VPSDE": "processes",
    "annealed_langevin_nfe": "langevin",
    "annealed_langevin_sample": "langevin",
    "as_prediction": "convert",
    "bcast": "processes",
    "betas_for_alpha_bar": "schedules",
    "class_labels": "registry",
    "classifier_free_eps": "guidance",
    "classifier_free_guidance": "guidance",
    "classifier_guidance": "guidance",
    "classifier_guided_eps": "guidance",
    "classifier_log_prob_grad": "guidance",
    "colorization": "conditional",
    "consistency_sample": "consistency",
    "ddim_sample": "ancestral",
    "ddim_step": "ancestral",
    "ddim_timesteps": "ancestral",
    "ddpm_sample": "ancestral",
    "default_taus": "consistency",
    "denoiser": "convert",
    "dpm_solver_nfe": "dpm_solver",
    "dpm_solver_sample": "dpm_solver",
    "drop_condition": "guidance",
    "edm_heun_nfe": "edm",
    "edm_heun_sample": "edm",
    "eps_from_prediction": "convert",
    "eps_from_score": "convert",
    "eps_from_v": "convert",
    "eps_from_x0": "convert",
    "eps_of": "convert",
    "extract": "schedules",
    "geometric_sigmas": "langevin",
    "get_beta_schedule": "schedules",
    "get_schedule": "schedules",
    "get_sde": "processes",
    "implicit_classifier_grad": "guidance",
    "karras_sigmas": "edm",
    "make_schedule": "schedules",
    "model_variance": "posterior",
    "noised_start": "conditional",
    "ode_sample": "sde",
    "ode_sample_adaptive": "sde",
    "odeint_dopri5": "ode",
    "p_mean_variance": "posterior",
    "pc_nfe": "sde",
    "pc_sample": "sde",
    "predict_eps_from_x0": "convert",
    "predict_v": "convert",
    "predict_x0_from_eps": "convert",
    "prediction_to_eps_x0": "convert",
    "q_mean_variance": "posterior",
    "q_posterior_mean_variance": "posterior",
    "q_sample": "posterior",
    "repaint_sample": "conditional",
    "repaint_schedule": "conditional",
    "replacement": "conditional",
    "respace": "schedules",
    "run": "registry",
    "run_scan": "scan",
    "score_fn_of": "convert",
    "score_from_eps": "convert",
    "space_timesteps": "schedules",
    "split_learned_output": "convert",
    "start_time": "conditional",
    "trajectory_steps": "scan",
    "v_from_eps_x0": "convert",
    "x0_fn_of": "convert",
    "x0_from_eps": "convert",
    "x0_from_v": "convert",
}

_SUBMODULES = ("ancestral", "catalog", "conditional", "consistency", "convert", "dpm_solver", "edm",
               "guidance", "langevin", "ode", "posterior", "processes", "registry", "scan",
               "schedules", "sde")

__all__ = sorted(_EXPORTS)


def __getattr__(name):
  """Loads ``genjax.sampling.<module>`` on the first use of one of its names (PEP 562)."""
  if name in _EXPORTS:
    value = getattr(importlib.import_module(f"genjax.sampling.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
  if name in _SUBMODULES:
    return importlib.import_module(f"genjax.sampling.{name}")
  raise AttributeError(f"module 'genjax.sampling' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))
