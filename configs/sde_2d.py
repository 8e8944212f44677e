"""Score SDE (VP) on a 2-D toy distribution with an MLP; the scatter shows PC (left) and
probability-flow ODE (right) samples over the data.

python train.py --config=configs/sde_2d.py --workdir=runs/sde_2d
python sample.py --config=configs/sde_2d.py --workdir=runs/sde_2d --sampler=pc --num=2000
python sample.py --config=configs/sde_2d.py --workdir=runs/sde_2d --eval=nll --num=2000
python train.py --config=configs/sde_2d.py --config.sde.name=vesde --config.sde.sigma_max=10 \
    --config.sampling.snr=0.16 --workdir=runs/sde_2d_ve
"""

import ml_collections

from configs import sde_vp


def get_config() -> ml_collections.ConfigDict:
  config = sde_vp.get_config()
  config.data.dataset = "swiss_roll"   # swiss_roll | 8gaussians | moons | checkerboard

  config.model = model = ml_collections.ConfigDict()
  model.name = "mlp"
  model.hidden = 128
  model.depth = 3
  model.time_dim = 128
  model.num_classes = 0
  model.dropout = 0.0

  config.sampling.sampler = "pc+ode"   # half PC (N = steps), half ODE-Heun (steps / 2 steps)
  config.sampling.steps = 500
  config.likelihood.hutchinson = "exact"  # D = 2: the exact divergence is cheap
  config.training.batch_size = 256
  config.training.num_steps = 5_000
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.num_sample_images = 2_000
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 0
  config.optim.schedule = "constant"
  return config
