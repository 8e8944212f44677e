"""The noise-conditional classifier of classifier guidance (Dhariwal & Nichol 2021) on the
digits, on the forward process of configs/ddpm.py (linear schedule, T = 1000).

python train.py --config=configs/noisy_classifier.py --workdir=runs/classifier
python sample.py --config=configs/noisy_classifier.py --workdir=runs/classifier --eval=accuracy
python sample.py --config=configs/ddpm.py --workdir=runs/ddpm \
    --config.sampling.classifier_workdir=runs/classifier --config.sampling.classifier_scale=2
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "noisy_classifier"
  config.model = model = ml_collections.ConfigDict()
  model.name = "noisy_classifier"
  model.num_classes = -1          # from the data
  model.ch = 32
  model.ch_mult = (1, 2)
  model.num_res_blocks = 1
  model.attn_resolutions = (4,)
  model.dropout = 0.1
  config.diffusion = d = ml_collections.ConfigDict()
  d.schedule = "linear"           # must be the guided model's forward process
  d.num_timesteps = 1000
  config.training.batch_size = 64
  config.training.num_steps = 2_000
  config.training.sample_every = 0  # a classifier has no samples
  config.training.ckpt_every = 500
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  config.optim.schedule = "cosine"
  return config
