"""PSNR and SSIM against direct NumPy references and, when installed, scikit-image."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import metrics
from genjax.data.digits import load_digits_arrays


def _ssim_numpy(a, b, data_range, win, sigma, k1=0.01, k2=0.03):
  """Wang et al. (2004) eq. (13)-(17), written out with explicit loops over windows."""
  r = (win - 1) / 2
  g = np.exp(-((np.arange(win) - r) ** 2) / (2 * sigma ** 2))
  w = np.outer(g, g) / np.outer(g, g).sum()
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  h, wd, c = a.shape
  out = []
  for ch in range(c):
    vals = []
    for i in range(h - win + 1):
      for j in range(wd - win + 1):
        pa, pb = a[i:i + win, j:j + win, ch], b[i:i + win, j:j + win, ch]
        ma, mb = (w * pa).sum(), (w * pb).sum()
        va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
        cov = (w * (pa - ma) * (pb - mb)).sum()
        vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    out.append(np.mean(vals))
  return np.mean(out)


def _digit_pairs(size):
  x = load_digits_arrays()[2][:6].astype(np.float64)  # test digits, [6, 8, 8, 1]
  if size != 8:
    from genjax.data import resize_images
    x = resize_images(x, size).astype(np.float64)
  rng = np.random.default_rng(0)
  y = np.clip(x + 0.3 * rng.normal(size=x.shape), -1, 1)
  return x, y


def test_psnr_matches_numpy_and_closed_form():
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, size=(2, 3, 16, 16, 3))
  b = np.clip(a + 0.1 * rng.normal(size=a.shape), -1, 1)
  got = np.asarray(metrics.psnr(a, b, 2.0))
  mse = ((a - b) ** 2).mean(axis=(-3, -2, -1))
  np.testing.assert_allclose(got, 10 * np.log10(4.0 / mse), rtol=1e-5)
  assert got.shape == (2, 3)
  # A constant error of e on a range L: 20 log10(L / e).
  np.testing.assert_allclose(metrics.psnr(np.zeros((4, 4, 1)), np.full((4, 4, 1), 0.02), 2.0),
                             20 * np.log10(100.0), rtol=1e-6)
  assert np.isinf(metrics.psnr(a[0, 0], a[0, 0], 2.0))


@pytest.mark.parametrize("win,sigma,shape", [(11, 1.5, (13, 17, 2)), (7, 0.8, (8, 8, 1))])
def test_ssim_matches_direct_numpy(win, sigma, shape):
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, size=shape)
  b = np.clip(0.7 * a + 0.3 * rng.uniform(-1, 1, size=shape), -1, 1)
  with jax.enable_x64(True):
    got = float(metrics.ssim(a, b, 2.0, win_size=win, sigma=sigma))
  np.testing.assert_allclose(got, _ssim_numpy(a, b, 2.0, win, sigma), rtol=1e-10)
  assert float(metrics.ssim(a, a, 2.0, win_size=win, sigma=sigma)) == pytest.approx(1.0, abs=1e-5)


def test_ssim_real_digits_direct_numpy():
  x, y = _digit_pairs(16)
  got = np.asarray(metrics.ssim(x, y, 2.0))
  want = [_ssim_numpy(a, b, 2.0, 11, 1.5) for a, b in zip(x, y)]
  np.testing.assert_allclose(got, want, rtol=1e-4)


def test_ssim_batch_shapes_jit_vmap_grad():
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.uniform(-1, 1, size=(2, 3, 12, 12, 3)), jnp.float32)
  b = jnp.asarray(rng.uniform(-1, 1, size=(2, 3, 12, 12, 3)), jnp.float32)
  s = metrics.ssim(a, b, 2.0)
  assert s.shape == (2, 3)
  assert metrics.ssim(a, b, 2.0, per_channel=True).shape == (2, 3, 3)
  np.testing.assert_allclose(jax.jit(lambda a, b: metrics.ssim(a, b, 2.0))(a, b), s, rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(lambda a, b: metrics.ssim(a, b, 2.0))(a, b), s, rtol=1e-6)
  g = jax.grad(lambda a: metrics.ssim(a, b, 2.0).sum())(a)
  assert g.shape == a.shape and bool(jnp.all(jnp.isfinite(g)))
  g = jax.grad(lambda a: metrics.psnr(a, b, 2.0).sum())(a)
  assert bool(jnp.all(jnp.isfinite(g)))


def test_ssim_too_small_image_message():
  with pytest.raises(ValueError, match="win_size=7"):
    metrics.ssim(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)), 2.0)
  with pytest.raises(ValueError, match="one shape"):
    metrics.ssim(np.zeros((16, 16, 1)), np.zeros((16, 16, 3)), 2.0)


# --- scikit-image (test-only extra) -------------------------------------------------------------


def _skimage():
  return pytest.importorskip(
      "skimage.metrics",
      reason="scikit-image is not installed (test-only extra: pip install -e '.[test]').")


def test_psnr_matches_skimage():
  skm = _skimage()
  rng = np.random.default_rng(1)
  a = rng.uniform(-1, 1, size=(3, 16, 16, 3))
  b = np.clip(a + 0.2 * rng.normal(size=a.shape), -1, 1)
  x, y = _digit_pairs(8)
  for aa, bb in ((a, b), (x, y)):
    want = [skm.peak_signal_noise_ratio(i, j, data_range=2.0) for i, j in zip(aa, bb)]
    np.testing.assert_allclose(metrics.psnr(aa, bb, 2.0), want, rtol=1e-5)


@pytest.mark.parametrize("win,sigma,size", [(11, 1.5, 32), (11, 1.5, 16), (7, 0.8, 8)])
def test_ssim_matches_skimage(win, sigma, size):
  skm = _skimage()
  rng = np.random.default_rng(size)
  a = rng.uniform(-1, 1, size=(3, size, size, 3))
  b = np.clip(0.6 * a + 0.4 * rng.uniform(-1, 1, size=a.shape), -1, 1)
  x, y = _digit_pairs(size)
  for aa, bb in ((a, b), (x, y)):
    # Wang et al.'s settings in scikit-image: Gaussian weights, population covariance.
    want = [skm.structural_similarity(i, j, data_range=2.0, channel_axis=-1,
                                      gaussian_weights=True, sigma=sigma,
                                      use_sample_covariance=False) for i, j in zip(aa, bb)]
    got = np.asarray(metrics.ssim(aa, bb, 2.0, win_size=win, sigma=sigma))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
