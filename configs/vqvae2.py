"""VQ-VAE-2 (Razavi et al. 2019): a 2x2 top grid of codes (global shape) above a 4x4 bottom grid
(local detail) for the 8x8 digits; the prior over both is a second stage (vqvae2_prior.py).

python train.py --config=configs/vqvae2.py --workdir=runs/vqvae2
python train.py --config=configs/vqvae2_prior.py --workdir=runs/vqvae2_prior \
    --config.prior.vqvae_workdir=runs/vqvae2
python -m genjax.autoencoders.figures --config=configs/vqvae2_prior.py --workdir=runs/vqvae2_prior
"""

import ml_collections

from configs import vqvae


def get_config() -> ml_collections.ConfigDict:
  config = vqvae.get_config()
  config.method = "vqvae2"
  config.model.channels = (32,)   # bottom: /2 (4x4 codes); the top adds one more /2 (2x2)
  config.vq.num_codes = 64        # bottom codebook
  config.vq.top_num_codes = 32    # top codebook
  return config
