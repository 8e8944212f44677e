"""CLIP score (Hessel et al. 2021, eq. 1) against its closed form on embeddings."""

import jax.numpy as jnp
import numpy as np
import pytest

from genjax import metrics


def test_clip_score_closed_form():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))
  cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
  np.testing.assert_allclose(metrics.clip_score(a.astype(np.float32), b.astype(np.float32)),
                             100 * np.maximum(cos, 0), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(metrics.clip_score(a, 3 * a, w=2.5), 2.5, rtol=1e-6)  # any norm
  np.testing.assert_allclose(metrics.clip_score(a, -a), 0.0)  # negative cosines clip to 0
  assert metrics.clip_score(jnp.ones((2, 4), jnp.bfloat16), jnp.ones((2, 4), jnp.bfloat16)
                            ).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="one shape"):
    metrics.clip_score(a, b[:, :8])
