"""Imagen's base stage on the captioned shapes (Saharia et al. 2022): text-to-image pixel
diffusion at 16x16 whose text encoder is frozen, the text tower of a trained CLIP; the U-Net
cross-attends to its last hidden states and adds its pooled embedding to the time embedding;
10% of the captions are dropped to the empty caption, so classifier-free guidance works.

python train.py --config=configs/clip_shapes.py --workdir=runs/clip
python train.py --config=configs/imagen_shapes_base.py --workdir=runs/imagen16
python train.py --config=configs/imagen_shapes_sr.py --workdir=runs/imagen32
python sample.py --config=configs/imagen_shapes_sr.py --workdir=runs/imagen32 \\
    --prompt="a large red circle" --prompt="a small blue square above a green triangle"

Other text encoders (cascade.text_encoder):
  --config.cascade.text_encoder=weights --config.cascade.text_encoder_path=weights/clip-text
      (a frozen transformers CLIPTextModel folder; its CLIP tokenizer, if there, is used)
  --config.cascade.text_encoder=joint --config.cascade.text_encoder_path=""
      (a fresh encoder, config.text_encoder, trained with the U-Net)
"""

import ml_collections

from configs import cascade_digits_base


def get_config() -> ml_collections.ConfigDict:
  config = cascade_digits_base.get_config()
  config.data.dataset = "shapes"
  config.data.image_size = 16
  config.cascade.text_encoder = "clip"        # none | clip | weights | joint
  config.cascade.text_encoder_path = "runs/clip"

  config.model.ch = 32
  config.model.ch_mult = (1, 2)                # 16 -> 8
  config.model.num_res_blocks = 1
  config.model.attn_resolutions = (8,)         # cross-attention to the text at 8x8 and middle
  config.model.dropout = 0.0
  config.model.num_heads = 4
  config.model.head_dim = -1
  config.model.transformer_depth = 1

  # A jointly trained encoder (cascade.text_encoder = "joint"): the CLIP text tower's sizes.
  config.text_encoder = enc = ml_collections.ConfigDict()
  enc.width = 64
  enc.depth = 2
  enc.num_heads = 2

  config.diffusion.cond_drop_prob = 0.1       # caption dropout to the empty caption
  config.sampling.steps = 25
  config.sampling.guidance_scale = 1.0        # (1 + w) eps(x, c) - w eps(x, empty)
  config.training.batch_size = 32
  config.training.num_steps = 3_000
  config.training.sample_every = 500
  config.training.ckpt_every = 100
  config.optim.learning_rate = 1e-3
  return config
