"""A small CNN that reads the ``shapes`` images cell by cell: the feature space and the judge.

For each of the 9 cells of the 3x3 grid it predicts whether an object is there and, if so, its
colour (8), shape (5) and size (2) (:func:`read_cells`). That is what caption adherence checks
(:mod:`genjax.metrics.adherence`), and its 128-d penultimate features are the feature
space of FD/KID/precision/recall on shapes (extractor ``"shapes"``, keys ``fd_shapes``, ...).

genjax ships its weights (``genjax/metrics/assets/shapes_classifier.npz``, no pickle) and the
command that made them:

  python -m genjax.metrics.train_shapes_classifier

Training is deterministic (fixed seeds) on freshly generated images of the ``shapes`` train
split (default config: 32x32, 1-3 objects, no rotation), with a little Gaussian noise added
as augmentation; the accuracies on held-out test-split images are stored in the file's
metadata and checked by the tests.

Input convention: [N, H, W, 3] in [-1, 1], brought to 32x32 (64x64 and other multiples of 32
by area averaging; other sides by antialiased bilinear interpolation,
``jax.image.resize(..., "linear", antialias=True)``) and then resampled to the network's 36x36
(12 pixels per grid cell, so that its pooling lines up with the cells).

Outputs of :func:`apply_classifier` (the :class:`~genjax.metrics.extractors.Extractor` form):

* features [N, 128]: the pre-activation of the penultimate dense layer, scaled to unit mean
  square on training images (as the digits classifier's);
* probs [N, 40]: the distribution of (colour, shape) over the objects the network sees,
  ``p(c, s) = sum_cell occ(cell) p_colour(c | cell) p_shape(s | cell) / sum_cell occ(cell)``
  (index ``5 c + s``), so that the Inception Score has a meaning here: it is high when each
  image's objects are confidently recognised and the kinds vary across images.
"""

from __future__ import annotations

import functools
import os
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.data import shapes_grammar as grammar
from genjax.metrics import weights as weights_lib

ASSET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                          "shapes_classifier.npz")
NAME = "shapes_classifier"
SIZE = 32
INPUT = 36  # network input side: 12 pixels per grid cell
FEATURE_DIM = 128
NUM_CELLS = grammar.GRID * grammar.GRID
NUM_COLOURS = len(grammar.COLOURS)
NUM_SHAPES = len(grammar.SHAPES)
NUM_SIZES = len(grammar.SIZES)
HEAD = 1 + NUM_COLOURS + NUM_SHAPES + NUM_SIZES  # per cell: occupancy logit, colour, shape, size
NUM_PROBS = NUM_COLOURS * NUM_SHAPES
# Written into reference statistics; changing how inputs are resized must change this string.
RESIZE_CONVENTION = ("shapes: [N,H,W,3] in [-1,1] -> 32x32 by area average (sides multiple of "
                     "32) else antialiased bilinear, then bilinear to 36x36")
COMMAND = "python -m genjax.metrics.train_shapes_classifier"


