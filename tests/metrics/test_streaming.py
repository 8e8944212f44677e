"""Streaming evaluation equals the one-shot computation on the same data (to 1e-6)."""

import numpy as np
import pytest

from genjax import metrics
from genjax.metrics import reference as ref_lib
from genjax.metrics import streaming


def test_moments_equal_numpy_cov_for_any_batching():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(1001, 6)) * 3 + 1e3  # far from the origin: the naive sums would lose it
  for sizes in ([1001], [1, 2, 998], [500, 1, 500], [7] * 143):
    m = streaming.moments_init(6)
    start = 0
    for s in sizes:
      m = streaming.moments_update(m, f[start:start + s])
      start += s
    mu, sigma = streaming.moments_finalize(m)
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False), rtol=1e-9, atol=1e-9)
  with pytest.raises(ValueError, match="at least 2 examples, got 1"):
    streaming.moments_finalize(streaming.moments_update(streaming.moments_init(6), f[:1]))


def test_evaluator_stream_equals_one_shot_metrics():
  test = ref_lib.dataset_images("digits", "test")
  rng = np.random.default_rng(1)
  train = ref_lib.dataset_images("digits", "train")[rng.permutation(1527)[:300]]
  ev = metrics.Evaluator(("fd", "kid", "is", "pr"), "digits", "digits_test",
                         image_shape=(8, 8, 1), num=300, kid_subsets=20, batch_size=64)
  for i in range(0, 300, 37):  # uneven batches
    ev.update(train[i:i + 37])
  got = ev.compute()
  # One shot, straight from the distance functions on all features at once.
  ext = metrics.get_extractor("digits")
  f, p = metrics.extract(ext, train)
  rf, _ = metrics.extract(ext, test)
  want_fd = metrics.frechet_distance(*metrics.feature_statistics(f),
                                     *metrics.feature_statistics(rf))
  want_kid = metrics.kid(rf, f, 20, 270)
  want_is = metrics.inception_score(p, 10)
  want_pr = metrics.precision_recall(rf, f, 3)
  np.testing.assert_allclose(got["fd_digits"], want_fd, rtol=1e-6)
  np.testing.assert_allclose([got["kid_digits"], got["kid_digits_std"]], want_kid, rtol=1e-6,
                             atol=1e-9)
  np.testing.assert_allclose([got["is_digits"], got["is_digits_std"]], want_is, rtol=1e-6)
  np.testing.assert_allclose([got["precision_digits"], got["recall_digits"]], want_pr,
                             atol=1e-6)
  assert got["num_samples"] == 300 and got["settings"]["kid_subset_size"] == 270
  # A batch of another shape in the stream is refused.
  with pytest.raises(ValueError, match="in a stream of images"):
    ev.update(np.full((4, 16, 16, 1), -1.0, np.float32))


def test_accumulator_keeps_only_what_is_asked():
  acc = streaming.FeatureAccumulator(3, keep_features=True, max_features=5)
  for _ in range(4):
    acc.update(np.ones((3, 3)))
  assert acc.count == 12 and acc.features().shape == (5, 3) and acc.probs() is None
  with pytest.raises(ValueError, match="D=4, expected 3"):
    acc.update(np.ones((2, 4)))
