"""TD-VAE (Gregor et al. 2019; seed 003 eq. 14) on sequences of 8 frames of a digit moving one
pixel per frame left or right (wrap-around), generated from the embedded digits.

python train.py --config=configs/tdvae.py --workdir=runs/tdvae
python sample.py --config=configs/tdvae.py --workdir=runs/tdvae --eval=elbo
python -m genjax.autoencoders.figures --config=configs/tdvae.py --workdir=runs/tdvae  # rollouts.png

Rotating digits: --config.tdvae.mode=rotate --config.tdvae.rotation_deg=30.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "tdvae"

  config.model = model = ml_collections.ConfigDict()
  model.name = "mlp"            # the frame decoder p_D(x|z)
  model.hidden = (256, 128)     # decoder widths, reversed: 128 -> 256 -> 64 pixels
  model.channels = (32, 64)
  model.num_res_blocks = 0
  model.res_channels = 32
  model.activation = "relu"

  config.tdvae = td = ml_collections.ConfigDict()
  td.seq_len = 8
  td.mode = "move"              # move | rotate
  td.rotation_deg = 30.0
  td.max_jump = 4
  td.latent_dim = 8
  td.belief_hidden = 64
  td.pre_hidden = (128,)
  td.hidden = (64,)
  td.condition_on_dt = True
  td.decoder = "bernoulli"
  td.binarize = "threshold"
  td.context = 3
  td.num_sample_sequences = 8

  config.training.batch_size = 64
  config.training.num_steps = 6_000
  config.training.log_every = 100
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.995
  config.training.num_sample_images = 64
  config.optim.learning_rate = 1e-3
  return config
