"""Procedural 2-D toy distributions (DESIGN.md item 11).

The four distributions and their scales follow FFJORD's ``toy_data.inf_train_gen``
(Grathwohl et al., 2019, "FFJORD: Free-form Continuous Dynamics for Scalable Reversible
Generative Models", github.com/rtqichen/ffjord ``lib/toy_data.py``). They are not standardised
further: all live in about [-4, 4]^2, with per-coordinate standard deviations between 1.0 and
2.3 (moons (1.75, 1.0); swiss roll (1.34, 1.40); 8gaussians 2.03; checkerboard 2.31):

* ``swiss_roll``: sklearn's 3-D swiss roll (noise 1.0), coordinates (x, z), divided by 5.
* ``8gaussians``: eight Gaussians with centres on the circle of radius ``4 / 1.414``
  (angles ``k * pi / 4``, label ``k``) and standard deviation ``0.5 / 1.414``.
* ``moons``: sklearn's two moons (noise 0.1), times 2, shifted by (-1, -0.2); label = moon.
* ``checkerboard``: uniform on the 8 "black" squares of side 2 in [-4, 4]^2, i.e. on
  ``{(x, y): (floor(x / 2) + floor(y / 2)) mod 2 = 0}``.

The generators are pure functions of a ``np.random.Generator``; they are written in numpy (not
sklearn) so that they need no global random state.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

TOY_DATASETS = ("swiss_roll", "8gaussians", "moons", "checkerboard")
# Number of meaningful labels per dataset (0: every label is 0).
NUM_CLASSES = {"swiss_roll": 0, "8gaussians": 8, "moons": 2, "checkerboard": 0}
# FFJORD's noise parameter for each dataset (see `sample_toy`); None: the dataset has none.
DEFAULT_NOISE = {"swiss_roll": 1.0, "8gaussians": 0.5, "moons": 0.1, "checkerboard": None}
# FFJORD divides by this literal constant (not sqrt(2)) in 8gaussians.
_FFJORD_SQRT2 = 1.414


def swiss_roll(rng: np.random.Generator, n: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """Swiss roll: ``t = 1.5 pi (1 + 2u)``, point ``(t cos t, t sin t) + noise * N(0, I)``, over 5.

  Args:
    rng: numpy random generator.
    n: number of points.
    noise: standard deviation of the Gaussian noise before the division by 5 (FFJORD: 1.0).

  Returns:
    ``(x [n, 2] float32, label [n] int32 of zeros)``.
  """
  t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n))
  x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
  x = x + noise * rng.standard_normal(size=(n, 2))
  return (x / 5.0).astype(np.float32), np.zeros(n, np.int32)


def eight_gaussians(rng: np.random.Generator, n: int, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
  """Mixture of 8 equally weighted Gaussians on a circle.

  Component ``k`` has mean ``4 (cos(k pi/4), sin(k pi/4)) / 1.414`` and standard deviation
  ``noise / 1.414`` (FFJORD: ``noise = 0.5``).

  Args:
    rng: numpy random generator.
    n: number of points.
    noise: component standard deviation before the division by 1.414.

  Returns:
    ``(x [n, 2] float32, label [n] int32)``: the label is the component ``k`` in 0..7.
  """
  label = rng.integers(0, 8, size=n)
  angle = label * (np.pi / 4.0)
  centers = 4.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
  x = (centers + noise * rng.standard_normal(size=(n, 2))) / _FFJORD_SQRT2
  return x.astype(np.float32), label.astype(np.int32)


def eight_gaussians_centers() -> np.ndarray:
  """The 8 component means of ``eight_gaussians``, [8, 2], row ``k`` for label ``k``."""
  angle = np.arange(8) * (np.pi / 4.0)
  return (4.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1) / _FFJORD_SQRT2).astype(np.float32)


def moons(rng: np.random.Generator, n: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
  """Two interleaving half circles (sklearn ``make_moons``), times 2, shifted by (-1, -0.2).

  Moon 0 is ``(cos a, sin a)``, moon 1 is ``(1 - cos a, 0.5 - sin a)``, ``a ~ U[0, pi]``; each
  point gets ``noise * N(0, I)`` before the affine map (FFJORD: ``noise = 0.1``). Unlike sklearn,
  the angles are drawn at random (not on a grid), so the points are i.i.d.

  Args:
    rng: numpy random generator.
    n: number of points.
    noise: standard deviation of the noise before the scaling by 2.

  Returns:
    ``(x [n, 2] float32, label [n] int32)``: the label is the moon, 0 or 1.
  """
  label = rng.integers(0, 2, size=n)
  a = rng.uniform(0.0, np.pi, size=n)
  outer = np.stack([np.cos(a), np.sin(a)], axis=1)
  inner = np.stack([1.0 - np.cos(a), 0.5 - np.sin(a)], axis=1)
  x = np.where(label[:, None] == 0, outer, inner)
  x = x + noise * rng.standard_normal(size=(n, 2))
  x = 2.0 * x + np.array([-1.0, -0.2])
  return x.astype(np.float32), label.astype(np.int32)


def checkerboard(rng: np.random.Generator, n: int, noise: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
  """Uniform distribution on the 8 black squares of a 4x4 checkerboard on [-4, 4]^2.

  FFJORD: ``x1 = 4u - 2``, ``x2 = v - 2 b + (floor(x1) mod 2)`` with ``u, v ~ U[0, 1)``,
  ``b ~ U{0, 1}``; the point is ``2 (x1, x2)``.

  Args:
    rng: numpy random generator.
    n: number of points.
    noise: must be None (the distribution has no noise parameter).

  Returns:
    ``(x [n, 2] float32, label [n] int32 of zeros)``.
  """
  if noise is not None:
    raise ValueError("checkerboard has no noise parameter; leave toy_noise=None.")
  x1 = 4.0 * rng.uniform(size=n) - 2.0
  x2 = rng.uniform(size=n) - 2.0 * rng.integers(0, 2, size=n) + np.mod(np.floor(x1), 2.0)
  x = 2.0 * np.stack([x1, x2], axis=1)
  return x.astype(np.float32), np.zeros(n, np.int32)


_GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "swiss_roll": swiss_roll,
    "8gaussians": eight_gaussians,
    "moons": moons,
    "checkerboard": checkerboard,
}


def sample_toy(
    name: str, rng: np.random.Generator, n: int, noise: Optional[float] = None
) -> tuple[np.ndarray, np.ndarray]:
  """Draws ``n`` points from the toy distribution ``name``.

  Args:
    name: one of ``TOY_DATASETS``.
    rng: numpy random generator.
    n: number of points.
    noise: the dataset's FFJORD noise parameter (see the generator's docstring); None keeps
      ``DEFAULT_NOISE[name]``.

  Returns:
    ``(x [n, 2] float32, label [n] int32)``.

  Example:
    >>> x, label = sample_toy("8gaussians", np.random.default_rng(0), 1000)
    >>> x.shape, label.max()
    ((1000, 2), 7)
  """
  if name not in _GENERATORS:
    raise ValueError(f"Unknown toy dataset {name!r}; valid: {', '.join(TOY_DATASETS)}.")
  if noise is None:
    noise = DEFAULT_NOISE[name]
  elif noise < 0:
    raise ValueError(f"toy noise must be >= 0; got {noise}.")
  return _GENERATORS[name](rng, n, noise)


def make_toy_dataset(
    name: str, num_train: int, num_test: int, noise: Optional[float] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The fixed train and test point sets of a toy distribution.

  Both are drawn with fixed seeds (``np.random.default_rng([2024, i, 1])`` for train and
  ``[2024, i, 2]`` for test, ``i`` the index of ``name`` in ``TOY_DATASETS``), so they never depend
  on the training seed or on numpy's global state. (The last word is nonzero on purpose:
  ``SeedSequence`` pads with zeros, so ``[a, b, 0]`` would give the same stream as ``[a, b]``.)

  Returns:
    ``(x_train [num_train, 2], label_train [num_train], x_test [num_test, 2], label_test
    [num_test])``.
  """
  if name not in _GENERATORS:
    raise ValueError(f"Unknown toy dataset {name!r}; valid: {', '.join(TOY_DATASETS)}.")
  i = TOY_DATASETS.index(name)
  x_train, y_train = sample_toy(name, np.random.default_rng([2024, i, 1]), num_train, noise)
  x_test, y_test = sample_toy(name, np.random.default_rng([2024, i, 2]), num_test, noise)
  return x_train, y_train, x_test, y_test
