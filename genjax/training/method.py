"""The contract between a model family and the one generic trainer (DESIGN.md item 7).

A model family (DDPM, VAE, GAN, ...) builds a :class:`Method` from its config. The trainer
(`genjax.training.trainer`) supplies everything else: jit over the device mesh, data
parallelism, the optimizer, EMA, checkpoints, the non-finite guard, logging, progress bars and
sample grids.

Two ways to train:
  * give ``loss(params, batch, key) -> (loss, metrics)`` and the trainer differentiates it and
    applies one optimizer update (the common case);
  * give ``train_step(state, batch, key) -> (state, metrics)`` for anything else, e.g. a GAN's
    k discriminator updates per generator update with two optimizers (``make_optimizer`` then
    returns whatever ``state.tx`` the step expects, for instance a dict of two optax
    transformations, and ``state.opt_state`` is whatever ``init_opt_state`` returns).

``metrics`` must contain a scalar ``"loss"``; it is what the non-finite guard watches.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Optional

import jax

PyTree = Any
Batch = Mapping[str, jax.Array]  # {"x": [B, ...], "label": [B]} (leading [n, B] if batches_per_step > 1)
LossFn = Callable[[PyTree, Batch, jax.Array], tuple[jax.Array, dict]]
SampleFn = Callable[[PyTree, jax.Array, int], jax.Array]


@dataclasses.dataclass(frozen=True)
class Method:
  """A model family as seen by the trainer.

  Attributes:
    name: short name, used in logs.
    init: ``init(key, batch) -> (params, model_state)``; ``model_state`` holds non-trained
      collections (e.g. batch statistics), ``{}`` if none.
    sample: ``sample(params, key, num) -> samples [num, *data_shape]``, in data space
      ([-1, 1] for images). Called by the trainer with the EMA params; ``num`` is static.
      Methods whose ``modes`` go beyond ``"sample"`` also take ``inputs=`` (the known images
      and mask of inpainting, colorization or img2img; :func:`genjax.sampling.run`).
    loss: ``loss(params, batch, key) -> (scalar loss, metrics dict)`` (DESIGN.md item 5).
    train_step: optional ``train_step(state, batch, key) -> (state, metrics)``; overrides the
      default gradient step built from ``loss``.
    make_optimizer: optional ``make_optimizer(optim_config, num_steps) -> tx`` (anything
      ``train_step`` understands; the trainer calls it with ``training.num_steps``). Default:
      ``genjax.training.optim.make_optimizer``.
    init_opt_state: optional ``init_opt_state(tx, params) -> opt_state``. Default:
      ``tx.init(params)``.
    batches_per_step: minibatches consumed per train step; >1 gives batches with a leading
      axis of that size, e.g. a GAN with k discriminator steps takes k + 1.
    ema_filter: optional ``ema_filter(params) -> subtree`` naming what the EMA tracks
      (default: all params).
    plot_samples: optional ``plot_samples(samples, data, path)`` writing a PNG of samples
      over data (used for 2-D point data instead of an image grid). If it has a parameter
      named ``state``, it is also given the current TrainState as ``state=`` (e.g. a GAN draws
      its discriminator's decision surface from ``state.params``); see :func:`plot_samples`.
    evaluators: ``{name: fn(state, dataset, key, num) -> dict}`` run by ``sample.py --eval=name``
      (``state`` is the restored TrainState; ``num`` is sample.py's --num, a cap on examples); an
      evaluator with an ``out`` parameter is also given the output directory for its figures).
    sample_tag: the file stem of sample.py's outputs, naming the sampler and its settings
      (:func:`genjax.sampling.registry.tag`).
    modes: what ``sample`` can do: ``"sample"``, and for the diffusion families ``"inpaint"``,
      ``"colorize"``, ``"img2img"`` (``config.sampling.mode``).
    reconstruct: for methods that reconstruct (the autoencoders),
      ``reconstruct(params, x [B, ...]) -> x_hat`` in data space; ``sample.py
      --eval=psnr,ssim,lpips`` scores it on the test split.
    check_restored: optional ``check_restored(state)``, called on every restored checkpoint
      (a resumed run, sample.py): raises when the checkpoint does not fit what the method was
      built from (:func:`same_frozen_part`).
  """

  name: str
  init: Callable[[jax.Array, Batch], tuple[PyTree, PyTree]]
  sample: SampleFn
  loss: Optional[LossFn] = None
  train_step: Optional[Callable[..., tuple[Any, dict]]] = None
  make_optimizer: Optional[Callable[..., Any]] = None
  init_opt_state: Optional[Callable[[Any, PyTree], PyTree]] = None
  batches_per_step: int = 1
  ema_filter: Optional[Callable[[PyTree], PyTree]] = None
  plot_samples: Optional[Callable[..., None]] = None
  evaluators: Mapping[str, Callable[..., dict]] = dataclasses.field(default_factory=dict)
  sample_tag: str = "samples"
  modes: tuple = ("sample",)
  reconstruct: Optional[Callable[..., Any]] = None
  check_restored: Optional[Callable[[Any], None]] = None

  def __post_init__(self):
    if (self.loss is None) == (self.train_step is None):
      raise ValueError(f"Method {self.name!r} must give exactly one of `loss` or `train_step`.")


def same_frozen_part(key: str, built: Any, source: str, what: str) -> Callable[[Any], None]:
  """A ``check_restored`` for a frozen part that a method reads from another run and carries in
  ``model_state[key]`` (a cascade's text encoder, a ControlNet's base): sampling applies the
  part as read from ``source`` now, so it must still be the one the checkpoint recorded.

  Raises (from the returned check):
    CheckpointMismatchError: the part at ``source`` differs from the checkpoint's.
  """
  import numpy as np

  from genjax.training.checkpoint import CheckpointMismatchError

  def check(state) -> None:
    saved = (state.model_state or {}).get(key)
    if saved is None or jax.process_count() > 1:  # multi-process arrays are not all local
      return
    same = jax.tree.structure(saved) == jax.tree.structure(built) and all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(built)))
    if not same:
      raise CheckpointMismatchError(
          f"The {what} at {source} is not the one this run was trained with (its checkpoint "
          f"records another in model_state[{key!r}]): point the config at the run it was "
          f"trained with, or train this run again.")

  return check


def plot_samples(method: Method, samples, data, path: str, state=None) -> None:
  """Calls ``method.plot_samples``, passing ``state=state`` iff it has a ``state`` parameter."""
  fn = method.plot_samples
  try:
    takes_state = "state" in inspect.signature(fn).parameters
  except (TypeError, ValueError):  # a callable without an inspectable signature
    takes_state = False
  if takes_state:
    fn(samples, data, path, state=state)
  else:
    fn(samples, data, path)
