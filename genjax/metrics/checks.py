"""One input check at the front of every metric and feature extractor.

Every way of handing images to a metric wrongly that used to give a silent, plausible-looking
number is refused here with a one-line ValueError that names the problem and the fix:

* the dtype: integer images (uint8 PNG data) instead of floats in [-1, 1];
* the value range: floats in [0, 255] or in [0, 1] instead of [-1, 1];
* the layout: NCHW instead of NHWC;
* finiteness: NaN or Inf pixels or features;
* minimum sample counts per metric (FD needs N >= 2, KID subset_size <= N, IS N >= splits,
  precision/recall N > k).

Values are checked on the host and only on concrete arrays: inside ``jit``/``grad`` (LPIPS as a
training loss) the shape and dtype checks still run, the value checks are skipped.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

# Images within [-RANGE_SLACK, RANGE_SLACK] are accepted and clipped to [-1, 1] by the
# extractors (what writing a PNG does). Values beyond it are another convention, not overshoot.
RANGE_SLACK = 1.5
# A set with no negative value whose darkest pixel is below this (and brightest above 0.5) is
# taken for images in [0, 1].
ZERO_ONE_DARK = 0.02


def is_concrete(x) -> bool:
  """True unless ``x`` is a JAX tracer (values unknown inside jit/vmap/grad)."""
  return not isinstance(x, jax.core.Tracer)


def nchw_hint(shape, channels: Sequence[int]) -> str:
  if len(shape) >= 3 and shape[-3] in channels and shape[-1] not in channels:
    return ("; this looks like NCHW (channels first): pass NHWC, "
            "x.transpose(0, 2, 3, 1)")
  return ""


def check_images(x, where: str, *, channels: Sequence[int] = (1, 3), min_count: int = 1,
                 check_range: bool = True):
  """Validates a batch of images in genjax's convention: [N, H, W, C] floats in [-1, 1].

  Args:
    x: the images (NumPy or JAX).
    where: the function or metric, named in the messages.
    channels: allowed channel counts C.
    min_count: the least N the caller can work with.
    check_range: check the value range (False for metrics that take their own ``data_range``).

  Returns:
    ``x`` unchanged.

  Raises:
    ValueError: one line naming the problem and the fix.
  """
  shape = tuple(np.shape(x))
  if len(shape) != 4:
    hint = ""
    if len(shape) == 3:
      hint = ("; add a batch axis (x[None])" if shape[-1] in channels
              else "; add a channel axis (x[..., None])")
    raise ValueError(f"{where} takes images [N, H, W, C], got shape {shape}{hint}.")
  if shape[-1] not in channels:
    hint = nchw_hint(shape, channels) or (
        "; convert RGB samples to grayscale first" if tuple(channels) == (1,)
        else f"; convert them to {tuple(channels)} channels")
    raise ValueError(f"{where} takes NHWC images with C in {tuple(channels)}, got shape "
                     f"{shape}{hint}.")
  if shape[0] < min_count:
    raise ValueError(f"{where} needs at least {min_count} image{'s' * (min_count != 1)}, got "
                     f"{shape[0]}: there is nothing to evaluate.")
  dtype = np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
  if dtype == np.uint8:
    raise ValueError(f"{where}: these look like uint8 images in [0, 255]; pass images in "
                     "[-1, 1] (x.astype(np.float32) / 127.5 - 1).")
  if not np.issubdtype(dtype, np.floating) and dtype != jax.numpy.bfloat16:
    raise ValueError(f"{where} takes floating-point images in [-1, 1], got dtype {dtype}.")
  if not is_concrete(x) or shape[0] == 0:
    return x
  a = np.asarray(x)
  if not np.all(np.isfinite(a)):
    raise ValueError(f"{where}: the images contain NaN or Inf (the sampler diverged?); there "
                     "is nothing meaningful to measure.")
  if check_range:
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0.0 and hi > RANGE_SLACK:
      raise ValueError(f"{where}: values span [{lo:g}, {hi:g}]: these look like uint8 images "
                       "in [0, 255]; pass images in [-1, 1] (x / 127.5 - 1).")
    if lo < -RANGE_SLACK or hi > RANGE_SLACK:
      raise ValueError(f"{where}: values span [{lo:g}, {hi:g}], far outside [-1, 1]; pass "
                       "images in [-1, 1] (np.clip the samples if they only overshoot).")
    # Images in [0, 1]: nothing negative, yet dark (~0) and bright (>= 0.5) pixels both
    # present. (A constant or mid-gray-only set in [-1, 1] is not flagged.)
    if lo >= 0.0 and lo <= ZERO_ONE_DARK and hi >= 0.5 and a.size > 1:
      raise ValueError(f"{where}: every value lies in [{lo:g}, {hi:g}]: these look like "
                       "images in [0, 1]; pass images in [-1, 1] (2 * x - 1).")
  return x


def check_image_pair(a, b, where: str, data_range) -> None:
  """Checks two image batches for a full-reference metric (PSNR, SSIM): NHWC, one shape.

  The range check compares the images' span with ``data_range``: uint8 images measured with
  ``data_range=2`` (or [-1, 1] images with 255) give a meaningless number.
  """
  if tuple(a.shape) != tuple(b.shape):
    raise ValueError(f"{where}: the two images must have one shape, got {tuple(a.shape)} and "
                     f"{tuple(b.shape)}.")
  if a.ndim < 3:
    raise ValueError(f"{where} takes images [..., H, W, C], got shape {tuple(a.shape)}; add a "
                     "channel axis for grayscale (x[..., None]).")
  hint = nchw_hint(tuple(a.shape), (1, 3))
  if hint and a.shape[-1] > 4:
    raise ValueError(f"{where} takes images [..., H, W, C], got shape {tuple(a.shape)}{hint}.")
  if not (is_concrete(a) and is_concrete(b) and is_concrete(data_range)):
    return
  an, bn = np.asarray(a), np.asarray(b)
  if not (np.all(np.isfinite(an)) and np.all(np.isfinite(bn))):
    raise ValueError(f"{where}: the images contain NaN or Inf.")
  span = max(float(an.max()), float(bn.max())) - min(float(an.min()), float(bn.min()))
  if span > 1.01 * float(data_range):
    raise ValueError(f"{where}: the images span {span:g}, more than data_range={data_range}; "
                     "pass the range of their pixel scale (2.0 for [-1, 1], 255 for uint8).")


def check_features(x, where: str, min_count: int = 1) -> np.ndarray:
  """[N, D] finite features with N >= ``min_count``; returns them as a NumPy array."""
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{where} must be a [N, D] array of features, got shape {x.shape}; "
                     "flatten each example's features first (x.reshape(len(x), -1)).")
  if x.shape[0] < min_count:
    raise ValueError(f"{where} needs at least {min_count} examples, got {x.shape[0]}.")
  if not np.issubdtype(x.dtype, np.number):
    raise ValueError(f"{where} must be numeric, got dtype {x.dtype}.")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{where} contain NaN or Inf; check the samples and the extractor.")
  return x
