"""From a data config to deterministic, resumable host-side batches (DESIGN.md items 10, 11).

``load_dataset(DataConfig(...))`` returns a :class:`Dataset`: a :class:`DataSpec` and two
random-access sources (train and test) with ``len(source)`` and
``source.get(indices) -> {"x": float32 [n, ...], "label": int32 [n]}``. Images are NHWC in
[-1, 1]; 2-D points are raw coordinates.

:class:`BatchIterator` turns a source into training batches. The batch of train step ``s`` is a
pure function of ``(seed, s)``: examples are drawn epoch by epoch without replacement from the
permutation ``np.random.default_rng([seed, epoch]).permutation(len(source))``, and random flips
come from ``np.random.default_rng([seed, s, FLIP_STREAM])``. Resuming a run therefore only needs
the step (``state_dict()`` / ``from_state``), and a background prefetch thread cannot change
what is produced. Everything here is numpy on the host; device placement is the trainer's job.

Example:
  >>> ds = load_dataset(DataConfig(dataset="digits"))
  >>> it = BatchIterator(ds.train, batch_size=32, seed=0)
  >>> it.batch_at(0)["x"].shape
  (32, 8, 8, 1)
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
import weakref
from typing import Any, Iterator, Mapping, Optional, Protocol

import numpy as np

from genjax import typed_config
from genjax.data import digits as digits_lib
from genjax.data import shapes as shapes_lib
from genjax.data import toy2d
from genjax.typed_config import field
from genjax.types import DataSpec

Batch = dict[str, np.ndarray]

TFDS_PREFIX = "tfds:"
# Word that separates the flip stream from the permutation streams (`[seed, epoch]`).
FLIP_STREAM = 0x666C6970  # "flip"


class DataError(ValueError):
  """A dataset cannot be loaded as configured (unknown, not prepared, wrong format, ...)."""


class DatasetNotPreparedError(DataError):
  """A TFDS dataset is not downloaded/prepared (in ArrayRecord format) in ``data_dir``."""


class Source(Protocol):
  """A random-access, finite collection of examples."""

  def __len__(self) -> int:
    ...

  def get(self, indices: np.ndarray) -> Batch:
    """Returns ``{"x": [n, ...], "label": [n] int32}`` for ``indices`` ([n] ints)."""
    ...


def check_indices(indices: Any, size: int) -> np.ndarray:
  """``indices`` as a 1-D integer array in [0, size); raises ValueError/IndexError otherwise."""
  indices = np.asarray(indices)
  if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
    if indices.size == 0:
      return np.zeros((0,), np.int64)
    raise ValueError(f"indices must be a 1-D integer array; got shape {indices.shape} of {indices.dtype}.")
  if indices.size and (indices.min() < 0 or indices.max() >= size):
    raise IndexError(f"indices must lie in [0, {size}); got range [{indices.min()}, {indices.max()}].")
  return indices


class ArraySource:
  """A source backed by in-memory arrays.

  Args:
    x: examples, [N, ...] float32.
    label: labels, [N] int (zeros if None).
  """

  def __init__(self, x: np.ndarray, label: Optional[np.ndarray] = None):
    x = np.asarray(x, np.float32)
    label = np.zeros(len(x), np.int32) if label is None else np.asarray(label, np.int32)
    if label.shape != (len(x),):
      raise ValueError(f"label must have shape ({len(x)},); got {label.shape}.")
    self.x = x
    self.label = label

  def __len__(self) -> int:
    return len(self.x)

  def get(self, indices: np.ndarray) -> Batch:
    indices = check_indices(indices, len(self))
    return {"x": self.x[indices], "label": self.label[indices]}

  def __repr__(self) -> str:
    return f"ArraySource(x={self.x.shape}, label={self.label.shape})"


# ----------------------------------------------------------------------------------------------
# Resizing.


@functools.lru_cache(maxsize=64)
def _resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of antialiased linear (triangle-kernel) resampling.

  Same weights as ``jax.image.resize(..., method="linear", antialias=True)``: output pixel ``i``
  samples the input at ``(i + 0.5) * in / out - 0.5``; when downsampling the triangle is widened
  by ``in / out`` (antialiasing); rows are normalised to sum to 1.
  """
  inv_scale = in_size / out_size
  kernel_scale = max(inv_scale, 1.0)
  sample = (np.arange(out_size, dtype=np.float64) + 0.5) * inv_scale - 0.5
  dist = np.abs(sample[:, None] - np.arange(in_size, dtype=np.float64)[None, :]) / kernel_scale
  w = np.maximum(0.0, 1.0 - dist)
  total = w.sum(axis=1, keepdims=True)
  eps = 1000.0 * np.finfo(np.float32).eps
  w = np.where(total > eps, w / np.where(total > eps, total, 1.0), 0.0)
  inside = (sample >= -0.5) & (sample <= in_size - 0.5)
  w = (w * inside[:, None]).astype(np.float32)
  w.flags.writeable = False  # Cached and shared.
  return w


