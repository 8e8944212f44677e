"""The scikit-learn digits: shapes, range, fixed split, resizing."""

import numpy as np
import pytest

from genjax.data import DataConfig, load_dataset, resize_images
from genjax.data import digits as digits_lib


def test_shapes_range_and_split_sizes():
  ds = load_dataset(DataConfig(dataset="digits"))
  assert ds.spec.shape == (8, 8, 1) and ds.spec.num_classes == 10 and ds.spec.kind == "image"
  assert (len(ds.train), len(ds.test)) == (digits_lib.NUM_TRAIN, digits_lib.NUM_TEST) == (1527, 270)
  for source in (ds.train, ds.test):
    batch = source.get(np.arange(len(source)))
    assert batch["x"].dtype == np.float32 and batch["label"].dtype == np.int32
    assert batch["x"].min() == -1.0 and batch["x"].max() == 1.0
    # Pixel values are v / 8 - 1 for v in 0..16.
    np.testing.assert_array_equal((batch["x"] + 1.0) * 8.0, np.round((batch["x"] + 1.0) * 8.0))
    assert set(np.unique(batch["label"])) == set(range(10))


def test_split_is_a_fixed_partition_independent_of_global_state():
  from sklearn.datasets import load_digits

  np.random.seed(123)
  x_tr, y_tr, x_te, y_te = digits_lib.load_digits_arrays()
  np.random.seed(7)
  again = digits_lib.load_digits_arrays()
  for a, b in zip((x_tr, y_tr, x_te, y_te), again):
    np.testing.assert_array_equal(a, b)
  # Train and test together are exactly the 1,797 images (a partition).
  raw = load_digits()
  everything = np.concatenate([x_tr, x_te]).reshape(-1, 64)
  expected = (raw.data / 8.0 - 1.0).astype(np.float32)
  key = lambda a: np.lexsort(a.T)
  np.testing.assert_array_equal(everything[key(everything)], expected[key(expected)])
  assert np.bincount(np.concatenate([y_tr, y_te])).tolist() == np.bincount(raw.target).tolist()
  # The seed of training batches does not change the split.
  a = load_dataset(DataConfig(seed=0)).test.get(np.arange(270))["x"]
  b = load_dataset(DataConfig(seed=5)).test.get(np.arange(270))["x"]
  np.testing.assert_array_equal(a, b)


def test_test_fraction():
  ds = load_dataset(DataConfig(test_fraction=0.5))
  assert (len(ds.train), len(ds.test)) == (899, 898)  # round(898.5) = 898.
  with pytest.raises(ValueError, match="test_fraction"):
    DataConfig(test_fraction=1.0)


@pytest.mark.parametrize("size", [16, 32])
def test_resize(size):
  ds = load_dataset(DataConfig(image_size=size))
  native = load_dataset(DataConfig())
  assert ds.spec.shape == (size, size, 1)
  x = ds.train.get(np.arange(100))["x"]
  x8 = native.train.get(np.arange(100))["x"]
  assert x.shape == (100, size, size, 1) and x.dtype == np.float32
  assert x.min() >= -1.0 and x.max() <= 1.0
  np.testing.assert_allclose(x, resize_images(x8, size), atol=1e-6)
  # Upsampling keeps the image: averaging back down to 8x8 gives nearly the same picture.
  k = size // 8
  pooled = x.reshape(100, 8, k, 8, k, 1).mean(axis=(2, 4))
  assert np.corrcoef(pooled.ravel(), x8.ravel())[0, 1] > 0.95
  np.testing.assert_array_equal(ds.train.get(np.arange(5))["label"], native.train.get(np.arange(5))["label"])
