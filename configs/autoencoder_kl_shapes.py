"""The KL-f4 first stage on the captioned shapes (32x32 RGB -> 8x8x4 latents), for
configs/ldm_shapes.py. The perceptual term is the shipped shapes classifier's features
(first_stage.perceptual="auto"), or LPIPS with --config.first_stage.lpips_weights=FILE.

python train.py --config=configs/autoencoder_kl_shapes.py --workdir=runs/autoencoder_kl_shapes
python sample.py --config=configs/autoencoder_kl_shapes.py --workdir=runs/autoencoder_kl_shapes --eval=recon

f = 2^(len(ch_mult) - 1): --config.model.ch_mult=1 (f=1), (1,2) (f=2), (1,2,2) (f=4),
(1,2,2,2) (f=8).
"""

import ml_collections

from configs import autoencoder_kl


def get_config() -> ml_collections.ConfigDict:
  config = autoencoder_kl.get_config()
  config.data.dataset = "shapes"
  config.model.ch = 32
  config.model.ch_mult = (1, 2, 2)   # f = 4
  config.model.z_channels = 4
  config.model.embed_dim = 4
  config.first_stage.disc_layers = 2
  config.training.num_steps = 3_000
  return config
