"""EDM (Karras et al. 2022) on the embedded digits: preconditioned denoiser, ln sigma ~
N(-1.2, 1.2^2) training and the deterministic Heun sampler on 18 Karras sigmas (35 NFE).

python train.py --config=configs/edm.py --workdir=runs/edm
python sample.py --config=configs/edm.py --workdir=runs/edm --sampler=edm-heun --steps=18
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.method = "edm"
  del config["diffusion"]

  config.edm = e = ml_collections.ConfigDict()
  e.sigma_data = 0.5
  e.p_mean = -1.2
  e.p_std = 1.2
  e.sigma_min = 0.002
  e.sigma_max = 80.0

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.sampler = "edm-heun"
  sampling.steps = 18
  sampling.rho = 7.0
  sampling.s_churn = 0.0
  sampling.s_noise = 1.0
  return config
