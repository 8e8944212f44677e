"""Sparse autoencoder with the KL sparsity penalty (seed 003 eq. 3): sigmoid code of 64 units,
target mean activation rho = 0.05, weight beta = 1.

python train.py --config=configs/sparse_ae.py --workdir=runs/sparse_ae
"""

import ml_collections

from configs import ae


def get_config() -> ml_collections.ConfigDict:
  config = ae.get_config()
  config.model.hidden = (256,)
  config.ae.latent_dim = 64
  config.ae.code_activation = "sigmoid"
  config.ae.sparsity = "kl"
  config.ae.sparsity_target = 0.05
  config.ae.sparsity_weight = 1.0
  return config
