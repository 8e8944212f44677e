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
from genjax.training import trainer
from genjax.training.checkpoint import Checkpointer
from genjax.training.config import OptimConfig, TrainConfig
from genjax.typed_config import from_section, to_dict
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
  data_cfg = DataConfig.from_dict(to_dict(config.data))
  train_cfg = from_section(TrainConfig, config.training, where="training")
  optim_cfg = from_section(OptimConfig, config.optim, where="optim")
  dataset = load_dataset(data_cfg)
  method = methods.build_method(config, dataset.spec)
  iterator = BatchIterator(dataset.train, train_cfg.batch_size, seed=data_cfg.seed,
                           batches_per_step=method.batches_per_step,
                           random_flip=data_cfg.random_flip)
  return Run(method=method, dataset=dataset, iterator=iterator, train=train_cfg, optim=optim_cfg,
             data=data_cfg, seed=int(config.seed), config_json=config.to_json_best_effort())


def train_and_evaluate(config, workdir: str) -> TrainState:
  """Trains the experiment described by ``config`` in ``workdir`` (resuming if possible)."""
  run = build_run(config)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(run.config_json)
  return trainer.train(run.method, run.dataset, run.iterator, run.train, run.optim, workdir,
                       seed=run.seed, run_meta={"method": run.method.name})


def restore(config, workdir: str, step: Optional[int] = None) -> tuple[Run, TrainState]:
  """Builds the run and restores its checkpoint (latest, or ``step``) for sampling/eval.

  Raises:
    CheckpointError: the workdir has no checkpoint, or it does not match the config.
  """
  run = build_run(config)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=run.train.keep_checkpoints,
                      async_save=False)
  if ckpt.latest_step() is None:
    from genjax.training.checkpoint import CheckpointError
    raise CheckpointError(
        f"No checkpoint in {os.path.abspath(workdir)}/checkpoints. Train first with "
        f"`python train.py --config=<same config> --workdir={workdir}`.")
  mesh = trainer.make_mesh()
  method = run.method
  tx = (method.make_optimizer(run.optim, run.train.num_steps) if method.make_optimizer
        else optim_lib.make_optimizer(run.optim, run.train.num_steps))
  example = run.iterator.batch_at(0)
  example = jax.tree.map(lambda a: a[0] if method.batches_per_step > 1 else a, example)
  abstract = jax.eval_shape(
      lambda k: trainer.init_state(method, tx, k, example, run.train, mesh), jax.random.key(0))
  state = jax.tree.map(lambda x: x, abstract)
  items, _ = ckpt.restore(_with_sharding(state.checkpoint_items(), mesh), step)
  ckpt.close()
  return run, state.from_checkpoint_items(items)


def load_config(path: str):
  """An ml_collections config from a run's ``config.json`` or from a ``get_config()`` file.

  Raises:
    CheckpointError: ``path`` does not exist.
  """
  import json

  import ml_collections

  from genjax.training.checkpoint import CheckpointError
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
    config_path: the run's config (``.json`` or a config file); default
      ``<workdir>/config.json``.
    step: checkpoint step (default: the latest).

  Returns:
    ``(config, run, state)``: the pretrained run's ConfigDict, its :class:`Run` (method,
    dataset spec, ...) and its restored :class:`TrainState` (``state.ema_params`` to sample).

  Raises:
    CheckpointError: no config or no checkpoint in ``workdir``, or a corrupt one.
  """
  config = load_config(config_path or os.path.join(workdir, "config.json"))
  run, state = restore(config, workdir, step)
  return config, run, state


def _with_sharding(tree, mesh):
  from jax.sharding import NamedSharding, PartitionSpec as P
  rep = NamedSharding(mesh, P())
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), tree)
