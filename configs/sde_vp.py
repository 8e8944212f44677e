"""Score SDE (VP) on the embedded 8x8 digits: continuous DSM, PC / probability-flow samplers.

Song et al. 2021 with score_sde's defaults (beta_min 0.1, beta_max 20, N = 1000, train t ~
U[1e-5, 1], sampling to 1e-3) and the DDPM U-Net of configs/ddpm.py, which sees 999 t.

python train.py --config=configs/sde_vp.py --workdir=runs/sde_vp
python sample.py --config=configs/sde_vp.py --workdir=runs/sde_vp --sampler=ode-heun --steps=50
python sample.py --config=configs/sde_vp.py --workdir=runs/sde_vp --sampler=dpm-solver-3 --steps=20
python sample.py --config=configs/sde_vp.py --workdir=runs/sde_vp --eval=nll --num=270
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.method = "sde"
  del config["diffusion"]

  config.sde = sde = ml_collections.ConfigDict()
  sde.name = "vpsde"
  sde.beta_min = 0.1
  sde.beta_max = 20.0
  sde.sigma_min = 0.01
  sde.sigma_max = 50.0
  sde.num_scales = 1000
  sde.reduce_mean = True        # score_sde's VP configs
  sde.likelihood_weighting = False
  sde.train_eps = 1e-5
  sde.sampling_eps = ml_collections.config_dict.placeholder(float)  # None: 1e-3 VP, 1e-5 VE

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.sampler = "pc"       # any sampler of genjax.sampling for this SDE (sample.py --help);
                                # the fields below are the ones PC, the ODE and DPM-Solver read
  sampling.steps = 1000
  sampling.predictor = "reverse_diffusion"  # euler_maruyama | reverse_diffusion | ancestral_sampling | none
  sampling.corrector = "langevin"           # langevin | ald | none
  sampling.snr = 0.01           # score_sde: 0.01 for VP / sub-VP, 0.16 for VE
  sampling.n_corrector_steps = 1
  sampling.probability_flow = False
  sampling.denoise = True
  sampling.rtol = 1e-5
  sampling.atol = 1e-5
  sampling.eta = 0.0
  sampling.dpm_method = "multistep"
  sampling.dpm_skip_type = "logSNR"
  sampling.s_churn = 0.0
  sampling.s_noise = 1.0

  config.likelihood = lik = ml_collections.ConfigDict()
  lik.hutchinson = "rademacher"  # rademacher | gaussian | exact
  lik.method = "dopri5"          # dopri5 | euler | heun | rk4
  lik.rtol = 1e-5
  lik.atol = 1e-5
  lik.steps = 100
  lik.eps = 1e-5
  lik.num_levels = 0             # 0: 17 for digits, 256 for 8-bit images, continuous for points
  lik.batch = 128

  config.training.num_sample_images = 64
  return config
