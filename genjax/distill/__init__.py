"""Distillation of diffusion models into few-step samplers: consistency models (Song et al.
2023) and progressive distillation (Salimans & Ho 2022). Their samplers (consistency sampling,
a student's DDIM) are on the sampling floor, :mod:`genjax.sampling`."""

from genjax.distill.consistency import (cd_loss, cm_sigmas, consistency_precond, ct_loss,
                                        ct_num_scales, ct_target_decay, make_consistency_fn,
                                        ode_step)
from genjax.distill.progressive import distillation_target, make_x0_fn, pd_loss

__all__ = ["cd_loss", "cm_sigmas", "consistency_precond", "ct_loss", "ct_num_scales",
           "ct_target_decay", "distillation_target", "make_consistency_fn", "make_x0_fn",
           "ode_step", "pd_loss"]
