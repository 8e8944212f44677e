"""CLIP (Radford et al. 2021) on the shapes image-caption pairs: a small ResNet image encoder and
the CLIP-layout text transformer trained with the symmetric InfoNCE loss.

python train.py --config=configs/clip_shapes.py --workdir=runs/clip
python sample.py --config=configs/clip_shapes.py --workdir=runs/clip --eval=zeroshot,retrieval
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "clip"
  config.data.dataset = "shapes"
  config.data.image_size = 32

  config.clip = clip = ml_collections.ConfigDict()
  clip.embed_dim = 64
  clip.image_width = 16
  clip.image_mult = (1, 2, 4)
  clip.image_blocks = 1
  clip.text_width = 64
  clip.text_depth = 2
  clip.text_heads = 2
  clip.eval_num = 1000

  config.training.batch_size = 128
  config.training.num_steps = 3000
  config.training.sample_every = 0       # CLIP generates nothing
  config.training.ckpt_every = 500
  config.training.log_every = 50
  config.training.ema_decay = 0.99
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  config.optim.schedule = "cosine"
  config.optim.weight_decay = 0.1
  config.optim.name = "adamw"
  return config
