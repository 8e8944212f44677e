"""The base stage of the digits cascade 8 -> 16 -> 32: DDPM on the 8x8 digits.

python train.py --config=configs/cascade_digits_base.py --workdir=runs/cascade8
python train.py --config=configs/cascade_digits_sr16.py --workdir=runs/cascade16
python train.py --config=configs/cascade_digits_sr32.py --workdir=runs/cascade32
python sample.py --config=configs/cascade_digits_sr32.py --workdir=runs/cascade32
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.method = "cascade"
  config.cascade = cascade = ml_collections.ConfigDict()
  cascade.low_size = 0                  # the base stage: no low-resolution condition
  cascade.lower_workdir = ""
  cascade.augmentation = "none"
  cascade.max_aug_level = 0
  cascade.sample_aug_level = 0
  cascade.upsample = "linear"
  return config
