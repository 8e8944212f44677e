"""A plain autoencoder on the embedded 8x8 digits (seed 003 eq. 1): MSE, 16-d code.

python train.py --config=configs/ae.py --workdir=runs/ae
python sample.py --config=configs/ae.py --workdir=runs/ae --eval=recon
python -m genjax.autoencoders.figures --config=configs/ae.py --workdir=runs/ae

The base of the AE family (dae, sparse_ae, ksparse_ae, cae override ``config.ae``). A plain AE
has no prior: its ``samples.png`` decodes z ~ N(0, I), for comparison with the VAE's.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "ae"

  config.model = model = ml_collections.ConfigDict()
  model.name = "mlp"            # mlp | conv
  model.hidden = (256, 128)     # mlp: encoder widths (the decoder mirrors them)
  model.channels = (32, 64)     # conv: stride-2 stages
  model.num_res_blocks = 0
  model.res_channels = 32
  model.activation = "relu"

  config.ae = ae = ml_collections.ConfigDict()
  ae.latent_dim = 16
  ae.code_activation = "none"   # none | sigmoid | tanh | relu
  ae.recon = "mse"              # mse (eq. 1) | bce
  ae.corruption = "none"        # none | mask | gaussian | salt_pepper (eq. 2)
  ae.noise_level = 0.0
  ae.sparsity = "none"          # none | kl (eq. 3) | topk (k-sparse)
  ae.sparsity_target = 0.05
  ae.sparsity_weight = 0.0
  ae.k = 8
  ae.k_eval_multiplier = 1.0
  ae.contractive_weight = 0.0   # eq. 4
  ae.contractive_estimator = "exact"  # exact | hutchinson
  ae.contractive_projections = 1

  config.training.batch_size = 64
  config.training.num_steps = 4_000
  config.training.log_every = 100
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.995
  config.optim.learning_rate = 1e-3
  return config
