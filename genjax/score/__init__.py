"""Score-based generative models: NCSN, score SDEs with their exact likelihood, and EDM
(Song & Ermon 2019; Song et al. 2021; Karras et al. 2022).

The family's own math is the training losses (denoising score matching on an SDE, NCSN's
multi-level loss, EDM's preconditioning and loss) and the probability-flow likelihood. The
SDEs, the eps / score conversions and every sampler (predictor-corrector, the ODE, annealed
Langevin, DPM-Solver, EDM's Heun) live on the sampling floor, :mod:`genjax.sampling`.

Example:
  >>> from genjax import score, sampling
  >>> sde = sampling.VPSDE()
  >>> loss_fn = score.make_sde_loss(score_model, sde)
  >>> score_fn = sampling.score_fn_of(eps_fn, sde)
  >>> bpd, res = score.bits_per_dim(sde, score_fn, images, jax.random.key(1), num_levels=256)
"""

from genjax.score.edm import EDMPrecond, edm_precond, make_edm_denoiser, make_edm_loss
from genjax.score.likelihood import (HUTCHINSON_TYPES, LIKELIHOOD_METHODS, LikelihoodResult,
                                     bits_per_dim, divergence, ode_likelihood,
                                     uniform_dequantize)
from genjax.score.losses import make_sde_loss
from genjax.score.ncsn import make_ncsn_loss

__all__ = [
    "EDMPrecond", "HUTCHINSON_TYPES", "LIKELIHOOD_METHODS", "LikelihoodResult", "bits_per_dim",
    "divergence", "edm_precond", "make_edm_denoiser", "make_edm_loss", "make_ncsn_loss",
    "make_sde_loss", "ode_likelihood", "uniform_dequantize",
]
