"""Pictures people would rather look at: image grids, loss curves, 2-D scatters, GIF strips."""

from __future__ import annotations

import json
import math
import os
from typing import Optional, Sequence

import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[-1, 1] float images -> uint8 [0, 255] (the DDPM convention: round(127.5 (x + 1)))."""
  x = np.asarray(images, dtype=np.float32)
  return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, nrow: Optional[int] = None, pad: int = 1,
              pad_value: int = 255) -> np.ndarray:
  """Tiles ``images`` [N, H, W, C] (uint8 or [-1, 1] floats) into one [H', W', C] uint8 image."""
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4:
    raise ValueError(f"make_grid expects [N, H, W, C] images, got shape {images.shape}.")
  if images.dtype != np.uint8:
    images = to_uint8(images)
  n, h, w, c = images.shape
  nrow = nrow or int(math.ceil(math.sqrt(n)))
  ncol = int(math.ceil(n / nrow))
  grid = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, np.uint8)
  for i in range(n):
    r, q = divmod(i, nrow)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = images[i]
  return grid


def save_image_grid(images: np.ndarray, path: str, nrow: Optional[int] = None,
                    scale: Optional[int] = None) -> str:
  """Writes a PNG grid of ``images``; small images are upscaled (nearest) to be visible."""
  from PIL import Image
  grid = make_grid(images, nrow)
  if scale is None:
    h = np.asarray(images).shape[1]
    scale = max(1, 32 // max(h, 1))
  if scale > 1:
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  img.save(path)
  return path


def save_gif(frames: Sequence[np.ndarray], path: str, duration_ms: int = 300) -> str:
  """Writes an animated GIF from uint8 grid frames (e.g. sample grids across training)."""
  from PIL import Image
  imgs = [Image.fromarray(f[..., 0] if f.ndim == 3 and f.shape[-1] == 1 else f) for f in frames]
  imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0)
  return path


def read_metrics(path: str) -> list[dict]:
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        line = line.strip()
        if line:
          rows.append(json.loads(line))
  return rows


def plot_loss_curve(metrics_path: str, out_path: str, keys: Sequence[str] = ("loss",)) -> Optional[str]:
  """Plots the logged ``keys`` against step from a metrics JSON-lines file."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  rows = [r for r in read_metrics(metrics_path) if "step" in r]
  if not rows:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  for k in keys:
    pts = [(r["step"], r[k]) for r in rows if k in r]
    if pts:
      s, v = zip(*pts)
      ax.plot(s, v, label=k)
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
  return out_path


