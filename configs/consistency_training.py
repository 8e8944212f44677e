"""Consistency training from scratch (Song et al. 2023, Algorithm 3) on the digits: no teacher;
N(k) grows from 2 to 151 levels and mu(k) = exp(2 log 0.9 / N(k)) (the paper's CIFAR-10
schedule, s0 = 2, s1 = 150, mu0 = 0.9).

python train.py --config=configs/consistency_training.py --workdir=runs/ct
python sample.py --config=configs/consistency_training.py --workdir=runs/ct --steps=2
"""

import ml_collections

from configs import consistency_distill


def get_config() -> ml_collections.ConfigDict:
  config = consistency_distill.get_config()
  config.method = "consistency_training"
  config.consistency.init_from_teacher = False
  config.training.num_steps = 4_000
  config.optim.learning_rate = 4e-4
  config.optim.warmup_steps = 200
  return config
