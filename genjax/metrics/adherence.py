"""Caption adherence: the fraction of a caption's requested attributes present in an image.

The judge is the shipped shapes classifier (:mod:`genjax.metrics.shapes_classifier`), which
reads, for each cell of the 3x3 grid, whether an object is there (probability > 0.5) and the
most probable colour, shape and size of it.

**Definition.** A caption (in the grammar of :mod:`genjax.data.shapes_grammar`) requesting
``n`` objects asks for ``A = 3 n + p + r`` attributes:

* colour, shape and size of each requested object (``3 n``);
* the cell of each object that the caption places absolutely (``p`` of them: "at the top
  left");
* the relation between objects 0 and 1 of a relative caption (``r = 1``: "above"), else 0.

The requested objects are matched to the detected objects by an injective assignment in which
a requested object may also stay unmatched (all its attributes then fail). Each detected
object that no requested object is matched to (``U`` of them: objects nobody asked for) counts
as one more failed attribute, so that an image crowded with objects cannot satisfy positions
and relations by covering every cell. For an assignment satisfying ``S`` attributes the score
is ``S / (A + U)``; the image's adherence is the best score over all assignments (found
exhaustively: at most 3 requested and 9 detected objects), and a set of images scores the
mean. An image scores 1 exactly when it shows the requested objects with their attributes
and nothing else; ``exact`` is the fraction of such images. The per-kind rates (colour, shape,
size, position, relation) count satisfied over requested attributes of that kind under the
best assignments; ``count`` is the fraction of images with exactly ``n`` detected objects, and
``spurious`` the mean ``U``. The empty caption requests nothing and is skipped.

The classifier errs on real images too, so real images do not score exactly 1: report
:func:`real_ceiling` (the adherence of real test images to their own captions, with the
classifier's per-attribute accuracy) beside every figure for generated images.

Example:
  >>> from genjax.data import shapes
  >>> req = shapes.parse_prompts(["a small red circle above a large blue square"])
  >>> caption_adherence(images, req)["adherence"]  # images: [1, 32, 32, 3] in [-1, 1]
"""

from __future__ import annotations

import functools
import itertools
from typing import Mapping, Optional

import numpy as np

from genjax.data import shapes_grammar as grammar

KINDS = ("colour", "shape", "size", "position", "relation", "count")  # count: not in the score
NONE = grammar.GRID * grammar.GRID  # "unmatched" in an assignment


@functools.lru_cache(maxsize=None)
def _assignments(n: int) -> np.ndarray:
  """[P, n] all injective maps of n requested objects to cells 0..8 or NONE (repeatable)."""
  rows = []
  for a in itertools.product(range(NONE + 1), repeat=n):
    cells = [c for c in a if c != NONE]
    if len(cells) == len(set(cells)):
      rows.append(a)
  return np.array(rows, np.int64).reshape(-1, n)


def _relation_table() -> np.ndarray:
  """[R, 10, 10] bool: relation r holds of cells (a, b); False when either is NONE."""
  t = np.zeros((len(grammar.RELATIONS), NONE + 1, NONE + 1), bool)
  for r in range(len(grammar.RELATIONS)):
    for a in range(NONE):
      for b in range(NONE):
        t[r, a, b] = a != b and grammar.relation_holds(r, a, b)
  return t


_RELATIONS = _relation_table()


