"""VAE with a 2-D latent, for the learned-manifold figure of Kingma & Welling 2014 (Fig. 4).

python train.py --config=configs/vae_2d_latent.py --workdir=runs/vae_2d
python -m genjax.autoencoders.figures --config=configs/vae_2d_latent.py --workdir=runs/vae_2d
  # -> manifold.png, latent_scatter.png
"""

import ml_collections

from configs import vae


def get_config() -> ml_collections.ConfigDict:
  config = vae.get_config()
  config.vae.latent_dim = 2
  return config
