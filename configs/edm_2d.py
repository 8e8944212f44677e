"""EDM (Karras et al. 2022) on a 2-D toy distribution with an MLP.

python train.py --config=configs/edm_2d.py --workdir=runs/edm_2d
"""

import ml_collections

from configs import edm


def get_config() -> ml_collections.ConfigDict:
  config = edm.get_config()
  config.data.dataset = "swiss_roll"
  config.edm.sigma_data = 1.4          # the toys' per-coordinate std is 1.4 to 2.3

  config.model = model = ml_collections.ConfigDict()
  model.name = "mlp"
  model.hidden = 128
  model.depth = 3
  model.time_dim = 128
  model.num_classes = 0
  model.dropout = 0.0

  config.training.batch_size = 256
  config.training.num_steps = 5_000
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.num_sample_images = 2_000
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 0
  config.optim.schedule = "constant"
  return config
