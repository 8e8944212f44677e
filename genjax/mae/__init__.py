"""The masked autoencoder (He et al. 2022): masking, loss and linear probing as pure functions;
the ``"mae"`` method in :mod:`genjax.mae.method`, its networks in :mod:`genjax.nets.vit`."""

from genjax.mae.masking import masked_patch_loss, normalize_patch_targets, num_visible, random_masking
from genjax.mae.probe import linear_probe_accuracy

__all__ = ["linear_probe_accuracy", "masked_patch_loss", "normalize_patch_targets",
           "num_visible", "random_masking"]
