"""Masked autoencoder (He et al. 2022) on the embedded 8x8 digits: 2x2 patches (16 per image),
75% masked per example, a 4-block ViT encoder over the 4 visible patches and a 2-block decoder,
loss on the masked patches' per-patch normalised pixels.

python train.py --config=configs/mae.py --workdir=runs/mae
python sample.py --config=configs/mae.py --workdir=runs/mae --eval=recon,probe
python benchmarks/mae_probe.py --mae_workdir=runs/mae --dae_workdir=runs/dae

``--eval=recon`` writes ``mae_recon.png`` (input | masked input | reconstruction); ``--eval=probe``
scores a linear probe on the frozen encoder against the same encoder at random initialisation
and raw pixels. MAE is not a generative model: the trainer's sample grids show the decoder's
prediction with every patch masked, so they are off by default.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "mae"

  config.mae = mae = ml_collections.ConfigDict()
  mae.patch_size = 2
  mae.mask_ratio = 0.75
  mae.norm_pix_loss = True
  mae.enc_dim = 64
  mae.enc_depth = 4
  mae.enc_heads = 4
  mae.dec_dim = 32
  mae.dec_depth = 2
  mae.dec_heads = 4
  mae.mlp_ratio = 4.0
  mae.probe_pool = "mean"   # mean | cls
  mae.probe_l2 = 1.0

  config.training.batch_size = 128
  config.training.num_steps = 3_000
  config.training.log_every = 100
  config.training.sample_every = 0
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.995
  config.optim.name = "adamw"
  config.optim.learning_rate = 1e-3
  config.optim.weight_decay = 0.05
  config.optim.warmup_steps = 200
  config.optim.schedule = "cosine"
  return config
