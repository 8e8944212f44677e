"""The 1,797 real 8x8 handwritten digits that scikit-learn ships (DESIGN.md item 11).

``sklearn.datasets.load_digits`` reads a file bundled with scikit-learn, so this dataset needs no
network. It is the UCI "Optical Recognition of Handwritten Digits" test set: 1,797 images of
8x8 pixels with integer intensities 0..16 and labels 0..9.

The train/test split is fixed: a permutation drawn from ``np.random.default_rng(split_seed)``
(``split_seed=0`` by default), independent of numpy's global state and of the training seed.
With the default ``test_fraction=0.15`` the first ``round(0.15 * 1797) = 270`` permuted images
are the test set and the other 1,527 the training set.
"""

from __future__ import annotations

import numpy as np

NUM_EXAMPLES = 1797
NUM_CLASSES = 10
NATIVE_SIZE = 8
MAX_VALUE = 16.0
DEFAULT_TEST_FRACTION = 0.15
# Split sizes for the default test fraction (checked by the tests).
NUM_TRAIN = 1527
NUM_TEST = 270


def num_test_examples(test_fraction: float) -> int:
  """Number of test images for ``test_fraction`` (``round(test_fraction * 1797)``)."""
  return int(round(test_fraction * NUM_EXAMPLES))


def load_digits_arrays(
    test_fraction: float = DEFAULT_TEST_FRACTION, split_seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Loads the digits as NHWC float32 images in [-1, 1] with a fixed train/test split.

  Pixel values ``v`` in 0..16 become ``v / 8 - 1``, so 0 -> -1 (background) and 16 -> 1.

  Args:
    test_fraction: fraction of the 1,797 images held out for testing, in (0, 1).
    split_seed: seed of the split permutation (``np.random.default_rng(split_seed)``).

  Returns:
    ``(x_train [1527, 8, 8, 1] float32, label_train [1527] int32, x_test [270, 8, 8, 1],
    label_test [270] int32)`` for the default ``test_fraction=0.15``.

  Example:
    >>> x, y, _, _ = load_digits_arrays()
    >>> x.shape, float(x.min()), float(x.max())
    ((1527, 8, 8, 1), -1.0, 1.0)
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}.")
  from sklearn.datasets import load_digits  # Local import: sklearn is slow to import.

  bunch = load_digits()
  x = bunch.data.reshape(-1, NATIVE_SIZE, NATIVE_SIZE, 1) / (MAX_VALUE / 2.0) - 1.0
  x = x.astype(np.float32)
  label = bunch.target.astype(np.int32)
  perm = np.random.default_rng(split_seed).permutation(len(x))
  n_test = num_test_examples(test_fraction)
  test_idx, train_idx = perm[:n_test], perm[n_test:]
  return x[train_idx], label[train_idx], x[test_idx], label[test_idx]
