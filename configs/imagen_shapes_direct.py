"""One text-to-image model at 32x32 on the captioned shapes, the comparison of the cascade
16 -> 32 (configs/imagen_shapes_base.py + configs/imagen_shapes_sr.py) at equal training FLOPs:
the SR stage's U-Net without the low-resolution channels, the same frozen CLIP text encoder.

python train.py --config=configs/imagen_shapes_direct.py --workdir=runs/imagen_direct32
python -m benchmarks.imagen_shapes --task=compute --workdir=runs/imagen32 \\
    --direct_workdir=runs/imagen_direct32
"""

import ml_collections

from configs import imagen_shapes_sr


def get_config() -> ml_collections.ConfigDict:
  config = imagen_shapes_sr.get_config()
  config.cascade.low_size = 0                 # a base stage at the final resolution
  config.cascade.lower_workdir = ""
  config.cascade.augmentation = "none"
  config.cascade.max_aug_level = 0
  config.cascade.sample_aug_level = 0
  return config
