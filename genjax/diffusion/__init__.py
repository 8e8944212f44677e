"""Discrete-time Gaussian diffusion: schedules, q / posterior math, the VLB, losses, samplers.

Pure functions of arrays (DESIGN.md item 1). Timesteps are zero-based, ``t in {0..T-1}``,
where index ``t`` is the paper's step ``t+1`` (improved-diffusion / diffusers convention).

Improved DDPM (Nichol & Dhariwal 2021): ``var_type="learned_range"`` in the samplers and the
VLB, ``make_ddpm_loss(..., loss_type="hybrid")``, importance-sampled timesteps
(:mod:`~genjax.diffusion.timestep_sampling`). Classifier and classifier-free guidance of eps:
:mod:`~genjax.diffusion.guidance`. DPM-Solver lives in :mod:`genjax.score.dpm_solver`.

Example:
  >>> from genjax import diffusion
  >>> sched = diffusion.get_schedule("linear", 1000)
  >>> x = diffusion.ddim_sample(eps_fn, sched, jax.random.key(0), (16, 8, 8, 1), num_steps=50)
"""

from genjax.diffusion.gaussian import (
    LEARNED_VAR_TYPES,
    PARAMETERIZATIONS,
    VAR_TYPES,
    approx_standard_normal_cdf,
    as_eps_fn,
    decoder_nll_bpd,
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
    split_learned_output,
    unpack_model_output,
    vlb_terms_bpd,
    x0_from_v,
)
from genjax.diffusion.guidance import (classifier_free_eps, classifier_guided_eps,
                                       implicit_classifier_grad)
from genjax.diffusion.losses import (LOSS_TYPES, make_ddpm_loss, make_ddpm_loss_terms,
                                     quarter_metrics, vb_term_bpd)
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
    respace,
    space_timesteps,
)
from genjax.diffusion.timestep_sampling import (
    TIMESTEP_SAMPLERS,
    init_loss_history,
    loss_second_moment_probs,
    sample_timesteps,
    update_loss_history,
)

# `from genjax.diffusion import q_posterior` (DESIGN.md) reads naturally; it is the same function.
q_posterior = q_posterior_mean_variance

__all__ = [
    "DDIM_SPACINGS",
    "DiffusionSchedule",
    "LEARNED_VAR_TYPES",
    "LOSS_TYPES",
    "PARAMETERIZATIONS",
    "SCHEDULE_NAMES",
    "TIMESTEP_SAMPLERS",
    "VAR_TYPES",
    "approx_standard_normal_cdf",
    "as_eps_fn",
    "betas_for_alpha_bar",
    "classifier_free_eps",
    "classifier_guided_eps",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "decoder_nll_bpd",
    "discretized_gaussian_log_likelihood",
    "eps_from_v",
    "extract",
    "full_vlb_bpd",
    "get_beta_schedule",
    "get_schedule",
    "implicit_classifier_grad",
    "init_loss_history",
    "loss_second_moment_probs",
    "make_ddpm_loss",
    "make_ddpm_loss_terms",
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
    "quarter_metrics",
    "respace",
    "sample_timesteps",
    "space_timesteps",
    "split_learned_output",
    "trajectory_steps",
    "unpack_model_output",
    "update_loss_history",
    "vb_term_bpd",
    "vlb_terms_bpd",
    "x0_from_v",
]
