"""Pictures of controlled generation: control map | sample pairs."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from genjax import viz


def map_to_image(maps: np.ndarray, channels: int) -> np.ndarray:
  """Control maps as [-1, 1] images with ``channels`` channels: binary / [0, 1] maps (edges,
  masks) are shown white on black; maps already in the image range (blur, low resolution)
  as they are."""
  m = np.asarray(maps, np.float32)
  if m.min() >= 0:  # a [0, 1] map
    m = m * 2 - 1
  if m.shape[-1] != channels:
    m = np.repeat(m[..., :1], channels, axis=-1)
  return m


def pair_rows(maps: np.ndarray, samples: Sequence[np.ndarray]) -> np.ndarray:
  """Interleaves each control map with its samples: ``[map_i, s1_i, s2_i, ...]``."""
  samples = [np.asarray(s, np.float32) for s in samples]
  m = map_to_image(maps, samples[0].shape[-1])
  out = []
  for i in range(len(m)):
    out.append(m[i])
    out.extend(s[i] for s in samples)
  return np.stack(out)


def save_pairs(maps: np.ndarray, samples, path: str, pairs_per_row: Optional[int] = None,
               scale: Optional[int] = None) -> str:
  """A PNG grid of control map | sample pairs (``samples`` one array, or a list of arrays
  drawn with the same maps, e.g. at several control scales: map | s_1 | s_2 | ...)."""
  samples = list(samples) if isinstance(samples, (list, tuple)) else [samples]
  per = 1 + len(samples)
  n = len(maps)
  pairs_per_row = pairs_per_row or max(1, int(np.ceil(np.sqrt(n / per))))
  tiles = pair_rows(maps, samples)
  return viz.save_image_grid(tiles, path, nrow=pairs_per_row * per, scale=scale)
