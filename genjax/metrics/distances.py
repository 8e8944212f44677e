"""Distances between sets of features: Frechet distance, KID, Inception Score, precision/recall.

Every function here takes feature arrays (or their statistics) and returns numbers; none of
them knows which network made the features. The feature extractors live in
``genjax.metrics.extractors``.

Precision: the Frechet distance and the Inception Score are computed on the host in float64
NumPy (both are cheap once features exist; the matrix square root of FD loses several digits
in float32 on 2048-dimensional covariances, which is where self-computed FIDs drift from
published ones). KID and precision/recall, which need [N, N] kernel and distance matrices,
are jitted JAX functions that compute in float32 (float64 under ``jax.enable_x64(True)``).
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from genjax.metrics.checks import check_features

# Relative tolerance on negative eigenvalues of a covariance (and of sigma1^(1/2) sigma2
# sigma1^(1/2)) before FD refuses it: float32-stored 2048-d covariances carry round-off
# negatives of ~1e-6 of the largest eigenvalue; a hand-built non-PSD matrix is far beyond.
PSD_RTOL = 1e-4


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of a set of features, the Gaussian that FID fits to them.

  The covariance is the unbiased sample covariance (``np.cov(rowvar=False)``, divided by
  N - 1), as in the reference implementations (TTUR's ``fid.py``, pytorch-fid).

  Args:
    features: [N, D] features, N >= 2.

  Returns:
    (mu [D] float64, sigma [D, D] float64).

  Example:
    >>> mu, sigma = feature_statistics(np.random.randn(100, 4))
  """
  f = check_features(features, "feature_statistics: features", min_count=2).astype(np.float64)
  mu = f.mean(axis=0)
  sigma = np.cov(f, rowvar=False)
  return mu, np.atleast_2d(sigma)


def _psd_eigh(a: np.ndarray, what: str, vectors: bool = True):
  """Eigendecomposition (or eigenvalues) of a symmetric PSD matrix; round-off negatives
  clipped to 0.

  Raises:
    ValueError: ``a`` is not symmetric, or has an eigenvalue below -PSD_RTOL * max|eig|.
  """
  scale = max(float(np.abs(a).max()), np.finfo(np.float64).tiny)
  if float(np.abs(a - a.T).max()) > PSD_RTOL * scale:
    raise ValueError(f"{what} is not symmetric, so it is no covariance matrix; compute it with "
                     "feature_statistics (np.cov(features, rowvar=False)).")
  if vectors:
    w, v = np.linalg.eigh(0.5 * (a + a.T))
  else:
    w, v = np.linalg.eigvalsh(0.5 * (a + a.T)), None
  top = max(float(np.abs(w).max()), np.finfo(np.float64).tiny)
  if float(w.min()) < -PSD_RTOL * top:
    raise ValueError(f"{what} is not positive semi-definite (eigenvalue {w.min():.3g} against "
                     f"{top:.3g}), so it is no covariance matrix; compute it with "
                     "feature_statistics (np.cov(features, rowvar=False)).")
  return np.clip(w, 0.0, None), v


