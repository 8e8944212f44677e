"""Generative adversarial networks (Goodfellow et al. 2014; seed 000 sec. 2.2, seed 002).

Pure functions of discriminator outputs (``losses``), the closed forms of the paper
(``theory``), Algorithm 2 with two optimizers (``algorithm``), mode-collapse diagnostics
(``diagnostics``); ``method.build_gan`` plugs them into the generic trainer (``config.method = "gan"``).

Example:
  >>> from genjax import gan
  >>> gan.optimal_value(0.0)  # p_g = p_data: C(G) = -log 4
  -1.3862943611198906
"""

from genjax.gan.algorithm import GANLossConfig
from genjax.gan.algorithm import GANOptimizers
from genjax.gan.algorithm import init_opt_state
from genjax.gan.algorithm import make_discriminator_loss
from genjax.gan.algorithm import make_generator_loss
from genjax.gan.algorithm import make_train_step
from genjax.gan.diagnostics import mode_statistics
from genjax.gan.losses import discriminator_loss
from genjax.gan.losses import generator_loss_non_saturating
from genjax.gan.losses import generator_loss_saturating
from genjax.gan.losses import get_loss_pair
from genjax.gan.losses import gradient_penalty
from genjax.gan.losses import hinge_discriminator_loss
from genjax.gan.losses import hinge_generator_loss
from genjax.gan.losses import input_gradient_norms
from genjax.gan.losses import interpolates
from genjax.gan.losses import LOSSES
from genjax.gan.losses import lsgan_discriminator_loss
from genjax.gan.losses import lsgan_generator_loss
from genjax.gan.losses import r1_penalty
from genjax.gan.losses import value_function
from genjax.gan.losses import wasserstein_critic_loss
from genjax.gan.losses import wasserstein_generator_loss
from genjax.gan.theory import jensen_shannon_divergence
from genjax.gan.theory import optimal_discriminator
from genjax.gan.theory import optimal_discriminator_logit
from genjax.gan.theory import optimal_value

__all__ = [
    "GANLossConfig",
    "GANOptimizers",
    "LOSSES",
    "discriminator_loss",
    "generator_loss_non_saturating",
    "generator_loss_saturating",
    "get_loss_pair",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "init_opt_state",
    "input_gradient_norms",
    "interpolates",
    "jensen_shannon_divergence",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "make_discriminator_loss",
    "make_generator_loss",
    "make_train_step",
    "mode_statistics",
    "optimal_discriminator",
    "optimal_discriminator_logit",
    "optimal_value",
    "r1_penalty",
    "value_function",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
]
