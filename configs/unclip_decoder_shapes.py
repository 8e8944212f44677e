"""unCLIP's decoder P(x | z_i, y) on shapes (Ramesh et al. 2022, Sec. 2.1): a U-Net on the 8x8x4
latents of the KL-f4 shapes first stage, conditioned on the frozen CLIP's image embedding z_i
(projected into the time embedding and into 4 extra cross-attention tokens, followed by the
caption's CLIP token features); z_i dropped 10% and the caption 50% of the time for classifier-free
guidance. With the prior, ``sample.py --prompt`` is text -> prior -> decoder.

python train.py --config=configs/clip_shapes.py --workdir=runs/clip
python train.py --config=configs/unclip_prior_shapes.py --workdir=runs/unclip_prior
python train.py --config=configs/autoencoder_kl_shapes.py --workdir=runs/autoencoder_kl_shapes
python train.py --config=configs/unclip_decoder_shapes.py --workdir=runs/unclip_decoder
python sample.py --config=configs/unclip_decoder_shapes.py --workdir=runs/unclip_decoder \
    --prompt="a red circle" --prompt="a small blue square above a green triangle"
python sample.py --config=configs/unclip_decoder_shapes.py --workdir=runs/unclip_decoder \
    --variations=test --num=16 --num_per_prompt=4

Set ``unclip.first_stage_workdir=''`` to diffuse the 32x32 pixels instead (then
``model.ch_mult=(1, 2, 2)`` and ``model.attn_resolutions=(16, 8)`` suit the larger input).
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "unclip_decoder"
  config.data.dataset = "shapes"
  config.data.image_size = 32

  config.unclip = unclip = ml_collections.ConfigDict()
  unclip.clip_workdir = "runs/clip"
  unclip.prior_workdir = "runs/unclip_prior"
  unclip.first_stage_workdir = "runs/autoencoder_kl_shapes"
  unclip.num_tokens = 4                # the paper's four extra context tokens
  unclip.caption = "clip"              # the caption's CLIP token features follow them
  unclip.embed_drop_prob = 0.1         # the paper: z_i zeroed 10% of the time
  unclip.caption_drop_prob = 0.5       # and the caption dropped 50% of the time
  unclip.prior_guidance_scale = -1.0   # the prior's own config
  unclip.prior_steps = 0
  unclip.eval_num = 256

  config.model = model = ml_collections.ConfigDict()
  model.name = "unet"
  model.ch = 32
  model.ch_mult = (1, 2)               # 8x8 -> 4x4 latents
  model.num_res_blocks = 1
  model.attn_resolutions = (8, 4)      # cross-attention at both latent resolutions and the middle
  model.dropout = 0.0
  model.num_classes = 0
  model.context_dim = 64               # set from the CLIP text width with unclip.caption='clip'
  model.num_heads = 4
  model.head_dim = -1
  model.transformer_depth = 1

  config.diffusion = diffusion = ml_collections.ConfigDict()
  diffusion.schedule = "linear"
  diffusion.num_timesteps = 1000
  diffusion.parameterization = "eps"
  diffusion.loss_type = "simple"
  diffusion.var_type = "fixed_large"
  diffusion.clip_x0 = False

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.sampler = "ddim"
  sampling.steps = 50
  sampling.eta = 1.0
  sampling.guidance_scale = 3.0

  config.training.batch_size = 64
  config.training.num_steps = 6000
  config.training.sample_every = 1000
  config.training.ckpt_every = 500
  config.training.log_every = 100
  config.training.ema_decay = 0.999
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 200
  config.optim.schedule = "cosine"
  config.optim.grad_clip = 1.0
  return config
