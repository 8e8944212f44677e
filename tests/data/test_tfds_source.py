"""The TFDS path: ``tfds.testing.mock_data``, real ArrayRecord files, and the errors.

No test touches the network or ~/tensorflow_datasets: ``fakes.py`` points TFDS_DATA_DIR at a
temporary directory, genjax always calls ``tfds.data_source(..., download=False)``, and the
"real" datasets are tiny ArrayRecord files written by fake builders (no TensorFlow needed).
"""

import sys

import numpy as np
import pytest

from genjax.data import BatchIterator, DataConfig, DataError, DatasetNotPreparedError, load_dataset
from genjax.data import resize_images

tfds = pytest.importorskip("tensorflow_datasets")

import genjax_data_fakes as fakes  # noqa: E402  (tests/data/genjax_data_fakes.py)


@pytest.mark.parametrize("name, shape, num_classes", [
    ("mnist", (28, 28, 1), 10),
    ("fashion_mnist", (28, 28, 1), 10),
    ("cifar10", (32, 32, 3), 10),
    ("celeb_a", (64, 64, 3), 0),
])
def test_mock_data(name, shape, num_classes, tmp_path):
  with tfds.testing.mock_data(num_examples=24):
    ds = load_dataset(DataConfig(dataset=name, data_dir=str(tmp_path)))
    assert ds.spec.shape == shape and ds.spec.num_classes == num_classes and ds.spec.kind == "image"
    assert len(ds.train) == len(ds.test) == 24
    batch = ds.train.get(np.arange(24))
    assert batch["x"].shape == (24,) + shape and batch["x"].dtype == np.float32
    assert batch["x"].min() >= -1.0 and batch["x"].max() <= 1.0
    assert batch["x"].std() > (0.05 if name == "celeb_a" else 0.5)  # Uniform noise (blurred if resized).
    assert batch["label"].shape == (24,) and batch["label"].dtype == np.int32
    if num_classes:
      assert batch["label"].min() >= 0 and batch["label"].max() < num_classes
    else:
      assert np.all(batch["label"] == 0)
    # Our pixels are the mocked uint8 pixels (cropped, scaled, resized).
    raw = tfds.data_source(name, split="train", download=False)
    image = np.stack([raw[i]["image"] for i in (3, 5)]).astype(np.float32) / 127.5 - 1.0
    if name == "celeb_a":  # 218x178 -> central 140x140 -> 64x64.
      image = resize_images(image[:, 39:179, 19:159], 64)
    np.testing.assert_allclose(ds.train.get(np.array([3, 5]))["x"], image, atol=1e-5)
    # The training pipeline runs on it, prefetch included.
    with BatchIterator(ds.train, 8, seed=0, random_flip=True, batches_per_step=2, prefetch=2) as it:
      assert next(it)["x"].shape == (2, 8) + shape
  assert "tensorflow" not in sys.modules  # tfds.data_source needs no TensorFlow.


def test_mock_data_image_size(tmp_path):
  with tfds.testing.mock_data(num_examples=4):
    ds = load_dataset(DataConfig(dataset="celeb_a", data_dir=str(tmp_path), image_size=32, crop_size=178))
    assert ds.spec.shape == (32, 32, 3)
    assert ds.train.get(np.arange(4))["x"].shape == (4, 32, 32, 3)
    ds = load_dataset(DataConfig(dataset="mnist", data_dir=str(tmp_path), image_size=16))
    assert ds.train.get(np.arange(4))["x"].shape == (4, 16, 16, 1)


