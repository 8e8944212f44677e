"""Mode-collapse diagnostics: the mixture-of-Gaussians protocol (Srivastava et al. 2017, VEEGAN).

On a mixture of Gaussians with known centres and a common standard deviation ``sigma``
(the ring of 8 Gaussians: ``genjax.data.toy2d.eight_gaussians_centers()``, ``sigma = 0.5 / 1.414``
for FFJORD's ``8gaussians``), a generated point is *high quality* if it lies within
``num_std * sigma`` (3 standard deviations) of its nearest centre, and a mode is *covered* if
enough high-quality points have it as their nearest centre. VEEGAN and PacGAN report both numbers
on 2,500 samples. "Enough" is a fraction of the mode's fair share ``N / K``: ``min_fraction =
0.2`` is PacGAN's threshold (a mode is lost with fewer than 20 of its expected 100 samples);
``min_fraction = 0`` counts any mode with at least one high-quality sample. A fraction, unlike a
count, means the same for a 256-sample training minibatch and for 2,500 evaluation samples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def mode_statistics(samples: Array, centers: Array, sigma: float, num_std: float = 3.0,
                    min_fraction: float = 0.2) -> dict[str, Array]:
  """Modes covered and the fraction of high-quality samples.

  Args:
    samples: [N, D] generated points.
    centers: [K, D] mode centres.
    sigma: standard deviation of each mode.
    num_std: a point is high quality within ``num_std * sigma`` of its nearest centre.
    min_fraction: a mode is covered with at least ``max(1, min_fraction * N / K)``
      high-quality points.

  Returns:
    ``{"modes_covered": scalar float (0..K), "hq_fraction": scalar in [0, 1],
    "mode_counts": [K] high-quality points per mode}``. Jit-able.

  Example:
    >>> c = jnp.array([[0.0, 0.0], [5.0, 0.0]])
    >>> mode_statistics(jnp.array([[0.1, 0.0], [9.0, 9.0]]), c, 0.5)["modes_covered"]
    Array(1., dtype=float32)
  """
  samples = jnp.asarray(samples, jnp.float32)
  centers = jnp.asarray(centers, jnp.float32)
  d2 = jnp.sum(jnp.square(samples[:, None, :] - centers[None, :, :]), axis=-1)  # [N, K]
  nearest = jnp.argmin(d2, axis=-1)
  dist = jnp.sqrt(jnp.min(d2, axis=-1))
  hq = dist <= num_std * sigma
  num_modes = centers.shape[0]
  counts = jnp.sum(jax.nn.one_hot(nearest, num_modes) * hq[:, None], axis=0)
  threshold = max(1.0, min_fraction * samples.shape[0] / num_modes)
  return {
      "modes_covered": jnp.sum(counts >= threshold).astype(jnp.float32),
      "hq_fraction": jnp.mean(hq.astype(jnp.float32)),
      "mode_counts": counts,
  }
