"""ControlNet on the segmentation masks of the ``shapes`` data (objects vs background).

The base is a pixel-space DDPM trained on ``shapes`` (32x32 RGB, plain backgrounds); the latent
text-to-image model is not used as base here. Train the base, then ControlNet on its frozen
weights:

python train.py --config=configs/ddpm.py --workdir=runs/ddpm_shapes \\
    --config.data.dataset=shapes --config.data.shapes_texture=0.0 \\
    --config.model.ch_mult='(1,2,2)' --config.model.attn_resolutions='(8,)' \\
    --config.training.num_steps=20000
python train.py --config=configs/controlnet_shapes_masks.py --workdir=runs/cn_masks \\
    --config.controlnet.base_workdir=runs/ddpm_shapes
python sample.py --config=configs/controlnet_shapes_masks.py --workdir=runs/cn_masks \\
    --control=mask --control_image=test --control_scale=0,1,2
python -m benchmarks.controlnet_adherence --config=configs/controlnet_shapes_masks.py \\
    --workdir=runs/cn_masks   # mask IoU against the foreground recomputed from each sample
"""

import ml_collections

from configs import controlnet_digits_edges


def get_config() -> ml_collections.ConfigDict:
  config = controlnet_digits_edges.get_config()
  config.data.dataset = "shapes"
  config.data.shapes_texture = 0.0       # plain backgrounds: the foreground is recomputable
  config.controlnet.base_workdir = "runs/ddpm_shapes"
  config.controlnet.condition = "mask"   # the dataset's masks; adherence: mask IoU
  config.controlnet.condition_args = None
  config.controlnet.hint_channels = (16, 32)
  config.training.num_steps = 5_000
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.num_sample_images = 16
  config.optim.learning_rate = 2e-4
  return config
