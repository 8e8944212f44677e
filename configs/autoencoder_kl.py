"""LDM's KL-regularized first stage ("KL-f2" on the 8x8 digits: a 4x4x2 latent), trained with
L1 + perceptual (the shipped digits classifier's features) + PatchGAN hinge loss with VQGAN's
adaptive weight (Rombach et al. 2022, Sec. 3.1; Esser et al. 2021, eq. 7).

python train.py --config=configs/autoencoder_kl.py --workdir=runs/autoencoder_kl
python sample.py --config=configs/autoencoder_kl.py --workdir=runs/autoencoder_kl --eval=recon,psnr,ssim
python train.py --config=configs/ldm_digits.py --workdir=runs/ldm_digits  # the second stage

The downsampling factor is f = 2^(len(ch_mult) - 1): --config.model.ch_mult=1 for f=1, (1,2)
for f=2, (1,2,2) for f=4, (1,2,2,2) for f=8.
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "autoencoder_kl"

  config.model = model = ml_collections.ConfigDict()
  model.name = "first_stage"
  model.ch = 32
  model.ch_mult = (1, 2)          # f = 2
  model.num_res_blocks = 1
  model.attn_resolutions = ()
  model.z_channels = 2
  model.embed_dim = 2
  model.num_codes = 256           # vqgan only
  model.dropout = 0.0

  config.first_stage = fs = ml_collections.ConfigDict()
  fs.kl_weight = 1e-6             # LDM's KL weight
  fs.perceptual = "auto"          # auto | digits | shapes | lpips | none
  fs.perceptual_weight = 1.0
  fs.lpips_weights = ""           # an LPIPS .npz (python -m genjax.metrics.convert_lpips)
  fs.disc_start = 1000            # GAN terms on from this step
  fs.disc_weight = 0.5            # LDM KL: 0.5; taming: 0.8
  fs.disc_ndf = 32
  fs.disc_layers = 1
  fs.codebook_weight = 1.0
  fs.commitment_cost = 0.25
  fs.scale_decay = 0.99

  del config.optim.learning_rate
  config.optim.beta1 = 0.5        # taming / LDM: Adam(0.5, 0.9)
  config.optim.beta2 = 0.9
  config.optim.grad_clip = 0.0
  config.optim_g = ml_collections.ConfigDict({"learning_rate": 1e-3})
  config.optim_d = ml_collections.ConfigDict({"learning_rate": 1e-3})

  config.training.batch_size = 64
  config.training.num_steps = 2_000
  config.training.log_every = 100
  config.training.sample_every = 1_000
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.99
  return config
