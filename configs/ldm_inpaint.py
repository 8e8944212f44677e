"""Latent-diffusion inpainting (Rombach et al. 2022, Sec. 4.5) on the digits: the U-Net sees the
noisy latent concatenated with the mask (at latent resolution, 1 = known) and the latent of the
masked image; random rectangles are masked in training.

python train.py --config=configs/ldm_inpaint.py --workdir=runs/ldm_inpaint \
    --config.ldm.first_stage_workdir=runs/autoencoder_kl
python sample.py --config=configs/ldm_inpaint.py --workdir=runs/ldm_inpaint \
    --config.ldm.first_stage_workdir=runs/autoencoder_kl --mode=inpaint --input=test --mask=right

Super-resolution (Sec. 4.4) is the same with --config.ldm.condition=super_res: the 4x smaller
image, resized to the latent grid, is concatenated instead.
"""

import ml_collections

from configs import ldm_digits


def get_config() -> ml_collections.ConfigDict:
  config = ldm_digits.get_config()
  config.ldm.condition = "inpaint"
  config.model.num_classes = 0
  config.diffusion.cond_drop_prob = 0.0
  return config
