"""WGAN-GP (Gulrajani et al. 2017) with the DCGAN networks on the 8x8 digits.

Critic loss E[D(G(z))] - E[D(x)] + 10 E[(||grad D(x^)|| - 1)^2], k = 5 critic steps per
generator step, Adam(1e-4, beta1=0, beta2=0.9), and layer normalization instead of batch
normalization in the critic (the penalty is per example), as in the paper's Algorithm 1.

python train.py --config=configs/wgan_gp.py --workdir=runs/wgan_gp
"""

import ml_collections

from configs import dcgan


def get_config() -> ml_collections.ConfigDict:
  config = dcgan.get_config()
  config.gan.loss = "wgan_gp"
  config.gan.k = 5
  config.gan.gp_weight = 10.0
  config.discriminator.norm = "layer"
  config.optim.beta1 = 0.0
  config.optim.beta2 = 0.9
  config.optim_g.learning_rate = 1e-4
  config.optim_d.learning_rate = 1e-4
  config.training.num_steps = 2_000
  return config
