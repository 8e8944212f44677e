"""Text-to-image latent diffusion on the captioned shapes (Rombach et al. 2022, Sec. 3.3 and
4.3.1): a U-Net with cross-attention (seed 003 eq. 47-48) on the 8x8x4 latents of the KL-f4
first stage, its context the last hidden states of a CLIP-layout text encoder tau_theta trained
jointly; 10% of the captions are dropped to the empty caption, so classifier-free guidance works.

python train.py --config=configs/autoencoder_kl_shapes.py --workdir=runs/autoencoder_kl_shapes
python train.py --config=configs/ldm_shapes.py --workdir=runs/ldm_shapes
python sample.py --config=configs/ldm_shapes.py --workdir=runs/ldm_shapes \
    --prompt="a red circle" --prompt="a small blue square above a green triangle" \
    --guidance_scale=3
"""

import ml_collections

from configs import ldm_digits


def get_config() -> ml_collections.ConfigDict:
  config = ldm_digits.get_config()
  config.data.dataset = "shapes"
  config.ldm.first_stage_workdir = "runs/autoencoder_kl_shapes"
  config.ldm.condition = "text"

  config.model = model = ml_collections.ConfigDict()
  model.name = "unet"
  model.ch = 64
  model.ch_mult = (1, 2)            # 8x8 -> 4x4 latents
  model.num_res_blocks = 1
  model.attn_resolutions = (8, 4)   # cross-attention at both latent resolutions and the middle
  model.dropout = 0.0
  model.num_classes = 0
  model.context_dim = 128           # set from the text encoder's width
  model.num_heads = 4
  model.head_dim = -1
  model.transformer_depth = 1

  # tau_theta: genjax.nets.text.TextEncoder (vocab_size and max_len from the tokenizer / data).
  config.text_encoder = enc = ml_collections.ConfigDict()
  enc.width = 128
  enc.depth = 2
  enc.num_heads = 4

  config.diffusion.cond_drop_prob = 0.1   # caption dropout to the empty caption
  config.sampling.guidance_scale = 2.0
  config.training.num_steps = 6_000
  return config
