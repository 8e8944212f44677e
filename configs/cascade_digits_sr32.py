"""Super-resolution stage 16 -> 32 of the digits cascade 8 -> 16 -> 32; the stage below is
configs/cascade_digits_sr16.py.

python train.py --config=configs/cascade_digits_sr32.py --workdir=runs/cascade32
python sample.py --config=configs/cascade_digits_sr32.py --workdir=runs/cascade32
"""

import ml_collections

from configs import cascade_digits_sr16


def get_config() -> ml_collections.ConfigDict:
  config = cascade_digits_sr16.get_config()
  config.data.image_size = 32
  config.model.ch_mult = (1, 2, 2)
  config.cascade.low_size = 16
  config.cascade.lower_workdir = "runs/cascade16"
  return config