class ShapesCNN(nn.Module):
  """Cell-aligned CNN on 36x36 inputs (each grid cell 12x12 pixels), per-cell heads.

  conv16 - maxpool2 - conv32 - conv32 - maxpool2 - conv64 - avgpool3 (one 64-d vector per
  cell, [3, 3, 64]) - dense128 of all cells (the features) - per cell: dense64 of [its vector,
  relu(features)] - dense16 (occupancy, colour, shape, size logits), shared by the cells.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[N, 36, 36, 3] -> (features [N, 128], cell logits [N, 9, 16])."""
    n = x.shape[0]
    x = nn.relu(nn.Conv(16, (3, 3))(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(64, (3, 3))(x))
    cells = nn.avg_pool(x, (3, 3), (3, 3)).reshape(n, NUM_CELLS, 64)
    feats = nn.Dense(FEATURE_DIM)(cells.reshape(n, -1))
    ctx = jnp.broadcast_to(nn.relu(feats)[:, None, :], (n, NUM_CELLS, FEATURE_DIM))
    h = nn.relu(nn.Dense(64)(jnp.concatenate([cells, ctx], axis=-1)))
    return feats, nn.Dense(HEAD)(h)


def resize_to_shapes(x: jax.Array) -> jax.Array:
  """[N, H, W, 3] in [-1, 1] -> [N, 36, 36, 3], the classifier's input (12 pixels per cell).

  Images are first brought to 32x32 (area average for sides that are multiples of 32, e.g.
  64; antialiased bilinear otherwise), then resampled to 36x36 (bilinear), so that a 64x64
  image and its 32x32 twin look alike to the network.

  Raises:
    ValueError: not three channels, or a side smaller than 16.
  """
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"the shapes classifier takes RGB images [N, H, W, 3], got shape "
                     f"{tuple(x.shape)}.")
  n, h, w, _ = x.shape
  if h < 16 or w < 16:
    raise ValueError(f"the shapes classifier takes images of at least 16x16, got {h}x{w}.")
  if (h, w) != (SIZE, SIZE):
    if h % SIZE == 0 and w % SIZE == 0:
      x = x.reshape(n, SIZE, h // SIZE, SIZE, w // SIZE, 3).mean(axis=(2, 4))
    else:
      x = jax.image.resize(x, (n, SIZE, SIZE, 3), "linear", antialias=True)
  return jax.image.resize(x, (n, INPUT, INPUT, 3), "linear", antialias=True)


def split_logits(logits: jax.Array) -> dict[str, jax.Array]:
  """Cell logits [..., 9, 16] -> ``occupied [..., 9]``, ``colour [..., 9, 8]``, ``shape
  [..., 9, 5]``, ``size [..., 9, 2]`` logits."""
  o = 1
  out = {"occupied": logits[..., 0]}
  for name, k in (("colour", NUM_COLOURS), ("shape", NUM_SHAPES), ("size", NUM_SIZES)):
    out[name] = logits[..., o:o + k]
    o += k
  return out


def read_cells(params, x: jax.Array) -> dict[str, jax.Array]:
  """Pure function: what the classifier reads in each cell of images x [N, H, W, 3] in [-1, 1].

  Returns:
    ``occupied [N, 9]`` (probability that an object is in the cell), ``colour [N, 9, 8]``,
    ``shape [N, 9, 5]``, ``size [N, 9, 2]`` (probabilities given an object there), and
    ``features [N, 128]``.
  """
  feats, logits = ShapesCNN().apply({"params": params}, resize_to_shapes(x.astype(jnp.float32)))
  parts = split_logits(logits)
  out = {"occupied": jax.nn.sigmoid(parts["occupied"]), "features": feats}
  for name in ("colour", "shape", "size"):
    out[name] = jax.nn.softmax(parts[name], axis=-1)
  return out


def apply_classifier(params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Pure function: (features [N, 128], probs [N, 40]) of x [N, H, W, 3] in [-1, 1].

  ``probs[:, 5 c + s]`` is the occupancy-weighted distribution of (colour c, shape s) over the
  cells (see the module docstring).
  """
  r = read_cells(params, x)
  w = r["occupied"] / jnp.maximum(r["occupied"].sum(-1, keepdims=True), 1e-6)
  joint = jnp.einsum("nk,nkc,nks->ncs", w, r["colour"], r["shape"])
  joint = joint.reshape(x.shape[0], NUM_PROBS)
  # An image where nothing is seen gets the uniform distribution.
  joint = jnp.where(r["occupied"].sum(-1, keepdims=True) > 1e-6, joint, 1.0 / NUM_PROBS)
  return r["features"], joint


def cell_targets(labels: dict) -> dict[str, np.ndarray]:
  """Per-cell targets from shapes labels (``cell``, ``colour``, ``shape``, ``size`` [N, 3]).

  Returns:
    ``occupied [N, 9]`` in {0, 1} and ``colour``, ``shape``, ``size`` ``[N, 9]`` with -1 in
    empty cells.
  """
  cell = np.asarray(labels["cell"])
  n = cell.shape[0]
  out = {"occupied": np.zeros((n, NUM_CELLS), np.int32)}
  for k in ("colour", "shape", "size"):
    out[k] = np.full((n, NUM_CELLS), -1, np.int32)
  rows, slots = np.nonzero(cell >= 0)
  out["occupied"][rows, cell[rows, slots]] = 1
  for k in ("colour", "shape", "size"):
    out[k][rows, cell[rows, slots]] = np.asarray(labels[k])[rows, slots]
  return out


def accuracies_of(read: dict, labels: dict) -> dict[str, float]:
  """Per-attribute accuracies of a readout (:func:`read_cells`) against shapes labels.

  ``occupied``: over all cells; ``colour``, ``shape``, ``size``: over the cells that hold an
  object; ``object``: all four right for a cell with an object; ``image``: every cell right.
  """
  t = cell_targets(labels)
  occ_pred = read["occupied"] > 0.5
  occ = t["occupied"] == 1
  out = {"occupied": float((occ_pred == occ).mean())}
  right = occ_pred == occ
  obj_right = occ_pred & occ
  for k in ("colour", "shape", "size"):
    pred = read[k].argmax(-1)
    ok = pred == t[k]
    out[k] = float(ok[occ].mean())
    obj_right &= ok
    right &= ~occ | ok
  out["object"] = float(obj_right[occ].mean())
  out["image"] = float(right.all(-1).mean())
  return out


load_classifier_params = weights_lib.cached_loader(
    ASSET_PATH, what="shapes classifier",
    how_to_get=lambda path: f"Recreate it with: {COMMAND} --out {path}")
load_classifier_params.__doc__ = ("(params, metadata, checksum) of the shipped (or given) "
                                  "classifier weights file.")


class ShapesReader:
  """The classifier as a jitted batch reader: ``reader(images) -> dict of numpy arrays``.

  Args:
    path: weights .npz; default the shipped asset.
    batch_size: images per jitted call (the last batch is padded; one compilation).
  """

  def __init__(self, path: Optional[str] = None, batch_size: int = 500):
    params, self.metadata, self.checksum = load_classifier_params(path)
    self.params = jax.tree.map(jnp.asarray, params)
    self.batch_size = int(batch_size)
    self._fn = jax.jit(read_cells)

  def __call__(self, images) -> dict[str, np.ndarray]:
    """:func:`read_cells` of images [N, H, W, 3] in [-1, 1], as numpy arrays."""
    from genjax.metrics.checks import check_images
    images = np.asarray(check_images(images, "shapes classifier", channels=(3,)), np.float32)
    n, bs = images.shape[0], min(self.batch_size, max(images.shape[0], 1))
    parts = []
    for i in range(0, n, bs):
      chunk = np.clip(images[i:i + bs], -1.0, 1.0)
      m = chunk.shape[0]
      if m < bs:
        chunk = np.concatenate([chunk, np.zeros((bs - m,) + chunk.shape[1:], chunk.dtype)])
      parts.append({k: np.asarray(v)[:m] for k, v in self._fn(self.params, chunk).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@functools.lru_cache(maxsize=2)
def shapes_reader(path: Optional[str] = None) -> ShapesReader:
  """A cached :class:`ShapesReader` of the shipped (or given) weights."""
  return ShapesReader(path)
