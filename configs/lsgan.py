"""LSGAN (Mao et al. 2017): least-squares losses with the 0-1 coding, DCGAN networks, 8x8 digits.

python train.py --config=configs/lsgan.py --workdir=runs/lsgan
"""

import ml_collections

from configs import dcgan


def get_config() -> ml_collections.ConfigDict:
  config = dcgan.get_config()
  config.gan.loss = "lsgan"
  return config
