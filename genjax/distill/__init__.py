"""Distillation of diffusion models into few-step samplers: consistency models (Song et al.
2023) and progressive distillation (Salimans & Ho 2022)."""

from genjax.distill.consistency import (cd_loss, cm_sigmas, consistency_precond,
                                        consistency_sample, ct_loss, ct_num_scales,
                                        ct_target_decay, default_taus, make_consistency_fn,
                                        ode_step)

__all__ = ["cd_loss", "cm_sigmas", "consistency_precond", "consistency_sample", "ct_loss",
           "ct_num_scales", "ct_target_decay", "default_taus", "make_consistency_fn", "ode_step"]
