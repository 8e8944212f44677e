"""beta-VAE (Higgins et al. 2017; seed 003 eq. 10) with beta = 4. For the KL-capacity variant
of Burgess et al. 2018: --config.vae.capacity_max=10 --config.vae.capacity_steps=5000.

python train.py --config=configs/beta_vae.py --workdir=runs/beta_vae
"""

import ml_collections

from configs import vae


def get_config() -> ml_collections.ConfigDict:
  config = vae.get_config()
  config.vae.beta = 4.0
  return config
