"""DDPM on the embedded 8x8 digits: the small CPU default (about 5 minutes on 2 cores).

python train.py --config=configs/ddpm.py --workdir=runs/ddpm
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "ddpm"

  config.model = model = ml_collections.ConfigDict()
  model.name = "unet"
  model.ch = 64
  model.ch_mult = (1, 2)
  model.num_res_blocks = 2
  model.attn_resolutions = (4,)
  model.dropout = 0.1
  model.num_classes = 0

  config.diffusion = diffusion = ml_collections.ConfigDict()
  diffusion.schedule = "linear"
  diffusion.num_timesteps = 1000
  diffusion.parameterization = "eps"
  diffusion.loss_type = "simple"
  diffusion.var_type = "fixed_large"
  diffusion.clip_x0 = True

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.sampler = "ddim"
  sampling.steps = 50
  sampling.eta = 0.0
  sampling.spacing = "uniform"

  config.training.batch_size = 64
  config.training.num_steps = 6_000
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.999
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 200
  config.optim.schedule = "cosine"
  return config
