"""Frechet distance, KID, Inception Score and precision/recall against closed forms and
direct NumPy/SciPy references."""

import jax
import numpy as np
import pytest
import scipy.linalg

from genjax import metrics
from genjax.metrics import distances


def _random_cov(rng, d, cond=10.0):
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  return (q * np.geomspace(1.0, 1.0 / cond, d)) @ q.T


def _scipy_fd(mu1, s1, mu2, s2):
  """The TTUR / pytorch-fid formula."""
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  covmean = np.real(covmean)
  diff = mu1 - mu2
  return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("d", [2, 16, 64])
def test_frechet_distance_matches_scipy_formula(d):
  rng = np.random.default_rng(d)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  s1, s2 = _random_cov(rng, d), _random_cov(rng, d, cond=100.0)
  fd = metrics.frechet_distance(mu1, s1, mu2, s2)
  np.testing.assert_allclose(fd, _scipy_fd(mu1, s1, mu2, s2), rtol=1e-9)
  np.testing.assert_allclose(metrics.frechet_distance(mu2, s2, mu1, s1), fd, rtol=1e-9)


def test_frechet_distance_zero_for_identical_statistics():
  rng = np.random.default_rng(0)
  mu, sigma = metrics.feature_statistics(rng.normal(size=(500, 32)))
  assert abs(metrics.frechet_distance(mu, sigma, mu, sigma)) < 1e-10
  # Singular covariance (fewer samples than dimensions): still zero, no complex parts.
  mu, sigma = metrics.feature_statistics(rng.normal(size=(10, 32)))
  assert abs(metrics.frechet_distance(mu, sigma, mu, sigma)) < 1e-10


def test_frechet_distance_singular_closed_form():
  # Diagonal covariances commute: tr((S1 S2)^(1/2)) = sum sqrt(a_i b_i), even with zeros.
  a = np.array([4.0, 0.0, 1.0, 1e-12, 9.0])
  b = np.array([1.0, 2.0, 0.0, 3.0, 4.0])
  mu1, mu2 = np.zeros(5), np.arange(5.0)
  expected = mu2 @ mu2 + a.sum() + b.sum() - 2 * np.sqrt(a * b).sum()
  np.testing.assert_allclose(metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)),
                             expected, rtol=1e-12)
  # Rotated into a non-diagonal basis: same value.
  q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(5, 5)))
  np.testing.assert_allclose(
      metrics.frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T),
      expected, atol=1e-6)  # sqrt of round-off (~1e-16) on the zero eigenvalues is ~1e-8.


def test_frechet_distance_of_gaussians_closed_form_1d():
  # In 1-D: (m1 - m2)^2 + (s1 - s2)^2.
  assert metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_frechet_distance_bad_input():
  with pytest.raises(ValueError, match="same feature extractor"):
    metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
  with pytest.raises(ValueError, match="NaN"):
    metrics.frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))


def test_feature_statistics():
  f = np.random.default_rng(0).normal(size=(50, 3))
  mu, sigma = metrics.feature_statistics(f)
  assert mu.dtype == np.float64 and sigma.shape == (3, 3)
  np.testing.assert_allclose(mu, f.mean(0))
  np.testing.assert_allclose(sigma, np.cov(f, rowvar=False))
  with pytest.raises(ValueError, match=r"\[N, D\]"):
    metrics.feature_statistics(np.zeros((5, 2, 2)))


def _mmd2_numpy(x, y):
  d = x.shape[1]
  k = lambda a, b: (a @ b.T / d + 1) ** 3
  m, n = len(x), len(y)
  kxx, kyy = k(x, x), k(y, y)
  return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
          - 2 * k(x, y).mean())


def test_mmd2_unbiased_matches_numpy():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) + 0.3
  with jax.enable_x64(True):
    got = float(metrics.mmd2_unbiased(x, y))
  np.testing.assert_allclose(got, _mmd2_numpy(x, y), rtol=1e-10)


def test_kid_unbiased_for_one_distribution_positive_for_two():
  rng = np.random.default_rng(0)
  d, n, trials = 8, 100, 300
  # Independent pairs of samples of one distribution: the unbiased estimator averages to 0
  # (the biased V-statistic, diagonal included, would be clearly positive).
  xs = rng.normal(size=(trials, n, d)).astype(np.float32)
  ys = rng.normal(size=(trials, n, d)).astype(np.float32)
  vals = np.asarray(jax.vmap(metrics.mmd2_unbiased)(xs, ys))
  se = vals.std() / np.sqrt(trials)
  assert abs(vals.mean()) < 4 * se, (vals.mean(), se)
  biased = np.mean([_mmd2_numpy(x, y) + (np.trace((x @ x.T / d + 1) ** 3)
                                         + np.trace((y @ y.T / d + 1) ** 3)) / (n * (n - 1))
                    for x, y in zip(xs[:20].astype(np.float64), ys[:20].astype(np.float64))])
  assert biased > 10 * se
  # The subset estimator of kid(): about zero for one distribution, clearly positive for two.
  a, b = rng.normal(size=(1000, d)), rng.normal(size=(1000, d))
  mean, std = metrics.kid(a, b, num_subsets=50, subset_size=200)
  assert abs(mean) < 3 * std
  mean2, std2 = metrics.kid(a, b + 0.5, num_subsets=50, subset_size=200)
  assert mean2 > 5 * std2 and mean2 > 10 * abs(mean)


