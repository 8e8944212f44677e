"""Fields every experiment shares; experiments import this and override their differences."""

import ml_collections
import numpy as np


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.method = "ddpm"
  config.seed = 0

  config.data = data = ml_collections.ConfigDict()
  data.dataset = "digits"      # digits | shapes | swiss_roll | 8gaussians | moons | checkerboard | mnist | fashion_mnist | cifar10 | celeb_a
  data.data_dir = ml_collections.config_dict.placeholder(str)  # tfds data_dir
  data.image_size = ml_collections.config_dict.placeholder(int)  # resize square images
  data.crop_size = ml_collections.config_dict.placeholder(int)  # center crop (CelebA)
  data.random_flip = False
  data.test_fraction = 0.15    # digits: fixed held-out split
  data.num_points = 100_000    # 2-D toys: train set size
  data.num_test_points = 10_000
  data.toy_noise = ml_collections.config_dict.placeholder(float)
  data.seed = 0                # shuffle seed
  data.shapes_min_objects = 1  # shapes: objects per image, 1..3
  data.shapes_max_objects = 3
  data.shapes_max_rotation = 0.0  # shapes: degrees
  data.shapes_texture = 0.5    # shapes: probability of a textured background
  data.shapes_num_train = 1_000_000  # shapes: train = images [num_test, num_test + num_train)
  data.shapes_num_test = 10_000
  data.text_len = 32           # shapes: caption token length (batch["text"])
  data.loader = "sync"         # sync | grain (worker processes make the same batches ahead)
  data.num_workers = 2         # grain worker processes

  config.training = training = ml_collections.ConfigDict()
  training.batch_size = 64
  training.num_steps = 10_000
  training.log_every = 100
  training.sample_every = 2_000
  training.ckpt_every = 2_000
  training.keep_checkpoints = 3
  training.ema_decay = 0.999
  training.ema_start_step = 0
  training.ema_warmup = True
  training.num_sample_images = 64
  training.progress = True
  training.time_budget_s = ml_collections.config_dict.placeholder(float)
  training.time_budget_clock = "wall"  # wall | process (CPU seconds, fair on a shared machine)
  training.tensorboard = True
  training.allow_config_change = False  # resume with a config that changes training
  training.compute_dtype = "float32"   # float32 | bfloat16 (mixed precision; float32 master params)
  training.remat = False               # rematerialise U-Net / DiT blocks (memory for compute)
  training.grad_accum_steps = 1        # micro-batches per step (gradients summed)
  training.param_sharding = "replicated"  # replicated | fsdp (params + optimizer state sharded)
  training.xla_cpu_options = "auto"    # auto | default | train=<preset>,sample=<preset>

  config.optim = optim = ml_collections.ConfigDict()
  optim.name = "adam"
  optim.learning_rate = 2e-4
  optim.beta1 = 0.9
  optim.beta2 = 0.999
  optim.eps = 1e-8
  optim.weight_decay = 0.0
  optim.warmup_steps = 0
  optim.schedule = "constant"
  optim.decay_steps = ml_collections.config_dict.placeholder(int)
  optim.end_lr_factor = 0.0
  optim.grad_clip = 1.0

  # sample.py --eval=parzen (Goodfellow et al. 2014, Table 1), for any method.
  config.parzen = parzen = ml_collections.ConfigDict()
  parzen.num_samples = 10_000   # Goodfellow et al.: 10,000 samples
  parzen.sigmas = tuple(float(s) for s in np.logspace(-2, 0, 13))
  parzen.val_size = 500         # fixed random subset of the train split
  parzen.unit_interval = True   # images in [0, 1], as the paper's MNIST figures
  parzen.batch_size = ml_collections.config_dict.placeholder(int)
  return config
