"""Contractive autoencoder (Rifai et al. 2011; seed 003 eq. 4): sigmoid code, penalty
lambda ||J_f(x)||_F^2 computed exactly (jacfwd). Use the Hutchinson estimator for larger
encoders: --config.ae.contractive_estimator=hutchinson --config.ae.contractive_projections=4.

python train.py --config=configs/cae.py --workdir=runs/cae
"""

import ml_collections

from configs import ae


def get_config() -> ml_collections.ConfigDict:
  config = ae.get_config()
  config.model.hidden = (256,)
  config.ae.latent_dim = 32
  config.ae.code_activation = "sigmoid"
  config.ae.contractive_weight = 0.1
  config.ae.contractive_estimator = "exact"
  return config
