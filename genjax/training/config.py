"""The generic trainer's typed config sections (``config.training``, ``config.optim``).

See :mod:`genjax.typed_config` for how a section becomes a frozen dataclass.
"""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Optimizer and learning-rate schedule (optax)."""
  name: str = "adam"            # adam | adamw
  learning_rate: float = 2e-4
  beta1: float = 0.9
  beta2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0     # adamw only
  warmup_steps: int = 0
  schedule: str = "constant"    # constant | cosine
  decay_steps: Optional[int] = None  # cosine: defaults to training.num_steps
  end_lr_factor: float = 0.0    # cosine: final lr = learning_rate * end_lr_factor
  grad_clip: Optional[float] = 1.0  # global-norm clip; None/0 disables


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The generic trainer's settings."""
  batch_size: int = 64          # global batch, divided over the devices
  num_steps: int = 10_000
  log_every: int = 100          # host round-trips (metrics, NaN check) happen only here
  sample_every: int = 2_000     # PNG grid from the EMA params; 0 disables
  ckpt_every: int = 2_000
  keep_checkpoints: int = 3
  ema_decay: float = 0.999
  ema_start_step: int = 0       # EMA copies params verbatim before this step
  ema_warmup: bool = True       # decay min(ema_decay, (1+n)/(10+n)): short runs are not init-dominated
  num_sample_images: int = 64
  progress: bool = True         # tqdm progress bar
  time_budget_s: Optional[float] = None  # stop (and checkpoint) after this much training time
  time_budget_clock: str = "wall"  # wall | process (CPU seconds of this process, all threads:
                                   # a budget that other jobs on a shared machine do not eat)
  tensorboard: bool = True
