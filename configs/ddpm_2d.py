"""DDPM on a 2-D toy distribution with an MLP eps-network; writes scatter plots of samples.

python train.py --config=configs/ddpm_2d.py --workdir=runs/ddpm_2d
python train.py --config=configs/ddpm_2d.py --config.data.dataset=8gaussians
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.data.dataset = "swiss_roll"   # swiss_roll | 8gaussians | moons | checkerboard

  config.model = model = ml_collections.ConfigDict()
  model.name = "mlp"
  model.hidden = 128
  model.depth = 3
  model.time_dim = 128
  model.num_classes = 0
  model.dropout = 0.0

  config.diffusion.clip_x0 = False
  config.sampling.sampler = "ddpm"
  config.training.batch_size = 256
  config.training.num_steps = 5_000
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.num_sample_images = 2_000
  config.optim.learning_rate = 1e-3
  return config
