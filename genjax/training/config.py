"""The generic trainer's typed config sections (``config.training``, ``config.optim``).

See :mod:`genjax.typed_config` for how a section becomes a frozen dataclass and how each
field's type and range are checked. :func:`validate_sections` checks the sections every run has
(training, optim, data) before anything is built or compiled; it imports no JAX.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional

from genjax import typed_config
from genjax.typed_config import field

if TYPE_CHECKING:
  from genjax.data.pipeline import DataConfig


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Optimizer and learning-rate schedule (optax)."""
  name: str = field("adam", choices=("adam", "adamw"))
  learning_rate: float = field(2e-4, gt=0.0)
  beta1: float = field(0.9, ge=0.0, lt=1.0)
  beta2: float = field(0.999, ge=0.0, lt=1.0)
  eps: float = field(1e-8, gt=0.0)
  weight_decay: float = field(0.0, ge=0.0)            # adamw only
  warmup_steps: int = field(0, ge=0)
  schedule: str = field("constant", choices=("constant", "cosine"))
  decay_steps: Optional[int] = field(None, gt=0)      # cosine: defaults to training.num_steps
  end_lr_factor: float = field(0.0, ge=0.0, le=1.0)   # cosine: final lr = learning_rate * this
  grad_clip: Optional[float] = field(1.0, ge=0.0)     # global-norm clip; None/0 disables

  def __post_init__(self):
    typed_config.validate(self, "optim")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The generic trainer's settings.

  Attributes:
    batch_size: global batch, divided over the devices.
    num_steps: train until this step.
    log_every: host round-trips (metrics, the non-finite check) happen only every this many
      steps.
    sample_every: PNG grid from the EMA params every this many steps; 0 disables.
    ckpt_every: checkpoint every this many steps (also at the end and when stopped).
    keep_checkpoints: how many of the newest checkpoints to keep.
    ema_decay: EMA decay of the params.
    ema_start_step: the EMA copies the params verbatim before this step.
    ema_warmup: decay ``min(ema_decay, (1+n)/(10+n))``, so that a short run's EMA is not
      dominated by the initial params.
    num_sample_images: images in each sample grid.
    progress: show a progress bar.
    time_budget_s: stop (and checkpoint) after this much training time (counted from when the
      train step has compiled); None: no budget.
    time_budget_clock: ``"wall"``, or ``"process"`` for the CPU seconds of this process (all
      threads), a budget that other jobs on a shared machine do not eat.
    tensorboard: also write TensorBoard event files.
    allow_config_change: resume a run whose saved config differs in a field that changes
      training (the new config is saved beside the old; the run is then no longer exactly
      reproducible from one config).
  """
  batch_size: int = field(64, gt=0)
  num_steps: int = field(10_000, gt=0)
  log_every: int = field(100, gt=0)
  sample_every: int = field(2_000, ge=0)
  ckpt_every: int = field(2_000, gt=0)
  keep_checkpoints: int = field(3, gt=0)
  ema_decay: float = field(0.999, ge=0.0, le=1.0)
  ema_start_step: int = field(0, ge=0)
  ema_warmup: bool = True
  num_sample_images: int = field(64, gt=0)
  progress: bool = True
  time_budget_s: Optional[float] = field(None, ge=0.0)
  time_budget_clock: str = field("wall", choices=("wall", "process"))
  tensorboard: bool = True
  allow_config_change: bool = False
  compute_dtype: str = field("float32", choices=("float32", "bfloat16"))
  remat: bool = False
  grad_accum_steps: int = field(1, gt=0)
  param_sharding: str = field("replicated", choices=("replicated", "fsdp"))
  xla_cpu_options: str = "auto"

  def __post_init__(self):
    typed_config.validate(self, "training")
    from genjax.training import compile_opts  # imports no JAX
    compile_opts.parse(self.xla_cpu_options)


# Fields that do not change what a run computes: a resumed run may change them freely.
# Everything else (optimizer, schedule, model, data, seed, num_steps, batch, the family's
# sections) changes the training trajectory.
TRAJECTORY_FREE_FIELDS = (
    "training.log_every", "training.sample_every", "training.ckpt_every",
    "training.keep_checkpoints", "training.num_sample_images", "training.progress",
    "training.tensorboard", "training.time_budget_s", "training.time_budget_clock",
    "training.allow_config_change", "data.data_dir", "training.xla_cpu_options",
    "data.loader", "data.num_workers",  # the same batches, made elsewhere
)
# Trainer fields added after runs were saved, with the value that keeps those runs' training:
# a saved config without the field resumes under it as if it had it (no drift).
ADDED_FIELD_DEFAULTS = {
    "training.compute_dtype": "float32", "training.remat": False,
    "training.grad_accum_steps": 1, "training.param_sharding": "replicated",
    "training.xla_cpu_options": "auto",
}
# Whole sections that only concern sampling and evaluation, never the trained params.
TRAJECTORY_FREE_SECTIONS = ("sampling", "parzen")


@dataclasses.dataclass(frozen=True)
class RunSections:
  """The typed sections every run has."""
  train: TrainConfig
  optim: OptimConfig
  data: DataConfig
  seed: int


def validate_sections(config) -> RunSections:
  """Checks the training, optim and data sections and the seed; builds nothing.

  Raises:
    ValueError: naming the first field that is unknown, of the wrong type or out of range.
  """
  from genjax.data.pipeline import DataConfig  # numpy only
  seed = config.get("seed", 0)
  if not isinstance(seed, int) or isinstance(seed, bool):
    raise ValueError(f"config.seed must be an integer, got {seed!r}.")
  return RunSections(
      train=typed_config.from_section(TrainConfig, config.get("training"), where="training"),
      optim=typed_config.from_section(OptimConfig, config.get("optim"), where="optim"),
      data=DataConfig.from_dict(typed_config.to_dict(config.get("data"))),
      seed=seed)
