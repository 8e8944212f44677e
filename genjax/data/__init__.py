"""Datasets and deterministic host-side batching (DESIGN.md item 11).

* ``"digits"`` (default): the 1,797 real 8x8 digits bundled with scikit-learn; fixed split of
  1,527 train / 270 test images. No network.
* 2-D toys ``"swiss_roll"``, ``"8gaussians"``, ``"moons"``, ``"checkerboard"`` (FFJORD's), fixed
  point sets generated with fixed seeds. No network.
* ``"shapes"``: procedural captioned RGB images of 1-3 coloured shapes, each drawn from its
  index (:mod:`genjax.data.shapes`); batches also carry caption tokens (``"text"``), attribute
  labels, instance masks and edge maps. No network.
* TFDS image datasets (``"mnist"``, ``"fashion_mnist"``, ``"kmnist"``, ``"cifar10"``,
  ``"cifar100"``, ``"svhn_cropped"``, ``"celeb_a"``, ``"tfds:<name>"``) read with
  ``tfds.data_source`` from ArrayRecord files prepared beforehand; no TensorFlow needed.

Example:
  >>> from genjax import data
  >>> ds = data.load_dataset(data.DataConfig(dataset="moons"))
  >>> it = data.BatchIterator(ds.train, batch_size=256, seed=0)
  >>> it.batch_at(0)["x"].shape
  (256, 2)
"""

from genjax.data.pipeline import ArraySource
from genjax.data.pipeline import BatchIterator
from genjax.data.pipeline import DataConfig
from genjax.data.pipeline import DataError
from genjax.data.pipeline import Dataset
from genjax.data.pipeline import DatasetNotPreparedError
from genjax.data.pipeline import flip_images
from genjax.data.pipeline import load_dataset
from genjax.data.pipeline import make_train_iterator
from genjax.data.pipeline import resize_images
from genjax.data.pipeline import sequential_batches
from genjax.data.pipeline import Source
from genjax.data.pipeline import valid_dataset_names
from genjax.data.shapes import ShapesConfig
from genjax.data.shapes import ShapesSource
from genjax.data.toy2d import sample_toy
from genjax.data.toy2d import TOY_DATASETS

__all__ = [
    "ArraySource",
    "BatchIterator",
    "DataConfig",
    "DataError",
    "Dataset",
    "DatasetNotPreparedError",
    "flip_images",
    "load_dataset",
    "make_train_iterator",
    "resize_images",
    "sample_toy",
    "ShapesConfig",
    "ShapesSource",
    "sequential_batches",
    "Source",
    "TOY_DATASETS",
    "valid_dataset_names",
]
