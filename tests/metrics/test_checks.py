"""Input validation: every metric and extractor refuses, with one line naming the problem and
the fix, the inputs that used to give silent nonsense (uint8 images, [0, 1] images, NCHW,
NaN, too few samples)."""

import numpy as np
import pytest

from genjax import metrics
from genjax.metrics import checks
from genjax.metrics import reference as ref_lib


@pytest.fixture(scope="module")
def test_digits():
  return ref_lib.dataset_images("digits", "test")


def _one_line(excinfo):
  msg = str(excinfo.value)
  assert "\n" not in msg, msg
  return msg


def test_evaluate_refuses_wrong_image_conventions(test_digits):
  """uint8 in [0, 255], floats in [0, 255] or [0, 1], NCHW: each gave a finite FD before
  (1.5e6 for uint8 Inception inputs; 30.7 instead of 0.62 for [0, 1] digits)."""
  x = test_digits
  u8 = np.round((x + 1) * 127.5).astype(np.uint8)
  cases = [
      (u8, r"uint8 images in \[0, 255\]; pass images in \[-1, 1\]"),
      (u8.astype(np.float32), r"uint8 images in \[0, 255\]"),
      ((x + 1) / 2, r"images in \[0, 1\]; pass images in \[-1, 1\] \(2 \* x - 1\)"),
      (x.transpose(0, 3, 1, 2), r"NCHW.*transpose\(0, 2, 3, 1\)"),
      (x * 3.0, r"far outside \[-1, 1\]"),
  ]
  for bad, pattern in cases:
    with pytest.raises(ValueError, match=pattern) as e:
      metrics.evaluate(bad, ("fd",), "digits", "digits_test")
    _one_line(e)
  nan = x.copy()
  nan[0, 0, 0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    metrics.extract(metrics.get_extractor("digits"), nan)
  # Slight overshoot of sampler outputs is accepted (and clipped, as a PNG would be).
  over = np.clip(x * 1.05, -1.05, 1.05)
  assert np.isfinite(metrics.evaluate(over, ("fd",))["fd_digits"])


def test_evaluate_refuses_too_few_samples_before_any_work(test_digits):
  """0 samples failed inside NumPy; N < splits silently reduced the IS splits."""
  with pytest.raises(ValueError, match="needs at least 1 image, got 0"):
    metrics.evaluate(np.zeros((0, 8, 8, 1), np.float32), ("fd",))
  with pytest.raises(ValueError, match="at least 2 samples"):
    metrics.evaluate(test_digits[:1], ("fd",))
  with pytest.raises(ValueError, match="10 splits needs at least 10 samples, got 6"):
    metrics.evaluate(test_digits[:6], ("is",))
  with pytest.raises(ValueError, match=r"subset_size=500 must lie in \[2, min\(N=270"):
    metrics.evaluate(test_digits, ("kid",), kid_subset_size=500)
  # The KID subset size used is recorded, not silently clipped.
  out = metrics.evaluate(test_digits[:50], ("kid",), kid_subsets=3)
  assert out["settings"]["kid_subset_size"] == 50


def test_full_reference_metrics_check_data_range_and_layout():
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, size=(2, 16, 16, 3)).astype(np.float32)
  u8 = np.round((a + 1) * 127.5).astype(np.uint8)
  with pytest.raises(ValueError, match="span .* more than data_range=2.0"):
    metrics.psnr(u8, np.clip(u8.astype(np.int16) + 3, 0, 255).astype(np.uint8), 2.0)
  assert np.isfinite(np.asarray(metrics.psnr(u8, np.clip(u8.astype(np.int16) + 3, 0, 255)
                                             .astype(np.uint8), 255.0))).all()
  with pytest.raises(ValueError, match="NCHW"):
    metrics.ssim(a.transpose(0, 3, 1, 2), a.transpose(0, 3, 1, 2), 2.0)


def test_check_images_messages_are_one_line():
  with pytest.raises(ValueError, match="add a channel axis") as e:
    checks.check_images(np.zeros((4, 8, 8)), "x")
  _one_line(e)
  with pytest.raises(ValueError, match="add a batch axis"):
    checks.check_images(np.zeros((8, 8, 3), np.float32), "x")
  with pytest.raises(ValueError, match="floating-point"):
    checks.check_images(np.zeros((2, 8, 8, 1), np.int32), "x")
