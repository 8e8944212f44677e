"""Class-conditional DiT (Peebles & Xie 2023) on the latents of the KL-f2 first stage: DiT's
real setting. The 4x4x2 latents in 1x1 patches are 16 tokens; otherwise configs/dit.py.

python train.py --config=configs/dit_latent.py --workdir=runs/dit_latent \
    --config.ldm.first_stage_workdir=runs/autoencoder_kl
python sample.py --config=configs/dit_latent.py --workdir=runs/dit_latent \
    --config.ldm.first_stage_workdir=runs/autoencoder_kl --eval=class_accuracy,fd
"""

import ml_collections

from configs import ldm_digits


def get_config() -> ml_collections.ConfigDict:
  config = ldm_digits.get_config()
  config.model = model = ml_collections.ConfigDict()
  model.name = "dit"
  model.patch_size = 1
  model.hidden_size = 128
  model.depth = 6
  model.num_heads = 4
  model.mlp_ratio = 4.0
  model.num_classes = -1
  model.dropout = 0.0
  # The label table starts at N(0, 1) (the U-Net's label embedding), not the paper's N(0, 0.02):
  # behind zero-initialized adaLN the paper's init keeps the label's effect ~100x below the
  # time's for the first thousands of steps, and these short trainings sampled at chance class
  # accuracy (docs/latent.md, "DiT conditioning").
  model.class_embed_std = 1.0
  config.optim.learning_rate = 5e-4
  return config
