"""A GAN on the ring of 8 Gaussians: the mode-collapse test bed (about 2 minutes on 2 cores).

MLP generator and discriminator; the metrics log has the modes covered and the high-quality
fraction of each generator minibatch (3-sigma protocol of VEEGAN), and the pictures show the
samples over the data with the discriminator's decision surface.

python train.py --config=configs/gan_2d.py --workdir=runs/gan_2d
python train.py --config=configs/gan_2d.py --config.gan.loss=wgan_gp --config.gan.k=5
python sample.py --config=configs/gan_2d.py --workdir=runs/gan_2d --eval=modes,parzen --num=10000
"""

import ml_collections

from configs import gan


def get_config() -> ml_collections.ConfigDict:
  config = gan.get_config()
  config.data.dataset = "8gaussians"   # swiss_roll | 8gaussians | moons | checkerboard

  config.gan.z_dim = 16
  config.gan.noise = "normal"

  config.generator.hidden = (256, 256, 256)
  config.generator.output = "linear"

  config.discriminator.hidden = (256, 256, 256)
  config.discriminator.maxout_pieces = 1
  config.discriminator.activation = "leaky_relu"
  config.discriminator.dropout = 0.0
  config.discriminator.input_dropout = 0.0

  config.optim_g.learning_rate = 2e-4
  config.optim_d.learning_rate = 2e-4
  config.parzen.sigmas = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

  config.training.batch_size = 256
  config.training.num_steps = 6_000
  config.training.sample_every = 500
  config.training.ckpt_every = 1_000
  config.training.num_sample_images = 2_000
  config.training.ema_decay = 0.99
  return config
