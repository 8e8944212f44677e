"""k-sparse autoencoder (Makhzani & Frey 2013; seed 003 Sec. 1.1.3): linear encoder and
decoder, 64 units of which the 12 largest are kept; the gradient flows through those only.

python train.py --config=configs/ksparse_ae.py --workdir=runs/ksparse_ae
"""

import ml_collections

from configs import ae


def get_config() -> ml_collections.ConfigDict:
  config = ae.get_config()
  config.model.hidden = ()      # linear encoder and decoder, as in the paper
  config.ae.latent_dim = 64
  config.ae.sparsity = "topk"
  config.ae.k = 12
  config.ae.k_eval_multiplier = 1.0
  return config