def test_kid_reproducible():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(30, 4)), rng.normal(size=(50, 4))
  r1 = metrics.kid(a, b, num_subsets=5, subset_size=30)
  r2 = metrics.kid(a, b, num_subsets=5, subset_size=30, key=jax.random.key(0))
  assert r1 == r2
  with pytest.raises(ValueError, match="feature dimensions differ"):
    metrics.kid(a, b[:, :3], subset_size=30)


def test_inception_score_closed_forms():
  c, n = 10, 1000
  onehot = np.eye(c)[np.arange(n) % c]  # confident and balanced in every contiguous split
  mean, std = metrics.inception_score(onehot, splits=10, shuffle=False)
  assert mean == pytest.approx(c, rel=1e-5) and std == pytest.approx(0, abs=1e-4)
  mean, std = metrics.inception_score(np.full((n, c), 1.0 / c), splits=10)
  assert mean == pytest.approx(1.0, abs=1e-6) and std == pytest.approx(0, abs=1e-6)
  # Confident but all the same class: 1.
  assert metrics.inception_score(np.eye(c)[np.zeros(n, int)], 5)[0] == pytest.approx(1.0)


def test_inception_score_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(103, 7)) * 3
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  scores = []
  for i in range(4):  # The original code's split indices.
    part = p[i * 103 // 4:(i + 1) * 103 // 4]
    py = part.mean(0, keepdims=True)
    scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), 1))))
  with jax.enable_x64(True):
    mean, std = metrics.inception_score(p, splits=4, shuffle=False)
  np.testing.assert_allclose([mean, std], [np.mean(scores), np.std(scores)], rtol=1e-10)
  with pytest.raises(ValueError, match="softmax"):
    metrics.inception_score(logits, 2)


def _precision_recall_numpy(real, fake, k):
  def radii(x):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return np.sort(d, axis=1)[:, k]  # index 0 is the point itself

  def coverage(q, ref, r):
    d = np.linalg.norm(q[:, None] - ref[None], axis=-1)
    return np.mean(np.any(d <= r[None], axis=1))

  return coverage(fake, real, radii(real)), coverage(real, fake, radii(fake))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_matches_numpy(k):
  rng = np.random.default_rng(k)
  real = rng.normal(size=(300, 6))
  fake = rng.normal(size=(250, 6)) * 1.3 + 0.4
  expected = _precision_recall_numpy(real, fake, k)
  with jax.enable_x64(True):
    got = metrics.precision_recall(real, fake, k=k, batch_size=64)  # several blocks + padding
  np.testing.assert_allclose(got, expected, atol=1e-12)
  got32 = metrics.precision_recall(real, fake, k=k)
  np.testing.assert_allclose(got32, expected, atol=2.0 / 250)


def test_precision_recall_known_overlap():
  # Uniform on [0,1]^2 against uniform on [0.5,1.5]x[0,1]: half of each support lies in the
  # other, so precision and recall are 1/2 (plus the sliver the k-NN balls spill over edges).
  rng = np.random.default_rng(0)
  real = rng.uniform(size=(3000, 2))
  fake = rng.uniform(size=(3000, 2)) + np.array([0.5, 0.0])
  p, r = metrics.precision_recall(real, fake, k=3)
  assert 0.5 <= p < 0.55 and 0.5 <= r < 0.55, (p, r)
  # One distribution: both near 1; disjoint supports: both 0.
  p, r = metrics.precision_recall(real, rng.uniform(size=(3000, 2)), k=3)
  assert p > 0.95 and r > 0.95
  assert metrics.precision_recall(real, fake + 5.0, k=3) == (0.0, 0.0)


def test_precision_recall_bad_input():
  with pytest.raises(ValueError, match="more than k=3"):
    metrics.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))


def test_knn_radii_under_jit_any_batch():
  x = np.random.default_rng(0).normal(size=(37, 3)).astype(np.float32)
  r1 = distances.knn_radii(x, 3, 5)
  r2 = distances.knn_radii(x, 3, 64)
  np.testing.assert_allclose(r1, r2, rtol=1e-5)
  assert r1.shape == (37,)


# --- the numbered problems of an independent check; each of these failed before the fix ----


