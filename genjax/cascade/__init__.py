"""Cascaded diffusion (Ho et al. 2021; seed 003 Sec. 2.6.1): a base model and
super-resolution stages conditioned on the image of the stage below, with noise-conditioning
augmentation.

Modules:
  augment   noise-conditioning augmentation (Gaussian / truncated), down- and upsampling
  method    one cascade stage as a trainer Method (``config.method = "cascade"``)
  chain     sampling a whole chain and writing every stage's grid side by side
"""

from genjax.cascade.augment import (AUGMENTATIONS, augment_condition, augmentation_coeffs,
                                    downsample, sample_aug_levels, upsample)

__all__ = ["AUGMENTATIONS", "augment_condition", "augmentation_coeffs", "downsample",
           "sample_aug_levels", "upsample"]