def trace_sqrt_product(sigma1, sigma2, names: tuple[str, str] = ("sigma1", "sigma2")) -> float:
  """tr((sigma1 sigma2)^(1/2)) for symmetric PSD matrices, through symmetric eigenproblems.

  sigma1 sigma2 = R (R sigma2) with R = sigma1^(1/2), and AB has the eigenvalues of BA, so the
  eigenvalues of sigma1 sigma2 are those of the symmetric PSD matrix M = R sigma2 R. Hence
  tr((sigma1 sigma2)^(1/2)) = sum_i sqrt(lambda_i(M)). Each step is a symmetric
  eigendecomposition: no complex parts, no iteration, and singular covariances (fewer samples
  than dimensions, dead ReLU units) are fine, unlike ``scipy.linalg.sqrtm(sigma1 @ sigma2)``,
  which needs an ``eps * I`` retry there.

  Where pytorch-fid raises on a complex ``sqrtm`` (imaginary part beyond 1e-3), this raises
  on the inputs that cause it: a covariance that is not symmetric PSD, or an M with a
  negative eigenvalue beyond round-off (PSD_RTOL of the largest). Round-off negatives are
  clipped to zero.

  Args:
    sigma1: [D, D] symmetric PSD.
    sigma2: [D, D] symmetric PSD.
    names: what to call the two matrices in error messages.

  Returns:
    The trace, a Python float.

  Raises:
    ValueError: a covariance is not symmetric PSD, naming which one.
  """
  s1 = np.asarray(sigma1, np.float64)
  s2 = np.asarray(sigma2, np.float64)
  w1, v1 = _psd_eigh(s1, names[0])
  _psd_eigh(s2, names[1], vectors=False)
  r = (v1 * np.sqrt(w1)) @ v1.T
  m = r @ (0.5 * (s2 + s2.T)) @ r
  w = np.linalg.eigvalsh(0.5 * (m + m.T))
  top = max(float(np.abs(w).max()), np.finfo(np.float64).tiny)
  if float(w.min()) < -PSD_RTOL * top:
    raise ValueError(f"the square root of {names[0]} @ {names[1]} is complex beyond round-off "
                     f"(eigenvalue {w.min():.3g} against {top:.3g}); the statistics are "
                     "inconsistent, remake them with feature_statistics.")
  return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2,
                     names: tuple[str, str] = ("the first statistics", "the second statistics")
                     ) -> float:
  """Frechet (2-Wasserstein) distance between two Gaussians, the FID formula.

  d^2 = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)),

  the closed form of Dowson & Landau (1982) that Heusel et al. (2017), "GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium" (Sec. 4, the FID definition),
  apply to Inception pool3 features. The result is the *squared* distance, as in every FID
  implementation. The matrix square root goes through symmetric eigendecompositions in
  float64 (:func:`trace_sqrt_product`); on well-conditioned covariances it equals the
  ``scipy.linalg.sqrtm(sigma1 @ sigma2)`` formula of TTUR / pytorch-fid to ~1e-10 relative.

  Args:
    mu1: [D] mean of the first set of features.
    sigma1: [D, D] covariance of the first set.
    mu2: [D] mean of the second set.
    sigma2: [D, D] covariance of the second set.
    names: what to call the two sets in error messages (e.g. "the samples",
      "runs/ref/cifar10.npz").

  Returns:
    The distance (>= 0) as a Python float.

  Raises:
    ValueError: shapes differ, a statistic is not finite, or a covariance is not symmetric
      positive semi-definite (the message names which).

  Example:
    >>> fd = frechet_distance(*feature_statistics(f_real), *feature_statistics(f_fake))
  """
  mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  d = mu1.shape[0]
  if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
    raise ValueError(
        "frechet_distance needs mu1, mu2 of shape [D] and sigma1, sigma2 of shape [D, D] with "
        f"one D; got {mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}. Were the two "
        "sets of statistics made with the same feature extractor?")
  for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
    if not np.all(np.isfinite(a)):
      raise ValueError(f"{name} contains NaN or Inf; the features it came from were not finite.")
  diff = mu1 - mu2
  tr_sqrt = trace_sqrt_product(sigma1, sigma2, (f"sigma1 ({names[0]})", f"sigma2 ({names[1]})"))
  dist = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt
  return max(float(dist), 0.0)


def _polynomial_kernel(x: jax.Array, y: jax.Array) -> jax.Array:
  d = x.shape[-1]
  return (jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST) / d + 1.0) ** 3


