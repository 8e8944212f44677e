"""The 2-D toy distributions: shapes, determinism, and that each looks like itself."""

import numpy as np
import pytest

from genjax.data import DataConfig, load_dataset, sample_toy, TOY_DATASETS
from genjax.data import toy2d

N = 20_000


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_shapes_and_determinism(name):
  ds = load_dataset(DataConfig(dataset=name, num_points=N, num_test_points=1000))
  assert ds.spec.shape == (2,) and ds.spec.kind == "points"
  assert ds.spec.num_classes == {"swiss_roll": 0, "8gaussians": 8, "moons": 2, "checkerboard": 0}[name]
  assert (len(ds.train), len(ds.test)) == (N, 1000)
  batch = ds.train.get(np.arange(N))
  assert batch["x"].shape == (N, 2) and batch["x"].dtype == np.float32
  assert batch["label"].shape == (N,) and batch["label"].dtype == np.int32
  assert np.all(np.isfinite(batch["x"])) and np.abs(batch["x"]).max() < 6.0
  # Fixed: the same points whatever the shuffle seed or numpy's global state.
  np.random.seed(99)
  again = load_dataset(DataConfig(dataset=name, num_points=N, num_test_points=1000, seed=3))
  np.testing.assert_array_equal(again.train.get(np.arange(N))["x"], batch["x"])
  # Test points are different draws from the same distribution.
  assert not np.array_equal(ds.test.get(np.arange(1000))["x"], batch["x"][:1000])


def test_8gaussians_has_8_clusters():
  x, label = sample_toy("8gaussians", np.random.default_rng(0), N)
  centers = toy2d.eight_gaussians_centers()
  np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 4 / 1.414, rtol=1e-6)
  # Points are nearest to the centre of their own component; the components have equal weight.
  nearest = np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
  assert np.mean(nearest == label) > 0.99  # Neighbours are 3 std from the midpoint.
  counts = np.bincount(label, minlength=8)
  assert counts.min() > 0.9 * N / 8 and counts.max() < 1.1 * N / 8
  for k in range(8):
    pts = x[label == k]
    np.testing.assert_allclose(pts.mean(0), centers[k], atol=0.03)
    np.testing.assert_allclose(pts.std(0), 0.5 / 1.414, rtol=0.08)


def test_moons_has_two_half_circles():
  x, label = sample_toy("moons", np.random.default_rng(0), N, noise=0.0)
  u = (x - np.array([-1.0, -0.2])) / 2.0  # Back to sklearn's make_moons coordinates.
  outer, inner = u[label == 0], u[label == 1]
  assert abs(len(outer) - N / 2) < 0.05 * N
  np.testing.assert_allclose(np.linalg.norm(outer, axis=1), 1.0, atol=1e-5)
  assert outer[:, 1].min() >= -1e-6
  np.testing.assert_allclose(np.linalg.norm(inner - np.array([1.0, 0.5]), axis=1), 1.0, atol=1e-5)
  assert inner[:, 1].max() <= 0.5 + 1e-6
  # With FFJORD's noise the two moons are still separated along their arcs.
  x, label = sample_toy("moons", np.random.default_rng(1), N)
  u = (x - np.array([-1.0, -0.2])) / 2.0
  r_outer = np.linalg.norm(u[label == 0], axis=1)
  assert abs(r_outer.mean() - 1.0) < 0.02 and 0.08 < r_outer.std() < 0.12


def test_swiss_roll_is_a_spiral():
  x, label = sample_toy("swiss_roll", np.random.default_rng(0), N, noise=0.0)
  assert np.all(label == 0)
  t = 5.0 * np.linalg.norm(x, axis=1)  # Radius = t / 5 without noise.
  assert t.min() >= 1.5 * np.pi - 1e-3 and t.max() <= 4.5 * np.pi + 1e-3
  angle = np.arctan2(x[:, 1], x[:, 0])
  np.testing.assert_allclose(np.cos(angle), np.cos(t), atol=1e-3)
  np.testing.assert_allclose(np.sin(angle), np.sin(t), atol=1e-3)


def test_checkerboard_is_on_black_squares():
  x, _ = sample_toy("checkerboard", np.random.default_rng(0), N)
  assert np.abs(x).max() <= 4.0
  cells = np.floor(x / 2.0).astype(int)
  assert np.all((cells[:, 0] + cells[:, 1]) % 2 == 0)
  occupied, counts = np.unique(cells, axis=0, return_counts=True)
  assert len(occupied) == 8 and counts.min() > 0.9 * N / 8
  with pytest.raises(ValueError, match="noise"):
    DataConfig(dataset="checkerboard", toy_noise=0.1)


def test_points_reject_image_options():
  with pytest.raises(ValueError, match="random_flip"):
    DataConfig(dataset="moons", random_flip=True)
  with pytest.raises(ValueError, match="image_size"):
    DataConfig(dataset="moons", image_size=16)
  with pytest.raises(ValueError, match="toy_noise"):
    DataConfig(dataset="digits", toy_noise=0.1)
