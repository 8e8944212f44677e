"""DALL-E's discrete VAE (Ramesh et al. 2021, Sec. 2.1) on the embedded 8x8 digits: a 4x4 grid
of codes from K = 64, Gumbel-softmax temperature annealed 1 -> 1/16 and the KL weight to the
uniform prior raised from 0 (both cosine), argmax codes at inference.

python train.py --config=configs/dvae_digits.py --workdir=runs/dvae_digits
python sample.py --config=configs/dvae_digits.py --workdir=runs/dvae_digits --eval=recon
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "dvae"

  config.model = model = ml_collections.ConfigDict()
  model.name = "conv"
  model.hidden = (256,)          # unused by conv (the autoencoders' config.model layout)
  model.channels = (64,)         # one stride-2 stage: 8x8 -> 4x4 codes
  model.num_res_blocks = 2
  model.res_channels = 32
  model.activation = "relu"

  config.dvae = dvae = ml_collections.ConfigDict()
  dvae.num_codes = 64
  dvae.embedding_dim = 32
  dvae.tau_start = 1.0
  dvae.tau_end = 1.0 / 16.0
  dvae.tau_anneal_steps = 3_000
  dvae.kl_weight_start = 0.0
  dvae.kl_weight_end = 1.0
  dvae.kl_anneal_steps = 1_000
  dvae.recon_sigma = 0.1
  dvae.hard = False

  config.training.batch_size = 64
  config.training.num_steps = 4_000
  config.training.log_every = 100
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.995
  config.optim.learning_rate = 1e-3
  return config
