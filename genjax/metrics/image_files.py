"""Images from a folder (PNG/JPEG) or an .npz, streamed in batches in genjax's convention.

Used by ``python -m genjax.metrics.ref_stats --images=DIR`` (reference statistics of any image
set) and by ``genjax.metrics.evaluate_images``. The files are read in sorted order, decoded
with Pillow, and converted to [B, H, W, C] float32 in [-1, 1] (``x / 127.5 - 1`` of the 8-bit
values, exact), one batch at a time, so a folder of any size is read in fixed memory.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Keys tried, in order, for the image array of an .npz: genjax's sample.py writes "samples";
# guided-diffusion's reference batches use "arr_0".
NPZ_KEYS = ("samples", "images", "x", "arr_0")


def list_image_files(folder: str) -> list[str]:
  """Sorted paths of the PNG/JPEG files under ``folder`` (recursively)."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"image folder not found: {folder!r}.")
  out = []
  for root, _, files in os.walk(folder):
    out += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
  if not out:
    raise ValueError(f"{folder!r} holds no {'/'.join(IMAGE_EXTENSIONS)} files.")
  return sorted(out)


def _read_file(path: str, channels: int) -> np.ndarray:
  from PIL import Image

  with Image.open(path) as im:
    im = im.convert("L" if channels == 1 else "RGB")
    a = np.asarray(im, np.uint8)
  return a[..., None] if a.ndim == 2 else a


def read_image(path: str, channels: int) -> np.ndarray:
  """One PNG/JPEG file as ``[H, W, channels]`` float32 in [-1, 1] (grey or RGB)."""
  return _u8_to_unit(_read_file(path, channels))


def _u8_to_unit(a: np.ndarray) -> np.ndarray:
  return a.astype(np.float32) / 127.5 - 1.0


def _npz_array(path: str) -> np.ndarray:
  with np.load(path, allow_pickle=False) as z:
    for k in NPZ_KEYS:
      if k in z.files:
        return z[k]
    raise ValueError(f"{path!r} has no image array; expected one of the keys {NPZ_KEYS}, "
                     f"found {z.files}.")


def count_images(source: str) -> int:
  """Number of images in a folder or .npz."""
  if os.path.isdir(source):
    return len(list_image_files(source))
  return int(_npz_array(source).shape[0])


def iter_image_batches(source: str, batch_size: int = 500,
                       max_images: Optional[int] = None) -> Iterator[np.ndarray]:
  """Yields [B, H, W, C] float32 batches in [-1, 1] from a folder or an .npz of images.

  A folder's images must share one size; they are read as grayscale when the first one is
  grayscale ("L"), else as RGB. An .npz holds [N, H, W, C] (or [N, H, W]) images under one of
  ``NPZ_KEYS``: uint8 in [0, 255] (converted) or floats in [-1, 1] (as sample.py writes them).

  Args:
    source: a folder or an .npz file.
    batch_size: images per batch.
    max_images: read at most this many.

  Raises:
    FileNotFoundError / ValueError: no such source, no images, mixed sizes (naming a file).
  """
  if os.path.isdir(source):
    files = list_image_files(source)[:max_images]
    from PIL import Image
    with Image.open(files[0]) as im:
      channels = 1 if im.mode in ("L", "1", "I;16", "I", "F") else 3
    first = _read_file(files[0], channels)
    for i in range(0, len(files), batch_size):
      batch = []
      for f in files[i:i + batch_size]:
        a = _read_file(f, channels)
        if a.shape != first.shape:
          raise ValueError(f"{f!r} is {a.shape[1]}x{a.shape[0]}, but {files[0]!r} is "
                           f"{first.shape[1]}x{first.shape[0]}; resize the folder's images "
                           "to one size first.")
        batch.append(a)
      yield _u8_to_unit(np.stack(batch))
    return
  if not os.path.exists(source):
    raise FileNotFoundError(f"images not found: {source!r} (a folder of PNG/JPEG files or an "
                            ".npz of images).")
  arr = _npz_array(source)
  if arr.ndim == 3:
    arr = arr[..., None]
  if arr.ndim != 4:
    raise ValueError(f"{source!r}: expected images [N, H, W, C], got shape {arr.shape}.")
  arr = arr[:max_images]
  for i in range(0, len(arr), batch_size):
    b = arr[i:i + batch_size]
    yield _u8_to_unit(b) if b.dtype == np.uint8 else b.astype(np.float32)
