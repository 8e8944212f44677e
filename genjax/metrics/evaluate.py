"""Sample-quality evaluation: samples -> features -> FD/FID, KID, IS, precision/recall.

``evaluate`` is what ``sample.py --eval=fid,kid,is,pr`` calls; ``sample_quality`` is the
digits shortcut that also reports the real-against-real floor (digits train vs test).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import jax
import numpy as np

from genjax.metrics import distances
from genjax.metrics import reference as ref_lib
from genjax.metrics.extractors import Extractor, extract, get_extractor

# Metric names accepted by `evaluate`; "fid" and "fd" are the same number (the Frechet
# distance in the extractor's feature space; FID when the extractor is Inception).
METRICS = ("fd", "fid", "kid", "is", "pr")
DIGITS_REFERENCES = ("digits_test", "digits_train")


def _resolve_ref(ref, extractor: Extractor, image_shape, progress: bool) -> ref_lib.RefStats:
  if isinstance(ref, ref_lib.RefStats):
    return ref
  if isinstance(ref, str) and ref in DIGITS_REFERENCES:
    h = image_shape[0]
    images = ref_lib.dataset_images("digits", ref.split("_")[1], image_size=None if h == 8 else h)
    return ref_lib.compute_ref_stats(extractor, images, dataset="digits",
                                     split=ref.split("_")[1], progress=progress)
  if isinstance(ref, str):
    return ref_lib.load_ref_stats(ref)
  raise ValueError(f"ref must be reference statistics, a path to a ref_stats .npz, or one of "
                   f"{DIGITS_REFERENCES}; got {ref!r}.")


def evaluate(samples, metrics: Sequence[str] = ("fd", "kid", "is", "pr"),
             extractor: Union[str, Extractor] = "digits",
             ref: Union[None, str, ref_lib.RefStats] = None, *,
             weights: Optional[str] = None, kid_subsets: int = 100,
             kid_subset_size: int = 1000, is_splits: int = 10, pr_k: int = 3,
             key: Optional[jax.Array] = None, batch_size: Optional[int] = None,
             progress: bool = False) -> dict:
  """Sample-quality metrics of ``samples`` against reference statistics.

  Args:
    samples: [N, H, W, C] generated images in [-1, 1].
    metrics: any of "fd"/"fid" (Frechet distance), "kid" (also writes "kid_std"), "is" (also
      "is_std"), "pr" (writes "precision" and "recall").
    extractor: "digits" (default), "inception", or an :class:`Extractor`.
    ref: reference statistics: a :class:`~genjax.metrics.reference.RefStats`, the path of a
      ``ref_stats`` file, or "digits_test"/"digits_train" (computed on the fly at the samples'
      size). None: "digits_test" for the digits extractor; required otherwise. Not needed
      when only "is" is asked for.
    weights: extractor weights file (Inception: the pytorch-fid .pth or converted .npz).
    kid_subsets: KID subsets.
    kid_subset_size: KID subset size (clipped to the smaller set).
    is_splits: Inception Score splits.
    pr_k: k of precision/recall.
    key: typed key for the KID subsets (default ``jax.random.key(0)``).
    batch_size: extraction batch size.
    progress: progress bars.

  Returns:
    A JSON-able dict: the metrics asked for, ``num_samples``, the extractor's identity
    (name, weights checksum, resize convention) and the reference used.

  Raises:
    ValueError: unknown metric, or a reference made with another extractor, weights, resize
      convention or image shape (:func:`~genjax.metrics.reference.check_compatible`).
  """
  metrics = tuple(m.strip().lower() for m in metrics)
  unknown = [m for m in metrics if m not in METRICS]
  if unknown:
    raise ValueError(f"Unknown metric(s) {unknown}; valid: {METRICS}.")
  samples = np.asarray(samples)
  if samples.ndim != 4:
    raise ValueError(f"evaluate takes images [N, H, W, C], got shape {samples.shape}.")
  ext = get_extractor(extractor, weights)
  needs_ref = any(m != "is" for m in metrics)
  stats = None
  if needs_ref:
    if ref is None:
      if not ext.name.startswith("digits"):
        raise ValueError("evaluate: pass ref= (a file from python -m genjax.metrics.ref_stats) "
                         f"for the {ext.name} extractor.")
      ref = "digits_test"
    stats = _resolve_ref(ref, ext, samples.shape[1:], progress)
    ref_lib.check_compatible(stats, ext, samples.shape[1:])
    if stats.features is None and ("kid" in metrics or "pr" in metrics):
      _no_ref_features(stats, "kid" if "kid" in metrics else "pr")

  feats, probs = extract(ext, samples, batch_size, progress=progress, desc="sample features")
  out = {"num_samples": int(len(samples)), **ext.describe()}
  if stats is not None:
    out["reference"] = stats.describe()
  out.update(metrics_from_features(feats, probs, stats, metrics, kid_subsets=kid_subsets,
                                   kid_subset_size=kid_subset_size, is_splits=is_splits,
                                   pr_k=pr_k, key=key))
  return out


def _no_ref_features(stats: ref_lib.RefStats, metric: str):
  raise ValueError(f"metric {metric!r} needs reference features, but "
                   f"{stats.meta.get('path', 'the reference')} stores only mu/sigma; remake it "
                   "with python -m genjax.metrics.ref_stats (without --max_features 0).")


def metrics_from_features(feats: np.ndarray, probs: np.ndarray,
                          stats: Optional[ref_lib.RefStats], metrics: Sequence[str], *,
                          kid_subsets: int = 100, kid_subset_size: int = 1000,
                          is_splits: int = 10, pr_k: int = 3,
                          key: Optional[jax.Array] = None) -> dict:
  """The metrics of :func:`evaluate` from already extracted features and probabilities."""
  out = {}
  for m in metrics:
    if m in ("fd", "fid"):
      out[m] = distances.frechet_distance(*distances.feature_statistics(feats), stats.mu,
                                          stats.sigma)
    elif m in ("kid", "pr"):
      if stats.features is None:
        _no_ref_features(stats, m)
      if m == "kid":
        out["kid"], out["kid_std"] = distances.kid(stats.features, feats, kid_subsets,
                                                   kid_subset_size, key=key)
      else:
        out["precision"], out["recall"] = distances.precision_recall(stats.features, feats,
                                                                     k=pr_k)
    elif m == "is":
      out["is"], out["is_std"] = distances.inception_score(probs, min(is_splits, len(probs)))
  return out


def sample_quality(samples, reference: str = "digits_test", baseline: bool = True,
                   baseline_repeats: int = 5, **kwargs) -> dict:
  """FD, KID, IS, precision and recall of digit samples in the digits classifier's space.

  The real-against-real floor (``baseline``): random subsets of the digits *train* split, of
  as many images as there are samples (FD's bias depends on the count), scored the same way
  against the same reference; mean and std over ``baseline_repeats`` subsets (one subset,
  the whole split, when there are at least 1,527 samples). With 270 reference digits the FD
  of one subset varies by about +-25% (1,000 images), so compare a model with the floor's
  mean and spread, e.g. ``fd_ratio = fd / baseline["fd"]``.

  Args:
    samples: [N, H, W, 1] digits in [-1, 1] (8x8, or 16x16/32x32 from a model trained on
      ``DataConfig(image_size=...)``; the reference is then resized the same way).
    reference: "digits_test" (default) or a ref_stats path made with the digits extractor.
    baseline: also score the train split.
    baseline_repeats: number of random train subsets averaged for the floor.
    **kwargs: passed to :func:`evaluate` (kid_subsets, key, progress, ...).

  Returns:
    dict(fd, kid, kid_std, is, is_std, precision, recall, num_samples, extractor, ...,
    and with the baseline: baseline=dict(fd, fd_std, kid, is, precision, recall, num_samples,
    repeats), fd_ratio, kid_minus_baseline).

  Example:
    >>> q = sample_quality(samples)  # samples: [1000, 8, 8, 1]
    >>> q["fd"], q["baseline"]["fd"], q["fd_ratio"]
  """
  samples = np.asarray(samples)
  ext = get_extractor("digits", kwargs.pop("weights", None))
  progress = kwargs.get("progress", False)
  # Resolve the reference once; the baseline reuses it.
  stats = _resolve_ref(reference, ext, samples.shape[1:], progress)
  names = ("fd", "kid", "is", "pr")
  out = evaluate(samples, names, ext, stats, **kwargs)
  if not baseline:
    return out
  h = samples.shape[1]
  train = ref_lib.dataset_images("digits", "train", image_size=None if h == 8 else h)
  feats, probs = extract(ext, train, progress=progress, desc="baseline features")
  n = min(len(samples), len(train))
  repeats = 1 if n == len(train) else baseline_repeats
  metric_kw = {k: kwargs[k] for k in ("kid_subsets", "kid_subset_size", "is_splits", "pr_k",
                                      "key") if k in kwargs}
  rows = []
  for r in range(repeats):
    idx = np.sort(np.random.default_rng(r).permutation(len(train))[:n])
    rows.append(metrics_from_features(feats[idx], probs[idx], stats, names, **metric_kw))
  base = {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}
  base["fd_std"] = float(np.std([row["fd"] for row in rows]))
  base.update(num_samples=n, repeats=repeats,
              what=f"mean over {repeats} random subsets of {n} digits-train images")
  out["baseline"] = base
  out["fd_ratio"] = out["fd"] / base["fd"]
  out["kid_minus_baseline"] = out["kid"] - base["kid"]
  return out