def mmd2_unbiased(x: jax.Array, y: jax.Array) -> jax.Array:
  """Unbiased estimate of MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3.

  MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
            - 2/(mn) sum_{i,j} k(x_i, y_j),

  Gretton et al. (2012), "A Kernel Two-Sample Test", eq. (3); the kernel and its use on
  Inception features (the Kernel Inception Distance) are from Binkowski et al. (2018),
  "Demystifying MMD GANs", Sec. 5. Its expectation is exactly MMD^2, so it is about zero (and
  can be negative) for two samples of one distribution.

  Args:
    x: [m, d] features, m >= 2.
    y: [n, d] features, n >= 2.

  Returns:
    Scalar estimate.
  """
  m, n = x.shape[0], y.shape[0]
  kxx = _polynomial_kernel(x, x)
  kyy = _polynomial_kernel(y, y)
  kxy = _polynomial_kernel(x, y)
  return ((kxx.sum() - jnp.trace(kxx)) / (m * (m - 1))
          + (kyy.sum() - jnp.trace(kyy)) / (n * (n - 1))
          - 2.0 * kxy.mean())


@functools.partial(jax.jit, static_argnames=("num_subsets", "subset_size"))
def _kid_subsets(feat1, feat2, key, num_subsets: int, subset_size: int):
  def one(k):
    k1, k2 = jax.random.split(k)
    i = jax.random.choice(k1, feat1.shape[0], (subset_size,), replace=False)
    j = jax.random.choice(k2, feat2.shape[0], (subset_size,), replace=False)
    return mmd2_unbiased(feat1[i], feat2[j])

  return jax.lax.map(one, jax.random.split(key, num_subsets))


def kid(feat1, feat2, num_subsets: int = 100, subset_size: int = 1000, *,
        key: Optional[jax.Array] = None) -> tuple[float, float]:
  """Kernel Inception Distance: mean and std of the unbiased MMD^2 over random subsets.

  Binkowski et al. (2018), "Demystifying MMD GANs", Sec. 5: KID is the unbiased MMD^2
  (:func:`mmd2_unbiased`, cubic polynomial kernel) between the features of real and generated
  images. Like the reference implementations (the authors' code, clean-fid,
  torch-fidelity) it is averaged over ``num_subsets`` subsets of ``subset_size`` examples
  drawn without replacement from each set. Unlike FID it is unbiased, so it is the right
  metric for small sample counts such as the 270 digits of a test split.

  Args:
    feat1: [N1, D] features (e.g. real).
    feat2: [N2, D] features (e.g. generated).
    num_subsets: number of subsets averaged.
    subset_size: examples per subset, 2 <= subset_size <= min(N1, N2) (torch-fidelity's
      rule; clean-fid clips it silently instead).
    key: typed PRNG key choosing the subsets; ``None`` means ``jax.random.key(0)``, so the
      result is reproducible.

  Returns:
    (mean, std) over the subsets, Python floats. The std is that of the subset estimates
    (ddof=0), a measure of the estimator's spread, not a standard error.

  Raises:
    ValueError: subset_size larger than a set, or below 2; feature dimensions differ.
  """
  f1 = check_features(feat1, "kid: feat1")
  f2 = check_features(feat2, "kid: feat2")
  if f1.shape[1] != f2.shape[1]:
    raise ValueError(f"kid: feature dimensions differ ({f1.shape[1]} vs {f2.shape[1]}); "
                     "use one extractor for both sets.")
  m = int(subset_size)
  if m < 2:
    raise ValueError(f"kid: subset_size must be >= 2, got {m}.")
  if m > min(f1.shape[0], f2.shape[0]):
    raise ValueError(f"kid: subset_size={m} is larger than the sets ({f1.shape[0]} and "
                     f"{f2.shape[0]} examples); pass subset_size <= "
                     f"{min(f1.shape[0], f2.shape[0])} or use more samples.")
  if num_subsets < 1:
    raise ValueError(f"kid: num_subsets must be >= 1, got {num_subsets}.")
  key = jax.random.key(0) if key is None else key
  dtype = jnp.result_type(float)  # float64 under jax.enable_x64, else float32.
  vals = np.asarray(_kid_subsets(jnp.asarray(f1, dtype), jnp.asarray(f2, dtype), key,
                                 int(num_subsets), m), np.float64)
  return float(vals.mean()), float(vals.std())


