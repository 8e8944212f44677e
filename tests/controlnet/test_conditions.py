"""Control maps (genjax.controlnet.conditions) against closed forms and scikit-image / scipy."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from genjax.controlnet import conditions as C

ndi = pytest.importorskip("scipy.ndimage")


def _square(n=16, a=4, b=12):
  im = np.zeros((n, n))
  im[a:b, a:b] = 1.0
  return im


def _disc(n=16, r=5.0):
  yy, xx = np.mgrid[:n, :n]
  c = (n - 1) / 2
  return (((yy - c) ** 2 + (xx - c) ** 2) <= r * r).astype(float), (yy - c, xx - c)


def _img(plane):
  """A [0, 1] plane as a [1, H, W, 1] image in [-1, 1]."""
  return jnp.asarray(plane * 2 - 1, jnp.float32)[None, ..., None]


def _ring(mask):
  """Pixels whose 3x3 neighbourhood holds both values."""
  m = mask > 0
  s = np.ones((3, 3), bool)
  return ndi.binary_dilation(m, s) & ~ndi.binary_erosion(m, s, border_value=1)


def test_sobel_and_gaussian_equal_scipy_in_float64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    img = rng.random((2, 13, 17))
    di, dj = C.sobel_gradients(jnp.asarray(img))
    assert di.dtype == jnp.float64
    for k in range(2):
      np.testing.assert_allclose(di[k], ndi.sobel(img[k], axis=0), atol=1e-12)
      np.testing.assert_allclose(dj[k], ndi.sobel(img[k], axis=1), atol=1e-12)
      g = C.gaussian_blur(jnp.asarray(img[k]), 1.3, normalize_border=False)
      np.testing.assert_allclose(g, ndi.gaussian_filter(img[k], 1.3, mode="constant"),
                                 atol=1e-12)


@pytest.mark.parametrize("shape", ["square", "disc"])
def test_sobel_edges_are_the_two_pixel_ring_around_the_boundary(shape):
  """A binary image's Sobel magnitude is >= sqrt(2)/4 exactly where the 3x3 neighbourhood
  mixes both values (the smallest: one diagonal neighbour) and 0 elsewhere."""
  plane = _square() if shape == "square" else _disc()[0]
  edges = np.asarray(C.sobel_edges(_img(plane), threshold=0.25))[0, ..., 0]
  np.testing.assert_array_equal(edges > 0, _ring(plane))
  mag = np.asarray(C.sobel_magnitude(_img(plane)))[0]
  assert mag[~_ring(plane)].max() == 0
  assert mag[_ring(plane)].min() == pytest.approx(np.sqrt(2) / 4, abs=1e-6)


def test_canny_on_a_square_is_its_one_pixel_outline():
  plane = _square()
  edges = np.asarray(C.canny(_img(plane)))[0, ..., 0] > 0
  outline = (plane > 0) & ~ndi.binary_erosion(plane > 0, np.ones((3, 3), bool))
  np.testing.assert_array_equal(edges, outline)


def test_canny_on_a_disc_is_a_thin_closed_contour_on_the_circle():
  plane, (dy, dx) = _disc(24, 7.0)
  edges = np.asarray(C.canny(_img(plane)))[0, ..., 0] > 0
  radius = np.hypot(dy, dx)
  assert np.all(np.abs(radius[edges] - 7.0) <= 1.0)        # on the circle, within a pixel
  labels, count = ndi.label(edges, np.ones((3, 3)))
  assert count == 1                                          # one closed 8-connected contour
  angles = np.arctan2(dy[edges], dx[edges])
  assert np.histogram(angles, bins=16, range=(-np.pi, np.pi))[0].min() > 0  # all the way round
  assert edges.sum() < 2 * np.pi * 7 * 1.5                  # thin (NMS), not the 2-px ring


def test_canny_matches_skimage():
  feature = pytest.importorskip("skimage.feature")
  rng = np.random.default_rng(1)
  planes = []
  yy, xx = np.mgrid[:32, :32]
  for _ in range(8):
    im = np.zeros((32, 32))
    im[(yy - rng.integers(8, 24)) ** 2 + (xx - rng.integers(8, 24)) ** 2 < rng.integers(20, 80)] = 1
    im[rng.integers(0, 10):rng.integers(15, 30), rng.integers(0, 10):rng.integers(15, 30)] = 0.6
    planes.append(im + 0.1 * rng.random(im.shape))
  planes = np.stack(planes)
  ours = np.asarray(C.canny(jnp.asarray(planes * 2 - 1, jnp.float32)[..., None]))[..., 0] > 0
  for sigma, lo, hi in [(1.0, 0.1, 0.2), (0.5, 0.2, 0.5)]:
    ours = np.asarray(C.canny(jnp.asarray(planes * 2 - 1, jnp.float32)[..., None], sigma, lo,
                              hi))[..., 0] > 0
    ref = np.stack([feature.canny(p, sigma=sigma, low_threshold=lo, high_threshold=hi)
                    for p in planes])
    # float32 here against skimage's float64: a tie in NMS may flip a pixel.
    assert (ours != ref).sum() <= 0.01 * ref.sum(), ((ours != ref).sum(), ref.sum())


def test_hysteresis_keeps_only_components_touching_a_strong_pixel():
  weak = np.zeros((9, 9), bool)
  weak[1, 1:8] = True            # a long line with one strong pixel at its end
  weak[5:8, 5] = True            # a separate weak-only segment
  weak[2, 8] = True              # diagonal continuation of the line (8-connected)
  strong = np.zeros_like(weak)
  strong[1, 7] = True
  out = np.asarray(C.hysteresis(jnp.asarray(weak), jnp.asarray(strong)))
  expected = np.zeros_like(weak)
  expected[1, 1:8] = True
  expected[2, 8] = True
  np.testing.assert_array_equal(out, expected)


def test_thinning_gives_one_pixel_strokes():
  m = np.zeros((12, 12), bool)
  m[3:6, 1:11] = True            # a 3-px-thick bar
  out = np.asarray(C.thin(jnp.asarray(m)))
  assert out.sum() >= 6 and out[:, 3:9].sum(axis=0).max() == 1   # one pixel across
  assert np.all(out <= m)


def test_scribble_is_deterministic_per_key_and_near_the_edges():
  plane = _disc(16, 5.0)[0]
  x = jnp.concatenate([_img(plane)] * 2)
  s1 = C.scribble(x, jax.random.key(0), jitter=0.7, drop=0.0)
  s2 = C.scribble(x, jax.random.key(0), jitter=0.7, drop=0.0)
  s3 = C.scribble(x, jax.random.key(1), jitter=0.7, drop=0.0)
  np.testing.assert_array_equal(s1, s2)
  assert not np.array_equal(s1, s3)
  ring = ndi.binary_dilation(_ring(plane), np.ones((5, 5)))
  on = np.asarray(s1)[..., 0] > 0
  assert on.sum() > 8 and np.all(on <= ring[None])


def test_low_resolution_blur_and_foreground():
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)), jnp.float32)
  lr = C.low_resolution(x, 2)
  np.testing.assert_allclose(lr[:, 0, 0], jnp.mean(x[:, :2, :2], axis=(1, 2)), atol=1e-6)
  assert lr.shape == x.shape and lr.dtype == x.dtype
  const = jnp.full((1, 8, 8, 1), 0.3)
  np.testing.assert_allclose(C.blurred(const, 1.0), const, atol=1e-6)  # border renormalized
  fg = C.foreground_mask(_img(_square()))
  np.testing.assert_array_equal(np.asarray(fg)[0, ..., 0] > 0, _square() > 0)


def test_adherence_metrics():
  a = _img(_square())[..., :1] > 0
  a = a.astype(jnp.float32)
  assert float(C.edge_f1(a, a)[0]) == 1.0
  assert float(C.edge_f1(a, jnp.zeros_like(a))[0]) == 0.0
  assert float(C.edge_f1(jnp.zeros_like(a), jnp.zeros_like(a))[0]) == 1.0
  shifted = jnp.roll(a, 1, axis=2)
  assert float(C.edge_f1(a, shifted, tolerance=1)[0]) == 1.0
  assert float(C.mask_iou(a, a)[0]) == 1.0
  half = a.at[:, :8].set(0)
  assert float(C.mask_iou(a, half)[0]) == pytest.approx(0.5)


def test_registry_names_and_errors():
  assert {"edges", "sobel", "scribble", "blur", "lowres", "mask", "foreground"} <= set(
      C.CONDITIONS)
  with pytest.raises(ValueError, match="Unknown control condition 'edgy'; valid:"):
    C.get_condition("edgy")
  with pytest.raises(ValueError, match="has none"):
    C.compute_condition("mask", {"x": jnp.zeros((1, 8, 8, 1))})
  batch = {"x": _img(_square())}
  for name in ("edges", "sobel", "scribble", "blur", "lowres", "foreground"):
    m = C.compute_condition(name, batch, jax.random.key(0))
    assert m.shape == (1, 16, 16, C.get_condition(name).map_channels(1)), name
    assert jnp.all(jnp.isfinite(m))


def test_mask_condition_on_shapes_and_its_foreground_floor():
  shapes = pytest.importorskip("genjax.data.shapes")
  cfg = shapes.ShapesConfig(texture=0.0)
  batch = shapes.generate(np.arange(8), cfg)
  m = C.compute_condition("mask", batch)
  assert m.shape == (8, 32, 32, 1)
  np.testing.assert_array_equal(np.asarray(m)[..., 0] > 0, batch["mask"] > 0)
  # the foreground recomputed from the real images overlaps the dataset's masks well above
  # the chance level of another image's mask (the adherence metric's floor and ceiling)
  fg = C.foreground_mask(jnp.asarray(batch["x"]))
  real = float(jnp.mean(C.mask_iou(m, fg)))
  chance = float(jnp.mean(C.mask_iou(m, jnp.roll(m, 1, axis=0))))
  assert real > 0.6 and real > chance + 0.3, (real, chance)
