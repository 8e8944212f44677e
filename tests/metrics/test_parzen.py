"""The Parzen-window estimator against a direct scipy/numpy computation on small data."""

import numpy as np
import pytest
from scipy import special, stats

from genjax import metrics


def _direct(x, mu, sigma):
  """log (1/M) sum_j N(x; mu_j, sigma^2 I), by scipy's Gaussian log-density, float64."""
  d = x.shape[1]
  logpdf = np.stack([stats.multivariate_normal(m, sigma ** 2 * np.eye(d)).logpdf(x) for m in mu],
                    axis=1).reshape(len(x), len(mu))
  return special.logsumexp(logpdf, axis=1) - np.log(len(mu))


def test_log_likelihood_matches_scipy():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(13, 2, 2, 1)).astype(np.float32)
  x = rng.normal(size=(7, 2, 2, 1)).astype(np.float32)
  sigmas = [0.1, 0.3, 1.0, 2.5]
  out = np.asarray(metrics.parzen_log_likelihood(x, mu, sigmas, batch_size=3))  # padded chunks
  assert out.shape == (4, 7)
  for i, s in enumerate(sigmas):
    np.testing.assert_allclose(out[i], _direct(x.reshape(7, -1), mu.reshape(13, -1), s),
                               rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(metrics.parzen_log_likelihood(x, mu, 0.3),
                             out[1], rtol=1e-6)


def test_evaluate_selects_bandwidth_on_validation_and_reports_stderr():
  rng = np.random.default_rng(1)
  samples = rng.normal(size=(400, 3)).astype(np.float32)
  val = rng.normal(size=(50, 3)).astype(np.float32)
  test = rng.normal(size=(60, 3)).astype(np.float32)
  sigmas = [0.05, 0.2, 0.5, 1.0, 3.0]
  res = metrics.parzen_evaluate(samples, val, test, sigmas)
  val_means = [np.mean(_direct(val, samples, s)) for s in sigmas]
  np.testing.assert_allclose(res.val_log_likelihood, val_means, rtol=1e-5)
  best = sigmas[int(np.argmax(val_means))]
  assert res.sigma == best and not res.sigma_at_edge
  ll = _direct(test, samples, best)
  np.testing.assert_allclose(res.log_likelihood, ll.mean(), rtol=1e-5)
  np.testing.assert_allclose(res.stderr, ll.std() / np.sqrt(60), rtol=1e-4)
  assert (res.num_samples, res.num_val, res.num_test) == (400, 50, 60)
  assert metrics.parzen_evaluate(samples, val, test, [0.01, 0.02]).sigma_at_edge


def test_bad_input_fails_clearly():
  with pytest.raises(ValueError, match="dims"):
    metrics.parzen_log_likelihood(np.zeros((2, 3)), np.zeros((4, 2)), 1.0)
  with pytest.raises(ValueError, match="positive"):
    metrics.parzen_evaluate(np.zeros((4, 2)), np.zeros((2, 2)), np.zeros((2, 2)), [0.0, 1.0])
