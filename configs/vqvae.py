"""VQ-VAE (van den Oord et al. 2017; seed 003 eq. 11-13) on the 8x8 digits: a 4x4 grid of codes
from a 64-entry codebook updated by EMA (eq. 13), commitment cost 0.25.

python train.py --config=configs/vqvae.py --workdir=runs/vqvae
python sample.py --config=configs/vqvae.py --workdir=runs/vqvae --eval=recon
python -m genjax.autoencoders.figures --config=configs/vqvae.py --workdir=runs/vqvae
  # -> reconstructions.png, codebook_usage.png, interpolations.png, samples.png (uniform codes)
python train.py --config=configs/vqvae_prior.py --workdir=runs/vqvae_prior   # learned prior

Without EMA (codebook loss of eq. 12): --config.vq.ema=False. Dead-code restart:
--config.vq.restart_dead_codes=True.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "vqvae"

  config.model = model = ml_collections.ConfigDict()
  model.name = "conv"
  model.hidden = (256,)         # unused by conv models
  model.channels = (32,)        # one stride-2 stage: 8x8 -> 4x4 codes
  model.num_res_blocks = 2
  model.res_channels = 16
  model.activation = "relu"

  config.vq = vq = ml_collections.ConfigDict()
  vq.num_codes = 64
  vq.top_num_codes = ml_collections.config_dict.placeholder(int)
  vq.embedding_dim = 16
  vq.commitment_cost = 0.25
  vq.ema = True
  vq.ema_decay = 0.99
  vq.ema_epsilon = 1e-5
  vq.restart_dead_codes = False
  vq.dead_code_threshold = 0.1

  config.training.batch_size = 64
  config.training.num_steps = 3_000
  config.training.log_every = 100
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.99
  config.optim.learning_rate = 1e-3
  return config
