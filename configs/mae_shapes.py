"""Masked autoencoder (He et al. 2022) on the captioned 32x32 ``shapes``: 4x4 patches (64 per
image), 75% masked per example (16 visible), a 4-block 64-wide ViT encoder over the visible
patches and a 2-block 32-wide decoder, loss on the masked patches' per-patch normalised pixels.

python train.py --config=configs/mae_shapes.py --workdir=runs/mae_shapes
python sample.py --config=configs/mae_shapes.py --workdir=runs/mae_shapes --eval=recon
python -m benchmarks.mae_probe --mae_workdir=runs/mae_shapes --dae_workdir=runs/dae_shapes

The probe's labels on shapes are the first object's shape, colour and size and the number of
objects (``benchmarks/mae_probe.py``).
"""

import ml_collections

from configs import mae


def get_config() -> ml_collections.ConfigDict:
  config = mae.get_config()
  config.data.dataset = "shapes"
  config.mae.patch_size = 4
  config.training.batch_size = 64
  config.training.num_steps = 2_000        # sized for a small shared CPU; more is better
  config.training.ckpt_every = 500
  config.optim.warmup_steps = 100
  return config
