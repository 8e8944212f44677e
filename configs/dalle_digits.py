"""DALL-E's transformer (Ramesh et al. 2021, Sec. 2.2) on the embedded digits, with one-word
captions made from the class labels ([BOS, digit, EOS, pad]) over the 4x4 codes of a trained
dVAE (configs/dvae_digits.py): a small check of the two-stage pipeline without a caption
dataset (configs/dalle_shapes.py is the text-to-image one).

python train.py --config=configs/dvae_digits.py --workdir=runs/dvae_digits
python train.py --config=configs/dalle_digits.py --workdir=runs/dalle_digits \
    --config.dalle.dvae_workdir=runs/dvae_digits
python sample.py --config=configs/dalle_digits.py --workdir=runs/dalle_digits   # classes in turn
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "dalle"

  config.dalle = dalle = ml_collections.ConfigDict()
  dalle.dvae_workdir = "runs/dvae_digits"
  dalle.dvae_config = ml_collections.config_dict.placeholder(str)
  dalle.text_len = 4
  dalle.text_from_label = True
  dalle.dim = 64
  dalle.depth = 4
  dalle.num_heads = 4
  dalle.mlp_ratio = 4.0
  dalle.attention = ("row", "column", "row", "row")   # the paper's cycle
  dalle.last_attention = "conv"
  dalle.conv_kernel = 3
  dalle.text_loss_weight = 1.0 / 8.0
  dalle.image_loss_weight = 7.0 / 8.0
  dalle.temperature = 1.0
  dalle.top_k = 0
  dalle.top_p = 1.0

  config.training.batch_size = 64
  config.training.num_steps = 3_000
  config.training.log_every = 100
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.995
  config.optim.name = "adamw"
  config.optim.learning_rate = 1e-3
  config.optim.weight_decay = 0.01
  config.optim.warmup_steps = 100
  config.optim.schedule = "cosine"
  return config
