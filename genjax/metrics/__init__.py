"""Evaluation metrics for generative image models.

Pure functions of arrays (``distances``, ``image``, ``likelihood``, ``lpips``, ``clip_score``)::

  frechet_distance(mu1, sigma1, mu2, sigma2) -> float       # FID formula, float64; PSD-checked
  feature_statistics(features [N, D]) -> (mu [D], sigma [D, D])
  kid(feat1, feat2, num_subsets=100, subset_size=1000, *, key=None) -> (mean, std)
  inception_score(probs [N, C], splits=10, *, shuffle=True, seed=2020) -> (mean, std)
  precision_recall(real_feats, fake_feats, k=3) -> (precision, recall)
  psnr(a, b, data_range) -> [...]
  ssim(a, b, data_range, *, win_size=11, sigma=1.5, k1=0.01, k2=0.03) -> [...]
  lpips_distance(params, x, y) -> [N]                        # Zhang et al. 2018; load_lpips()
  clip_score(image_embeds, text_embeds, w=100) -> [...]      # Hessel et al. 2021
  nats_to_bpd(nll_nats, num_dims); dequantization_offset(...); bpd_with_dequantization_offset(...)
  parzen_log_likelihood(x, samples, sigma); parzen_evaluate(samples, val, test, sigmas)  # Goodfellow et al.

Every metric and extractor checks its input first (``checks``): NHWC floats in [-1, 1],
finite, enough samples; uint8, [0, 1], NCHW or NaN inputs get a one-line ValueError.

Feature extractors and evaluation (figures named by feature space: ``fd_digits``,
``fid_inception``, ``kid_inception_clean``, ...)::

  load_digits_classifier() -> (features_fn, probs_fn)       # shipped digits CNN
  shapes_reader()(images) -> per-cell occupied/colour/shape/size  # shipped shapes CNN
  caption_adherence(images, requests) / prompt_adherence(images, prompts) -> dict
  real_ceiling() -> adherence and accuracy of the shapes classifier on real images
  get_extractor("digits" | "inception" | "inception_clean", weights=None) -> Extractor
  evaluate(samples, metrics=("fd", "kid", "is", "pr"), extractor="digits", ref=None) -> dict
  Evaluator(metrics, extractor, ref, image_shape=...).update(batch) ... .compute() -> dict
  sample_quality(samples, reference="digits_test") -> dict  # with the real-vs-real baseline
  load_ref_stats(path, fmt=None)                            # genjax, pytorch-fid, TTUR, clean-fid

Commands::

  python -m genjax.metrics.digits_classifier --out genjax/metrics/assets/digits_classifier.npz
  python -m genjax.metrics.train_shapes_classifier          # shapes_classifier.npz
  python -m genjax.metrics.convert_inception pt_inception-2015-12-05-6726825d.pth OUT.npz
  python -m genjax.metrics.convert_lpips --net alex --backbone B.pth --lin L.pth --out OUT.npz
  python -m genjax.metrics.ref_stats --dataset digits --split test --extractor digits --out F.npz
  python -m genjax.metrics.ref_stats --images DIR_OR_NPZ --extractor inception --out F.npz
  python -m genjax.metrics.compare_resize                   # pytorch-fid vs clean-fid resize

See docs/metrics.md.
"""

from genjax.metrics.adherence import caption_adherence
from genjax.metrics.adherence import prompt_adherence
from genjax.metrics.adherence import real_ceiling
from genjax.metrics.clip_score import clip_score, clip_score_images
from genjax.metrics.digits_classifier import load_digits_classifier
from genjax.metrics.distances import feature_statistics
from genjax.metrics.distances import frechet_distance
from genjax.metrics.distances import inception_score
from genjax.metrics.distances import kid
from genjax.metrics.distances import mmd2_unbiased
from genjax.metrics.distances import precision_recall
from genjax.metrics.evaluate import Evaluator
from genjax.metrics.evaluate import add_digits_baseline
from genjax.metrics.evaluate import add_shapes_baseline
from genjax.metrics.evaluate import evaluate
from genjax.metrics.evaluate import evaluate_batches
from genjax.metrics.evaluate import metric_key
from genjax.metrics.evaluate import sample_quality
from genjax.metrics.extractors import extract
from genjax.metrics.extractors import Extractor
from genjax.metrics.extractors import get_extractor
from genjax.metrics.image import psnr
from genjax.metrics.image import ssim
from genjax.metrics.likelihood import bpd_with_dequantization_offset
from genjax.metrics.likelihood import dequantization_offset
from genjax.metrics.likelihood import nats_to_bpd
from genjax.metrics.lpips import load_lpips
from genjax.metrics.lpips import lpips_distance
from genjax.metrics.parzen import ParzenResult
from genjax.metrics.parzen import parzen_evaluate
from genjax.metrics.parzen import parzen_log_likelihood
from genjax.metrics.reference import RefStats
from genjax.metrics.reference import load_ref_stats
from genjax.metrics.shapes_classifier import shapes_reader
from genjax.metrics.streaming import FeatureAccumulator

__all__ = [
    "Evaluator",
    "Extractor",
    "FeatureAccumulator",
    "ParzenResult",
    "RefStats",
    "add_digits_baseline",
    "add_shapes_baseline",
    "bpd_with_dequantization_offset",
    "caption_adherence",
    "clip_score",
    "clip_score_images",
    "dequantization_offset",
    "evaluate",
    "evaluate_batches",
    "extract",
    "feature_statistics",
    "frechet_distance",
    "get_extractor",
    "inception_score",
    "kid",
    "load_digits_classifier",
    "load_lpips",
    "load_ref_stats",
    "lpips_distance",
    "metric_key",
    "mmd2_unbiased",
    "nats_to_bpd",
    "parzen_evaluate",
    "parzen_log_likelihood",
    "precision_recall",
    "prompt_adherence",
    "psnr",
    "real_ceiling",
    "sample_quality",
    "shapes_reader",
    "ssim",
]
