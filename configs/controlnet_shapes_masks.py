"""ControlNet on the segmentation masks of the ``shapes`` data (objects vs background), on the
text-to-image latent diffusion model (configs/ldm_shapes.py) as base.

The base is restored from its workdir and frozen (its U-Net, its text encoder and its KL-f4
first stage); only ControlNet's parameters train. Each step encodes the batch with the base's
first stage, computes the mask at 32x32 and trains the copy of the latent U-Net's encoder,
whose condition encoder takes the mask down to the 8x8 latents (``hint_downsample`` 0: the
first stage's factor) and whose cross-attention takes the same caption context as the base. Half
the captions are dropped to the empty caption while training (the paper's 50%), so that the
mask alone also steers the layout.

python train.py --config=configs/autoencoder_kl_shapes.py --workdir=runs/autoencoder_kl_shapes
python train.py --config=configs/ldm_shapes.py --workdir=runs/ldm_shapes
python train.py --config=configs/controlnet_shapes_masks.py --workdir=runs/cn_masks \\
    --config.controlnet.base_workdir=runs/ldm_shapes
python sample.py --config=configs/controlnet_shapes_masks.py --workdir=runs/cn_masks \\
    --control=mask --control_image=test --control_scale=0,1,2          # the test captions
python sample.py --config=configs/controlnet_shapes_masks.py --workdir=runs/cn_masks \\
    --control=map --control_image=my_mask.png --prompt="a red circle"  # a drawn mask
python -m benchmarks.controlnet_adherence --config=configs/controlnet_shapes_masks.py \\
    --workdir=runs/cn_masks --base_config=configs/ldm_shapes.py   # mask IoU, FD, captions
"""

import ml_collections

from configs import controlnet_digits_edges


def get_config() -> ml_collections.ConfigDict:
  config = controlnet_digits_edges.get_config()
  config.data.dataset = "shapes"         # the base's data (textured and plain backgrounds)
  config.controlnet.base_workdir = "runs/ldm_shapes"
  config.controlnet.condition = "mask"   # the dataset's masks; adherence: mask IoU
  config.controlnet.condition_args = None
  config.controlnet.hint_channels = (16, 32, 64)  # 32x32 mask -> 8x8 latents (two stride-2)
  config.controlnet.hint_downsample = 0  # the base's first-stage factor
  config.controlnet.label_drop_prob = 0.5  # captions dropped to the empty caption
  config.sampling.guidance_scale = 2.0   # the base's classifier-free guidance on the caption
  config.training.num_steps = 1_500
  config.training.sample_every = 500
  config.training.ckpt_every = 100
  config.training.keep_checkpoints = 20
  config.training.num_sample_images = 16
  config.optim.learning_rate = 5e-4
  config.optim.warmup_steps = 50
  return config
