"""Improved DDPM on a 2-D toy distribution: cosine schedule, learned variance, L_hybrid.

The MLP gets 2D outputs (eps and the variance interpolation v, Nichol & Dhariwal 2021 eq. 15).
The points are not on a pixel grid, so the L_0 term of L_vlb (a discretized decoder, 256 bins on
[-1, 1]) is only a surrogate here; there is no --eval=nll for point data.

python train.py --config=configs/iddpm_2d.py --workdir=runs/iddpm_2d
"""

import ml_collections

from configs import ddpm_2d


def get_config() -> ml_collections.ConfigDict:
  config = ddpm_2d.get_config()
  config.diffusion.schedule = "cosine"
  config.diffusion.var_type = "learned_range"
  config.diffusion.loss_type = "hybrid"
  config.sampling.sampler = "ddpm"
  return config
