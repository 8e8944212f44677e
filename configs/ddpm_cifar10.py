"""The CIFAR-10 recipe of Ho et al. 2020 (35.7M-parameter U-Net), for TPU/GPU.

Batch 128, Adam 2e-4, 5000 warm-up steps, gradient clip 1.0, EMA 0.9999, 800k steps, random
horizontal flips, linear betas 1e-4..0.02 over T=1000, dropout 0.1, L_simple.

python train.py --config=configs/ddpm_cifar10.py --workdir=runs/cifar10 \
    --config.data.data_dir=$TFDS_DATA_DIR
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.data.dataset = "cifar10"
  config.data.random_flip = True

  model = config.model
  model.ch = 128
  model.ch_mult = (1, 2, 2, 2)
  model.num_res_blocks = 2
  model.attn_resolutions = (16,)
  model.dropout = 0.1

  config.diffusion.schedule = "linear"
  config.sampling.sampler = "ddpm"

  training = config.training
  training.batch_size = 128
  training.num_steps = 800_000
  training.log_every = 100
  training.sample_every = 10_000
  training.ckpt_every = 10_000
  training.keep_checkpoints = 5
  training.ema_decay = 0.9999

  optim = config.optim
  optim.name = "adam"
  optim.learning_rate = 2e-4
  optim.warmup_steps = 5_000
  optim.schedule = "constant"
  optim.grad_clip = 1.0
  return config
