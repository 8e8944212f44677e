"""Reference statistics of a dataset split, stored once and checked on every use.

A reference file (.npz, no pickle) holds ``mu`` [D] and ``sigma`` [D, D] in float64 (for FD),
optionally the reference ``features`` [M, D] (KID and precision/recall need samples, not only
moments; M can be capped), and JSON metadata: the extractor's name, weights checksum and
resize convention, the image shape the features were computed from, the dataset, split and
count, and the command that made it. Made by
``python -m genjax.metrics.ref_stats --dataset digits --split test --extractor digits --out F``.

:func:`check_compatible` refuses a reference made with other extractor weights, another resize
convention or images of another shape than the samples: the classic way self-computed FIDs
stop matching published ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import numpy as np

from genjax.metrics import distances
from genjax.metrics.extractors import Extractor, extract

FORMAT = "genjax-ref-stats-v1"


@dataclasses.dataclass(frozen=True)
class RefStats:
  """Reference statistics.

  Attributes:
    mu: [D] float64 mean of the reference features.
    sigma: [D, D] float64 covariance.
    features: [M, D] float32 reference features (M <= num), or None if not stored.
    meta: dict with extractor, extractor_checksum, resize, feature_dim, image_shape, dataset,
      split, num (examples behind mu/sigma), and optionally data_dir and command.
  """

  mu: np.ndarray
  sigma: np.ndarray
  features: Optional[np.ndarray]
  meta: dict

  def describe(self) -> dict:
    """Short JSON-able description for eval.json."""
    keys = ("dataset", "split", "num", "image_shape", "path")
    return {k: self.meta[k] for k in keys if k in self.meta}


def compute_ref_stats(extractor: Extractor, images: np.ndarray, *, dataset: str, split: str,
                      max_features: Optional[int] = None, progress: bool = False,
                      **extra_meta) -> RefStats:
  """Extracts features of ``images`` and summarises them.

  Args:
    extractor: the feature network.
    images: [N, H, W, C] in [-1, 1].
    dataset: dataset name, recorded.
    split: split name, recorded.
    max_features: store at most this many features (the first ones; None: all, 0: none).
      mu and sigma always use all N.
    progress: progress bar.
    **extra_meta: more JSON-able metadata to record.
  """
  feats, _ = extract(extractor, images, progress=progress, desc=f"{dataset}/{split} features")
  mu, sigma = distances.feature_statistics(feats)
  keep = feats if max_features is None else feats[:max_features]
  meta = dict(extractor.describe(), image_shape=list(images.shape[1:]), dataset=dataset,
              split=split, num=int(len(images)), **extra_meta)
  return RefStats(mu, sigma, keep if len(keep) else None, meta)


def save_ref_stats(path: str, stats: RefStats) -> None:
  """Writes ``stats`` to ``path`` (.npz, no pickle), atomically."""
  arrays = {"mu": stats.mu, "sigma": stats.sigma}
  if stats.features is not None:
    arrays["features"] = stats.features.astype(np.float32)
  meta = dict(stats.meta, format=FORMAT)
  meta.pop("path", None)
  os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez_compressed(tmp, **arrays, meta=np.array(json.dumps(meta, sort_keys=True)))
  os.replace(tmp, path)


def load_ref_stats(path: str) -> RefStats:
  """Reads a file written by :func:`save_ref_stats` (never executes code)."""
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"reference statistics not found: {path!r}. Make them with: python -m "
        "genjax.metrics.ref_stats --dataset DATASET --split test --extractor EXTRACTOR "
        f"--out {path}")
  try:
    with np.load(path, allow_pickle=False) as z:
      meta = json.loads(str(z["meta"]))
      mu, sigma = z["mu"], z["sigma"]
      features = z["features"] if "features" in z.files else None
  except Exception as e:
    raise ValueError(f"{path!r} is not a genjax reference statistics file ({e}); remake it "
                     "with python -m genjax.metrics.ref_stats.") from e
  if meta.get("format") != FORMAT:
    raise ValueError(f"{path!r} has format {meta.get('format')!r}, expected {FORMAT!r}; "
                     "remake it with python -m genjax.metrics.ref_stats.")
  meta["path"] = path
  return RefStats(mu, sigma, features, meta)


def check_compatible(stats: RefStats, extractor: Extractor,
                     image_shape: Optional[tuple[int, ...]] = None) -> None:
  """Raises ValueError unless ``stats`` were made by ``extractor`` from images like the samples.

  Args:
    stats: reference statistics.
    extractor: the extractor about to embed the samples.
    image_shape: (H, W, C) of the samples, or None to skip that check.
  """
  m = stats.meta
  where = m.get("path", "the reference statistics")
  remake = (f"Remake them with: python -m genjax.metrics.ref_stats --dataset "
            f"{m.get('dataset', 'DATASET')} --split {m.get('split', 'SPLIT')} --extractor "
            f"{'digits' if extractor.name.startswith('digits') else 'inception'}"
            + (f" --image_size {image_shape[0]}" if image_shape else "") + " --out FILE")
  if m.get("extractor") != extractor.name:
    raise ValueError(f"{where} were computed with extractor {m.get('extractor')!r}, not "
                     f"{extractor.name!r}. {remake}")
  if m.get("extractor_checksum") != extractor.checksum:
    raise ValueError(
        f"{where} were computed with other {extractor.name} weights (checksum "
        f"{str(m.get('extractor_checksum'))[:12]}..., current {extractor.checksum[:12]}...); "
        f"numbers against them would not be comparable. {remake}")
  if m.get("resize") != extractor.resize:
    raise ValueError(f"{where} were computed with another resize convention "
                     f"({m.get('resize')!r}; current {extractor.resize!r}). {remake}")
  if image_shape is not None and tuple(m.get("image_shape", ())) != tuple(image_shape):
    raise ValueError(f"{where} were computed from images of shape {tuple(m['image_shape'])}, "
                     f"but the samples are {tuple(image_shape)}. {remake}")


def dataset_images(dataset: str, split: str, image_size: Optional[int] = None,
                   data_dir: Optional[str] = None, max_examples: Optional[int] = None
                   ) -> np.ndarray:
  """All images of a split of a ``genjax.data`` dataset, [N, H, W, C] in [-1, 1]."""
  from genjax.data import DataConfig, load_dataset

  ds = load_dataset(DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size))
  if ds.spec.kind != "image":
    raise ValueError(f"dataset {dataset!r} holds {ds.spec.kind}, not images.")
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
  source = ds.train if split == "train" else ds.test
  n = len(source) if max_examples is None else min(len(source), max_examples)
  out = []
  for i in range(0, n, 1000):
    out.append(np.asarray(source.get(np.arange(i, min(i + 1000, n)))["x"], np.float32))
  return np.concatenate(out)
