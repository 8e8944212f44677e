"""VQGAN (Esser et al. 2021) / LDM's VQ-regularized first stage on the 8x8 digits ("VQ-f2": a
4x4 grid of codes from 256 entries): the encoder output is quantized with the VQ-VAE codebook
(genjax.autoencoders.vq: nearest code, straight-through, codebook + 0.25 commitment loss); the
loss adds L1 + perceptual + PatchGAN hinge with the adaptive weight of eq. 7. A second stage
diffuses the latent before quantization; the decoder quantizes it.

python train.py --config=configs/vqgan.py --workdir=runs/vqgan
python sample.py --config=configs/vqgan.py --workdir=runs/vqgan --eval=recon
"""

import ml_collections

from configs import autoencoder_kl


def get_config() -> ml_collections.ConfigDict:
  config = autoencoder_kl.get_config()
  config.method = "vqgan"
  config.model.z_channels = 4
  config.model.embed_dim = 4
  config.model.num_codes = 256
  config.first_stage.disc_weight = 0.8   # taming's
  return config
