"""Reference statistics of a dataset split, stored once and checked on every use.

A reference file (.npz, no pickle) holds ``mu`` [D] and ``sigma`` [D, D] in float64 (for FD),
optionally the reference ``features`` [M, D] (KID and precision/recall need samples, not only
moments; M can be capped), and JSON metadata: the extractor's name, weights checksum and
resize convention, the image shape the features were computed from, the dataset, split and
count, and the command that made it. Made by
``python -m genjax.metrics.ref_stats --dataset digits --split test --extractor digits --out F``
or, for any image folder or .npz of images, ``python -m genjax.metrics.ref_stats --images=DIR
--extractor inception --out F``.

Statistics files of other projects are read too (:func:`load_ref_stats`, ``fmt=``), each with a
record of the resize it assumes (``FOREIGN_FORMATS``):

* pytorch-fid (``--save-stats``) and TTUR (``fid_stats_*.npz``): ``mu``, ``sigma``;
* clean-fid (``{name}_{mode}_{split}_{res}.npz``: ``mu``, ``sigma``; ``..._kid.npz``:
  ``feats``), mode ``clean``, ``legacy_pytorch`` or ``legacy_tensorflow``, read from the name.

All of them were made with the official Inception weights, so they are accepted only with the
extractor built from pytorch-fid's official ``pt_inception-2015-12-05-6726825d.pth``.

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
from genjax.metrics import streaming
from genjax.metrics.extractors import BatchExtractor, Extractor, extract

FORMAT = "genjax-ref-stats-v1"

# The resize each foreign statistics format assumes, as recorded in RefStats.meta["resize"].
# Those equal to an Inception extractor's convention (genjax.metrics.inception.RESIZES) are
# compatible with it; the others need allow_resize_mismatch=True.
_TF_RESIZE = ("TensorFlow 1 graph inception-2015-12-05: uint8 [0,255] -> ResizeBilinear to "
              "299x299 (align_corners=False, no half-pixel centres) -> (x-128)/128")


def _foreign_formats() -> dict:
  from genjax.metrics import inception
  return {
      "pytorch-fid": inception.RESIZE_CONVENTION,
      "ttur": _TF_RESIZE,
      "clean-fid:clean": inception.CLEAN_RESIZE_CONVENTION,
      "clean-fid:legacy_pytorch": ("clean-fid legacy_pytorch: uint8 [0,255] as float -> "
                                   "bilinear (align_corners=False) to 299x299 -> (x-128)/128"),
      "clean-fid:legacy_tensorflow": _TF_RESIZE,
  }


FOREIGN_FORMATS = ("pytorch-fid", "ttur", "clean-fid:clean", "clean-fid:legacy_pytorch",
                   "clean-fid:legacy_tensorflow")


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
    keys = ("dataset", "split", "num", "image_shape", "path", "format", "resize")
    return {k: self.meta[k] for k in keys if k in self.meta}

  @property
  def num(self) -> Optional[int]:
    """Examples behind mu/sigma, when known."""
    n = self.meta.get("num")
    return None if n is None else int(n)


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


def compute_ref_stats_stream(extractor: Extractor, batches, *, dataset: str, split: str,
                             max_features: Optional[int] = None, batch_size: Optional[int] = None,
                             progress: bool = False, total: Optional[int] = None,
                             **extra_meta) -> RefStats:
  """:func:`compute_ref_stats` over an iterable of image batches, in fixed memory.

  Args:
    extractor: the feature network.
    batches: iterable of [B, H, W, C] images in [-1, 1] (one H, W, C throughout).
    dataset: dataset name (or the folder), recorded.
    split: split name, recorded.
    max_features: store at most this many features (None: all, 0: none).
    batch_size: images per device call (default: the extractor's).
    progress: progress bar.
    total: number of images, for the progress bar.
    **extra_meta: more JSON-able metadata to record.
  """
  run = BatchExtractor(extractor, batch_size or extractor.batch_size)
  acc = streaming.FeatureAccumulator(extractor.feature_dim, keep_features=max_features != 0,
                                     max_features=max_features)
  shape = None
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=total, desc=f"{dataset}/{split} features", unit="img", dynamic_ncols=True)
  for b in batches:
    b = np.asarray(b)
    if shape is None:
      shape = b.shape[1:]
    elif b.shape[1:] != shape:
      raise ValueError(f"images of shape {b.shape[1:]} after images of shape {shape}; "
                       "reference images must share one shape.")
    acc.update(run(b)[0])
    if bar is not None:
      bar.update(len(b))
  if bar is not None:
    bar.close()
  mu, sigma = acc.statistics()
  keep = acc.features()
  meta = dict(extractor.describe(), image_shape=list(shape), dataset=dataset, split=split,
              num=int(acc.count), **extra_meta)
  return RefStats(mu, sigma, keep if keep is not None and len(keep) else None, meta)


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


def _infer_foreign_format(path: str) -> Optional[str]:
  """The foreign format a file name implies (clean-fid's or TTUR's naming), or None."""
  name = os.path.basename(path)
  for mode in ("legacy_pytorch", "legacy_tensorflow", "clean"):
    if f"_{mode}_" in name:
      return f"clean-fid:{mode}"
  if name.startswith("fid_stats_"):
    return "ttur"
  return None


def _load_foreign(path: str, z: dict, fmt: Optional[str]) -> RefStats:
  from genjax.metrics import inception

  fmt = fmt or _infer_foreign_format(path)
  if fmt is None:
    raise ValueError(f"{path!r} holds statistics of another project; say which, so that its "
                     f"resize is known: fmt= / --ref_format= one of {FOREIGN_FORMATS}.")
  if fmt not in FOREIGN_FORMATS:
    raise ValueError(f"unknown statistics format {fmt!r}; valid: {FOREIGN_FORMATS}.")
  features = None
  if "mu" in z and "sigma" in z:
    mu = np.asarray(z["mu"], np.float64)
    sigma = np.asarray(z["sigma"], np.float64)
    num = None
  elif "feats" in z:  # clean-fid's KID file: the features themselves.
    features = np.asarray(z["feats"], np.float32)
    mu, sigma = distances.feature_statistics(features)
    num = int(len(features))
  else:
    raise ValueError(f"{path!r} has neither mu/sigma (pytorch-fid, TTUR, clean-fid) nor feats "
                     f"(clean-fid KID); found {sorted(z)}.")
  d = inception.FEATURE_DIM
  if mu.shape != (d,) or sigma.shape != (d, d):
    raise ValueError(f"{path!r}: expected Inception pool3 statistics mu [{d}], sigma "
                     f"[{d}, {d}], got {mu.shape} and {sigma.shape}.")
  if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
    raise ValueError(f"{path!r}: mu or sigma contains NaN or Inf.")
  meta = {"format": fmt, "foreign": True, "extractor": inception.NAME,
          "extractor_checksum": None, "weights": "official pt_inception-2015-12-05",
          "resize": _foreign_formats()[fmt], "feature_dim": d, "dataset": os.path.basename(path),
          "split": None, "path": path}
  if num is not None:
    meta["num"] = num
  return RefStats(mu, sigma, features, meta)


def load_ref_stats(path: str, fmt: Optional[str] = None) -> RefStats:
  """Reads reference statistics (never executes code).

  Args:
    path: a file written by :func:`save_ref_stats`, or the statistics file of another project
      (pytorch-fid, TTUR, clean-fid).
    fmt: for another project's file: one of ``FOREIGN_FORMATS``; None infers it from
      clean-fid's and TTUR's file names, and refuses a name that says nothing.

  Returns:
    The statistics; ``meta["resize"]`` records the resize the file assumes.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"reference statistics not found: {path!r}. Make them with: python -m "
        "genjax.metrics.ref_stats --dataset DATASET --split test --extractor EXTRACTOR "
        f"--out {path} (or --images=DIR for an image folder)")
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
    if "meta" not in arrays:
      meta = None
    else:
      meta = json.loads(str(arrays["meta"]))
      mu, sigma = arrays["mu"], arrays["sigma"]
      features = arrays.get("features")
  except Exception as e:
    raise ValueError(f"{path!r} is not a reference statistics file ({e}); remake it "
                     "with python -m genjax.metrics.ref_stats.") from e
  if meta is None:
    return _load_foreign(path, arrays, fmt)
  if meta.get("format") != FORMAT:
    raise ValueError(f"{path!r} has format {meta.get('format')!r}, expected {FORMAT!r}; "
                     "remake it with python -m genjax.metrics.ref_stats.")
  meta["path"] = path
  return RefStats(mu, sigma, features, meta)


