"""The MLP GAN of Goodfellow et al. 2014 on the embedded 8x8 digits (a few minutes on 2 cores).

Algorithm 2 of the seed with k = 1, the non-saturating generator loss the paper trains with
(sec. 3), a ReLU MLP generator and a maxout discriminator with dropout (sec. 5); Adam instead of
the paper's SGD with momentum, and less dropout (see below). Every GAN config derives from this one.

python train.py --config=configs/gan.py --workdir=runs/gan
python train.py --config=configs/gan.py --config.gan.loss=saturating --config.gan.k=2
python train.py --config=configs/gan.py --config.optim_d.learning_rate=4e-4
python sample.py --config=configs/gan.py --workdir=runs/gan --num=64
python sample.py --config=configs/gan.py --workdir=runs/gan --eval=parzen --num=100000
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()
  config.method = "gan"

  config.gan = gan = ml_collections.ConfigDict()
  gan.loss = "non_saturating"   # saturating | non_saturating | lsgan | hinge | wgan_gp
  gan.k = 1                     # discriminator steps per generator step (Algorithm 2)
  gan.z_dim = 100
  gan.noise = "uniform"         # normal | uniform (U[-1, 1], as the paper's MNIST model)
  gan.gp_weight = 10.0          # WGAN-GP lambda (loss=wgan_gp)
  gan.r1_gamma = 0.0            # R1 penalty gamma; 0 disables
  gan.bn_ref_size = 256         # reference noise batch of a batch-normalized G when sampling
  gan.mode_num_std = 3.0        # 8-Gaussians protocol (2-D data only)
  gan.mode_min_fraction = 0.2    # a mode needs >= 20% of its fair share of hq samples
  gan.mode_eval_samples = 2500

  config.generator = g = ml_collections.ConfigDict()
  g.name = "mlp"                # mlp | dcgan
  g.hidden = (512, 512)
  g.activation = "relu"
  g.output = "tanh"             # images in [-1, 1]

  config.discriminator = d = ml_collections.ConfigDict()
  d.name = "mlp"                # mlp | dcgan
  d.hidden = (240, 240)
  d.maxout_pieces = 5           # maxout units, as the paper's discriminator
  d.activation = "leaky_relu"   # used when maxout_pieces == 1
  # The paper's MNIST model drops 0.5 of the hidden and 0.2 of the input units; on the 1,527
  # digits that D was too noisy and G collapsed to one blob within 500 steps (mean pairwise
  # sample distance 1.1 vs 6.0 for data); hidden-only dropout 0.2 keeps G diverse.
  d.dropout = 0.2
  d.input_dropout = 0.0

  # Both players share these optimizer settings; each has its own learning rate (and may
  # override any other optim field in optim_g / optim_d).
  del config.optim.learning_rate
  config.optim.beta1 = 0.5
  config.optim.grad_clip = 0.0  # no clipping
  config.optim_g = ml_collections.ConfigDict({"learning_rate": 2e-4})
  config.optim_d = ml_collections.ConfigDict({"learning_rate": 2e-4})

  config.training.batch_size = 64
  config.training.num_steps = 6_000
  config.training.log_every = 100
  config.training.sample_every = 500
  config.training.ckpt_every = 1_000
  config.training.ema_decay = 0.999
  return config