def scatter_2d(samples: np.ndarray, data: Optional[np.ndarray], path: str, title: str = "",
               extra: Optional[dict] = None) -> str:
  """Scatter of 2-D samples (orange) over data (grey); ``extra`` adds more labelled sets."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  sets = {"samples": np.asarray(samples)}
  sets.update(extra or {})
  fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 4.5), squeeze=False)
  for ax, (name, pts) in zip(axes[0], sets.items()):
    points_2d(ax, pts, data, title=f"{title} {name}".strip(), label=name, size=2)
    ax.legend(loc="upper right", markerscale=4)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


# ----------------------------------------------------------------------------------------------
# Axes-level helpers for notebooks: each draws on a matplotlib ``ax`` and returns it.
# ----------------------------------------------------------------------------------------------


def show_grid(ax, images: np.ndarray, nrow: Optional[int] = None, title: str = ""):
  """Draws ``images`` [N, H, W, C] ([-1, 1] floats or uint8) as one tiled grid on ``ax``."""
  grid = make_grid(images, nrow)
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
            interpolation="nearest")
  ax.set_title(title)
  ax.axis("off")
  return ax


def image_row(images: np.ndarray, titles: Sequence[str] = (), size: float = 1.2,
              suptitle: str = ""):
  """A one-row figure of ``images`` [N, H, W, C] with a title each (e.g. x_t across t).

  Returns:
    The matplotlib figure.
  """
  import matplotlib.pyplot as plt
  images = np.asarray(images)
  n = len(images)
  fig, axes = plt.subplots(1, n, figsize=(size * n, size * 1.25), squeeze=False)
  for i, ax in enumerate(axes[0]):
    show_grid(ax, images[i:i + 1], 1, titles[i] if i < len(titles) else "")
    ax.title.set_fontsize(8)
  if suptitle:
    fig.suptitle(suptitle)
  fig.tight_layout()
  return fig


def _square_limits(ax, ref: np.ndarray, margin: float = 1.15, lim: Optional[float] = None) -> float:
  """Square, equal-aspect limits [-lim, lim]^2; ``lim`` defaults to the 99.5th |ref| percentile."""
  if lim is None:
    lim = margin * float(np.percentile(np.abs(ref), 99.5))
  ax.set_xlim(-lim, lim)
  ax.set_ylim(-lim, lim)
  ax.set_aspect("equal")
  return lim


def points_2d(ax, points: np.ndarray, data: Optional[np.ndarray] = None, title: str = "",
              lim: Optional[float] = None, color: str = "tab:orange",
              label: Optional[str] = None, size: float = 1):
  """Scatter of 2-D ``points`` [N, 2] over ``data`` (grey) on ``ax``; square limits. With a
  ``label`` both sets are labelled (``points`` as ``label``, ``data`` as "data") for a legend."""
  points = np.asarray(points)
  if data is not None:
    ax.scatter(data[:, 0], data[:, 1], s=size, c="0.75", label="data" if label else None)
  ax.scatter(points[:, 0], points[:, 1], s=size, c=color, label=label)
  _square_limits(ax, data if data is not None else points, lim=lim)
  ax.set_title(title)
  return ax


def trajectories_2d(ax, trajectory: np.ndarray, data: Optional[np.ndarray] = None,
                    title: str = "", max_paths: int = 200):
  """Paths of 2-D samplers: ``trajectory`` [n_states, N, 2] from noise (first state) to sample.

  Draws up to ``max_paths`` thin lines, the start points (grey crosses) and the end points
  (orange), over ``data`` if given.
  """
  traj = np.asarray(trajectory)[:, :max_paths]
  if data is not None:
    ax.scatter(data[:, 0], data[:, 1], s=1, c="0.8", zorder=0)
  ax.plot(traj[:, :, 0], traj[:, :, 1], lw=0.4, alpha=0.5, c="tab:blue", zorder=1)
  ax.scatter(traj[0, :, 0], traj[0, :, 1], s=4, c="0.4", marker="x", zorder=2)
  ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=4, c="tab:orange", zorder=3)
  _square_limits(ax, np.concatenate([traj[0], traj[-1]] + ([data] if data is not None else [])))
  ax.set_title(title)
  return ax


def vector_field_2d(ax, field_fn, lim: float, n: int = 21, title: str = "",
                    normalize: bool = True, color: str = "tab:blue"):
  """Arrows of a 2-D vector field (e.g. a score ``s(x, t)``) on an ``n x n`` grid (quiver).

  Args:
    ax: matplotlib axes.
    field_fn: ``[M, 2] -> [M, 2]`` numpy-convertible (close over ``t``).
    lim: the grid covers ``[-lim, lim]^2``.
    n: grid points per side.
    normalize: draw unit arrows coloured by log-magnitude (a score's norm varies by orders of
      magnitude across t); else raw vectors.
  """
  g = np.linspace(-lim, lim, n, dtype=np.float32)
  xx, yy = np.meshgrid(g, g)
  pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
  v = np.asarray(field_fn(pts), dtype=np.float64).reshape(n, n, 2)
  if normalize:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    u = v / np.maximum(norm, 1e-12)
    q = ax.quiver(xx, yy, u[..., 0], u[..., 1], np.log10(norm[..., 0] + 1e-12), cmap="viridis",
                  angles="xy", pivot="mid", width=0.004)
  else:
    q = ax.quiver(xx, yy, v[..., 0], v[..., 1], color=color, angles="xy", pivot="mid")
  ax.set_xlim(-lim, lim)
  ax.set_ylim(-lim, lim)
  ax.set_aspect("equal")
  ax.set_title(title)
  return q