def check_compatible(stats: RefStats, extractor: Extractor,
                     image_shape: Optional[tuple[int, ...]] = None, *,
                     allow_resize_mismatch: bool = False) -> None:
  """Raises ValueError unless ``stats`` were made by ``extractor`` from images like the samples.

  Args:
    stats: reference statistics.
    extractor: the extractor about to embed the samples.
    image_shape: (H, W, C) of the samples, or None to skip that check.
    allow_resize_mismatch: accept another project's statistics made with another resize
      (e.g. TTUR's TensorFlow resize against pytorch-fid's, as pytorch-fid itself does); the
      resize the file assumes stays recorded in the result.
  """
  m = stats.meta
  where = m.get("path", "the reference statistics")
  if m.get("foreign"):
    _check_foreign(stats, extractor, where, allow_resize_mismatch)
    return
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


def _check_foreign(stats: RefStats, extractor: Extractor, where: str,
                   allow_resize_mismatch: bool) -> None:
  from genjax.metrics import inception

  m = stats.meta
  if extractor.name != inception.NAME:
    raise ValueError(f"{where} hold Inception-v3 statistics ({m['format']}); evaluate with "
                     f"--extractor=inception, not {extractor.space or extractor.name}.")
  if not inception.is_official(extractor.source_sha256):
    raise ValueError(
        f"{where} were made with the official Inception weights, but these weights (checksum "
        f"{extractor.checksum[:12]}...) do not come from pt_inception-2015-12-05-6726825d.pth; "
        "pass the official file (or its conversion by genjax.metrics.convert_inception).")
  if m["resize"] != extractor.resize and not allow_resize_mismatch:
    raise ValueError(
        f"{where} ({m['format']}) assume the resize {m['resize']!r}, not "
        f"{extractor.resize!r}; use --extractor=inception_clean for clean-fid's clean mode, "
        "or pass allow_resize_mismatch=True (--allow_resize_mismatch) to compare anyway.")


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
