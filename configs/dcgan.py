"""DCGAN (Radford et al. 2016) on the embedded 8x8 digits (a few minutes on 2 cores).

Transposed convolutions in G, strided convolutions in D, batch normalization (stateless: see
genjax/nets/dcgan.py) and LeakyReLU(0.2); Adam with lr 2e-4 and beta1 0.5, as the paper.

python train.py --config=configs/dcgan.py --workdir=runs/dcgan
python train.py --config=configs/dcgan.py --config.data.image_size=32 \
    --config.generator.base_size=4 --config.discriminator.base_size=4
python sample.py --config=configs/dcgan.py --workdir=runs/dcgan --eval=parzen --num=100000
"""

import ml_collections

from configs import gan


def get_config() -> ml_collections.ConfigDict:
  config = gan.get_config()
  config.gan.noise = "normal"

  config.generator = g = ml_collections.ConfigDict()
  g.name = "dcgan"
  g.ch = 32
  g.base_size = 2               # 2x2 -> 4x4 -> 8x8
  g.norm = "batch"              # batch | layer | none

  config.discriminator = d = ml_collections.ConfigDict()
  d.name = "dcgan"
  d.ch = 32
  d.base_size = 2
  d.norm = "batch"
  d.leak = 0.2

  config.optim_g.learning_rate = 2e-4
  config.optim_d.learning_rate = 2e-4
  config.training.batch_size = 64
  config.training.num_steps = 4_000
  return config
