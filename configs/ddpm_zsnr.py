"""DDPM on the digits with a zero-terminal-SNR schedule and v-prediction (Lin et al. 2024).

The linear schedule is rescaled so that the last step carries no signal (abar_T = 0, floored at
2^-24 for the samplers; genjax.sampling.schedules.rescale_zero_terminal_snr), the network
predicts v (an eps-network cannot denoise pure noise), and DDIM samples on the "trailing" grid,
which starts at the last step where the model saw pure noise.

python train.py --config=configs/ddpm_zsnr.py --workdir=runs/ddpm_zsnr
python sample.py --config=configs/ddpm_zsnr.py --workdir=runs/ddpm_zsnr
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.diffusion.schedule = "linear_zsnr"
  config.diffusion.parameterization = "v"
  config.sampling.spacing = "trailing"
  return config
