"""Imagen's super-resolution stage 16 -> 32 on the captioned shapes: text-conditioned (the same
frozen CLIP text tower) and conditioned on the base's 16x16 sample, upsampled and concatenated,
with Gaussian noise-conditioning augmentation (Ho et al. 2021; Saharia et al. 2022, Sec. 2.5).
The stage below is configs/imagen_shapes_base.py.

python train.py --config=configs/imagen_shapes_sr.py --workdir=runs/imagen32
python sample.py --config=configs/imagen_shapes_sr.py --workdir=runs/imagen32 \\
    --prompt="a large red circle" --prompt="a small blue square above a green triangle"
python sample.py --config=configs/imagen_shapes_sr.py --workdir=runs/imagen32 \\
    --config.cascade.sample_aug_level=100   # the level s at sampling
"""

import ml_collections

from configs import imagen_shapes_base


def get_config() -> ml_collections.ConfigDict:
  config = imagen_shapes_base.get_config()
  config.data.image_size = 32
  config.model.ch = 32
  config.model.ch_mult = (1, 2, 2)             # 32 -> 16 -> 8
  config.model.attn_resolutions = (8,)         # cross-attention at 8x8 and in the middle
  config.cascade.low_size = 16
  config.cascade.lower_workdir = "runs/imagen16"
  config.cascade.augmentation = "gaussian"    # none | gaussian | truncated
  config.cascade.max_aug_level = 500          # training: s ~ U{0..500} of T = 1000
  config.cascade.sample_aug_level = 100
  config.sampling.guidance_scale = 1.0
  return config