def test_real_array_record_mnist(fake_tfds_dir):
  ds = load_dataset(DataConfig(dataset="mnist", data_dir=fake_tfds_dir))
  assert ds.spec.shape == (28, 28, 1) and ds.spec.num_classes == 10
  assert (len(ds.train), len(ds.test)) == (fakes.FAKE_MNIST_TRAIN, fakes.FAKE_MNIST_TEST)
  for split, source in (("train", ds.train), ("test", ds.test)):
    batch = source.get(np.arange(len(source)))
    pixels = (batch["x"] + 1.0) * 127.5
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-4)  # Exactly v / 127.5 - 1.
    # Every stored example comes back once, with its own label (TFDS shuffled the files).
    which = fakes.match_examples(np.round(pixels).astype(np.uint8), fakes.fake_mnist_images(split))
    assert sorted(which.tolist()) == list(range(len(source)))
    np.testing.assert_array_equal(batch["label"], (3 * which + 1) % 10)
  small = load_dataset(DataConfig(dataset="mnist", data_dir=fake_tfds_dir, image_size=14))
  expected = resize_images(ds.train.get(np.arange(3))["x"], 14)
  np.testing.assert_allclose(small.train.get(np.arange(3))["x"], expected, atol=1e-6)
  # A whole epoch through the iterator covers the 12 examples once.
  it = BatchIterator(ds.train, 4, seed=0)
  labels = np.concatenate([it.batch_at(s)["label"] for s in range(3)])
  assert sorted(labels.tolist()) == sorted(((3 * np.arange(12) + 1) % 10).tolist())


def test_real_generic_dataset_falls_back_to_validation_and_crops(fake_tfds_dir):
  ds = load_dataset(DataConfig(dataset="tfds:genjax_fake_rgb", data_dir=fake_tfds_dir))
  assert ds.spec.shape == (10, 10, 3) and ds.spec.num_classes == 3
  assert (len(ds.train), len(ds.test)) == (fakes.FAKE_RGB_TRAIN, fakes.FAKE_RGB_VALIDATION)
  batch = ds.test.get(np.arange(len(ds.test)))
  expected = [im[1:11] for im in fakes.fake_rgb_images("validation")]  # Central 10x10 of 12x10.
  which = fakes.match_examples(np.round((batch["x"] + 1.0) * 127.5).astype(np.uint8), expected)
  assert sorted(which.tolist()) == list(range(len(ds.test)))
  np.testing.assert_array_equal(batch["label"], which % 3)
  small = load_dataset(DataConfig(dataset="tfds:genjax_fake_rgb", data_dir=fake_tfds_dir, crop_size=8, image_size=5))
  assert small.spec.shape == (5, 5, 3)
  full = ds.train.get(np.arange(len(ds.train)))["x"]  # Central 10x10 in [-1, 1].
  np.testing.assert_allclose(small.train.get(np.arange(len(ds.train)))["x"], resize_images(full[:, 1:9, 1:9], 5),
                             atol=1e-6)
  with pytest.raises(DataError, match="crop_size=11"):
    load_dataset(DataConfig(dataset="tfds:genjax_fake_rgb", data_dir=fake_tfds_dir, crop_size=11))


@pytest.mark.parametrize("name", ["mnist", "cifar10", "celeb_a"])
def test_not_prepared_says_how_to_prepare(name, tmp_path):
  data_dir = str(tmp_path / "empty")
  with pytest.raises(DatasetNotPreparedError) as info:
    load_dataset(DataConfig(dataset=name, data_dir=data_dir))
  message = str(info.value)
  assert isinstance(info.value, ValueError)
  assert f"tfds build {name} --data_dir={data_dir} --file_format=array_record" in message
  assert "download_and_prepare(file_format='array_record')" in message
  assert "not downloaded and prepared" in message and "ArrayRecord" in message


def test_not_prepared_in_default_dir(tmp_path):
  with pytest.raises(DatasetNotPreparedError, match="tfds build fashion_mnist"):
    load_dataset(DataConfig(dataset="fashion_mnist"))


def test_tfrecord_format_is_rejected_with_fix(tfrecord_tfds_dir):
  with pytest.raises(DataError) as info:
    load_dataset(DataConfig(dataset="mnist", data_dir=tfrecord_tfds_dir))
  message = str(info.value)
  assert not isinstance(info.value, DatasetNotPreparedError)
  assert "tfrecord" in message and "ArrayRecord" in message and "tfds convert_format" in message


def test_unknown_tfds_name(tmp_path):
  with pytest.raises(DataError, match="no dataset named 'no_such_dataset_xyz'"):
    load_dataset(DataConfig(dataset="tfds:no_such_dataset_xyz", data_dir=str(tmp_path)))