def resize_images(x: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
  """Resizes NHWC images with antialiased bilinear interpolation (numpy, host side).

  Matches ``jax.image.resize(x, (n, h, w, c), "linear", antialias=True)``. Each output pixel is
  a convex combination of input pixels, so values stay in the input's range (e.g. [-1, 1]).

  Args:
    x: images, [n, H, W, C] float.
    size: output side ``s`` (square) or ``(h, w)``.

  Returns:
    [n, h, w, C] float32.
  """
  h, w = (size, size) if isinstance(size, int) else size
  x = np.asarray(x, np.float32)
  if x.ndim != 4:
    raise ValueError(f"resize_images expects NHWC images [n, H, W, C]; got shape {x.shape}.")
  if x.shape[1:3] == (h, w):
    return x
  wh = _resize_matrix(x.shape[1], h)
  ww = _resize_matrix(x.shape[2], w)
  n, in_h, in_w, c = x.shape
  y = np.matmul(wh, x.reshape(n, in_h, in_w * c))  # Rows: [n, h, W * C].
  y = y.reshape(n, h, in_w, c).transpose(0, 1, 3, 2).reshape(n * h * c, in_w) @ ww.T  # Columns.
  return np.ascontiguousarray(y.reshape(n, h, c, w).transpose(0, 1, 3, 2))


# ----------------------------------------------------------------------------------------------
# Configuration and loading.

IMAGE_DATASETS = ("digits", "shapes")
POINT_DATASETS = toy2d.TOY_DATASETS


def _tfds_names() -> tuple[str, ...]:
  from genjax.data import tfds_source  # pylint: disable=g-import-not-at-top

  return tuple(tfds_source.TFDS_DATASETS)


def valid_dataset_names() -> tuple[str, ...]:
  """All dataset names ``load_dataset`` accepts (plus ``"tfds:<any tfds image dataset>"``)."""
  return IMAGE_DATASETS + POINT_DATASETS + _tfds_names()


def _unknown_dataset_message(name: str) -> str:
  return (
      f"Unknown dataset {name!r}. Valid datasets: {', '.join(valid_dataset_names())}; or "
      f"'{TFDS_PREFIX}<name>' for any other TFDS image dataset with an 'image' feature."
  )


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """What to load (the library-side view of ``config.data``).

  Attributes:
    dataset: "digits" (default; no network), "shapes" (procedural captioned shapes), a 2-D toy ("swiss_roll", "8gaussians", "moons",
      "checkerboard"), a TFDS image dataset ("mnist", "fashion_mnist", "kmnist", "cifar10",
      "cifar100", "svhn_cropped", "celeb_a") or "tfds:<name>" for another TFDS image dataset.
    data_dir: TFDS data directory (default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      Nothing is ever downloaded.
    image_size: resize square images to this side with antialiased bilinear interpolation
      (e.g. digits 8 -> 16 or 32). None keeps the native size (CelebA: 64).
    crop_size: side of the central square crop taken before resizing (TFDS only). None: the
      dataset default (CelebA: 140, as in NCSN/score_sde; others: the largest centred square).
    random_flip: randomly flip training images left-right (applied by ``BatchIterator``).
    num_points: number of points in the fixed training set of a 2-D toy.
    num_test_points: number of points in the fixed test set of a 2-D toy.
    toy_noise: noise parameter of the 2-D toy (FFJORD's: swiss_roll 1.0, 8gaussians 0.5, moons
      0.1; see ``genjax.data.toy2d``); None keeps the default.
    test_fraction: fraction of the digits held out for testing (fixed split; 0.15 -> 1,527
      train / 270 test).
    shapes_min_objects, shapes_max_objects: object counts of "shapes" images (1 <= min <=
      max <= 3).
    shapes_max_rotation: "shapes" objects turn uniformly in [-this, this] degrees.
    shapes_texture: probability of a textured (rather than plain) "shapes" background.
    shapes_num_train, shapes_num_test: sizes of the "shapes" splits (test: images
      [0, num_test), train: the next num_train); image_size (default 32) is their side.
    text_len: length of the caption token rows (``batch["text"]``) of "shapes".
    seed: shuffle (and flip) seed of the training batches (``BatchIterator``); the datasets
      themselves never depend on it.
    loader: ``"sync"`` (the train loop calls ``BatchIterator.batch_at``) or ``"grain"``
      (``num_workers`` grain worker processes compute the batches ahead:
      ``genjax.data.grain_loader``). The batches are bitwise the same.
    num_workers: grain worker processes (``loader="grain"``).
  """

  dataset: str = "digits"
  data_dir: Optional[str] = None
  image_size: Optional[int] = field(None, gt=0)
  crop_size: Optional[int] = field(None, gt=0)
  random_flip: bool = False
  num_points: int = field(100_000, gt=0)
  num_test_points: int = field(10_000, gt=0)
  toy_noise: Optional[float] = field(None, ge=0.0)
  test_fraction: float = field(digits_lib.DEFAULT_TEST_FRACTION, gt=0.0, lt=1.0)
  seed: int = field(0, ge=0)  # seeds numpy's SeedSequence, which takes no negative entropy
  shapes_min_objects: int = field(1, ge=1, le=shapes_lib.MAX_OBJECTS)
  shapes_max_objects: int = field(shapes_lib.MAX_OBJECTS, ge=1, le=shapes_lib.MAX_OBJECTS)
  shapes_max_rotation: float = field(0.0, ge=0.0, le=180.0)
  shapes_texture: float = field(0.5, ge=0.0, le=1.0)
  shapes_num_train: int = field(shapes_lib.DEFAULT_NUM_TRAIN, gt=0)
  shapes_num_test: int = field(shapes_lib.DEFAULT_NUM_TEST, gt=0)
  text_len: int = field(shapes_lib.DEFAULT_TEXT_LEN, ge=2)
  loader: str = field("sync", choices=("sync", "grain"))
  num_workers: int = field(2, ge=0)

  def __post_init__(self):
    typed_config.validate(self, "data")  # types and ranges; the rules across fields follow
    name = self.dataset
    if not name:
      raise ValueError("config.data.dataset must be a non-empty string, got ''.")
    is_tfds = name.startswith(TFDS_PREFIX) or name in _tfds_names()
    if name.startswith(TFDS_PREFIX) and not name[len(TFDS_PREFIX):]:
      raise ValueError(f"config.data.dataset={name!r} names no TFDS dataset; use e.g. 'tfds:svhn_cropped'.")
    if not is_tfds and name not in IMAGE_DATASETS + POINT_DATASETS:
      raise DataError(_unknown_dataset_message(name))
    if name in POINT_DATASETS:
      if self.image_size is not None or self.crop_size is not None:
        raise ValueError(f"{name!r} is 2-D point data; image_size/crop_size do not apply (set them to None).")
      if self.random_flip:
        raise ValueError(f"{name!r} is 2-D point data; random_flip applies only to images (set it to False).")
    elif self.toy_noise is not None:
      raise ValueError(f"toy_noise applies only to the 2-D toys {POINT_DATASETS}; got dataset {name!r}.")
    if name == "checkerboard" and self.toy_noise is not None:
      raise ValueError("checkerboard has no noise parameter; set toy_noise=None.")
    if name == "digits" and self.crop_size is not None:
      raise ValueError("crop_size applies only to TFDS datasets; set it to None for digits.")
    if name == "shapes":
      if self.crop_size is not None:
        raise ValueError("crop_size applies only to TFDS datasets; set it to None for shapes.")
      if self.random_flip:
        raise ValueError("random_flip would contradict the shapes captions (left/right); set it "
                         "to False.")
      if self.image_size is not None and self.image_size < 16:
        raise ValueError(f"shapes images are drawn at image_size >= 16; got {self.image_size}.")
      if self.shapes_min_objects > self.shapes_max_objects:
        raise ValueError(f"shapes_min_objects={self.shapes_min_objects} exceeds "
                         f"shapes_max_objects={self.shapes_max_objects}.")

  def shapes_config(self) -> "shapes_lib.ShapesConfig":
    """The :class:`genjax.data.shapes.ShapesConfig` these fields describe."""
    return shapes_lib.ShapesConfig(
        image_size=self.image_size or 32, min_objects=self.shapes_min_objects,
        max_objects=self.shapes_max_objects, max_rotation=self.shapes_max_rotation,
        texture=self.shapes_texture, text_len=self.text_len)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any] | Any) -> "DataConfig":
    """Builds a config from a dict (or an ``ml_collections.ConfigDict``).

    Raises:
      ValueError: naming every unknown key and listing the valid ones.
    """
    if hasattr(d, "to_dict"):
      d = d.to_dict()
    d = dict(d)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(fields))
    if unknown:
      raise ValueError(f"Unknown DataConfig key(s) {unknown}; valid keys: {fields}.")
    return typed_config.from_section(cls, d, where="data")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A loaded dataset.

  Attributes:
    spec: shape of one example, number of classes and kind ("image" or "points").
    train: training source (``len``, ``get(indices)``).
    test: test source (TFDS: the "test" split, or "validation" where there is none).
    name: the dataset name from the config.
  """

  spec: DataSpec
  train: Source
  test: Source
  name: str = ""


def load_dataset(cfg: DataConfig) -> Dataset:
  """Loads the dataset that ``cfg`` names. Never downloads anything.

  Args:
    cfg: the data config.

  Returns:
    The :class:`Dataset`: images NHWC float32 in [-1, 1], points [2] float32, labels int32.

  Raises:
    DataError: unknown dataset (the message lists the valid ones), or a TFDS dataset that is
      not prepared (:class:`DatasetNotPreparedError`, saying how to prepare it) or not in the
      ArrayRecord format.

  Example:
    >>> load_dataset(DataConfig("digits", image_size=16)).spec
    DataSpec(shape=(16, 16, 1), num_classes=10, kind='image')
  """
  name = cfg.dataset
  if name == "digits":
    x_tr, y_tr, x_te, y_te = digits_lib.load_digits_arrays(cfg.test_fraction)
    if cfg.image_size is not None:
      x_tr, x_te = resize_images(x_tr, cfg.image_size), resize_images(x_te, cfg.image_size)
    spec = DataSpec(shape=tuple(x_tr.shape[1:]), num_classes=digits_lib.NUM_CLASSES, kind="image")
    return Dataset(spec, ArraySource(x_tr, y_tr), ArraySource(x_te, y_te), name)
  if name == "shapes":
    scfg = cfg.shapes_config()
    train, test = shapes_lib.splits(scfg, cfg.shapes_num_train, cfg.shapes_num_test)
    spec = DataSpec(shape=(scfg.image_size, scfg.image_size, 3), num_classes=shapes_lib.NUM_CLASSES,
                    kind="image")
    return Dataset(spec, train, test, name)
  if name in POINT_DATASETS:
    x_tr, y_tr, x_te, y_te = toy2d.make_toy_dataset(name, cfg.num_points, cfg.num_test_points, cfg.toy_noise)
    spec = DataSpec(shape=(2,), num_classes=toy2d.NUM_CLASSES[name], kind="points")
    return Dataset(spec, ArraySource(x_tr, y_tr), ArraySource(x_te, y_te), name)
  from genjax.data import tfds_source  # pylint: disable=g-import-not-at-top

  if name.startswith(TFDS_PREFIX) or name in tfds_source.TFDS_DATASETS:
    spec, train, test = tfds_source.load_tfds(
        name, data_dir=cfg.data_dir, image_size=cfg.image_size, crop_size=cfg.crop_size
    )
    return Dataset(spec, train, test, name)
  raise DataError(_unknown_dataset_message(name))


# ----------------------------------------------------------------------------------------------
# Batching.


def flip_images(x: np.ndarray, flip: np.ndarray) -> np.ndarray:
  """Flips the NHWC images ``x[..., H, W, C]`` left-right where ``flip[...]`` is True."""
  if x.ndim < 4:
    raise ValueError(f"random_flip needs images [..., H, W, C]; got examples of shape {x.shape[flip.ndim:]}.")
  mask = flip.reshape(flip.shape + (1,) * (x.ndim - flip.ndim))
  return np.where(mask, x[..., ::-1, :], x)


class BatchIterator:
  """Deterministic, resumable training batches from a source.

  Minibatch ``m`` (the ``m``-th of the run, counted from 0) holds the examples at positions
  ``[m B, (m + 1) B)`` of the stream of epochs, epoch ``e`` being the permutation
  ``np.random.default_rng([seed, e]).permutation(N)`` of the ``N`` examples:

  * ``drop_remainder=True`` (default): each epoch gives ``N // B`` minibatches and the last
    ``N mod B`` examples of its permutation are skipped (different ones each epoch).
  * ``drop_remainder=False``: the epochs are concatenated, so no example is skipped and every
    example appears exactly once per epoch; a minibatch may straddle two epochs. Every batch
    still has exactly ``B`` examples (no recompilation).

  Train step ``s`` consumes minibatches ``s n, ..., s n + n - 1`` (``n = batches_per_step``).
  If ``random_flip``, example ``j`` of minibatch ``i`` of step ``s`` is flipped left-right iff
  ``np.random.default_rng([seed, s, FLIP_STREAM]).random((n, B))[i, j] < 0.5``.

  The iterator protocol yields ``batch_at(position)`` and advances ``position`` (the next step);
  ``state_dict()`` saves it and ``from_state`` / ``load_state_dict`` restore it. With
  ``prefetch > 0`` a background thread computes the next batches into a queue of that size;
  since ``batch_at`` is a pure function this changes nothing but speed.

  Args:
    source: a source (``len``, ``get(indices)``).
    batch_size: examples per minibatch ``B`` (the global batch; the trainer shards it).
    seed: shuffle/flip seed (>= 0).
    batches_per_step: minibatches per train step ``n``; if > 1 each array gets a leading axis
      ``[n, B, ...]`` (e.g. a GAN's k discriminator steps + 1 generator step).
    random_flip: flip images left-right at random (images only).
    drop_remainder: see above.
    start_step: initial ``position``.
    prefetch: size of the background prefetch queue (0: no thread).

  Example:
    >>> it = BatchIterator(ArraySource(np.zeros((10, 2))), batch_size=4, seed=0)
    >>> [b["x"].shape for b in itertools.islice(it, 2)]  # doctest: +SKIP
    [(4, 2), (4, 2)]
  """

  def __init__(
      self,
      source: Source,
      batch_size: int,
      seed: int,
      *,
      batches_per_step: int = 1,
      random_flip: bool = False,
      drop_remainder: bool = True,
      start_step: int = 0,
      prefetch: int = 0,
  ):
    num = len(source)
    for arg, value, low in (("batch_size", batch_size, 1), ("batches_per_step", batches_per_step, 1),
                            ("seed", seed, 0), ("start_step", start_step, 0), ("prefetch", prefetch, 0)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"BatchIterator {arg} must be an int >= {low}; got {value!r}.")
    if num == 0:
      raise ValueError("BatchIterator got an empty source (0 examples).")
    if batch_size > num:
      raise ValueError(
          f"batch_size={batch_size} is larger than the dataset ({num} examples); use a batch size "
          f"of at most {num} or a larger dataset."
      )
    self.source = source
    self.num_examples = num
    self.batch_size = int(batch_size)
    self.seed = int(seed)
    self.batches_per_step = int(batches_per_step)
    self.random_flip = bool(random_flip)
    self.drop_remainder = bool(drop_remainder)
    self.prefetch = int(prefetch)
    self._position = int(start_step)
    self._perm_cache: dict[int, np.ndarray] = {}
    self._cache_lock = threading.Lock()
    self._worker: Optional[_Prefetcher] = None

  def __getstate__(self):
    """Picklable (for data-loader worker processes): without the lock, cache and thread."""
    state = dict(self.__dict__)
    state.update(_perm_cache={}, _cache_lock=None, _worker=None)
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._cache_lock = threading.Lock()

  # -- the pure part ---------------------------------------------------------------------------

  @property
  def batches_per_epoch(self) -> float:
    """Minibatches per epoch: ``N // B`` if ``drop_remainder`` else ``N / B``."""
    if self.drop_remainder:
      return self.num_examples // self.batch_size
    return self.num_examples / self.batch_size

  def permutation(self, epoch: int) -> np.ndarray:
    """The order of epoch ``epoch``: ``np.random.default_rng([seed, epoch]).permutation(N)``."""
    with self._cache_lock:
      perm = self._perm_cache.get(epoch)
    if perm is None:
      perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
      with self._cache_lock:
        if len(self._perm_cache) >= 4:
          self._perm_cache.pop(min(self._perm_cache))
        self._perm_cache[epoch] = perm
    return perm

  def minibatch_indices(self, m: int) -> np.ndarray:
    """Source indices of minibatch ``m`` of the run, [B] int64."""
    b, num = self.batch_size, self.num_examples
    if self.drop_remainder:
      epoch, r = divmod(m, num // b)
      return self.permutation(epoch)[r * b:(r + 1) * b]
    pos = m * b + np.arange(b)
    epochs, offsets = np.divmod(pos, num)
    out = np.empty(b, np.int64)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = self.permutation(int(e))[offsets[sel]]
    return out

  def indices_at(self, step: int) -> np.ndarray:
    """Source indices of train step ``step``: [B], or [n, B] if ``batches_per_step = n > 1``."""
    self._check_step(step)
    n = self.batches_per_step
    idx = np.stack([self.minibatch_indices(step * n + i) for i in range(n)])
    return idx[0] if n == 1 else idx

  def flips_at(self, step: int) -> np.ndarray:
    """Which examples of step ``step`` are flipped: bool [B] or [n, B] (all False without flips)."""
    self._check_step(step)
    shape = (self.batches_per_step, self.batch_size)
    if not self.random_flip:
      flips = np.zeros(shape, bool)
    else:
      flips = np.random.default_rng([self.seed, step, FLIP_STREAM]).random(shape) < 0.5
    return flips[0] if self.batches_per_step == 1 else flips

  def batch_at(self, step: int, rows: Optional[slice] = None) -> Batch:
    """The global batch of train step ``step`` (a pure function of ``seed`` and ``step``).

    Args:
      step: the train step.
      rows: only these rows of the global batch (a process's shard in a multi-process run):
        the same values as ``batch_at(step)[...][rows]``, reading only those examples.

    Returns:
      ``{"x": [B, ...] float32, "label": [B] int32}``, with a leading ``[n, ...]`` axis when
      ``batches_per_step = n > 1`` (``B`` is the number of ``rows`` if given).
    """
    idx = self.indices_at(step)
    flips = self.flips_at(step) if self.random_flip else None
    if rows is not None:
      idx = idx[..., rows]
      flips = None if flips is None else flips[..., rows]
    batch = self.source.get(idx.reshape(-1))
    batch = {k: np.asarray(v).reshape(idx.shape + np.shape(v)[1:]) for k, v in batch.items()}
    if self.random_flip:
      batch["x"] = flip_images(batch["x"], flips)
    return batch

  def _check_step(self, step: int):
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
      raise ValueError(f"step must be an int >= 0; got {step!r}.")

  # -- position, checkpointing -----------------------------------------------------------------

  @property
  def position(self) -> int:
    """The next train step this iterator will yield (= number of steps already consumed)."""
    return self._position

  def seek(self, step: int) -> None:
    """Sets ``position`` to ``step`` (drops prefetched batches)."""
    self._check_step(step)
    self._stop_worker()
    self._position = int(step)

  def state_dict(self) -> dict[str, int]:
    """What a checkpoint needs to resume: the step, plus fields that must not change."""
    return {
        "step": self._position,
        "seed": self.seed,
        "batch_size": self.batch_size,
        "batches_per_step": self.batches_per_step,
        "num_examples": self.num_examples,
        "drop_remainder": int(self.drop_remainder),
    }

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    """Restores ``position`` from ``state_dict()``, checking that the data stream is the same.

    Raises:
      ValueError: if the seed, batch size, batches per step, dataset size or drop_remainder
        differ from the checkpoint's (resuming would silently change the data order).
    """
    if "step" not in state:
      raise ValueError(f"BatchIterator state has no 'step': {dict(state)}.")
    mine = self.state_dict()
    diff = {k: (int(state[k]), mine[k]) for k in mine if k != "step" and k in state and int(state[k]) != mine[k]}
    if diff:
      raise ValueError(
          "Cannot resume the data iterator: the checkpoint was written with a different "
          + ", ".join(f"{k} (checkpoint {a}, now {b})" for k, (a, b) in diff.items())
          + ". Use the original data settings to resume this run."
      )
    self.seek(int(state["step"]))

  @classmethod
  def from_state(cls, source: Source, state: Mapping[str, Any], *, random_flip: bool = False,
                 prefetch: int = 0) -> "BatchIterator":
    """A ``BatchIterator`` at the position saved by ``state_dict()``."""
    missing = {"step", "seed", "batch_size"} - set(state)
    if missing:
      raise ValueError(f"BatchIterator state lacks {sorted(missing)}: {dict(state)}.")
    it = cls(
        source,
        int(state["batch_size"]),
        int(state["seed"]),
        batches_per_step=int(state.get("batches_per_step", 1)),
        random_flip=random_flip,
        drop_remainder=bool(state.get("drop_remainder", True)),
        prefetch=prefetch,
    )
    it.load_state_dict(state)
    return it

  # -- iteration -------------------------------------------------------------------------------

  def __iter__(self) -> "BatchIterator":
    return self

  def __next__(self) -> Batch:
    step = self._position
    if self.prefetch == 0:
      batch = self.batch_at(step)
    else:
      if self._worker is None:
        self._worker = _Prefetcher(weakref.WeakMethod(self.batch_at), step, self.prefetch)
      batch = self._worker.get(step)
    self._position = step + 1
    return batch

  def iterate(self, start_step: Optional[int] = None) -> Iterator[Batch]:
    """Yields the batches of steps ``start_step, start_step + 1, ...`` (default: ``position``)."""
    if start_step is not None:
      self.seek(start_step)
    while True:
      yield next(self)

  def _stop_worker(self) -> None:
    if self._worker is not None:
      self._worker.close()
      self._worker = None

  def close(self) -> None:
    """Stops the prefetch thread (if any)."""
    self._stop_worker()

  def __enter__(self) -> "BatchIterator":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass

  def __repr__(self) -> str:
    return (f"BatchIterator(N={self.num_examples}, batch_size={self.batch_size}, seed={self.seed}, "
            f"batches_per_step={self.batches_per_step}, random_flip={self.random_flip}, "
            f"drop_remainder={self.drop_remainder}, position={self._position})")


class _Prefetcher:
  """A daemon thread computing ``fn(start), fn(start + 1), ...`` into a bounded queue.

  ``fn_ref`` is a weak reference (``weakref.WeakMethod``), so that the thread does not keep its
  iterator alive; it ends when the iterator is closed or garbage-collected.
  """

  def __init__(self, fn_ref, start: int, size: int):
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(fn_ref, start), daemon=True,
                                    name="genjax-data-prefetch")
    self._thread.start()

  def _run(self, fn_ref, step: int) -> None:
    while not self._stop.is_set():
      fn = fn_ref()
      if fn is None:  # The iterator is gone.
        return
      try:
        item = (step, fn(step), None)
      except BaseException as e:  # pylint: disable=broad-except
        item = (step, None, e)
      del fn
      while not self._stop.is_set():
        try:
          self._queue.put(item, timeout=0.05)
          break
        except queue.Full:
          continue
      if item[2] is not None:
        return
      step += 1

  def get(self, step: int) -> Batch:
    got, batch, error = self._queue.get()
    if error is not None:
      raise error
    assert got == step, (got, step)
    return batch

  def close(self) -> None:
    self._stop.set()
    if threading.current_thread() is not self._thread:
      self._thread.join(timeout=10.0)


def sequential_batches(source: Source, batch_size: int) -> Iterator[Batch]:
  """Yields the whole source in order, ``batch_size`` at a time (the last batch may be smaller).

  For evaluation; training should use :class:`BatchIterator`.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
  for start in range(0, len(source), batch_size):
    yield source.get(np.arange(start, min(start + batch_size, len(source))))


def make_train_iterator(dataset: Dataset, cfg: DataConfig, batch_size: int, *, batches_per_step: int = 1,
                        start_step: int = 0, prefetch: int = 0, drop_remainder: bool = True) -> BatchIterator:
  """``BatchIterator`` over ``dataset.train`` with the config's seed and random flip."""
  return BatchIterator(dataset.train, batch_size, cfg.seed, batches_per_step=batches_per_step,
                       random_flip=cfg.random_flip, drop_remainder=drop_remainder,
                       start_step=start_step, prefetch=prefetch)
