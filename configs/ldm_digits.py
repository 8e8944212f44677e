"""Class-conditional latent diffusion on the digits (Rombach et al. 2022): a U-Net on the 4x4x2
latents of the KL-f2 first stage (configs/autoencoder_kl.py), classifier-free guidance by label
dropout, every sampler of genjax.sampling on the latents, decoded by the first stage.

python train.py --config=configs/autoencoder_kl.py --workdir=runs/autoencoder_kl
python train.py --config=configs/ldm_digits.py --workdir=runs/ldm_digits \
    --config.ldm.first_stage_workdir=runs/autoencoder_kl
python sample.py --config=configs/ldm_digits.py --workdir=runs/ldm_digits \
    --config.ldm.first_stage_workdir=runs/autoencoder_kl --guidance_scale=1 --eval=fd,class_accuracy
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.method = "ldm"

  config.ldm = ldm = ml_collections.ConfigDict()
  ldm.first_stage_workdir = "runs/autoencoder_kl"
  ldm.condition = "class"          # none | class | text | inpaint | super_res
  ldm.scale_factor = 0.0           # 0: the first stage's stored 1 / std of its latents
  ldm.sample_posterior = True
  ldm.first_stage_factor = 0       # > 0: refuse a first stage with another f
  ldm.latent_channels = 0          # > 0: refuse a first stage with other latent channels
  ldm.lowres_factor = 4            # super_res

  config.model = model = ml_collections.ConfigDict()
  model.name = "unet"
  model.ch = 64
  model.ch_mult = (1, 2)           # 4x4 -> 2x2 latents
  model.num_res_blocks = 2
  model.attn_resolutions = (2,)
  model.dropout = 0.1
  model.num_classes = -1           # from the data (+ the null label)

  config.diffusion.cond_drop_prob = 0.1
  config.diffusion.clip_x0 = False  # latents are not in [-1, 1]
  config.sampling.guidance_scale = 0.0
  config.training.num_steps = 4_000
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  return config
