"""Tiny real TFDS datasets for the genjax.data tests (ArrayRecord, written without TensorFlow).

The fake builders yield PIL images, which TFDS encodes with PIL (numpy arrays would go through
``tf.image.encode_png``), and write ArrayRecord files that ``tfds.data_source`` reads back.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import PIL.Image as PIL_Image
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist as tfds_mnist

FAKE_MNIST_TRAIN = 12
FAKE_MNIST_TEST = 5
FAKE_RGB_TRAIN = 9
FAKE_RGB_VALIDATION = 4
FAKE_RGB_SHAPE = (12, 10, 3)


def fake_mnist_image(split: str, i: int) -> np.ndarray:
  """The 28x28 uint8 image stored as example ``i`` of ``split`` in the fake MNIST."""
  seed = [0 if split == "train" else 1, i + 1]
  return np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)


def match_examples(images: np.ndarray, expected: list[np.ndarray]) -> np.ndarray:
  """For each image in [n, ...] (uint8 values), the index of the equal one in ``expected``.

  TFDS shuffles examples when it writes them, so index i of the files is not example i.
  """
  found = []
  for image in images:
    hits = [j for j, e in enumerate(expected) if np.array_equal(image.reshape(e.shape), e)]
    assert len(hits) == 1, "image not found among the fake examples"
    found.append(hits[0])
  return np.array(found)


def fake_rgb_image(split: str, i: int) -> np.ndarray:
  seed = [2 if split == "train" else 3, i + 1]
  return np.random.default_rng(seed).integers(0, 256, FAKE_RGB_SHAPE, dtype=np.uint8)


class FakeMnist(tfds_mnist.MNIST, skip_registration=True):
  """The real MNIST builder (name, version, features) with a local generator: no download."""

  name = "mnist"

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._examples("train", FAKE_MNIST_TRAIN), "test": self._examples("test", FAKE_MNIST_TEST)}

  def _examples(self, split, n):
    for i in range(n):
      yield i, {"image": PIL_Image.fromarray(fake_mnist_image(split, i)), "label": (3 * i + 1) % 10}


class GenjaxFakeRgb(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A non-square RGB dataset with "train" and "validation" splits only."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=FAKE_RGB_SHAPE),
            "label": tfds.features.ClassLabel(num_classes=3),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples("train", FAKE_RGB_TRAIN),
            "validation": self._generate_examples("validation", FAKE_RGB_VALIDATION)}

  def _generate_examples(self, split, n):
    for i in range(n):
      yield i, {"image": PIL_Image.fromarray(fake_rgb_image(split, i)), "label": i % 3}


def fake_mnist_images(split: str) -> list[np.ndarray]:
  n = FAKE_MNIST_TRAIN if split == "train" else FAKE_MNIST_TEST
  return [fake_mnist_image(split, i) for i in range(n)]


def fake_rgb_images(split: str) -> list[np.ndarray]:
  n = FAKE_RGB_TRAIN if split == "train" else FAKE_RGB_VALIDATION
  return [fake_rgb_image(split, i) for i in range(n)]


def prepare(builder_cls, data_dir):
  builder = builder_cls(data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      compute_stats=tfds.download.ComputeStatsMode.SKIP, try_download_gcs=False))
  shutil.rmtree(os.path.join(data_dir, "downloads"), ignore_errors=True)
  return builder


