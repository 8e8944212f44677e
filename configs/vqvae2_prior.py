"""Second stage of VQ-VAE-2: gated PixelCNN priors over the frozen first stage's codes (top:
unconditional; bottom: conditioned on the top codes). Sampling draws codes and decodes them.

python train.py --config=configs/vqvae2_prior.py --workdir=runs/vqvae2_prior \
    --config.prior.vqvae_workdir=runs/vqvae2
python sample.py --config=configs/vqvae2_prior.py --workdir=runs/vqvae2_prior --eval=nll
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "vq_prior"

  config.prior = prior = ml_collections.ConfigDict()
  prior.vqvae_workdir = "runs/vqvae2"   # the trained first stage
  prior.vqvae_config = ml_collections.config_dict.placeholder(str)  # None: <workdir>/config.json
  prior.hidden = 64
  prior.num_layers = 6
  prior.kernel_size = 3
  prior.cond_hidden = 64
  prior.class_conditional = False
  prior.temperature = 1.0

  config.training.batch_size = 64
  config.training.num_steps = 3_000
  config.training.log_every = 100
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.99
  config.optim.learning_rate = 1e-3
  return config
