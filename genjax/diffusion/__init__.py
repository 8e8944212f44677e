"""Discrete-time Gaussian diffusion: DDPM and improved DDPM's losses and variational bound.

Pure functions of arrays (DESIGN.md item 1). Timesteps are zero-based, ``t in {0..T-1}``,
where index ``t`` is the paper's step ``t+1`` (improved-diffusion / diffusers convention).

The family's own math is the training loss (:mod:`~genjax.diffusion.losses`: L_simple,
L_hybrid, L_vlb), the variational bound in bits/dim (:mod:`~genjax.diffusion.vlb`), improved
DDPM's importance-sampled timesteps (:mod:`~genjax.diffusion.timestep_sampling`) and the
trainer method. The noise process, the posterior and every sampler are on the sampling floor,
:mod:`genjax.sampling`; the DDPM math of that floor is also importable from here
(``from genjax.diffusion import q_posterior``).

Example:
  >>> from genjax import diffusion, sampling
  >>> sched = diffusion.get_schedule("linear", 1000)
  >>> x = sampling.ddim_sample(eps_fn, sched, jax.random.key(0), (16, 8, 8, 1), num_steps=50)
"""

from genjax.diffusion.losses import (LOSS_TYPES, PARAMETERIZATIONS, make_ddpm_loss,
                                     make_ddpm_loss_terms, quarter_metrics, vb_term_bpd)
from genjax.diffusion.timestep_sampling import (TIMESTEP_SAMPLERS, init_loss_history,
                                                loss_second_moment_probs, sample_timesteps,
                                                update_loss_history)
from genjax.diffusion.vlb import (approx_standard_normal_cdf, decoder_nll_bpd,
                                  discretized_gaussian_log_likelihood, full_vlb_bpd, mean_flat,
                                  normal_kl, prior_bpd, vlb_terms_bpd)
from genjax.sampling.posterior import (LEARNED_VAR_TYPES, VAR_TYPES, model_variance,
                                       p_mean_variance, q_mean_variance,
                                       q_posterior_mean_variance, q_sample)
from genjax.sampling.schedules import (SCHEDULE_NAMES, DiffusionSchedule, betas_for_alpha_bar,
                                       extract, get_beta_schedule, get_schedule, make_schedule,
                                       respace, space_timesteps)

# `from genjax.diffusion import q_posterior` (DESIGN.md) reads naturally; it is the same function.
q_posterior = q_posterior_mean_variance

__all__ = [
    "DiffusionSchedule", "LEARNED_VAR_TYPES", "LOSS_TYPES", "PARAMETERIZATIONS",
    "SCHEDULE_NAMES", "TIMESTEP_SAMPLERS", "VAR_TYPES", "approx_standard_normal_cdf",
    "betas_for_alpha_bar", "decoder_nll_bpd", "discretized_gaussian_log_likelihood", "extract",
    "full_vlb_bpd", "get_beta_schedule", "get_schedule", "init_loss_history",
    "loss_second_moment_probs", "make_ddpm_loss", "make_ddpm_loss_terms", "make_schedule",
    "mean_flat", "model_variance", "normal_kl", "p_mean_variance", "prior_bpd",
    "q_mean_variance", "q_posterior", "q_posterior_mean_variance", "q_sample",
    "quarter_metrics", "respace", "sample_timesteps", "space_timesteps",
    "update_loss_history", "vb_term_bpd", "vlb_terms_bpd",
]