# torch-fidelity's default shuffling seed for the Inception Score splits.
IS_SEED = 2020


def inception_score(probs, splits: int = 10, *, shuffle: bool = True,
                    seed: int = IS_SEED) -> tuple[float, float]:
  """Inception Score exp(E_x KL(p(y|x) || p(y))), mean and std over splits.

  Salimans et al. (2016), "Improved Techniques for Training GANs", Sec. 4. The N examples are
  cut into ``splits`` parts; p(y) is the mean of p(y|x) within a part, and the score of a
  part is exp of the mean KL there. It ranges from 1 (every p(y|x) equal to p(y)) to the
  number of classes (confident and uniformly spread).

  Splits: the original code cuts the examples in the order given, so a set ordered by class
  (samples drawn class by class) scores about 1. Here the examples are first permuted with
  ``np.random.RandomState(seed).permutation(N)``, exactly as torch-fidelity does (seed 2020
  by default), so its IS and genjax's agree on the same probabilities; torchmetrics permutes
  with torch's global generator instead. ``shuffle=False`` gives the original contiguous
  splits (and StyleGAN's metric). The std uses ddof=0, as the original code and
  torch-fidelity (torchmetrics' ``torch.std`` uses ddof=1).

  For Inception-v3, p(y|x) must be the softmax of the logits *without* the fc bias, as in the
  original code (``pool3 @ w``), torch-fidelity and torchmetrics (``logits_unbiased``) and
  StyleGAN3 (``no_output_bias``); :func:`genjax.metrics.inception.fid_features_and_probs`
  gives those by default.

  Args:
    probs: [N, C] class probabilities p(y|x) (rows sum to 1), N >= splits.
    splits: number of parts.
    shuffle: permute the examples before splitting.
    seed: the permutation's seed.

  Returns:
    (mean, std) of the per-part scores, Python floats.

  Raises:
    ValueError: splits > N, or rows that are not probabilities.
  """
  p = check_features(probs, "inception_score: probs", min_count=1)
  n = p.shape[0]
  if not 1 <= splits <= n:
    raise ValueError(f"inception_score: need 1 <= splits <= N, got splits={splits}, N={n}; "
                     "pass fewer splits or more samples.")
  if np.any(p < 0) or not np.allclose(p.sum(-1), 1.0, atol=1e-3):
    raise ValueError("inception_score takes probabilities (non-negative rows that sum to 1); "
                     "apply softmax to logits first.")
  p = p.astype(np.float64)
  if shuffle:
    p = p[np.random.RandomState(seed).permutation(n)]
  scores = []
  for i in range(splits):
    part = p[i * n // splits:(i + 1) * n // splits]
    py = part.mean(axis=0, keepdims=True)
    kl = (scipy.special.xlogy(part, part) - scipy.special.xlogy(part, py)).sum(-1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def _pairwise_sqdist(a: jax.Array, b: jax.Array) -> jax.Array:
  """[n, d], [m, d] -> [n, m] squared Euclidean distances (clipped at 0)."""
  ab = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
  d2 = (a * a).sum(-1)[:, None] + (b * b).sum(-1)[None, :] - 2.0 * ab
  return jnp.maximum(d2, 0.0)


def _map_rows(fn, x: jax.Array, batch_size: int) -> jax.Array:
  """fn over [batch_size, ...] row blocks of x with lax.map; pads the last block."""
  n = x.shape[0]
  nb = -(-n // batch_size)
  xp = jnp.concatenate([x, jnp.zeros((nb * batch_size - n,) + x.shape[1:], x.dtype)])
  out = jax.lax.map(fn, xp.reshape((nb, batch_size) + x.shape[1:]))
  return out.reshape((nb * batch_size,) + out.shape[2:])[:n]


@functools.partial(jax.jit, static_argnames=("k", "batch_size"))
def knn_radii(feats: jax.Array, k: int = 3, batch_size: int = 1024) -> jax.Array:
  """Squared distance from each point to its k-th nearest other point of the same set.

  The radius of the hypersphere around each feature vector that makes up the k-NN manifold
  estimate of Kynkaanniemi et al. (2019), eq. (2). Each point is its own nearest neighbour at
  distance 0, so this is the (k+1)-th smallest distance, as in the authors' code.

  Args:
    feats: [N, D] features, N > k.
    k: neighbourhood size.
    batch_size: rows of the [N, N] distance matrix held at once.

  Returns:
    [N] squared radii.
  """
  def block(q):
    d2 = _pairwise_sqdist(q, feats)
    col = jnp.arange(d2.shape[-1])[None, :]
    # (k+1)-th smallest by k rounds of "drop the row minimum": O(k N) per row. (lax.top_k
    # falls back to a full sort inside loops on XLA:CPU, 50x slower here.)
    for _ in range(k):
      d2 = jnp.where(col == jnp.argmin(d2, axis=-1)[:, None], jnp.inf, d2)
    return d2.min(axis=-1)

  return _map_rows(block, feats, batch_size)


@functools.partial(jax.jit, static_argnames=("batch_size",))
def manifold_coverage(query: jax.Array, ref: jax.Array, ref_radii2: jax.Array,
                      batch_size: int = 1024) -> jax.Array:
  """Fraction of query points inside the k-NN manifold of ref, Kynkaanniemi et al. eq. (1).

  f(q, ref) = 1 if ||q - r||_2 <= NN_k(r) for some r in ref, else 0; averaged over q.

  Args:
    query: [N, D] features.
    ref: [M, D] features.
    ref_radii2: [M] squared radii of ref (:func:`knn_radii`).
    batch_size: query rows per block.

  Returns:
    Scalar fraction in [0, 1].
  """
  def block(q):
    return jnp.any(_pairwise_sqdist(q, ref) <= ref_radii2[None, :], axis=-1)

  return _map_rows(block, query, batch_size).mean(dtype=query.dtype)


def precision_recall(real_feats, fake_feats, k: int = 3,
                     batch_size: int = 1024) -> tuple[float, float]:
  """Improved precision and recall of Kynkaanniemi et al. (2019), eq. (1)-(2).

  The real (generated) features are each surrounded by a ball reaching to their k-th nearest
  real (generated) neighbour; the union of balls estimates the manifold. Precision is the
  fraction of generated samples inside the real manifold (are the samples realistic?),
  recall the fraction of real samples inside the generated manifold (is the data covered?).
  Distances are computed in blocks of ``batch_size`` rows in JAX, so memory stays
  O(batch_size * N).

  Both sets are first centred on the real features' mean (in float64): distances do not
  change, but ||a||^2 + ||b||^2 - 2 a.b no longer cancels catastrophically in float32 for
  features far from the origin.

  Args:
    real_feats: [N, D] features of real images, N > k.
    fake_feats: [M, D] features of generated images, M > k.
    k: neighbourhood size (3 in the paper).
    batch_size: rows of the distance matrices held at once.

  Returns:
    (precision, recall), Python floats in [0, 1].
  """
  r = check_features(real_feats, "precision_recall: real_feats")
  f = check_features(fake_feats, "precision_recall: fake_feats")
  if r.shape[1] != f.shape[1]:
    raise ValueError(f"precision_recall: feature dimensions differ ({r.shape[1]} vs "
                     f"{f.shape[1]}); use one extractor for both sets.")
  if min(r.shape[0], f.shape[0]) <= k:
    raise ValueError(f"precision_recall needs more than k={k} examples per set, got "
                     f"{r.shape[0]} real and {f.shape[0]} generated.")
  centre = r.mean(axis=0, dtype=np.float64)
  dtype = jnp.result_type(float)
  r = jnp.asarray(r - centre, dtype)
  f = jnp.asarray(f - centre, dtype)
  precision = manifold_coverage(f, r, knn_radii(r, k, batch_size), batch_size)
  recall = manifold_coverage(r, f, knn_radii(f, k, batch_size), batch_size)
  return float(precision), float(recall)
