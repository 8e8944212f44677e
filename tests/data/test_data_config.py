"""DataConfig validation and the numpy resize."""

import numpy as np
import pytest

from genjax.data import DataConfig, DataError, resize_images, valid_dataset_names


def test_from_dict_rejects_unknown_keys():
  cfg = DataConfig.from_dict({"dataset": "moons", "num_points": 1000, "seed": 2})
  assert cfg == DataConfig(dataset="moons", num_points=1000, seed=2)
  with pytest.raises(ValueError, match=r"\['batchsize', 'imgsize'\]"):
    DataConfig.from_dict({"dataset": "digits", "imgsize": 16, "batchsize": 3})


def test_from_dict_accepts_config_dict():
  ml_collections = pytest.importorskip("ml_collections")
  cfg = DataConfig.from_dict(ml_collections.ConfigDict({"dataset": "digits", "image_size": 16}))
  assert cfg.image_size == 16


def test_unknown_dataset_lists_valid_names():
  with pytest.raises(DataError) as info:
    DataConfig(dataset="mnsit")
  message = str(info.value)
  assert isinstance(info.value, ValueError)
  for name in ("digits", "8gaussians", "moons", "swiss_roll", "checkerboard", "mnist", "cifar10",
               "celeb_a", "tfds:<name>"):
    assert name in message
  assert set(valid_dataset_names()) >= {"digits", "mnist", "fashion_mnist", "cifar10", "celeb_a"}


@pytest.mark.parametrize("kwargs, match", [
    ({"image_size": 0}, "image_size"),
    ({"image_size": 2.5}, "image_size"),
    ({"num_points": 0}, "num_points"),
    ({"seed": -1}, "seed"),
    ({"dataset": "digits", "crop_size": 4}, "crop_size"),
    ({"dataset": "tfds:"}, "tfds"),
])
def test_bad_values(kwargs, match):
  with pytest.raises(ValueError, match=match):
    DataConfig(**kwargs)


@pytest.mark.parametrize("shape, size", [((3, 8, 8, 1), 16), ((2, 28, 28, 1), 32), ((2, 140, 140, 3), 64),
                                         ((1, 12, 10, 3), 7), ((2, 9, 9, 2), (5, 13))])
def test_resize_matches_jax_antialiased_linear(shape, size):
  jax = pytest.importorskip("jax")
  x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
  y = resize_images(x, size)
  h, w = (size, size) if isinstance(size, int) else size
  ref = np.asarray(jax.image.resize(x, (shape[0], h, w, shape[3]), "linear", antialias=True))
  assert y.shape == ref.shape and y.dtype == np.float32
  np.testing.assert_allclose(y, ref, atol=2e-5)
  assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6


def test_resize_keeps_constants_and_identity():
  x = np.full((2, 10, 10, 3), 0.25, np.float32)
  np.testing.assert_allclose(resize_images(x, 4), 0.25, rtol=1e-6)
  np.testing.assert_allclose(resize_images(x, 23), 0.25, rtol=1e-6)
  z = np.random.default_rng(1).normal(size=(1, 6, 6, 1)).astype(np.float32)
  np.testing.assert_array_equal(resize_images(z, 6), z)
