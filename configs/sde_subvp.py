"""Score SDE (sub-VP) on the digits: the VP config with the sub-VP SDE (Song et al. 2021, eq. 12).

python train.py --config=configs/sde_subvp.py --workdir=runs/sde_subvp
"""

import ml_collections

from configs import sde_vp


def get_config() -> ml_collections.ConfigDict:
  config = sde_vp.get_config()
  config.sde.name = "subvpsde"
  return config
