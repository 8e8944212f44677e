"""TFDS image datasets read with ``tfds.data_source`` (DESIGN.md item 11).

``tfds.data_source`` gives random access to a dataset prepared in the ArrayRecord format and
needs no TensorFlow at training time (images are decoded with PIL). genjax never downloads:
it always passes ``download=False``. A dataset must be prepared beforehand, once, on a machine
with network (preparing needs ``pip install tensorflow`` there, reading here does not):

  tfds build mnist --data_dir=DIR --file_format=array_record

or in Python ``tfds.builder("mnist", data_dir=DIR).download_and_prepare(file_format="array_record")``;
then copy ``DIR/mnist`` over and set ``data_dir=DIR``. A dataset prepared as TFRecord (the TFDS
default) can be converted with ``tfds convert_format --dataset_version_dir=DIR/mnist/3.0.1
--out_file_format=array_record --out_dir=NEW_DIR/mnist/3.0.1``.

Preprocessing (host side, numpy): central square crop (CelebA: 140 x 140, the crop of
NCSN / score_sde; others: the largest centred square, a no-op for square images), uint8 ->
float32 in [-1, 1] (``v / 127.5 - 1``), antialiased bilinear resize to ``image_size``.
The test source is the "test" split, or "validation" where there is no "test" split.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import numpy as np

from genjax.data.pipeline import Batch
from genjax.data.pipeline import DataError
from genjax.data.pipeline import DatasetNotPreparedError
from genjax.data.pipeline import TFDS_PREFIX
from genjax.data.pipeline import check_indices
from genjax.data.pipeline import resize_images
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class TfdsImageDataset:
  """How to read one TFDS image dataset.

  Attributes:
    tfds_name: the TFDS name (optionally with config/version, e.g. "celeb_a:2.1.0").
    image_key: the image feature (uint8 [H, W, C]).
    label_key: the class-label feature, or None for unlabelled data (labels are then 0).
    default_crop: side of the central square crop; None: the largest centred square.
    default_size: output side when ``image_size`` is None; None: the crop side.
  """

  tfds_name: str
  image_key: str = "image"
  label_key: Optional[str] = "label"
  default_crop: Optional[int] = None
  default_size: Optional[int] = None


TFDS_DATASETS: dict[str, TfdsImageDataset] = {
    "mnist": TfdsImageDataset("mnist"),  # 60,000 / 10,000, 28x28x1, 10 classes.
    "fashion_mnist": TfdsImageDataset("fashion_mnist"),  # 60,000 / 10,000, 28x28x1, 10 classes.
    "kmnist": TfdsImageDataset("kmnist"),  # 60,000 / 10,000, 28x28x1, 10 classes.
    "cifar10": TfdsImageDataset("cifar10"),  # 50,000 / 10,000, 32x32x3, 10 classes.
    "cifar100": TfdsImageDataset("cifar100"),  # 50,000 / 10,000, 32x32x3, 100 classes.
    "svhn_cropped": TfdsImageDataset("svhn_cropped"),  # 73,257 / 26,032, 32x32x3, 10 classes.
    # 162,770 / 19,962 (test), 218x178x3 -> 140x140 central crop -> 64x64, no labels.
    "celeb_a": TfdsImageDataset("celeb_a", label_key=None, default_crop=140, default_size=64),
}


def _tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - it is a dependency of genjax.
    raise DataError("TFDS datasets need `pip install tensorflow-datasets array_record`.") from e
  return tfds


def _default_data_dir() -> str:
  try:
    return str(_tfds().core.constants.get_default_data_dir())
  except Exception:  # pylint: disable=broad-except
    return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def _prepare_instructions(name: str, data_dir: Optional[str]) -> str:
  root = data_dir or _default_data_dir()
  base = name.split(":")[0]
  return (
      "genjax reads TFDS datasets with tfds.data_source, which needs the ArrayRecord format, and it "
      "never downloads. Prepare the dataset once on a machine with network access (preparing "
      "needs `pip install tensorflow` there; reading here does not):\n"
      f"  tfds build {base} --data_dir={root} --file_format=array_record\n"
      "or, in Python:\n"
      f"  tfds.builder({name!r}, data_dir={root!r}).download_and_prepare(file_format='array_record')\n"
      f"then copy {os.path.join(root, base.split('/')[0])} to this machine and set data_dir "
      "(e.g. --config.data.data_dir=DIR)."
  )


def _diagnose(name: str, split: str, data_dir: Optional[str], error: BaseException) -> DataError:
  """Turns a failure of ``tfds.data_source`` into an error that says what to do."""
  tfds = _tfds()
  where = data_dir or _default_data_dir()
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    return DataError(
        f"TFDS has no dataset named {name!r}, and none is prepared under data_dir={where!r}. "
        "See https://www.tensorflow.org/datasets/catalog for the names."
    )
  except Exception as e:  # pylint: disable=broad-except
    return DataError(f"Could not open TFDS dataset {name!r} (data_dir={where!r}): {type(e).__name__}: {e}")
  if not builder.is_prepared():
    return DatasetNotPreparedError(
        f"TFDS dataset {name!r} is not downloaded and prepared in data_dir={where!r} (looked for "
        f"{builder.data_dir}).\n" + _prepare_instructions(name, data_dir)
    )
  info = builder.info
  array_record = tfds.core.file_adapters.FileFormat.ARRAY_RECORD
  formats = info.available_file_formats()
  if array_record not in formats:
    found = ", ".join(sorted(f.value for f in formats)) or "unknown"
    return DataError(
        f"TFDS dataset {name!r} in {builder.data_dir} is prepared in the {found} format, but "
        "tfds.data_source needs ArrayRecord (file_format='array_record'). Convert it with\n"
        f"  tfds convert_format --dataset_version_dir={builder.data_dir} --out_file_format=array_record "
        "--out_dir=NEW_DIR/<name>/<version>\nor prepare it again into an empty data_dir.\n"
        + _prepare_instructions(name, data_dir)
    )
  if info.splits and split not in info.splits:
    return DataError(f"TFDS dataset {name!r} has no split {split!r}; it has {sorted(info.splits)}.")
  return DataError(
      f"Could not open split {split!r} of TFDS dataset {name!r} in {builder.data_dir}: "
      f"{type(error).__name__}: {error}"
  )


def open_data_source(name: str, split: str, data_dir: Optional[str] = None) -> Any:
  """``tfds.data_source(name, split=split, data_dir=data_dir, download=False)`` with clear errors.

  Raises:
    DatasetNotPreparedError: the dataset is not prepared in ``data_dir`` (says how to).
    DataError: unknown name, wrong file format (TFRecord), unknown split, or another failure.
  """
  tfds = _tfds()
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # pylint: disable=broad-except
    raise _diagnose(name, split, data_dir, e) from e


def _hwc(image: Any) -> np.ndarray:
  image = np.asarray(image)
  return image[..., None] if image.ndim == 2 else image


def _center_crop(image: np.ndarray, crop: Optional[int]) -> np.ndarray:
  """Central ``crop x crop`` window of an [H, W, C] image (None: the largest centred square)."""
  h, w = image.shape[:2]
  side = min(h, w) if crop is None else crop
  if side > min(h, w):
    raise DataError(f"crop_size={side} is larger than the image ({h}x{w}).")
  top, left = (h - side) // 2, (w - side) // 2
  return image[top:top + side, left:left + side]


class TfdsSource:
  """A source over one split of a TFDS data source, with crop / scale / resize.

  ``get`` reads the examples one by one (``data_source[i]``), which works for real ArrayRecord
  files and for ``tfds.testing.mock_data`` alike, and decodes them with PIL.

  Args:
    data_source: the object ``tfds.data_source`` returned (``len``, ``[i] -> dict``).
    image_key: image feature name (uint8 [H, W, C]).
    label_key: label feature name, or None (labels are 0).
    crop: central square crop side (None: the largest centred square).
    size: output side (None: the crop side).
  """

  def __init__(self, data_source: Any, *, image_key: str = "image", label_key: Optional[str] = "label",
               crop: Optional[int] = None, size: Optional[int] = None, shape: Optional[tuple[int, ...]] = None):
    self.data_source = data_source
    self.image_key = image_key
    self.label_key = label_key
    self.crop = crop
    self.size = size
    self.shape = shape

  def __len__(self) -> int:
    return len(self.data_source)

  def get(self, indices: np.ndarray) -> Batch:
    indices = check_indices(indices, len(self))
    examples = [self.data_source[int(i)] for i in indices]
    if not examples:
      shape = self.shape or (0, 0, 0)
      return {"x": np.zeros((0,) + tuple(shape), np.float32), "label": np.zeros((0,), np.int32)}
    images = [_center_crop(_hwc(ex[self.image_key]), self.crop) for ex in examples]
    if len({im.shape for im in images}) == 1:
      x = np.stack(images).astype(np.float32) / 127.5 - 1.0
      if self.size is not None:
        x = resize_images(x, self.size)
    else:  # Variable-size images (generic datasets without a fixed crop): one at a time.
      x = np.stack([resize_images(im[None].astype(np.float32) / 127.5 - 1.0, self.size)[0] for im in images])
    if self.label_key is None:
      label = np.zeros(len(examples), np.int32)
    else:
      label = np.asarray([ex[self.label_key] for ex in examples]).astype(np.int32)
    return {"x": x, "label": label}

  def __repr__(self) -> str:
    return f"TfdsSource({self.data_source!r}, crop={self.crop}, size={self.size}, n={len(self)})"


def resolve(name: str) -> TfdsImageDataset:
  """The :class:`TfdsImageDataset` for a genjax dataset name ("mnist", "tfds:<name>", ...)."""
  if name in TFDS_DATASETS:
    return TFDS_DATASETS[name]
  if name.startswith(TFDS_PREFIX) and name[len(TFDS_PREFIX):]:
    return TfdsImageDataset(name[len(TFDS_PREFIX):])
  raise DataError(f"{name!r} is not a TFDS dataset; valid: {', '.join(TFDS_DATASETS)} or 'tfds:<name>'.")


def load_tfds(name: str, *, data_dir: Optional[str] = None, image_size: Optional[int] = None,
              crop_size: Optional[int] = None) -> tuple[DataSpec, TfdsSource, TfdsSource]:
  """Opens the train and test splits of a TFDS image dataset. Never downloads.

  Args:
    name: "mnist", "fashion_mnist", "kmnist", "cifar10", "cifar100", "svhn_cropped", "celeb_a",
      or "tfds:<tfds name>" for another dataset with a uint8 "image" feature (and optionally a
      ClassLabel "label").
    data_dir: TFDS data directory (None: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
    image_size: output side (None: the dataset default, CelebA 64, else the native size).
    crop_size: central square crop side (None: the dataset default, CelebA 140, else the largest
      centred square).

  Returns:
    ``(spec, train, test)``; test is the "test" split, or "validation" where there is no "test".

  Raises:
    DatasetNotPreparedError, DataError: see :func:`open_data_source`; DataError also for a dataset
      without a uint8 image feature or with unknown image size and no ``image_size``.
  """
  entry = resolve(name)
  train_raw = open_data_source(entry.tfds_name, "train", data_dir)
  info = train_raw.dataset_info
  splits = list(info.splits.keys()) if info.splits else []
  if not splits or "test" in splits:
    test_split = "test"
  elif "validation" in splits:
    test_split = "validation"
  else:
    raise DataError(f"TFDS dataset {entry.tfds_name!r} has neither a 'test' nor a 'validation' split "
                    f"(splits: {splits}).")
  test_raw = open_data_source(entry.tfds_name, test_split, data_dir)

  # 1. The image feature: uint8 [H, W, C].
  features = info.features
  if entry.image_key not in features.keys():
    raise DataError(f"TFDS dataset {entry.tfds_name!r} has no {entry.image_key!r} feature; it has "
                    f"{sorted(features.keys())}.")
  image_feature = features[entry.image_key]
  if np.dtype(image_feature.np_dtype) != np.uint8 or len(image_feature.shape) != 3:
    raise DataError(f"Feature {entry.image_key!r} of {entry.tfds_name!r} is {image_feature}; genjax "
                    "needs uint8 images [H, W, C].")
  h, w, c = image_feature.shape
  # 2. Crop and output size.
  crop = crop_size if crop_size is not None else entry.default_crop
  if crop is not None and h is not None and w is not None and crop > min(h, w):
    raise DataError(f"crop_size={crop} is larger than the {h}x{w} images of {entry.tfds_name!r}.")
  side = crop if crop is not None else (min(h, w) if h is not None and w is not None else None)
  size = image_size if image_size is not None else (entry.default_size or side)
  if size is None:
    raise DataError(f"The images of {entry.tfds_name!r} have no fixed size ({image_feature.shape}); set "
                    "image_size.")
  # 3. Labels.
  num_classes = 0
  label_key = entry.label_key
  if label_key is not None:
    if label_key in features.keys() and hasattr(features[label_key], "num_classes"):
      num_classes = int(features[label_key].num_classes)
    elif name.startswith(TFDS_PREFIX):
      label_key = None  # Unlabelled generic dataset.
    else:
      raise DataError(f"TFDS dataset {entry.tfds_name!r} has no class label {label_key!r}.")
  shape = (size, size, c)
  spec = DataSpec(shape=shape, num_classes=num_classes, kind="image")
  make = lambda raw: TfdsSource(raw, image_key=entry.image_key, label_key=label_key, crop=crop,
                                size=size, shape=shape)
  return spec, make(train_raw), make(test_raw)
