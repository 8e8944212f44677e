"""Progressive distillation (Salimans & Ho 2022) of a v-prediction DDPM on the digits.

Each run is one round: the student (same network, initialised from the teacher) learns to match
two teacher DDIM steps with one, so N steps become N/2. Chain the rounds:

python train.py --config=configs/ddpm.py --workdir=runs/ddpm_v --config.diffusion.parameterization=v
python train.py --config=configs/progressive_distill.py --workdir=runs/pd_8 \
    --config.distill.teacher_workdir=runs/ddpm_v --config.distill.student_steps=8
python train.py --config=configs/progressive_distill.py --workdir=runs/pd_4 \
    --config.distill.teacher_workdir=runs/pd_8 --config.distill.student_steps=4
python sample.py --config=configs/progressive_distill.py --workdir=runs/pd_4 \
    --config.distill.teacher_workdir=runs/pd_8 --config.distill.student_steps=4

python -m benchmarks.distill runs the chain and scores every round.
"""

import ml_collections

from configs import ddpm


def get_config() -> ml_collections.ConfigDict:
  config = ddpm.get_config()
  config.method = "progressive_distill"
  config.diffusion.parameterization = "v"  # must equal the teacher's (eps fails at few steps)
  config.distill = d = ml_collections.ConfigDict()
  d.teacher_workdir = ""
  d.student_steps = 8
  d.weighting = "truncated_snr"            # max(SNR, 1), the paper's
  d.clip_teacher = True
  config.sampling = s = ml_collections.ConfigDict()
  s.sampler = "ddim"
  s.steps = 0                              # 0: the student's N
  config.training.num_steps = 1_000        # per round (the paper: 50k on CIFAR-10)
  config.optim.learning_rate = 1e-4
  config.optim.warmup_steps = 0
  config.optim.schedule = "constant"
  config.training.ema_decay = 0.999
  return config
