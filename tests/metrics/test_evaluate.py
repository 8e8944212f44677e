"""evaluate / sample_quality / reference statistics on the digits."""

import dataclasses

import numpy as np
import pytest

from genjax import metrics
from genjax.metrics import reference as ref_lib


@pytest.fixture(scope="module")
def digits():
  return (ref_lib.dataset_images("digits", "train"), ref_lib.dataset_images("digits", "test"))


def test_test_split_against_itself_is_perfect(digits):
  _, test = digits
  out = metrics.evaluate(test, ("fd", "kid", "is", "pr"), "digits", "digits_test")
  assert out["fd_digits"] < 1e-6
  assert out["precision_digits"] == 1.0 and out["recall_digits"] == 1.0
  # Identical sets: the unbiased estimate is 2 (sum_ij k_ij - m sum_i k_ii) / (m^2 (m - 1)) <= 0
  # by Cauchy-Schwarz (each point is more similar to itself than the average pair).
  assert -0.2 < out["kid_digits"] <= 1e-6
  assert 8.0 < out["is_digits"] <= 10.0
  assert out["num_samples"] == len(test) and out["extractor"] == "digits_classifier"
  assert out["reference"]["split"] == "test" and out["reference"]["num"] == len(test)


def test_sample_quality_has_a_floor_and_ranks_noise_worse(digits):
  train, _ = digits
  rng = np.random.default_rng(0)
  real = train[rng.permutation(len(train))[:500]]
  q = metrics.sample_quality(real)
  for k in ("fd_digits", "kid_digits", "kid_digits_std", "is_digits", "is_digits_std",
            "precision_digits", "recall_digits", "baseline", "fd_digits_ratio"):
    assert k in q
  assert q["baseline"]["num_samples"] == 500 and q["baseline"]["repeats"] == 5
  assert 0.7 < q["fd_digits_ratio"] < 1.4  # real train digits sit on the floor
  noisy = np.clip(real + 0.5 * rng.normal(size=real.shape), -1, 1).astype(np.float32)
  qn = metrics.sample_quality(noisy)
  assert qn["fd_digits"] > 2 * q["fd_digits"]
  assert qn["kid_digits"] > q["kid_digits"] + 3 * qn["kid_digits_std"] / 10
  assert qn["precision_digits"] < q["precision_digits"]
  # Uniform noise is no digit at all.
  junk = rng.uniform(-1, 1, size=(300, 8, 8, 1)).astype(np.float32)
  assert metrics.sample_quality(junk, baseline=False)["fd_digits"] > 10 * q["fd_digits"]


def test_sample_quality_at_16px(digits):
  from genjax.data import DataConfig, load_dataset
  ds = load_dataset(DataConfig(dataset="digits", image_size=16))
  x = ds.train.get(np.arange(1000))["x"]
  q = metrics.sample_quality(x)
  assert q["reference"]["image_shape"] == [16, 16, 1]
  assert 0.7 < q["fd_digits_ratio"] < 1.4


def test_is_needs_no_reference(digits):
  _, test = digits
  out = metrics.evaluate(test[:100], ("is",), "digits")
  assert set(out) >= {"is_digits", "is_digits_std"} and "reference" not in out
  assert not any(k.startswith("fd") for k in out)


def test_ref_stats_command_roundtrip_and_refusals(tmp_path, python, digits):
  _, test = digits
  out = tmp_path / "ref.npz"
  python(["-m", "genjax.metrics.ref_stats", "--dataset", "digits", "--split", "test",
          "--extractor", "digits", "--out", str(out)], check=True, timeout=300)
  with np.load(out, allow_pickle=False) as z:
    assert z["mu"].dtype == np.float64 and z["sigma"].shape == (64, 64)
  stats = metrics.load_ref_stats(str(out))
  assert stats.meta["num"] == len(test) and stats.meta["image_shape"] == [8, 8, 1]
  res = metrics.evaluate(test, ("fid", "pr"), "digits", str(out))
  # Named by feature space: the digits classifier's Frechet distance is never called "fid".
  assert res["fd_digits"] < 1e-6 and res["recall_digits"] == 1.0
  assert "fid" not in res and not any(k.startswith("fid_") for k in res)
  assert res["reference"]["path"] == str(out)

  ext = metrics.get_extractor("digits")
  # Other weights.
  other = dataclasses.replace(stats, meta=dict(stats.meta, extractor_checksum="0" * 64))
  with pytest.raises(ValueError, match="other digits_classifier weights"):
    metrics.evaluate(test, ("fd",), ext, other)
  # Another resize convention.
  other = dataclasses.replace(stats, meta=dict(stats.meta, resize="nearest"))
  with pytest.raises(ValueError, match="another resize convention"):
    metrics.evaluate(test, ("fd",), ext, other)
  # Samples of another size than the reference images.
  with pytest.raises(ValueError, match=r"--image_size 16"):
    metrics.evaluate(np.full((10, 16, 16, 1), -1.0, np.float32), ("fd",), ext, stats)
  # No stored features: FD works, KID explains what is missing.
  bare = dataclasses.replace(stats, features=None)
  assert metrics.evaluate(test, ("fd",), ext, bare)["fd_digits"] < 1e-6
  with pytest.raises(ValueError, match="needs reference features"):
    metrics.evaluate(test, ("kid",), ext, bare)


def test_evaluate_errors(tmp_path, digits):
  _, test = digits
  with pytest.raises(ValueError, match="Unknown metric"):
    metrics.evaluate(test, ("fd", "lpips"))
  with pytest.raises(ValueError, match="Unknown feature extractor"):
    metrics.evaluate(test, ("fd",), "vgg")
  with pytest.raises(FileNotFoundError, match="genjax.metrics.ref_stats"):
    metrics.evaluate(test, ("fd",), "digits", str(tmp_path / "missing.npz"))
  bad = test.copy()
  bad[0, 0, 0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    metrics.evaluate(bad, ("fd",))


_SHARDED = r"""
import jax, numpy as np
from genjax import metrics
from genjax.metrics import reference
assert jax.device_count() == 8, jax.devices()
x = reference.dataset_images("digits", "test")
ext = metrics.get_extractor("digits")
feats, probs = metrics.extract(ext, x, batch_size=100)  # 100 -> 104 per call, last call padded
features_fn, probs_fn = metrics.load_digits_classifier()
np.testing.assert_allclose(feats, features_fn(x), rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(probs, probs_fn(x), rtol=1e-5, atol=1e-6)
print("ok", feats.shape)
"""


def test_extraction_sharded_over_8_devices(python):
  proc = python(["-c", _SHARDED], env_extra={
      "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}, check=True, timeout=300)
  assert "ok (270, 64)" in proc.stdout
