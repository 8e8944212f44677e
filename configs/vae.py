"""VAE (Kingma & Welling 2014; seed 003 eq. 6-7, seed 000 Algorithm 1) on the binarized 8x8
digits: MLP encoder/decoder, 8-d latent, Bernoulli decoder.

python train.py --config=configs/vae.py --workdir=runs/vae
python sample.py --config=configs/vae.py --workdir=runs/vae --eval=elbo     # test -ELBO, IWAE
python -m genjax.autoencoders.figures --config=configs/vae.py --workdir=runs/vae

Other decoders on the 17-level grey digits: --config.vae.decoder=logistic --config.vae.binarize=none
(discretized logistic) or decoder=gaussian.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "vae"

  config.model = model = ml_collections.ConfigDict()
  model.name = "mlp"            # mlp | conv
  model.hidden = (256, 128)
  model.channels = (32, 64)
  model.num_res_blocks = 0
  model.res_channels = 32
  model.activation = "relu"

  config.vae = vae = ml_collections.ConfigDict()
  vae.latent_dim = 8
  vae.decoder = "bernoulli"     # bernoulli | gaussian | logistic
  vae.binarize = "threshold"    # threshold | stochastic (bernoulli) | none (others)
  vae.num_levels = 17           # sklearn digits: values 0..16
  vae.min_log_scale = -4.0
  vae.beta = 1.0                # eq. 10
  vae.capacity_max = 0.0        # Burgess et al. 2018 KL capacity (nats); 0 disables
  vae.capacity_steps = 10_000
  vae.capacity_gamma = 100.0
  vae.num_samples = 1
  vae.analytic_kl = True
  vae.eval_samples = 16
  vae.eval_iwae_k = 1000

  config.training.batch_size = 64
  config.training.num_steps = 6_000
  config.training.log_every = 100
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.995
  config.optim.learning_rate = 1e-3
  return config
