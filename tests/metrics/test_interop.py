"""Statistics of other projects (pytorch-fid, TTUR, clean-fid), image folders and .npz images
as references, and sample.py's evaluation path, on files the tests write themselves."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import metrics
from genjax.metrics import inception
from genjax.metrics import ref_stats
from genjax.metrics import reference as ref_lib
from genjax.metrics.extractors import Extractor

D = 64  # Inception's 2048 stands in as 64 (small_inception): the same code, 300x faster FD
OFFICIAL = inception.OFFICIAL_SHA256_PREFIX + "0" * 56


def _projection_apply(w, x):
  """A cheap stand-in for Inception's pool3: a fixed random projection of the pixels."""
  f = jnp.tanh(x.reshape(x.shape[0], -1) @ w)
  return f, jax.nn.softmax(f[:, :10], axis=-1)


def _fake_inception(resize="pytorch-fid", official=True):
  w = np.random.default_rng(0).normal(size=(8 * 8 * 3, D)).astype(np.float32) / 8
  return Extractor(inception.NAME, _projection_apply, w, "f" * 64, inception.RESIZES[resize], D,
                   space="inception" if resize == "pytorch-fid" else "inception_clean",
                   source_sha256=OFFICIAL if official else "0" * 64)


@pytest.fixture(autouse=True)
def small_inception(monkeypatch):
  monkeypatch.setattr(inception, "FEATURE_DIM", D)


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(1).uniform(-1, 1, (64, 8, 8, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def ref_feats():
  return np.random.default_rng(2).normal(size=(300, D)).astype(np.float32) * 0.3


def test_foreign_statistics_files_record_their_resize(tmp_path, ref_feats):
  mu, sigma = metrics.feature_statistics(ref_feats)
  files = {  # name -> (arrays, format it implies)
      "stats.npz": (dict(mu=mu, sigma=sigma), None),  # pytorch-fid --save-stats: no hint
      "fid_stats_cifar10_train.npz": (dict(mu=mu.astype(np.float32),
                                           sigma=sigma.astype(np.float32)), "ttur"),
      "cifar10_clean_train_32.npz": (dict(mu=mu, sigma=sigma), "clean-fid:clean"),
      "cifar10_legacy_pytorch_train_32.npz": (dict(mu=mu, sigma=sigma),
                                              "clean-fid:legacy_pytorch"),
      "cifar10_clean_train_32_kid.npz": (dict(feats=ref_feats), "clean-fid:clean"),
  }
  for name, (arrays, fmt) in files.items():
    np.savez(tmp_path / name, **arrays)
  with pytest.raises(ValueError, match="say which.*pytorch-fid"):
    metrics.load_ref_stats(str(tmp_path / "stats.npz"))
  s = metrics.load_ref_stats(str(tmp_path / "stats.npz"), "pytorch-fid")
  assert s.meta["resize"] == inception.RESIZE_CONVENTION and s.features is None
  for name, (_, fmt) in list(files.items())[1:]:
    s = metrics.load_ref_stats(str(tmp_path / name))
    assert s.meta["format"] == fmt, name
    np.testing.assert_allclose(s.mu, mu, rtol=1e-5, atol=1e-6)
  assert metrics.load_ref_stats(str(tmp_path / "fid_stats_cifar10_train.npz")).meta[
      "resize"].startswith("TensorFlow 1")
  kid_file = metrics.load_ref_stats(str(tmp_path / "cifar10_clean_train_32_kid.npz"))
  assert kid_file.features.shape == (300, D) and kid_file.meta["num"] == 300
  assert kid_file.meta["resize"] == inception.CLEAN_RESIZE_CONVENTION
  np.savez(tmp_path / "small.npz", mu=mu[:10], sigma=sigma[:10, :10])
  with pytest.raises(ValueError, match=r"expected Inception pool3 statistics mu \[64\]"):
    metrics.load_ref_stats(str(tmp_path / "small.npz"), "pytorch-fid")


def test_evaluate_against_foreign_statistics(tmp_path, images, ref_feats):
  mu, sigma = metrics.feature_statistics(ref_feats)
  np.savez(tmp_path / "fid_stats_x.npz", mu=mu, sigma=sigma)  # TTUR
  np.savez(tmp_path / "x_clean_train_8_kid.npz", feats=ref_feats)  # clean-fid
  ext = _fake_inception()
  f, _ = metrics.extract(ext, images)
  want = metrics.frechet_distance(*metrics.feature_statistics(f), mu, sigma)
  ttur = str(tmp_path / "fid_stats_x.npz")
  with pytest.raises(ValueError, match="assume the resize 'TensorFlow 1.*allow_resize_mismatch"):
    metrics.evaluate(images, ("fid",), ext, ttur)
  out = metrics.evaluate(images, ("fid",), ext, ttur, allow_resize_mismatch=True)
  np.testing.assert_allclose(out["fid_inception"], want, rtol=1e-9)
  assert out["reference"]["format"] == "ttur" and "TensorFlow" in out["reference"]["resize"]
  # clean-fid statistics need clean-fid's resize; their features give KID too.
  clean = str(tmp_path / "x_clean_train_8_kid.npz")
  with pytest.raises(ValueError, match="inception_clean"):
    metrics.evaluate(images, ("fid",), ext, clean)
  out = metrics.evaluate(images, ("fid", "kid"), _fake_inception("clean"), clean, kid_subsets=5)
  assert set(out) >= {"fid_inception_clean", "kid_inception_clean"}
  # Only the official weights made these files.
  with pytest.raises(ValueError, match="pt_inception-2015-12-05-6726825d"):
    metrics.evaluate(images, ("fid",), _fake_inception(official=False), ttur,
                     allow_resize_mismatch=True)
  with pytest.raises(ValueError, match="evaluate with --extractor=inception"):
    metrics.evaluate(np.full((10, 8, 8, 1), -1.0, np.float32), ("fd",), "digits", ttur)


def _write_pngs(folder, u8):
  from PIL import Image
  os.makedirs(folder, exist_ok=True)
  for i, im in enumerate(u8):
    Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(
        os.path.join(folder, f"{i:04d}.png"))


def test_ref_stats_from_an_image_folder_and_an_npz(tmp_path):
  test = ref_lib.dataset_images("digits", "test")
  u8 = np.round((test + 1) * 127.5).astype(np.uint8)
  x = u8 / 127.5 - 1.0  # exactly what a PNG of them reads back as
  _write_pngs(tmp_path / "pngs" / "sub", u8)  # recursive, like clean-fid's folders
  np.savez(tmp_path / "imgs.npz", arr_0=u8[..., 0])  # guided-diffusion style [N, H, W] uint8
  want = metrics.feature_statistics(metrics.extract(metrics.get_extractor("digits"), x)[0])
  for src in (str(tmp_path / "pngs"), str(tmp_path / "imgs.npz")):
    out = str(tmp_path / "ref.npz")
    ref_stats.main(["--images", src, "--extractor", "digits", "--batch_size", "64", "--out", out])
    s = metrics.load_ref_stats(out)
    np.testing.assert_allclose(s.mu, want[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s.sigma, want[1], rtol=1e-5, atol=1e-7)
    assert s.meta["num"] == 270 and s.meta["image_shape"] == [8, 8, 1]
    # and it serves as the reference of the metrics
    assert metrics.evaluate(x.astype(np.float32), ("fd",), "digits", out)["fd_digits"] < 1e-6
  from PIL import Image
  Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "pngs" / "zz_odd.png")
  with pytest.raises(ValueError, match="zz_odd.png' is 8x9.*one size"):
    ref_stats.main(["--images", str(tmp_path / "pngs"), "--out", str(tmp_path / "bad.npz")])


def test_sample_py_evaluation_streams_and_validates_first(tmp_path):
  """sampling.evaluate (what sample.py --eval calls) on a tiny trained autoencoder: a --ref
  file, PSNR/SSIM on the test split; bad names fail before the checkpoint is even read."""
  from configs import ae as ae_config
  from genjax.training import run as run_lib
  from genjax.training import sampling
  wd = str(tmp_path / "ae")
  config = ae_config.get_config()
  config.model.hidden = (16,)
  t = config.training
  t.num_steps, t.batch_size, t.sample_every, t.ckpt_every, t.log_every = 2, 16, 0, 2, 1
  t.progress = False
  run_lib.train_and_evaluate(config, wd)
  with pytest.raises(ValueError, match="Unknown feature extractor 'vgg'"):
    sampling.evaluate(config, str(tmp_path / "no_such_run"), ["fid"], wd, extractor="vgg")
  with pytest.raises(FileNotFoundError, match="LPIPS weights"):
    sampling.evaluate(config, wd, ["fid", "lpips"], wd, lpips_weights=str(tmp_path / "no.npz"))
  ref = str(tmp_path / "ref.npz")
  ref_stats.main(["--dataset", "digits", "--split", "test", "--extractor", "digits",
                  "--out", ref])
  res = sampling.evaluate(config, wd, ["fid", "kid", "psnr", "ssim"], wd, num=40, batch=16,
                          ref=ref)
  q, r = res["sample_quality"], res["reconstruction"]
  assert q["num_samples"] == 40 and np.isfinite(q["fd_digits"]) and "kid_digits" in q
  assert q["reference"]["path"] == ref and 0.0 <= q["clipped_fraction"] <= 1.0
  assert r["num_images"] == 40 and np.isfinite(r["psnr"]) and r["ssim_win_size"] == 7
  from configs import ddpm as ddpm_config
  with pytest.raises(ValueError, match="needs a method that reconstructs"):
    sampling.evaluate(ddpm_config.get_config(), str(tmp_path / "no_such_run"), ["psnr"], wd)
