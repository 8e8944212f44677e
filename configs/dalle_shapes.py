"""DALL-E (Ramesh et al. 2021) on the captioned 32x32 ``shapes``: a decoder-only transformer over
[32 caption tokens; 64 image tokens] where the image tokens are the 8x8 argmax codes of the
dVAE trained with configs/dvae_shapes.py (named by ``dalle.dvae_workdir``; a workdir that holds
another run, or a dVAE of other images, is refused in one line).

python train.py --config=configs/dvae_shapes.py --workdir=runs/dvae_shapes
python train.py --config=configs/dalle_shapes.py --workdir=runs/dalle_shapes \
    --config.dalle.dvae_workdir=runs/dvae_shapes
python sample.py --config=configs/dalle_shapes.py --workdir=runs/dalle_shapes \
    --prompt="a large red circle at the top left"

The paper's sparse attention (``dalle.attention = ("row", "column", "row", "row")`` with
``dalle.last_attention = "conv"``) is an option; this small model attends densely.
"""

import ml_collections

from configs import dalle_digits


def get_config() -> ml_collections.ConfigDict:
  config = dalle_digits.get_config()
  config.data.dataset = "shapes"

  dalle = config.dalle
  dalle.dvae_workdir = "runs/dvae_shapes"
  dalle.text_len = 32                 # = config.data.text_len
  dalle.text_from_label = False       # captions from batch["text"] (genjax.text)
  dalle.dim = 128
  dalle.depth = 4
  dalle.num_heads = 4
  dalle.attention = ("dense",)
  dalle.last_attention = ""
  dalle.conv_kernel = 3
  dalle.temperature = 1.0
  dalle.top_k = 0
  dalle.top_p = 1.0

  config.training.batch_size = 32
  config.training.num_steps = 1_500   # sized for a small shared CPU; more is better
  config.training.sample_every = 1_000
  config.training.ckpt_every = 500
  config.training.num_sample_images = 16
  config.optim.learning_rate = 5e-4
  return config
