"""Improved DDPM (Nichol & Dhariwal 2021) on the embedded 8x8 digits.

Differences from configs/ddpm.py: the cosine schedule (eq. 17; seed eq. 34), the learned reverse
variance Sigma = exp(v log beta_t + (1 - v) log beta~_t) (eq. 15; seed eq. 35; the U-Net gets 2C
output channels) and L_hybrid = L_simple + 0.001 L_vlb (eq. 16, stop-gradient on the mean in
the L_vlb term). T = 1000 (the paper uses 4000; --eval=nll costs T network calls per example).
Ancestral sampling uses the learned variance.

python train.py --config=configs/iddpm.py --workdir=runs/iddpm
python sample.py --config=configs/iddpm.py --workdir=runs/iddpm --eval=nll --num=10000
python sample.py --config=configs/iddpm.py --workdir=runs/iddpm --sampler=dpm-solver-2 --steps=20
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()

  diffusion = config.diffusion
  diffusion.schedule = "cosine"
  diffusion.var_type = "learned_range"
  diffusion.loss_type = "hybrid"
  diffusion.vlb_weight = 0.001
  diffusion.timestep_sampler = "uniform"  # "loss-second-moment" is the paper's for L_vlb alone
  diffusion.nll_extra_bins = (17,)        # the digits' own 17 grey levels, beside the 256-bin bpd

  config.sampling.sampler = "ddpm"
  return config
