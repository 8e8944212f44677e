"""Score-based generative models: NCSN, score SDEs, PC / probability-flow ODE samplers, exact
likelihood and EDM (Song & Ermon 2019; Song et al. 2021; Karras et al. 2022).

Pure functions of arrays (DESIGN.md item 1). Continuous time lies in ``[eps, 1]``; samplers take
``score_fn(x, t)`` (SDEs), ``score_fn(x, sigma)`` (NCSN) or ``denoise_fn(x, sigma)`` (EDM)
callables and are one ``lax.scan`` each. The eps / score relation is :mod:`genjax.score.convert`.

Example:
  >>> from genjax import score
  >>> sde = score.VPSDE()
  >>> score_fn = score.score_fn_from_eps_fn(eps_fn, sde.marginal_std)
  >>> x = score.pc_sample(sde, score_fn, jax.random.key(0), (16, 8, 8, 1), snr=0.01)
  >>> x = score.ode_sample(sde, score_fn, jax.random.key(0), (16, 8, 8, 1), steps=50)
  >>> bpd, res = score.bits_per_dim(sde, score_fn, images, jax.random.key(1), num_levels=256)
"""

from genjax.score.convert import (denoiser_from_score_fn, discrete_score_fn,
                                  eps_fn_from_score_fn, eps_from_score, score_fn_from_eps_fn,
                                  score_from_eps)
from genjax.score.edm import (EDMPrecond, edm_heun_nfe, edm_heun_sample, edm_precond,
                              karras_sigmas, make_edm_denoiser, make_edm_loss)
from genjax.score.likelihood import (HUTCHINSON_TYPES, LIKELIHOOD_METHODS, LikelihoodResult,
                                     bits_per_dim, divergence, ode_likelihood,
                                     uniform_dequantize)
from genjax.score.losses import make_sde_loss
from genjax.score.ncsn import (annealed_langevin_nfe, annealed_langevin_sample,
                               geometric_sigmas, make_ncsn_loss)
from genjax.score.ode import ODEResult, odeint_dopri5
from genjax.score.samplers import (CORRECTORS, ODE_METHODS, PREDICTORS,
                                   ancestral_sampling_predictor, ald_corrector,
                                   euler_maruyama_predictor, langevin_corrector, ode_sample,
                                   ode_sample_adaptive, pc_nfe, pc_sample,
                                   reverse_diffusion_predictor)
from genjax.score.sde import SDE_NAMES, VESDE, VPSDE, ReverseSDE, SubVPSDE, get_sde

__all__ = [
    "CORRECTORS", "EDMPrecond", "HUTCHINSON_TYPES", "LIKELIHOOD_METHODS", "LikelihoodResult",
    "ODEResult", "ODE_METHODS", "PREDICTORS", "ReverseSDE", "SDE_NAMES", "SubVPSDE", "VESDE",
    "VPSDE", "ald_corrector", "ancestral_sampling_predictor", "annealed_langevin_nfe",
    "annealed_langevin_sample", "bits_per_dim", "denoiser_from_score_fn", "discrete_score_fn",
    "divergence", "edm_heun_nfe", "edm_heun_sample", "edm_precond", "eps_fn_from_score_fn",
    "eps_from_score", "euler_maruyama_predictor", "geometric_sigmas", "get_sde",
    "karras_sigmas", "langevin_corrector", "make_edm_denoiser", "make_edm_loss",
    "make_ncsn_loss", "make_sde_loss", "ode_likelihood", "ode_sample", "ode_sample_adaptive",
    "odeint_dopri5", "pc_nfe", "pc_sample", "reverse_diffusion_predictor", "score_fn_from_eps_fn",
    "score_from_eps", "uniform_dequantize",
]
