"""unCLIP's prior P(z_i | y) on shapes (Ramesh et al. 2022, Sec. 2.1): a diffusion model over the
image embeddings of a trained CLIP, conditioned on its text embeddings, predicting z_i directly,
with 10% of the text embeddings dropped for classifier-free guidance.

python train.py --config=configs/clip_shapes.py --workdir=runs/clip
python train.py --config=configs/unclip_prior_shapes.py --workdir=runs/unclip_prior
python sample.py --config=configs/unclip_prior_shapes.py --workdir=runs/unclip_prior --eval=prior
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "unclip_prior"
  config.data.dataset = "shapes"
  config.data.image_size = 32

  config.unclip = unclip = ml_collections.ConfigDict()
  unclip.clip_workdir = "runs/clip"
  unclip.width = 256
  unclip.depth = 3
  unclip.eval_num = 500

  config.diffusion = diffusion = ml_collections.ConfigDict()
  diffusion.schedule = "cosine"
  diffusion.num_timesteps = 1000
  diffusion.parameterization = "x0"      # the paper: predict z_i directly
  diffusion.cond_drop_prob = 0.1

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.sampler = "ddim"
  sampling.steps = 64
  sampling.eta = 1.0
  sampling.guidance_scale = 0.0

  config.training.batch_size = 128
  config.training.num_steps = 3000
  config.training.sample_every = 0       # samples are embeddings, not images
  config.training.ckpt_every = 500
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  config.optim.schedule = "cosine"
  return config
