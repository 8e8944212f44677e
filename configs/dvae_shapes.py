"""DALL-E's discrete VAE (Ramesh et al. 2021, Sec. 2.1) on the captioned 32x32 ``shapes``: an
8x8 grid of codes from K = 512, the Gumbel-softmax temperature annealed 1 -> 1/16 (cosine) and
the KL weight to the uniform prior held at 10 from the first step, argmax codes at inference. The first
stage of configs/dalle_shapes.py.

python train.py --config=configs/dvae_shapes.py --workdir=runs/dvae_shapes
python sample.py --config=configs/dvae_shapes.py --workdir=runs/dvae_shapes --eval=recon
"""

import ml_collections

from configs import dvae_digits


def get_config() -> ml_collections.ConfigDict:
  config = dvae_digits.get_config()
  config.data.dataset = "shapes"

  config.model.channels = (32, 64)      # two stride-2 stages: 32x32 -> 8x8 codes
  config.model.num_res_blocks = 1
  config.model.res_channels = 32

  config.dvae.num_codes = 512
  config.dvae.embedding_dim = 32
  config.dvae.tau_anneal_steps = 800
  # The KL weight holds from the first step. Raised from 0 (the paper's schedule), the encoder's
  # posteriors collapse onto ~20 codes within the first 50 steps, while beta is still ~0, and
  # the unused codes never come back (32 of 512 in use after 1,000 steps); at beta = 10 from
  # step 0 the same run ends with 146 codes in use and a lower argmax reconstruction error
  # (docs/dalle_mae.md, "Codebook collapse").
  config.dvae.kl_weight_start = 10.0
  config.dvae.kl_weight_end = 10.0
  config.dvae.kl_anneal_steps = 300

  config.training.batch_size = 16
  config.training.num_steps = 1_000        # sized for a small shared CPU; more is better
  config.training.sample_every = 500
  config.training.ckpt_every = 250
  config.optim.learning_rate = 1e-3
  return config
