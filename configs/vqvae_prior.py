"""The learned prior of a single-level VQ-VAE (van den Oord et al. 2017, Sec. 3.1): a gated
PixelCNN over its 4x4 codes.

python train.py --config=configs/vqvae_prior.py --workdir=runs/vqvae_prior \
    --config.prior.vqvae_workdir=runs/vqvae
"""

import ml_collections

from configs import vqvae2_prior


def get_config() -> ml_collections.ConfigDict:
  config = vqvae2_prior.get_config()
  config.prior.vqvae_workdir = "runs/vqvae"
  return config
