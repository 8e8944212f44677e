"""Full-reference evaluation of methods that reconstruct: PSNR, SSIM and LPIPS against the
held-out images (autoencoders, first stages, super-resolution, inpainting).

``sample.py --eval=psnr,ssim,lpips`` calls :class:`ReconstructionEvaluator`: it is built (and
checks the metric names, the image size against the SSIM window and the LPIPS backbone, and
loads the LPIPS weights) before any reconstruction, then ``update(x, x_hat)`` per batch and
``compute()``. Results are means over images of the per-image values: ``psnr`` (dB, data range
2 for [-1, 1]), ``ssim``, and ``lpips_alex`` / ``lpips_vgg`` (named by the backbone).
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import numpy as np

from genjax.metrics import image as image_lib
from genjax.metrics import lpips as lpips_lib
from genjax.metrics.checks import check_images

RECONSTRUCTION_METRICS = ("psnr", "ssim", "lpips")
# SSIM's window on images smaller than 11x11 (the 8x8 digits): 7 taps, sigma 1.5 (recorded).
SMALL_SSIM_WINDOW = 7


def check_reconstruction_names(metrics: Sequence[str]) -> tuple[str, ...]:
  """Normalised names; ValueError naming the unknown ones."""
  metrics = tuple(m.strip().lower() for m in metrics if m.strip())
  unknown = [m for m in metrics if m not in RECONSTRUCTION_METRICS]
  if unknown or not metrics:
    raise ValueError(f"Unknown reconstruction metric(s) {unknown}; valid: "
                     f"{RECONSTRUCTION_METRICS}.")
  return metrics


class ReconstructionEvaluator:
  """Streaming PSNR / SSIM / LPIPS of reconstructions against their originals.

  Args:
    metrics: any of "psnr", "ssim", "lpips".
    image_shape: (H, W, C) of the images.
    lpips_weights: LPIPS .npz (``python -m genjax.metrics.convert_lpips``); default
      ``$GENJAX_LPIPS_WEIGHTS``. Only read when "lpips" is asked for.
  """

  def __init__(self, metrics: Sequence[str], image_shape: Sequence[int],
               lpips_weights: Optional[str] = None):
    self.metrics = check_reconstruction_names(metrics)
    self.image_shape = tuple(int(s) for s in image_shape)
    h, w, _ = self.image_shape
    self.ssim_win = 11 if min(h, w) >= 11 else SMALL_SSIM_WINDOW
    if "ssim" in self.metrics and min(h, w) < self.ssim_win:
      raise ValueError(f"ssim: images are {h}x{w}, smaller than the {self.ssim_win}x"
                       f"{self.ssim_win} window; drop ssim for such images.")
    self.lpips = None
    if "lpips" in self.metrics:
      params, net, checksum = lpips_lib.load_lpips(lpips_weights)
      if min(h, w) < lpips_lib.MIN_SIZE[net]:
        raise ValueError(f"lpips ({net}) takes images of at least {lpips_lib.MIN_SIZE[net]}x"
                         f"{lpips_lib.MIN_SIZE[net]}, these are {h}x{w}; use psnr/ssim.")
      self.lpips = (params, net, checksum, jax.jit(lpips_lib.lpips_distance))
    self._sums = {m: 0.0 for m in self.metrics}
    self._count = 0

  def update(self, x, x_hat) -> None:
    """Folds in a batch of originals x and reconstructions x_hat, [B, H, W, C] in [-1, 1]."""
    check_images(x, "reconstruction metrics: originals")
    check_images(x_hat, "reconstruction metrics: reconstructions", check_range=False)
    x = np.asarray(x, np.float32)
    x_hat = np.clip(np.asarray(x_hat, np.float32), -1.0, 1.0)
    if x.shape != x_hat.shape or x.shape[1:] != self.image_shape:
      raise ValueError(f"reconstructions {x_hat.shape} and originals {x.shape} must both be "
                       f"[B, {', '.join(map(str, self.image_shape))}].")
    if "psnr" in self.metrics:
      self._sums["psnr"] += float(np.sum(np.asarray(image_lib.psnr(x_hat, x, 2.0))))
    if "ssim" in self.metrics:
      s = image_lib.ssim(x_hat, x, 2.0, win_size=self.ssim_win)
      self._sums["ssim"] += float(np.sum(np.asarray(s)))
    if self.lpips is not None:
      params, _, _, fn = self.lpips
      self._sums["lpips"] += float(np.sum(np.asarray(fn(params, x_hat, x))))
    self._count += len(x)

  def compute(self) -> dict:
    """{"psnr", "ssim", "lpips_<net>": mean over images, "num_images", settings}."""
    if self._count == 0:
      raise ValueError("no images were reconstructed, so there is nothing to measure.")
    out = {"num_images": self._count}
    for m, total in self._sums.items():
      key = f"lpips_{self.lpips[1]}" if m == "lpips" else m
      out[key] = total / self._count
    if "ssim" in self.metrics:
      out["ssim_win_size"] = self.ssim_win
    if self.lpips is not None:
      out["lpips_checksum"] = self.lpips[2]
    return out
