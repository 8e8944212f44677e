"""Parzen-window (Gaussian kernel density) log-likelihood, as Goodfellow et al. 2014 report it.

Goodfellow et al. 2014 sec. 5 / Table 1 (seed 000, Table 1): "We estimate probability of the test
set data under p_g by fitting a Gaussian Parzen window to the samples generated with G and
reporting the log-likelihood under this distribution. The sigma parameter of the Gaussians was
obtained by cross validation on the validation set." With ``M`` samples ``mu_j`` in ``D``
dimensions and an isotropic bandwidth ``sigma``:

  log p(x) = logsumexp_j(-||x - mu_j||^2 / (2 sigma^2)) - log M - D log(sigma) - D/2 log(2 pi)

The reported figure is the mean over test points with its standard error ``std / sqrt(N)``.
The authors' code (github.com/goodfeli/adversarial, ``parzen_ll.py``) used 10,000 samples and
``sigma`` in ``logspace(-1, 0, 10)`` on MNIST pixels in [0, 1].

Everything is batched JAX: distances are taken directly (``x - mu``, not the expanded
``|x|^2 - 2 x.mu + |mu|^2``, which loses precision at small sigma) in chunks of test points, and
all bandwidths of a sweep are evaluated from one pass over the distances.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _chunk_size(num_centers: int, dim: int, budget: int = 1 << 24) -> int:
  """Test points per chunk so that a [chunk, M, D] difference tensor holds ~``budget`` floats."""
  return int(max(1, min(1024, budget // max(1, num_centers * dim))))


@jax.jit
def _ll_chunk(x: Array, mu: Array, sigmas: Array) -> Array:
  """[S, b] log-likelihoods of x [b, D] under the KDEs on mu [M, D] for each sigma [S]."""
  d = x.shape[-1]
  sq = jnp.sum(jnp.square(x[:, None, :] - mu[None, :, :]), axis=-1)  # [b, M]
  inv = 1.0 / (2.0 * jnp.square(sigmas))  # [S]
  lse = jax.nn.logsumexp(-sq[None] * inv[:, None, None], axis=-1)  # [S, b]
  norm = math.log(mu.shape[0]) + d * jnp.log(sigmas) + 0.5 * d * math.log(2.0 * math.pi)
  return lse - norm[:, None]


def parzen_log_likelihood(x: Array, samples: Array, sigmas, batch_size: Optional[int] = None
                          ) -> Array:
  """Log-density of each ``x`` under the isotropic Gaussian KDE fitted on ``samples``.

  Args:
    x: [N, ...] evaluation points (flattened to [N, D]).
    samples: [M, ...] kernel centres (generated samples), same example shape as ``x``.
    sigmas: scalar or [S] bandwidths.
    batch_size: evaluation points per jitted chunk (default: about 16M floats of distances).

  Returns:
    [N] log-likelihoods in nats for a scalar ``sigma``, [S, N] for a vector of bandwidths.

  Example:
    >>> mu = jnp.zeros((1, 2))
    >>> parzen_log_likelihood(jnp.zeros((1, 2)), mu, 1.0)  # log N(0; 0, I_2) = -log(2 pi)
    Array([-1.837877], dtype=float32)
  """
  x = jnp.asarray(x, jnp.float32)
  samples = jnp.asarray(samples, jnp.float32)
  n, m = x.shape[0], samples.shape[0]
  x = x.reshape(n, -1)
  samples = samples.reshape(m, -1)
  if x.shape[1] != samples.shape[1]:
    raise ValueError(f"parzen_log_likelihood: points have {x.shape[1]} dims but samples have "
                     f"{samples.shape[1]}; pass data and samples of the same shape.")
  scalar = np.ndim(sigmas) == 0
  sigmas = jnp.atleast_1d(jnp.asarray(sigmas, jnp.float32))
  if m == 0 or n == 0:
    raise ValueError(f"parzen_log_likelihood needs samples and points; got M={m}, N={n}.")
  b = batch_size or _chunk_size(m, x.shape[1])
  pad = (-n) % b
  xp = jnp.pad(x, ((0, pad), (0, 0)))
  chunks = xp.reshape(-1, b, x.shape[1])
  out = jax.lax.map(lambda c: _ll_chunk(c, samples, sigmas), chunks)  # [C, S, b]
  out = jnp.moveaxis(out, 1, 0).reshape(sigmas.shape[0], -1)[:, :n]
  return out[0] if scalar else out


@dataclasses.dataclass(frozen=True)
class ParzenResult:
  """The Parzen-window estimate of Goodfellow et al. Table 1.

  Attributes:
    log_likelihood: mean test log-likelihood (nats per example) at the selected bandwidth.
    stderr: its standard error, ``std / sqrt(num_test)`` (population std, as the authors'
      ``parzen_ll.py``).
    sigma: the bandwidth that maximised the validation log-likelihood.
    sigmas: the bandwidths tried.
    val_log_likelihood: mean validation log-likelihood per bandwidth.
    num_samples, num_val, num_test: the sizes used.
    sigma_at_edge: the best bandwidth is the first or last of the grid (widen the grid).
  """
  log_likelihood: float
  stderr: float
  sigma: float
  sigmas: tuple[float, ...]
  val_log_likelihood: tuple[float, ...]
  num_samples: int
  num_val: int
  num_test: int
  sigma_at_edge: bool

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def parzen_evaluate(samples: Array, val: Array, test: Array, sigmas: Sequence[float],
                    batch_size: Optional[int] = None) -> ParzenResult:
  """Chooses sigma on ``val`` and reports the test log-likelihood with its standard error.

  Args:
    samples: [M, ...] generated samples (the kernel centres).
    val: [N_val, ...] validation data (selects the bandwidth).
    test: [N_test, ...] test data.
    sigmas: bandwidths to try.
    batch_size: evaluation points per chunk (see :func:`parzen_log_likelihood`).

  Returns:
    A :class:`ParzenResult`.
  """
  sigmas = tuple(float(s) for s in np.atleast_1d(np.asarray(sigmas, np.float64)))
  if not sigmas or min(sigmas) <= 0:
    raise ValueError(f"Parzen bandwidths must be positive; got {sigmas}.")
  val_ll = np.asarray(jax.device_get(
      parzen_log_likelihood(val, samples, np.asarray(sigmas), batch_size)), np.float64)
  val_mean = val_ll.mean(axis=1)
  best = int(np.argmax(val_mean))
  test_ll = np.asarray(jax.device_get(
      parzen_log_likelihood(test, samples, sigmas[best], batch_size)), np.float64)
  n = test_ll.shape[0]
  stderr = float(test_ll.std() / math.sqrt(n))
  return ParzenResult(
      log_likelihood=float(test_ll.mean()), stderr=stderr, sigma=sigmas[best], sigmas=sigmas,
      val_log_likelihood=tuple(float(v) for v in val_mean), num_samples=int(samples.shape[0]),
      num_val=int(val_ll.shape[1]), num_test=int(n),
      sigma_at_edge=len(sigmas) > 1 and best in (0, len(sigmas) - 1))


@dataclasses.dataclass(frozen=True)
class ParzenConfig:
  """The ``config.parzen`` section (``sample.py --eval=parzen``, any method).

  Attributes:
    num_samples: generated samples the kernel density is fitted on (the paper: 10,000).
    sigmas: bandwidths tried on the validation split.
    val_size: validation examples (a fixed random subset of the train split; capped by --num).
    unit_interval: evaluate images in [0, 1] pixel units, as the paper's MNIST figures
      (+D log 2 nats relative to the [-1, 1] data); point data are never rescaled.
    batch_size: evaluation points per jitted chunk (None: automatic).
  """
  num_samples: int = 10_000
  sigmas: tuple = tuple(float(s) for s in np.logspace(-2, 0, 13))
  val_size: int = 500
  unit_interval: bool = True
  batch_size: Optional[int] = None


def parzen_on_dataset(samples: np.ndarray, dataset, cfg: ParzenConfig, num: int,
                      image: bool) -> dict:
  """Goodfellow et al. Table 1 for a dataset's splits: KDE on ``samples``, sigma chosen on a
  fixed random ``cfg.val_size`` subset of the train split, mean +- s.e. on the first ``num``
  test examples. Images are moved to [0, 1] first when ``cfg.unit_interval``."""
  n_val = int(min(cfg.val_size, len(dataset.train), num))
  val_idx = np.sort(np.random.default_rng(0).permutation(len(dataset.train))[:n_val])
  val = dataset.train.get(val_idx)["x"]
  test = dataset.test.get(np.arange(min(len(dataset.test), num)))["x"]
  scale = image and cfg.unit_interval
  to_units = (lambda a: (np.asarray(a) + 1.0) / 2.0) if scale else np.asarray
  out = parzen_evaluate(to_units(samples), to_units(val), to_units(test), cfg.sigmas,
                        cfg.batch_size).to_dict()
  out["units"] = "[0, 1] pixels" if scale else "data units"
  return out
