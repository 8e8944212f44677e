"""DDPM on the embedded 8x8 digits: the small CPU default (about 5 minutes on 2 cores).

python train.py --config=configs/ddpm.py --workdir=runs/ddpm
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "ddpm"

  config.model = model = ml_collections.ConfigDict()
  model.name = "unet"
  model.ch = 32
  model.ch_mult = (1, 2)
  model.num_res_blocks = 1
  model.attn_resolutions = (4,)
  model.dropout = 0.1
  model.num_classes = 0

  config.diffusion = diffusion = ml_collections.ConfigDict()
  diffusion.schedule = "linear"
  diffusion.num_timesteps = 1000
  diffusion.parameterization = "eps"
  diffusion.loss_type = "simple"
  diffusion.var_type = "fixed_large"      # fixed_large | fixed_small | learned_range
  diffusion.clip_x0 = True
  diffusion.vlb_weight = 0.001            # lambda of L_hybrid (loss_type="hybrid")
  diffusion.timestep_sampler = "uniform"  # uniform | loss-second-moment
  diffusion.decoder_bins = 256            # L_0's grid: the papers' 8-bit convention
  diffusion.nll_extra_bins = ()           # --eval=nll also reports bpd_<k>bins, e.g. (17,)
  diffusion.cond_drop_prob = 0.0          # classifier-free guidance's p_uncond (configs/ddpm_cfg.py)

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.sampler = "ddim"               # any sampler of genjax.sampling (sample.py --help)
  sampling.steps = 50                     # DDIM steps (each sampler's meaning: sample.py --help)
  sampling.eta = 1.0                      # DDIM eq. 16; 1: stochastic (the strided ancestral
                                          # chain), 0: deterministic. On the digits eta=1 at 50
                                          # steps scored FD/floor 2.6-3.9 vs 4.0-6.2 for eta=0
                                          # (python -m benchmarks.quality)
  sampling.spacing = "uniform"
  sampling.dpm_method = "singlestep"      # singlestep | multistep
  sampling.dpm_skip_type = "time_uniform"  # time_uniform | logSNR | time_quadratic
  sampling.dpm_denoise = False
  sampling.respacing = ""                 # ddpm sampler: "" (all T) | "N" | "n1,n2,.." | "ddimN"
  sampling.guidance_scale = 0.0           # classifier-free guidance w (needs cond_drop_prob > 0)
  sampling.label = -1                     # class-conditional models: -1 cycles the classes
  sampling.classifier_workdir = ""        # classifier guidance: a configs/noisy_classifier.py run
  sampling.classifier_scale = 1.0         # its gradient scale s

  config.training.batch_size = 64
  config.training.num_steps = 2_000
  config.training.sample_every = 500
  config.training.ckpt_every = 500
  config.training.ema_decay = 0.999
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 200
  config.optim.schedule = "cosine"
  return config
