"""Sample-quality evaluation: samples -> features -> FD/FID, KID, IS, precision/recall.

:class:`Evaluator` is the streaming form: it validates everything it can (metric names, the
extractor, the reference and its compatibility, the sample counts each metric needs) when it
is built, before any sample exists; then ``update(batch)`` embeds each batch and folds it into
running statistics (:mod:`genjax.metrics.streaming`), and ``compute()`` returns the metrics.
``sample.py --eval=fid,kid,is,pr`` evaluates 50,000 samples this way without holding them.
:func:`evaluate` is the one-shot form over an array; :func:`sample_quality` the digits shortcut
that also reports the real-against-real floor (digits train vs test).

Every figure is named by its feature space, so that a Frechet distance in the digits
classifier's space is never mistaken for an Inception FID: ``fd_digits``, ``kid_digits``,
``is_digits``, ``precision_digits``, ``recall_digits``; ``fid_inception``, ``kid_inception``,
``is_inception``, ...; ``fid_inception_clean`` (clean-fid's resize), ... (:func:`metric_key`).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import jax
import numpy as np

from genjax.metrics import distances
from genjax.metrics import reference as ref_lib
from genjax.metrics import streaming
from genjax.metrics.checks import check_images
from genjax.metrics.checks import nchw_hint
from genjax.metrics.extractors import BatchExtractor, Extractor, extract, get_extractor

# Metric names accepted by `evaluate`; "fid" and "fd" are the same number (the Frechet
# distance in the extractor's feature space), reported under the space's key.
METRICS = ("fd", "fid", "kid", "is", "pr")
DIGITS_REFERENCES = ("digits_test", "digits_train")
# The first SHAPES_REF_SIZE images of a shapes split, drawn at the samples' size.
SHAPES_REFERENCES = ("shapes_test", "shapes_train")
SHAPES_REF_SIZE = 10_000
KID_SUBSET_SIZE = 1000


def metric_key(metric: str, space: str) -> str:
  """The result key of a metric in a feature space: ("fd", "digits") -> "fd_digits".

  The Frechet distance is called FID only in Inception's space (``fid_inception``,
  ``fid_inception_clean``) and FD elsewhere (``fd_digits``); "precision"/"recall" likewise get
  the space as suffix.
  """
  if metric in ("fd", "fid"):
    metric = "fid" if space.startswith("inception") else "fd"
  return f"{metric}_{space}"


def check_metric_names(metrics: Sequence[str]) -> tuple[str, ...]:
  """Normalised metric names; ValueError naming the unknown ones."""
  metrics = tuple(m.strip().lower() for m in metrics if m.strip())
  unknown = [m for m in metrics if m not in METRICS]
  if unknown:
    raise ValueError(f"Unknown metric(s) {unknown}; valid: {METRICS}.")
  if not metrics:
    raise ValueError(f"no metric asked for; valid: {METRICS}.")
  return metrics


def _resolve_ref(ref, extractor: Extractor, image_shape, progress: bool,
                 ref_format: Optional[str] = None) -> ref_lib.RefStats:
  if isinstance(ref, ref_lib.RefStats):
    return ref
  if isinstance(ref, str) and ref in DIGITS_REFERENCES:
    h = image_shape[0]
    images = ref_lib.dataset_images("digits", ref.split("_")[1], image_size=None if h == 8 else h)
    return ref_lib.compute_ref_stats(extractor, images, dataset="digits",
                                     split=ref.split("_")[1], progress=progress)
  if isinstance(ref, str) and ref in SHAPES_REFERENCES:
    split = ref.split("_")[1]
    images = ref_lib.dataset_images("shapes", split, image_size=image_shape[0],
                                    max_examples=SHAPES_REF_SIZE)
    return ref_lib.compute_ref_stats(extractor, images, dataset="shapes", split=split,
                                     progress=progress)
  if isinstance(ref, str):
    return ref_lib.load_ref_stats(ref, ref_format)
  raise ValueError(f"ref must be reference statistics, a path to a ref_stats .npz, or one of "
                   f"{DIGITS_REFERENCES + SHAPES_REFERENCES}; got {ref!r}.")


def _no_ref_features(stats: ref_lib.RefStats, metric: str):
  raise ValueError(f"metric {metric!r} needs reference features, but "
                   f"{stats.meta.get('path', 'the reference')} stores only mu/sigma; remake it "
                   "with python -m genjax.metrics.ref_stats (without --max_features 0).")


def check_counts(metrics: Sequence[str], num: int, stats: Optional[ref_lib.RefStats], *,
                 kid_subset_size: Optional[int], is_splits: int, pr_k: int) -> None:
  """Raises ValueError unless ``num`` samples (and the reference) suffice for every metric.

  FD needs N >= 2; KID a subset size of at least 2 and at most N and the reference's count;
  IS N >= splits; precision/recall N > k and more than k reference features.
  """
  if num < 1:
    raise ValueError(f"no samples to evaluate (num={num}).")
  m = None if stats is None or stats.features is None else len(stats.features)
  for name in metrics:
    if name in ("fd", "fid") and num < 2:
      raise ValueError(f"the Frechet distance needs at least 2 samples, got {num}.")
    if name in ("kid", "pr") and stats is not None and stats.features is None:
      _no_ref_features(stats, name)
    if name == "kid":
      size = kid_subset_size or min(KID_SUBSET_SIZE, num, m)
      if not 2 <= size <= min(num, m):
        raise ValueError(f"KID: subset_size={size} must lie in [2, min(N={num}, reference "
                         f"features={m})]; pass a smaller kid_subset_size or more samples.")
    if name == "is" and num < is_splits:
      raise ValueError(f"the Inception Score with {is_splits} splits needs at least "
                       f"{is_splits} samples, got {num}; pass fewer splits or more samples.")
    if name == "pr" and min(num, m) <= pr_k:
      raise ValueError(f"precision/recall with k={pr_k} need more than {pr_k} samples and "
                       f"reference features, got {num} and {m}.")


def metrics_from_features(feats: Optional[np.ndarray], probs: Optional[np.ndarray],
                          stats: Optional[ref_lib.RefStats], metrics: Sequence[str], *,
                          space: str, statistics: Optional[tuple] = None,
                          num: Optional[int] = None, kid_subsets: int = 100,
                          kid_subset_size: Optional[int] = None, is_splits: int = 10,
                          is_shuffle: bool = True, pr_k: int = 3,
                          key: Optional[jax.Array] = None,
                          names: tuple[str, str] = ("the samples", "the reference")) -> dict:
  """The metrics of :func:`evaluate` from already extracted features and probabilities.

  Args:
    feats: [N, D] sample features (KID, precision/recall; FD unless ``statistics`` given).
    probs: [N, K] class probabilities (IS).
    stats: the reference.
    metrics: names in ``METRICS``.
    space: the feature space, the keys' suffix (:func:`metric_key`).
    statistics: (mu, sigma) of the samples, when accumulated elsewhere (streaming).
    num: number of samples (default len(feats) or len(probs)).
    kid_subsets, kid_subset_size, is_splits, is_shuffle, pr_k, key: the metrics' settings
      (kid_subset_size None: min(1000, N, reference features)).
    names: the two sets, for error messages.

  Returns:
    {key: value}, plus the ``*_std`` of KID and IS.
  """
  num = num if num is not None else len(feats if feats is not None else probs)
  check_counts(metrics, num, stats, kid_subset_size=kid_subset_size, is_splits=is_splits,
               pr_k=pr_k)
  out = {}
  for m in metrics:
    if m in ("fd", "fid"):
      mu, sigma = statistics if statistics is not None else distances.feature_statistics(feats)
      out[metric_key(m, space)] = distances.frechet_distance(mu, sigma, stats.mu, stats.sigma,
                                                             names=names)
    elif m == "kid":
      size = kid_subset_size or min(KID_SUBSET_SIZE, len(feats), len(stats.features))
      k = metric_key("kid", space)
      out[k], out[k + "_std"] = distances.kid(stats.features, feats, kid_subsets, size, key=key)
    elif m == "pr":
      out[metric_key("precision", space)], out[metric_key("recall", space)] = (
          distances.precision_recall(stats.features, feats, k=pr_k))
    elif m == "is":
      k = metric_key("is", space)
      out[k], out[k + "_std"] = distances.inception_score(probs, is_splits, shuffle=is_shuffle)
  return out


class Evaluator:
  """Streaming sample-quality evaluation: ``update(batch)`` ... ``compute()``.

  Everything that can be checked without samples is checked in the constructor, so a wrong
  metric name, extractor, weights file, reference or sample count fails before any sampling.

  Args:
    metrics: any of "fd"/"fid" (Frechet distance), "kid", "is", "pr".
    extractor: "digits", "inception", "inception_clean", or an :class:`Extractor`.
    ref: a :class:`~genjax.metrics.reference.RefStats`, the path of a statistics file
      (genjax's, or pytorch-fid / TTUR / clean-fid's: see ``ref_format``), or
      "digits_test"/"digits_train" (computed at the samples' size). None: "digits_test" for the
      digits extractor; required otherwise. Not needed when only "is" is asked for.
    image_shape: (H, W, C) of the samples.
    num: the number of samples that will come, to check the metrics' minimum counts now
      (None: checked in ``compute``).
    weights: extractor weights file (Inception: the pytorch-fid .pth or converted .npz).
    kid_subsets: KID subsets.
    kid_subset_size: KID subset size; None: min(1000, N, reference features), recorded.
    is_splits: Inception Score splits.
    is_shuffle: shuffle before splitting (torch-fidelity's seeded permutation).
    is_logits_bias: Inception: IS from the biased logits (not comparable with published IS).
    pr_k: k of precision/recall.
    key: typed key for the KID subsets (default ``jax.random.key(0)``).
    batch_size: images per device call.
    max_features: sample features kept for KID and precision/recall (None: all).
    ref_format: format of another project's statistics file (reference.FOREIGN_FORMATS).
    allow_resize_mismatch: accept another project's statistics made with another resize.
    progress: progress bars (reference features).
  """

  def __init__(self, metrics: Sequence[str] = ("fd", "kid", "is", "pr"),
               extractor: Union[str, Extractor] = "digits",
               ref: Union[None, str, ref_lib.RefStats] = None, *,
               image_shape: Sequence[int], num: Optional[int] = None,
               weights: Optional[str] = None, kid_subsets: int = 100,
               kid_subset_size: Optional[int] = None, is_splits: int = 10,
               is_shuffle: bool = True, is_logits_bias: bool = False, pr_k: int = 3,
               key: Optional[jax.Array] = None, batch_size: Optional[int] = None,
               max_features: Optional[int] = None, ref_format: Optional[str] = None,
               allow_resize_mismatch: bool = False, progress: bool = False):
    self.metrics = check_metric_names(metrics)
    self.image_shape = tuple(int(s) for s in image_shape)
    if len(self.image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C), got {tuple(image_shape)}.")
    self.extractor = ext = get_extractor(extractor, weights, logits_bias=is_logits_bias)
    if self.image_shape[-1] not in ext.channels:
      raise ValueError(f"the {ext.space} extractor takes NHWC images with C in "
                       f"{ext.channels}; the samples have shape {self.image_shape}"
                       f"{nchw_hint((0,) + self.image_shape, ext.channels)}.")
    self.settings = dict(kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                         is_splits=is_splits, is_shuffle=is_shuffle, pr_k=pr_k)
    self.key = key
    self.stats = None
    if any(m != "is" for m in self.metrics):
      if ref is None and ext.name.startswith("shapes"):
        ref = "shapes_test"
      if ref is None:
        if not ext.name.startswith("digits"):
          raise ValueError("pass ref= (a file from python -m genjax.metrics.ref_stats, or "
                           f"pytorch-fid / TTUR / clean-fid statistics) for the {ext.space} "
                           "extractor.")
        ref = "digits_test"
      self.stats = _resolve_ref(ref, ext, self.image_shape, progress, ref_format)
      ref_lib.check_compatible(self.stats, ext, self.image_shape,
                               allow_resize_mismatch=allow_resize_mismatch)
    if num is not None:
      self._check(num)
    self._run = BatchExtractor(ext, min(batch_size or ext.batch_size, num or ext.batch_size))
    needs_feats = "kid" in self.metrics or "pr" in self.metrics
    self.acc = streaming.FeatureAccumulator(ext.feature_dim, keep_features=needs_feats,
                                            keep_probs="is" in self.metrics,
                                            max_features=max_features)

  def _check(self, num: int) -> None:
    s = self.settings
    check_counts(self.metrics, num, self.stats, kid_subset_size=s["kid_subset_size"],
                 is_splits=s["is_splits"], pr_k=s["pr_k"])

  @property
  def count(self) -> int:
    """Samples folded in so far."""
    return self.acc.count

  def update(self, images) -> None:
    """Embeds a batch [B, H, W, C] in [-1, 1] and folds it into the running statistics."""
    ext = self.extractor
    check_images(images, f"{ext.space} evaluation", channels=ext.channels)
    if tuple(np.shape(images)[1:]) != self.image_shape:
      raise ValueError(f"a batch of shape {tuple(np.shape(images))} in a stream of images "
                       f"{self.image_shape}.")
    feats, probs = self._run(images)
    self.acc.update(feats, probs if self.acc.keep_probs else None)

  def compute(self) -> dict:
    """The metrics of everything seen, as a JSON-able dict.

    Keys: the metrics by feature space (:func:`metric_key`) with ``*_std`` for KID and IS,
    ``num_samples``, the extractor's identity (name, weights checksum, resize, feature space),
    ``reference`` (what it is, and the resize it assumes) and ``settings`` (KID subset size
    used, IS splits and shuffling, k).
    """
    n = self.acc.count
    self._check(n)
    ext = self.extractor
    needs_stats = any(m in ("fd", "fid") for m in self.metrics)
    out = {"num_samples": int(n), **ext.describe()}
    if self.stats is not None:
      out["reference"] = self.stats.describe()
    names = ("the samples", str(self.stats.meta.get("path", "the reference"))
             if self.stats is not None else "the reference")
    feats = self.acc.features()
    settings = dict(self.settings)
    if "kid" in self.metrics and settings["kid_subset_size"] is None:
      settings["kid_subset_size"] = min(KID_SUBSET_SIZE, len(feats), len(self.stats.features))
    out.update(metrics_from_features(
        feats, self.acc.probs(), self.stats, self.metrics, space=ext.space,
        statistics=self.acc.statistics() if needs_stats else None, num=n, key=self.key,
        names=names, **settings))
    out["settings"] = {k: v for k, v in settings.items() if v is not None}
    return out


def evaluate(samples, metrics: Sequence[str] = ("fd", "kid", "is", "pr"),
             extractor: Union[str, Extractor] = "digits",
             ref: Union[None, str, ref_lib.RefStats] = None, *,
             batch_size: Optional[int] = None, **kwargs) -> dict:
  """Sample-quality metrics of ``samples`` against reference statistics.

  Args:
    samples: [N, H, W, C] generated images in [-1, 1] (checked:
      :func:`~genjax.metrics.checks.check_images`).
    metrics: any of "fd"/"fid" (Frechet distance), "kid", "is", "pr".
    extractor: "digits" (default), "inception", "inception_clean", or an :class:`Extractor`.
    ref: the reference (see :class:`Evaluator`).
    batch_size: extraction batch size.
    **kwargs: the settings of :class:`Evaluator` (weights, kid_subsets, kid_subset_size,
      is_splits, is_shuffle, pr_k, key, progress, ref_format, ...).

  Returns:
    A JSON-able dict (:meth:`Evaluator.compute`): e.g. ``fd_digits``, ``kid_digits``,
    ``kid_digits_std``, ``is_digits``, ``precision_digits``, ``recall_digits``, ...

  Raises:
    ValueError: unknown metric, bad images, too few samples for a metric, or a reference
      made with another extractor, weights, resize convention or image shape
      (:func:`~genjax.metrics.reference.check_compatible`).
  """
  check_metric_names(metrics)
  check_images(samples, "evaluate")
  shape = np.shape(samples)
  ev = Evaluator(metrics, extractor, ref, image_shape=shape[1:], num=shape[0],
                 batch_size=batch_size, **kwargs)
  ev.update(samples)
  return ev.compute()


def evaluate_batches(batches: Iterable, metrics: Sequence[str], extractor, ref, *,
                     image_shape: Sequence[int], num: Optional[int] = None,
                     progress: bool = False, **kwargs) -> dict:
  """:func:`evaluate` over an iterable of image batches, in fixed memory (:class:`Evaluator`).

  Args:
    batches: iterable of [B, H, W, C] images in [-1, 1].
    metrics, extractor, ref: as :func:`evaluate`.
    image_shape: (H, W, C) of the images.
    num: how many images will come (checks counts first; sizes the progress bar).
    progress: a progress bar over the images.
    **kwargs: the settings of :class:`Evaluator`.
  """
  ev = Evaluator(metrics, extractor, ref, image_shape=image_shape, num=num, progress=progress,
                 **kwargs)
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=num, desc=f"evaluate ({ev.extractor.space})", unit="img",
               dynamic_ncols=True)
  for b in batches:
    ev.update(b)
    if bar is not None:
      bar.update(len(b))
  if bar is not None:
    bar.close()
  return ev.compute()


def add_digits_baseline(out: dict, ev: Evaluator, repeats: int = 5,
                        progress: bool = False) -> dict:
  """Adds the real-against-real floor to the result of a digits :class:`Evaluator`.

  Random subsets of the digits *train* split, of as many images as there are samples (FD's
  bias depends on the count), scored the same way against the same reference; mean over
  ``repeats`` subsets (one subset, the whole split, when there are at least 1,527 samples).

  Returns:
    ``out`` with ``baseline`` (the same keys, ``fd_digits_std``, ``num_samples``, ``repeats``),
    ``fd_digits_ratio`` and ``kid_digits_minus_baseline``.
  """
  h = ev.image_shape[0]
  train = ref_lib.dataset_images("digits", "train", image_size=None if h == 8 else h)
  return _add_baseline(out, ev, train, repeats, progress, "digits-train", "the train digits")


def add_shapes_baseline(out: dict, ev: Evaluator, repeats: int = 5,
                        progress: bool = False) -> dict:
  """Adds the real-against-real floor to the result of a shapes :class:`Evaluator`.

  As :func:`add_digits_baseline`, with ``repeats`` random subsets (of as many images as there
  are samples) of the first ``min(repeats * N, 50,000)`` images of the shapes *train* split,
  drawn at the samples' size.
  """
  n = ev.count
  train = ref_lib.dataset_images("shapes", "train", image_size=ev.image_shape[0],
                                 max_examples=max(n, min(repeats * n, 50_000)))
  return _add_baseline(out, ev, train, repeats, progress, "shapes-train", "the train shapes")


def _add_baseline(out: dict, ev: Evaluator, train: np.ndarray, repeats: int, progress: bool,
                  what: str, name: str) -> dict:
  feats, probs = extract(ev.extractor, train, progress=progress, desc="baseline features")
  n = min(ev.count, len(train))
  repeats = 1 if n == len(train) else repeats
  space = ev.extractor.space
  settings = dict(ev.settings, kid_subset_size=out.get("settings", {}).get("kid_subset_size"))
  if settings["kid_subset_size"] is not None:
    settings["kid_subset_size"] = min(settings["kid_subset_size"], n)
  rows = []
  for r in range(repeats):
    idx = np.sort(np.random.default_rng(r).permutation(len(train))[:n])
    rows.append(metrics_from_features(feats[idx], probs[idx], ev.stats, ev.metrics,
                                      space=space, key=ev.key,
                                      names=(name, "the reference"), **settings))
  fd = metric_key("fd", space)
  kid = metric_key("kid", space)
  base = {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}
  if fd in base:
    base[fd + "_std"] = float(np.std([row[fd] for row in rows]))
    out[fd + "_ratio"] = out[fd] / base[fd]
  if kid in base:
    out[kid + "_minus_baseline"] = out[kid] - base[kid]
  base.update(num_samples=n, repeats=repeats,
              what=f"mean over {repeats} random subsets of {n} {what} images")
  out["baseline"] = base
  return out


def sample_quality(samples, reference: str = "digits_test", baseline: bool = True,
                   baseline_repeats: int = 5, **kwargs) -> dict:
  """FD, KID, IS, precision and recall of digit samples in the digits classifier's space.

  The real-against-real floor (``baseline``, :func:`add_digits_baseline`): random subsets of
  the digits train split of as many images as there are samples, scored the same way. With
  270 reference digits the FD of one subset varies by about +-25% (1,000 images), so compare
  a model with the floor's mean and spread, e.g. ``fd_digits_ratio``.

  Args:
    samples: [N, H, W, 1] digits in [-1, 1] (8x8, or 16x16/32x32 from a model trained on
      ``DataConfig(image_size=...)``; the reference is then resized the same way).
    reference: "digits_test" (default) or a ref_stats path made with the digits extractor.
    baseline: also score the train split.
    baseline_repeats: number of random train subsets averaged for the floor.
    **kwargs: passed to :class:`Evaluator` (kid_subsets, key, progress, weights, ...).

  Returns:
    dict(fd_digits, kid_digits, kid_digits_std, is_digits, is_digits_std, precision_digits,
    recall_digits, num_samples, extractor, ..., and with the baseline: baseline=dict(fd_digits,
    fd_digits_std, kid_digits, is_digits, precision_digits, recall_digits, num_samples,
    repeats), fd_digits_ratio, kid_digits_minus_baseline).

  Example:
    >>> q = sample_quality(samples)  # samples: [1000, 8, 8, 1]
    >>> q["fd_digits"], q["baseline"]["fd_digits"], q["fd_digits_ratio"]
  """
  shape = np.shape(samples)
  if len(shape) != 4:
    raise ValueError(f"sample_quality takes images [N, H, W, 1], got shape {shape}.")
  progress = kwargs.get("progress", False)
  ev = Evaluator(("fd", "kid", "is", "pr"), "digits", reference, image_shape=shape[1:],
                 num=shape[0], **kwargs)
  ev.update(samples)
  out = ev.compute()
  if baseline:
    add_digits_baseline(out, ev, baseline_repeats, progress)
  return out
