"""The shipped digits classifier: loads without pickle, > 95% test accuracy, and its command."""

import json

import numpy as np
import pytest

from genjax import metrics
from genjax.data import DataConfig, load_dataset
from genjax.metrics import digits_classifier as dc
from genjax.metrics import weights as weights_lib


def _test_split(image_size=None):
  ds = load_dataset(DataConfig(dataset="digits", image_size=image_size))
  batch = ds.test.get(np.arange(len(ds.test)))
  return batch["x"], batch["label"]


def test_shipped_file_is_pickle_free_with_metadata():
  with np.load(dc.ASSET_PATH, allow_pickle=False) as z:
    meta = json.loads(str(z[weights_lib.METADATA_KEY]))
    assert all(z[k].dtype != object for k in z.files)
  assert meta["test_accuracy"] > 0.95
  assert meta["command"].startswith("python -m genjax.metrics.digits_classifier")
  _, _, checksum = weights_lib.load_weights(dc.ASSET_PATH)
  assert checksum == meta["checksum"]


def test_shipped_classifier_test_accuracy_above_95_percent():
  features_fn, probs_fn = metrics.load_digits_classifier()
  x, y = _test_split()
  probs = np.asarray(probs_fn(x))
  acc = float((probs.argmax(-1) == y).mean())
  print(f"digits classifier test accuracy: {acc:.4f} on {len(y)} images")
  assert acc > 0.95
  _, meta, _ = dc.load_classifier_params()
  assert acc == pytest.approx(meta["test_accuracy"], abs=1.5 / len(y))
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  assert features_fn(x).shape == (len(y), dc.FEATURE_DIM)


@pytest.mark.parametrize("size", [16, 32])
def test_larger_digits_are_resized(size):
  features_fn, probs_fn = metrics.load_digits_classifier()
  x, y = _test_split(size)
  assert x.shape[1:] == (size, size, 1)
  assert float((np.asarray(probs_fn(x)).argmax(-1) == y).mean()) > 0.93


def test_resize_errors():
  features_fn, _ = metrics.load_digits_classifier()
  with pytest.raises(ValueError, match="grayscale"):
    features_fn(np.zeros((2, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match="at least 8x8"):
    features_fn(np.zeros((2, 4, 4, 1), np.float32))


def test_missing_weights_message(tmp_path):
  with pytest.raises(FileNotFoundError, match="python -m genjax.metrics.digits_classifier"):
    dc.load_classifier_params(str(tmp_path / "nope.npz"))


def test_training_command_writes_a_loadable_file(tmp_path, capsys):
  out = tmp_path / "clf.npz"
  dc.main(["--out", str(out), "--steps", "20"])  # the command's entry point, in-process
  assert "test accuracy" in capsys.readouterr().out
  params, meta, checksum = weights_lib.load_weights(str(out))
  assert meta["steps"] == 20 and meta["checksum"] == checksum and 0 <= meta["test_accuracy"] <= 1
  features_fn, _ = metrics.load_digits_classifier(str(out))
  assert features_fn(np.zeros((3, 8, 8, 1), np.float32)).shape == (3, dc.FEATURE_DIM)
