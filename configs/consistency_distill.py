"""Consistency distillation (Song et al. 2023, Algorithm 2) of the EDM digits model.

The student has the teacher's network (configs/edm.py) and starts from its weights; N = 18
Karras levels, Heun teacher steps, target EMA mu = 0.95, squared-L2 distance (the paper's
CIFAR-10 l2 setting; LPIPS needs weights we cannot download).

python train.py --config=configs/edm.py --workdir=runs/edm
python train.py --config=configs/consistency_distill.py --workdir=runs/cd \
    --config.consistency.teacher_workdir=runs/edm
python sample.py --config=configs/consistency_distill.py --workdir=runs/cd --steps=2
"""

import ml_collections

from configs import edm


def get_config() -> ml_collections.ConfigDict:
  config = edm.get_config()           # the teacher's model, data and optimizer sections
  config.method = "consistency_distill"
  del config["edm"]
  config.consistency = c = ml_collections.ConfigDict()
  c.teacher_workdir = ""
  c.init_from_teacher = True
  c.num_scales = 18
  c.solver = "heun"
  c.target_decay = 0.95
  c.s0, c.s1, c.mu0 = 2, 150, 0.9     # consistency training only
  c.sigma_min, c.sigma_max, c.sigma_data, c.rho = 0.002, 80.0, 0.5, 7.0

  config.sampling = s = ml_collections.ConfigDict()
  s.sampler = "consistency"
  s.steps = 1                          # network evaluations (Algorithm 1)
  s.taus = ()                          # intermediate levels; () = genjax.distill.default_taus

  config.training.num_steps = 2_000
  config.optim.learning_rate = 1e-4    # fine-tuning from the teacher
  config.optim.warmup_steps = 0
  config.optim.schedule = "constant"
  return config
