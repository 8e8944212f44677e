"""DDPM with a Diffusion Transformer (Peebles & Xie 2023) instead of the U-Net, on the digits.

The 8x8 digits in 2x2 patches are 16 tokens; a DiT-S-shaped network, narrowed to the data
(hidden 128, depth 6, 4 heads), class-conditional with classifier-free guidance as the paper.

python train.py --config=configs/dit.py --workdir=runs/dit
python sample.py --config=configs/dit.py --workdir=runs/dit --guidance_scale=0.5
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.model = model = ml_collections.ConfigDict()
  model.name = "dit"
  model.patch_size = 2
  model.hidden_size = 128
  model.depth = 6
  model.num_heads = 4
  model.mlp_ratio = 4.0
  model.num_classes = -1                  # from the data (+ the null label)
  model.dropout = 0.0
  # The label table starts at N(0, 1) (the U-Net's label embedding), not the paper's N(0, 0.02):
  # behind zero-initialized adaLN the paper's init keeps the label's effect ~100x below the
  # time's for the first thousands of steps, and these short trainings sampled at chance class
  # accuracy (docs/latent.md, "DiT conditioning").
  model.class_embed_std = 1.0
  config.diffusion.cond_drop_prob = 0.1   # the paper's label dropout for guidance
  config.sampling.guidance_scale = 0.0    # w; DiT's "cfg scale" s is w + 1 (FID-50K: s = 1.5)
  config.optim.learning_rate = 5e-4
  config.optim.weight_decay = 0.0
  return config
