"""ControlNet on Canny edges of the digits, on the default DDPM run (configs/ddpm.py) as base.

The base is restored from its workdir and frozen; only ControlNet's parameters train.

python train.py --config=configs/ddpm.py --workdir=runs/ddpm
python train.py --config=configs/controlnet_digits_edges.py --workdir=runs/cn_edges \\
    --config.controlnet.base_workdir=runs/ddpm
python sample.py --config=configs/controlnet_digits_edges.py --workdir=runs/cn_edges \\
    --config.controlnet.base_workdir=runs/ddpm --control=edges --control_image=test \\
    --control_scale=1
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.method = "controlnet"
  del config["model"]       # the base's network, from its workdir
  del config["diffusion"]   # the base's process and parameterization, from its workdir

  config.controlnet = cn = ml_collections.ConfigDict()
  cn.base_workdir = "runs/ddpm"
  cn.condition = "edges"            # genjax.controlnet.conditions.CONDITIONS
  cn.condition_args = ml_collections.ConfigDict({"sigma": 1.0, "low_threshold": 0.1,
                                                 "high_threshold": 0.2})
  cn.hint_channels = (16, 32)       # the condition encoder's widths
  cn.hint_downsample = 1            # pixel-space base: the map has the image's size
  cn.control_scale = 1.0            # sampling: the residuals' scale (0: the base alone)
  cn.guess_mode = False
  cn.label_drop_prob = 0.0
  cn.also_workdirs = ()             # further ControlNet runs on the same base, combined
  cn.also_scales = ()

  config.training.num_steps = 1_500
  config.training.sample_every = 500
  config.training.ckpt_every = 500
  config.training.ema_decay = 0.999
  config.optim.learning_rate = 5e-4
  config.optim.warmup_steps = 100
  config.optim.schedule = "cosine"
  return config
