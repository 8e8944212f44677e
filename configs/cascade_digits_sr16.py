"""Super-resolution stage 8 -> 16 of the digits cascade (Ho et al. 2021) with Gaussian
noise-conditioning augmentation; the stage below is configs/cascade_digits_base.py.

python train.py --config=configs/cascade_digits_sr16.py --workdir=runs/cascade16
python sample.py --config=configs/cascade_digits_sr16.py --workdir=runs/cascade16
python sample.py --config=configs/cascade_digits_sr16.py --workdir=runs/cascade16 \
    --config.cascade.sample_aug_level=100   # the level s at sampling
"""

import ml_collections

from configs import cascade_digits_base


def get_config() -> ml_collections.ConfigDict:
  config = cascade_digits_base.get_config()
  config.data.image_size = 16
  config.model.attn_resolutions = ()
  config.cascade.low_size = 8
  config.cascade.lower_workdir = "runs/cascade8"
  config.cascade.augmentation = "gaussian"   # none | gaussian | truncated
  config.cascade.max_aug_level = 500         # training: s ~ U{0..500} of T = 1000
  config.cascade.sample_aug_level = 100
  return config
