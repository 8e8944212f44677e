"""Flax Linen networks. They know nothing of parallelism or of the method that trains them.

Call convention (docs/CONVENTIONS.md)::

  model.apply({"params": p}, x, t, y=None, train=False, rngs={"dropout": key})

Images are NHWC; discrete timesteps are zero-based ints ``t in {0..T-1}`` (index t is the
paper's step t+1); continuous times are embedded as given.
"""

from genjax.nets.layers import (AttnBlock, Downsample, Dropout, GroupNorm, ResBlock, Upsample,
                                default_init, normal_init, num_groups, timestep_embedding,
                                variance_scaling)
from genjax.nets.mlp import MLP, MLPDenoiser
from genjax.nets.unet import UNet

__all__ = [
    "AttnBlock",
    "Downsample",
    "Dropout",
    "GroupNorm",
    "MLP",
    "MLPDenoiser",
    "ResBlock",
    "UNet",
    "Upsample",
    "default_init",
    "normal_init",
    "num_groups",
    "timestep_embedding",
    "variance_scaling",
]