def test_inception_score_uses_unbiased_logits_by_default():
  """Problem 1: IS from softmax(pool3 @ W), not softmax(pool3 @ W + b) (original IS code,
  torch-fidelity/torchmetrics logits_unbiased, StyleGAN3 no_output_bias)."""
  from genjax.metrics import inception
  rng = np.random.default_rng(0)
  pool3 = rng.normal(size=(40, 16)).astype(np.float32)
  fc = {"kernel": rng.normal(size=(16, 5)).astype(np.float32),
        "bias": np.array([3.0, -2.0, 0.5, 1.0, -1.0], np.float32)}  # a strong, non-zero bias

  def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)

  unbiased = softmax(pool3.astype(np.float64) @ fc["kernel"])
  biased = softmax(pool3.astype(np.float64) @ fc["kernel"] + fc["bias"])
  np.testing.assert_allclose(inception.class_probs(fc, pool3), unbiased, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(inception.class_probs(fc, pool3, logits_bias=True), biased,
                             rtol=1e-5, atol=1e-7)
  # (The whole network's default is checked against pytorch-fid's fc in test_inception.py.)
  assert metrics.inception_score(unbiased, 4)[0] != pytest.approx(
      metrics.inception_score(biased, 4)[0], rel=1e-3)


def test_inception_score_shuffles_splits_like_torch_fidelity():
  """Problem 4: samples ordered by class scored 1.0 with contiguous splits."""
  c, n = 10, 1000
  onehot = np.eye(c)[np.repeat(np.arange(c), n // c)]  # sorted by class: split i = class i
  mean, _ = metrics.inception_score(onehot, splits=10)
  assert mean > 9.0, mean
  assert metrics.inception_score(onehot, splits=10, shuffle=False)[0] == pytest.approx(1.0)
  # torch-fidelity's isc_features_to_metric on the same (log-)probabilities, written out:
  # permutation np.random.RandomState(2020), float64, std with ddof 0.
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(257, 7)) * 2
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  q = p[np.random.RandomState(2020).permutation(len(p))]
  scores = []
  for i in range(10):
    part = q[i * 257 // 10:(i + 1) * 257 // 10]
    kl = (part * (np.log(part) - np.log(part.mean(0, keepdims=True)))).sum(1).mean()
    scores.append(np.exp(kl))
  np.testing.assert_allclose(metrics.inception_score(p, 10), [np.mean(scores), np.std(scores)],
                             rtol=1e-10)


def test_precision_recall_float32_far_from_origin():
  """Problem 3: ||a||^2 + ||b||^2 - 2ab cancels in float32 at an offset of 1e3."""
  rng = np.random.default_rng(0)
  real = rng.normal(size=(400, 8))
  fake = rng.normal(size=(400, 8)) * 1.4 + 0.6
  expected = _precision_recall_numpy(real, fake, 3)  # float64, offset-free
  got = metrics.precision_recall((real + 1e3).astype(np.float32),
                                 (fake + 1e3).astype(np.float32), k=3)
  np.testing.assert_allclose(got, expected, atol=3.0 / 400)


def test_frechet_distance_refuses_non_psd_covariance():
  """Problem 2: a hand-built non-PSD covariance gave FD 0.0 (pytorch-fid raises)."""
  mu = np.zeros(2)
  bad = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
  with pytest.raises(ValueError, match=r"sigma2 \(the reference\) is not positive semi"):
    metrics.frechet_distance(mu, np.eye(2), mu, bad, names=("the samples", "the reference"))
  with pytest.raises(ValueError, match="sigma1.*not symmetric"):
    metrics.frechet_distance(mu, np.array([[1.0, 0.5], [0.0, 1.0]]), mu, np.eye(2))
  # Round-off negatives of a rank-deficient covariance stored in float32 are fine.
  f = np.random.default_rng(0).normal(size=(20, 64))
  m, s = metrics.feature_statistics(f)
  s32 = s.astype(np.float32).astype(np.float64)
  assert np.linalg.eigvalsh(s32).min() < 0
  assert metrics.frechet_distance(m, s32, m, s32) < 1e-4


def test_counts_and_nan_features_are_refused():
  """Problem 2: KID clipped subset_size silently; IS reduced its splits; PR took NaN."""
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(30, 4)), rng.normal(size=(50, 4))
  with pytest.raises(ValueError, match="subset_size=1000 is larger than the sets"):
    metrics.kid(a, b, num_subsets=5, subset_size=1000)
  with pytest.raises(ValueError, match="splits=10, N=5"):
    metrics.inception_score(np.full((5, 3), 1 / 3), splits=10)
  bad = rng.normal(size=(40, 4))
  bad[3, 1] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    metrics.precision_recall(rng.normal(size=(40, 4)), bad)
