"""NCSN (Song & Ermon 2019) on the embedded digits: geometric sigmas, DSM with
lambda = sigma^2, annealed Langevin dynamics (Algorithm 1) with a final denoising step.

sigma_1 = 10 is the largest pairwise distance of the training digits (9.6) rounded up (Song & Ermon 2020,
technique 1; the 2019 paper's sigma_1 = 1 was for CIFAR-10 in [0, 1]); L = 10, sigma_L = 0.01,
T = 100 updates per level, epsilon = 2e-5 as in the paper.

python train.py --config=configs/ncsn.py --workdir=runs/ncsn
python sample.py --config=configs/ncsn.py --workdir=runs/ncsn --sampler=langevin --steps=100
python sample.py --config=configs/ncsn.py --workdir=runs/ncsn --sampler=edm-heun --steps=18
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.method = "ncsn"
  del config["diffusion"]

  config.ncsn = ncsn = ml_collections.ConfigDict()
  ncsn.sigma_max = 10.0
  ncsn.sigma_min = 0.01
  ncsn.num_scales = 10
  ncsn.reduce_mean = False

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.sampler = "langevin"  # langevin (annealed, Algorithm 1) | edm-heun
  sampling.steps = 100           # langevin: updates per level (T); edm-heun: Karras steps
  sampling.step_lr = 2e-5
  sampling.denoise = True
  sampling.s_churn = 0.0
  sampling.s_noise = 1.0
  return config
