"""Streaming accumulation of features: FD/KID/IS/precision-recall in fixed memory.

``sample.py --eval=fid --num=50000`` never holds the 50,000 images: each batch is drawn,
embedded and folded into a :class:`FeatureAccumulator`, then dropped. What is kept:

* the running mean and scatter matrix of the features, in float64, merged batch by batch with
  the pairwise update of Chan, Golub & LeVeque (1979), "Updating Formulae and a Pairwise
  Algorithm for Computing Sample Variances": for sets a and b with n = n_a + n_b and
  delta = mean_b - mean_a,

    mean = mean_a + delta * n_b / n,
    M2   = M2_a + M2_b + delta delta^T * n_a n_b / n,

  so the covariance M2 / (n - 1) equals ``np.cov`` of all features to round-off, whatever the
  batch sizes (D x D float64: 32 MiB for Inception's 2048 features);
* the features themselves only when KID or precision/recall need them, up to ``max_features``
  (the first ones: samples are i.i.d., so the first M are a random subset of M);
* the class probabilities only when the Inception Score needs them.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from genjax.metrics.checks import check_features


class Moments(NamedTuple):
  """Running count, mean [D] and scatter matrix M2 = sum (f - mean)(f - mean)^T [D, D]."""
  count: int
  mean: np.ndarray
  m2: np.ndarray


def moments_init(dim: int) -> Moments:
  """Empty moments of D-dimensional features."""
  return Moments(0, np.zeros(dim, np.float64), np.zeros((dim, dim), np.float64))


def moments_update(m: Moments, feats) -> Moments:
  """Folds a batch [B, D] into the moments (Chan, Golub & LeVeque 1979, pairwise update)."""
  f = np.asarray(feats, np.float64)
  nb = f.shape[0]
  if nb == 0:
    return m
  mean_b = f.mean(axis=0)
  c = f - mean_b
  m2_b = c.T @ c
  n = m.count + nb
  delta = mean_b - m.mean
  mean = m.mean + delta * (nb / n)
  m2 = m.m2 + m2_b + np.outer(delta, delta) * (m.count * nb / n)
  return Moments(n, mean, m2)


def moments_finalize(m: Moments) -> tuple[np.ndarray, np.ndarray]:
  """(mu [D], sigma [D, D]): the mean and the unbiased covariance M2 / (N - 1)."""
  if m.count < 2:
    raise ValueError(f"the Frechet distance needs at least 2 examples, got {m.count}.")
  return m.mean.copy(), m.m2 / (m.count - 1)


class FeatureAccumulator:
  """``update(features, probs)`` batch by batch, then ``compute()``; memory independent of N
  except for the features (up to ``max_features``) and probabilities that are asked to be kept.

  Args:
    dim: feature dimension D.
    keep_features: keep features (KID, precision/recall).
    keep_probs: keep class probabilities (Inception Score).
    max_features: keep at most this many features (None: all).
  """

  def __init__(self, dim: int, keep_features: bool = False, keep_probs: bool = False,
               max_features: Optional[int] = None):
    self.moments = moments_init(dim)
    self.keep_features = keep_features
    self.keep_probs = keep_probs
    self.max_features = max_features
    self._feats: list[np.ndarray] = []
    self._probs: list[np.ndarray] = []
    self._kept = 0

  @property
  def count(self) -> int:
    """Examples folded in so far."""
    return self.moments.count

  def update(self, features, probs=None) -> None:
    """Folds in a batch: features [B, D] and, when kept, probs [B, K]."""
    f = check_features(features, "FeatureAccumulator.update: features")
    if f.shape[1] != self.moments.mean.shape[0]:
      raise ValueError(f"FeatureAccumulator.update: features have D={f.shape[1]}, expected "
                       f"{self.moments.mean.shape[0]}; use one extractor for the whole stream.")
    self.moments = moments_update(self.moments, f)
    if self.keep_features:
      room = len(f) if self.max_features is None else max(self.max_features - self._kept, 0)
      if room:
        self._feats.append(np.asarray(f[:room], np.float32))
        self._kept += min(room, len(f))
    if self.keep_probs:
      if probs is None:
        raise ValueError("FeatureAccumulator.update: probs are needed (the Inception Score "
                         "was asked for).")
      self._probs.append(np.asarray(probs, np.float32))

  def statistics(self) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of everything folded in."""
    return moments_finalize(self.moments)

  def features(self) -> Optional[np.ndarray]:
    """The kept features [M, D] float32, or None if not kept."""
    if not self.keep_features:
      return None
    d = self.moments.mean.shape[0]
    return np.concatenate(self._feats) if self._feats else np.zeros((0, d), np.float32)

  def probs(self) -> Optional[np.ndarray]:
    """The kept class probabilities [N, K] float32, or None if not kept."""
    if not self.keep_probs:
      return None
    return np.concatenate(self._probs) if self._probs else np.zeros((0, 0), np.float32)
