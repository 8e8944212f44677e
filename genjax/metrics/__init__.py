"""Evaluation metrics for generative image models (issue 5).

Pure functions of arrays (``distances``, ``image``, ``likelihood``)::

  frechet_distance(mu1, sigma1, mu2, sigma2) -> float       # FID formula, float64
  feature_statistics(features [N, D]) -> (mu [D], sigma [D, D])
  kid(feat1, feat2, num_subsets=100, subset_size=1000, *, key=None) -> (mean, std)
  inception_score(probs [N, C], splits=10) -> (mean, std)
  precision_recall(real_feats, fake_feats, k=3) -> (precision, recall)
  psnr(a, b, data_range) -> [...]
  ssim(a, b, data_range, *, win_size=11, sigma=1.5, k1=0.01, k2=0.03) -> [...]
  nats_to_bpd(nll_nats, num_dims); dequantization_offset(...); bpd_with_dequantization_offset(...)
  parzen_log_likelihood(x, samples, sigma); parzen_evaluate(samples, val, test, sigmas)  # Goodfellow et al.

Feature extractors and evaluation::

  load_digits_classifier() -> (features_fn, probs_fn)       # shipped digits CNN
  get_extractor("digits" | "inception", weights=None) -> Extractor
  evaluate(samples, metrics=("fd", "kid", "is", "pr"), extractor="digits", ref=None) -> dict
  sample_quality(samples, reference="digits_test") -> dict  # with the real-vs-real baseline

Commands::

  python -m genjax.metrics.digits_classifier --out genjax/metrics/assets/digits_classifier.npz
  python -m genjax.metrics.convert_inception pt_inception-2015-12-05-6726825d.pth OUT.npz
  python -m genjax.metrics.ref_stats --dataset digits --split test --extractor digits --out F.npz
"""

from genjax.metrics.digits_classifier import load_digits_classifier
from genjax.metrics.distances import feature_statistics
from genjax.metrics.distances import frechet_distance
from genjax.metrics.distances import inception_score
from genjax.metrics.distances import kid
from genjax.metrics.distances import mmd2_unbiased
from genjax.metrics.distances import precision_recall
from genjax.metrics.evaluate import evaluate
from genjax.metrics.evaluate import sample_quality
from genjax.metrics.extractors import extract
from genjax.metrics.extractors import Extractor
from genjax.metrics.extractors import get_extractor
from genjax.metrics.image import psnr
from genjax.metrics.image import ssim
from genjax.metrics.likelihood import bpd_with_dequantization_offset
from genjax.metrics.likelihood import dequantization_offset
from genjax.metrics.likelihood import nats_to_bpd
from genjax.metrics.parzen import ParzenResult
from genjax.metrics.parzen import parzen_evaluate
from genjax.metrics.parzen import parzen_log_likelihood
from genjax.metrics.reference import RefStats
from genjax.metrics.reference import load_ref_stats

__all__ = [
    "Extractor",
    "ParzenResult",
    "RefStats",
    "bpd_with_dequantization_offset",
    "dequantization_offset",
    "evaluate",
    "extract",
    "feature_statistics",
    "frechet_distance",
    "get_extractor",
    "inception_score",
    "kid",
    "load_digits_classifier",
    "load_ref_stats",
    "mmd2_unbiased",
    "nats_to_bpd",
    "parzen_evaluate",
    "parzen_log_likelihood",
    "precision_recall",
    "psnr",
    "sample_quality",
    "ssim",
]
