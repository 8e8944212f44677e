"""From a config to a trained run or a restored one: what train.py and sample.py call.

This is the library boundary of DESIGN.md item 9: the ml_collections config is turned into
typed sections here (and by each method's builder), and nothing deeper reads it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax

from genjax import methods
from genjax.data import BatchIterator, DataConfig, Dataset, load_dataset
from genjax.training import netopts, trainer
from genjax.training import workdir as workdir_lib
from genjax.training.checkpoint import CheckpointError, Checkpointer
from genjax.training.config import OptimConfig, TrainConfig, validate_sections
from genjax.training.method import Method
from genjax.training.state import TrainState
from genjax.training import optim as optim_lib


@dataclasses.dataclass(frozen=True)
class Run:
  """The typed pieces of one experiment."""
  method: Method
  dataset: Dataset
  iterator: BatchIterator
  train: TrainConfig
  optim: OptimConfig
  data: DataConfig
  seed: int
  config_json: str


def build_run(config) -> Run:
  """Validates every section and builds the dataset, the method and the batch iterator."""
  sections = validate_sections(config)
  data_cfg, train_cfg, optim_cfg = sections.data, sections.train, sections.optim
  dataset = load_dataset(data_cfg)
  # Mixed precision and remat reach the networks through their attributes (training.netopts).
  net_config = netopts.apply_network_options(config, train_cfg.compute_dtype, train_cfg.remat)
  method = methods.build_method(net_config, dataset.spec)
  iterator = BatchIterator(dataset.train, train_cfg.batch_size, seed=data_cfg.seed,
                           batches_per_step=method.batches_per_step,
                           random_flip=data_cfg.random_flip)
  if data_cfg.loader == "grain":  # the same batches, from worker processes
    from genjax.data.grain_loader import GrainLoader
    iterator = GrainLoader(iterator, num_workers=data_cfg.num_workers)
  return Run(method=method, dataset=dataset, iterator=iterator, train=train_cfg, optim=optim_cfg,
             data=data_cfg, seed=sections.seed, config_json=config.to_json_best_effort())


def train_and_evaluate(config, workdir: str) -> TrainState:
  """Trains the experiment described by ``config`` in ``workdir`` (resuming if possible).

  Before anything is built, the settings are validated, the workdir is locked against a second
  run and a resumed config is compared with the one the checkpoints were trained with
  (:func:`genjax.training.workdir.open_for_training`).

  Raises:
    ValueError: an invalid setting, or ``num_steps`` below the step already saved.
    WorkdirError, WorkdirBusyError: the workdir cannot be used, or another run is using it.
    ConfigDriftError: the config changes training and the change was not accepted.
    CheckpointError, NonFiniteLossError, TrainingInterrupted: see
      :func:`genjax.training.trainer.train`.
  """
  with workdir_lib.open_for_training(config, workdir):
    run = build_run(config)
    return trainer.train(run.method, run.dataset, run.iterator, run.train, run.optim, workdir,
                         seed=run.seed, run_meta={"method": run.method.name})


def restore(config, workdir: str, step: Optional[int] = None) -> tuple[Run, TrainState]:
  """Builds the run and restores its checkpoint (latest intact, or ``step``) for sampling/eval.

  Reads only: creates and deletes nothing, so it may run beside the training run.

  Raises:
    CheckpointError: the workdir has no checkpoint, or every one is damaged.
    CheckpointDamagedError: ``step`` is damaged.
    CheckpointMismatchError: the checkpoint was trained with a different config.
  """
  ckpt_dir = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
  if not workdir_lib.saved_steps(workdir):
    raise CheckpointError(
        f"No checkpoint in {os.path.abspath(ckpt_dir)}. Train first with "
        f"`python train.py --config=<same config> --workdir={workdir}`.")
  run = build_run(config)
  ckpt = Checkpointer(ckpt_dir, read_only=True, async_save=False)
  mesh = trainer.make_mesh()
  method = run.method
  tx = (method.make_optimizer(run.optim, run.train.num_steps) if method.make_optimizer
        else optim_lib.make_optimizer(run.optim, run.train.num_steps))
  example = run.iterator.batch_at(0)
  example = jax.tree.map(lambda a: a[0] if method.batches_per_step > 1 else a, example)
  abstract = jax.eval_shape(
      lambda k: trainer.init_state(method, tx, k, example, run.train, mesh), jax.random.key(0))
  state = jax.tree.map(lambda x: x, abstract)
  try:
    restored = ckpt.restore(_with_sharding(state.checkpoint_items(), mesh), step)
  finally:
    ckpt.close()
  state = state.from_checkpoint_items(restored.items)
  if method.check_restored is not None:
    method.check_restored(state)
  return run, state


def load_config(path: str):
  """An ml_collections config from a run's ``config.json`` or from a ``get_config()`` file.

  Raises:
    CheckpointError: ``path`` does not exist.
  """
  import json

  import ml_collections

  if not os.path.exists(path):
    raise CheckpointError(
        f"{os.path.abspath(path)} does not exist. A pretrained run's workdir holds the "
        "config.json that train.py wrote; train it first with `python train.py --config=... "
        "--workdir=WORKDIR`.")
  if path.endswith(".json"):
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  import importlib.util
  spec = importlib.util.spec_from_file_location("_genjax_loaded_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def load_trained(workdir: str, config_path: Optional[str] = None, step: Optional[int] = None):
  """Restores a finished run from its workdir, for use inside another run.

  A distillation student, a ControlNet, a guided sampler or a second stage needs a pretrained
  teacher / base / classifier / first stage; its config names that run's workdir, and this
  rebuilds it from the ``config.json`` that ``train_and_evaluate`` wrote there (overrides
  included), or from ``config_path``.

  Args:
    workdir: a training run's workdir (holds ``config.json`` and ``checkpoints/``).
    config_path: the run's config (``.json`` or a config file); default: the workdir's record
      of the config its latest checkpoints were trained with (``config.json``, or the
      ``config.step<N>.json`` of an accepted change, :func:`workdir.current_config_path`).
    step: checkpoint step (default: the latest).

  Returns:
    ``(config, run, state)``: the pretrained run's ConfigDict, its :class:`Run` (method,
    dataset spec, ...) and its restored :class:`TrainState` (``state.ema_params`` to sample).

  Raises:
    CheckpointError: no config or no checkpoint in ``workdir``, or a corrupt one.
  """
  config = load_config(config_path or workdir_lib.current_config_path(workdir)
                       or os.path.join(workdir, workdir_lib.CONFIG_NAME))
  run, state = restore(config, workdir, step)
  return config, run, state


def _with_sharding(tree, mesh):
  from jax.sharding import NamedSharding, PartitionSpec as P
  rep = NamedSharding(mesh, P())
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), tree)
