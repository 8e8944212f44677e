"""Score SDE (VE, SMLD's continuous limit) on the digits (Song et al. 2021, eq. 9).

score_sde's VE defaults: sigma_min 0.01, reduce_mean False, reverse-diffusion predictor +
Langevin corrector with snr 0.16, sampling to t = 1e-5. sigma_max is the largest pairwise
distance of the training digits (9.6 in [-1, 1] pixels; Song & Ermon 2020, technique 1) rounded
up, instead of CIFAR-10's 50.

python train.py --config=configs/sde_ve.py --workdir=runs/sde_ve
python sample.py --config=configs/sde_ve.py --workdir=runs/sde_ve --sampler=edm-heun --steps=18
"""

import ml_collections

from configs import sde_vp


def get_config() -> ml_collections.ConfigDict:
  config = sde_vp.get_config()
  config.sde.name = "vesde"
  config.sde.sigma_min = 0.01
  config.sde.sigma_max = 10.0
  config.sde.reduce_mean = False
  config.sampling.snr = 0.16
  return config
