"""Denoising autoencoder (seed 003 eq. 2; Vincent et al. 2008): reconstruct clean digits from
inputs with 30% of the pixels masked to the background.

python train.py --config=configs/dae.py --workdir=runs/dae
python train.py --config=configs/dae.py --config.ae.corruption=salt_pepper --config.ae.noise_level=0.2
"""

import ml_collections

from configs import ae


def get_config() -> ml_collections.ConfigDict:
  config = ae.get_config()
  config.ae.corruption = "mask"   # mask | gaussian | salt_pepper
  config.ae.noise_level = 0.3
  return config
