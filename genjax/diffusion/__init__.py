"""Discrete-time Gaussian diffusion: schedules, q / posterior math, the VLB, losses, samplers.

Pure functions of arrays (DESIGN.md item 1). Timesteps are zero-based, ``t in {0..T-1}``,
where index ``t`` is the paper's step ``t+1`` (improved-diffusion / diffusers convention).

Example:
  >>> from genjax import diffusion
  >>> sched = diffusion.get_schedule("linear", 1000)
  >>> x = diffusion.ddim_sample(eps_fn, sched, jax.random.key(0), (16, 8, 8, 1), num_steps=50)
"""

from genjax.diffusion.gaussian import (
    PARAMETERIZATIONS,
    VAR_TYPES,
    approx_standard_normal_cdf,
    as_eps_fn,
    discretized_gaussian_log_likelihood,
    eps_from_v,
    full_vlb_bpd,
    mean_flat,
    model_output_to_eps_x0,
    model_variance,
    normal_kl,
    p_mean_variance,
    predict_eps_from_x0,
    predict_v,
    predict_x0_from_eps,
    prior_bpd,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    vlb_terms_bpd,
    x0_from_v,
)
from genjax.diffusion.losses import LOSS_TYPES, make_ddpm_loss
from genjax.diffusion.samplers import (
    DDIM_SPACINGS,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    trajectory_steps,
)
from genjax.diffusion.schedules import (
    SCHEDULE_NAMES,
    DiffusionSchedule,
    betas_for_alpha_bar,
    extract,
    get_beta_schedule,
    get_schedule,
    make_schedule,
)

# `from genjax.diffusion import q_posterior` (DESIGN.md) reads naturally; it is the same function.
q_posterior = q_posterior_mean_variance

__all__ = [
    "DDIM_SPACINGS",
    "DiffusionSchedule",
    "LOSS_TYPES",
    "PARAMETERIZATIONS",
    "SCHEDULE_NAMES",
    "VAR_TYPES",
    "approx_standard_normal_cdf",
    "as_eps_fn",
    "betas_for_alpha_bar",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "discretized_gaussian_log_likelihood",
    "eps_from_v",
    "extract",
    "full_vlb_bpd",
    "get_beta_schedule",
    "get_schedule",
    "make_ddpm_loss",
    "make_schedule",
    "mean_flat",
    "model_output_to_eps_x0",
    "model_variance",
    "normal_kl",
    "p_mean_variance",
    "predict_eps_from_x0",
    "predict_v",
    "predict_x0_from_eps",
    "prior_bpd",
    "q_mean_variance",
    "q_posterior",
    "q_posterior_mean_variance",
    "q_sample",
    "trajectory_steps",
    "vlb_terms_bpd",
    "x0_from_v",
]
