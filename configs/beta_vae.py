"""beta-VAE (Higgins et al. 2017; seed 003 eq. 10) with beta = 2. For the KL-capacity variant
of Burgess et al. 2018: --config.vae.capacity_max=10 --config.vae.capacity_steps=5000.

beta = 4, the paper's value for its 4096-pixel dSprites, collapses the posterior on these
64-pixel binarized digits (KL 0.1 nats per image after 6,000 steps: every sample is the mean
digit); beta = 2 keeps about 3 nats (against about 8 for the plain VAE), enough for the
latent to carry the digit's class and style. Measured with
python train.py --config=configs/beta_vae.py --config.vae.beta=4 (see metrics.jsonl, "kl").

python train.py --config=configs/beta_vae.py --workdir=runs/beta_vae
"""

import ml_collections

from configs import vae


def get_config() -> ml_collections.ConfigDict:
  config = vae.get_config()
  config.vae.beta = 2.0
  return config
