"""The first stage's default perceptual distances on the shipped classifiers' features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.latent import perceptual


@pytest.mark.parametrize("shape", [(32, 32, 3), (8, 8, 1)])
def test_auto_distance_is_zero_on_equal_images_and_positive_otherwise(shape):
  fn = perceptual.make_perceptual("auto", shape)
  x = jax.random.uniform(jax.random.key(0), (2, *shape), minval=-1, maxval=1)
  y = jnp.clip(x + 0.5 * jax.random.normal(jax.random.key(1), x.shape), -1, 1)
  np.testing.assert_allclose(fn(x, x), 0.0, atol=1e-6)
  d = fn(x, y)
  assert d.shape == (2,) and bool(jnp.all(d > 0))
  np.testing.assert_allclose(d, fn(y, x), rtol=1e-5)


def test_kinds_that_cannot_take_the_images_are_refused():
  with pytest.raises(ValueError, match="grey images"):
    perceptual.make_perceptual("digits", (32, 32, 3))
  with pytest.raises(ValueError, match="RGB"):
    perceptual.make_perceptual("shapes", (8, 8, 1))
  with pytest.raises(ValueError, match="must be one of"):
    perceptual.make_perceptual("vgg", (32, 32, 3))