def adherence_from_readout(read: Mapping[str, np.ndarray], requests: Mapping[str, np.ndarray],
                           threshold: float = 0.5) -> dict:
  """Caption adherence from a classifier readout (see the module docstring).

  Args:
    read: :func:`~genjax.metrics.shapes_classifier.read_cells` output (numpy): ``occupied
      [N, 9]``, ``colour [N, 9, 8]``, ``shape [N, 9, 5]``, ``size [N, 9, 2]``.
    requests: what the captions ask for, as ``genjax.data.shapes`` arrays: ``num_objects
      [N]``, ``shape``, ``colour``, ``size``, ``caption_cell [N, 3]`` (-1: not placed),
      ``relation [N]`` (-1: none). A shapes batch or ``shapes.parse_prompts(prompts)``.
    threshold: occupancy probability above which a cell holds an object.

  Returns:
    ``{"adherence": mean over images, "exact": fraction fully right, "colour", "shape",
    "size", "position", "relation": per-kind rates (None if never requested), "count":
    fraction with exactly the requested number of objects, "spurious": mean number of
    unrequested detected objects, "num_images": images with a non-empty caption,
    "per_image": [N] float (NaN for empty captions)}``.
  """
  occ = np.asarray(read["occupied"]) > threshold
  col = np.asarray(read["colour"]).argmax(-1)
  shp = np.asarray(read["shape"]).argmax(-1)
  siz = np.asarray(read["size"]).argmax(-1)
  n_img = occ.shape[0]
  num = np.asarray(requests["num_objects"])
  if num.shape != (n_img,):
    raise ValueError(f"requests for {num.shape} captions, but {n_img} images were read.")
  per_image = np.full(n_img, np.nan)
  sat = {k: 0 for k in KINDS}
  asked = {k: 0 for k in KINDS}
  exact = 0
  spurious_sum = 0
  for i in range(n_img):
    n = int(num[i])
    if n == 0:
      continue
    # Per (requested object k, detected cell c): matches of colour, shape, size, position.
    det = np.append(occ[i], False)  # NONE is never detected
    req = {k: np.asarray(requests[k])[i, :n] for k in ("colour", "shape", "size", "caption_cell")}
    scores = {
        "colour": (col[i][None, :] == req["colour"][:, None]),
        "shape": (shp[i][None, :] == req["shape"][:, None]),
        "size": (siz[i][None, :] == req["size"][:, None]),
        "position": (np.arange(NONE)[None, :] == req["caption_cell"][:, None]),
    }
    scores = {k: np.concatenate([v, np.zeros((n, 1), bool)], 1) & det[None, :]
              for k, v in scores.items()}
    assign = _assignments(n)
    assign = assign[np.all((assign == NONE) | det[assign], axis=1)]
    parts = {k: v[np.arange(n)[None, :], assign].sum(1) for k, v in scores.items()}
    rel = int(np.asarray(requests["relation"])[i])
    parts["relation"] = (_RELATIONS[rel][assign[:, 0], assign[:, 1]].astype(int) if rel >= 0
                         else np.zeros(len(assign), int))
    count_ok = int(occ[i].sum() == n)
    total = sum(parts.values())
    spurious = occ[i].sum() - (assign != NONE).sum(1)  # detected objects nobody asked for
    placed = int((req["caption_cell"] >= 0).sum())
    n_attr = 3 * n + placed + (rel >= 0)
    score = total / (n_attr + spurious)
    best = int(np.argmax(score))
    per_image[i] = score[best]
    exact += int(total[best] == n_attr and spurious[best] == 0)
    spurious_sum += int(spurious[best])
    for k in ("colour", "shape", "size"):
      sat[k] += int(parts[k][best])
      asked[k] += n
    sat["position"] += int(parts["position"][best])
    asked["position"] += placed
    sat["relation"] += int(parts["relation"][best])
    asked["relation"] += int(rel >= 0)
    sat["count"] += count_ok
    asked["count"] += 1
  valid = ~np.isnan(per_image)
  out = {"adherence": float(per_image[valid].mean()) if valid.any() else None,
         "exact": float(exact / valid.sum()) if valid.any() else None}
  for k in KINDS:
    out[k] = sat[k] / asked[k] if asked[k] else None
  out["spurious"] = spurious_sum / valid.sum() if valid.any() else None
  out["num_images"] = int(valid.sum())
  out["per_image"] = per_image
  return out


def caption_adherence(images, requests: Mapping[str, np.ndarray],
                      weights: Optional[str] = None) -> dict:
  """Caption adherence of images [N, H, W, 3] in [-1, 1] to ``requests`` (module docstring).

  Args:
    images: generated (or real) images.
    requests: ``shapes.parse_prompts(prompts)`` or a shapes batch's labels, one per image.
    weights: classifier weights (default: the shipped ones).
  """
  from genjax.metrics.shapes_classifier import shapes_reader
  return adherence_from_readout(shapes_reader(weights)(images), requests)


def prompt_adherence(images, prompts, weights: Optional[str] = None) -> dict:
  """Caption adherence of images to prompts in the shapes grammar (one prompt per image)."""
  from genjax.data import shapes
  return caption_adherence(images, shapes.parse_prompts(list(prompts)), weights)


def real_ceiling(num: int = 2000, image_size: int = 32, weights: Optional[str] = None) -> dict:
  """The classifier on real test images: adherence to their own captions and accuracies.

  Returns:
    ``{"adherence": ..., "exact": ..., per-kind rates, "accuracy": per-attribute accuracy of the
    readout (occupied, colour, shape, size, object, image), "num_images": num}`` on the first
    ``num`` images of the shapes test split at ``image_size``.
  """
  from genjax.data import shapes
  from genjax.metrics.shapes_classifier import accuracies_of, shapes_reader
  batch = shapes.generate(np.arange(num), shapes.ShapesConfig(image_size=image_size))
  read = shapes_reader(weights)(batch["x"])
  out = adherence_from_readout(read, batch)
  out.pop("per_image")
  out["accuracy"] = accuracies_of(read, batch)
  return out
