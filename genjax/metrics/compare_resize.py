"""How much pytorch-fid's and clean-fid's resizes to 299x299 differ, on real images.

  python -m genjax.metrics.compare_resize                       # the built-in image sets
  python -m genjax.metrics.compare_resize --images DIR_OR_NPZ   # your images
  python -m genjax.metrics.compare_resize --weights pt_inception-2015-12-05-6726825d.pth

Both resizes start from the same 8-bit images (:func:`genjax.metrics.inception.preprocess`):
pytorch-fid's bilinear interpolation without antialiasing, and clean-fid's PIL bicubic, which
widens its kernel when it shrinks (antialiasing). For each image set the table gives, in 8-bit
levels (0-255), the mean and 99th percentile of |pytorch-fid - clean| over all pixels, and each
resize's RMSE against PIL's Lanczos resampling of the same image (a high-quality reference:
the aliasing a resize adds shows up there). With ``--weights`` (the official Inception) it also
gives the FID between the images and themselves, embedded once with each resize.

The built-in sets: the 270 test digits (8x8, upsampled), the photographs that scikit-image
ships (astronaut, camera, coffee, ..., 300 to 1411 pixels, downsampled), and the same
photographs first reduced to 64x64 with an antialiased filter (like a 64x64 model's samples,
upsampled).
"""

from __future__ import annotations

import argparse
from typing import Optional

import numpy as np

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "immunohistochemistry", "moon",
          "grass", "gravel", "brick", "retina", "hubble_deep_field", "coins", "clock")


def _photos() -> list[np.ndarray]:
  """scikit-image's bundled photographs as uint8 RGB [H, W, 3] (skipping any not bundled)."""
  import skimage.data

  out = []
  for name in PHOTOS:
    try:
      a = np.asarray(getattr(skimage.data, name)())
    except Exception:  # pylint: disable=broad-except  (an image that would need a download)
      continue
    if a.ndim == 2:
      a = np.repeat(a[..., None], 3, axis=-1)
    out.append(a[..., :3].astype(np.uint8))
  return out


def _pil_resize(u8: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
  """Per-channel float32 PIL resize of [H, W, C] uint8 (no re-quantization)."""
  from PIL import Image
  return np.stack([np.asarray(Image.fromarray(u8[..., c].astype(np.float32), mode="F")
                              .resize(size, resample=resample))
                   for c in range(u8.shape[-1])], axis=-1)


def _both(u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """[H, W, C] uint8 -> (pytorch-fid, clean) resizes to 299x299 in [0, 255], float64."""
  import jax.numpy as jnp

  from genjax.metrics import inception
  x = jnp.asarray(u8[None].astype(np.float32) / 127.5 - 1.0)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  a = (np.asarray(inception.preprocess(x, resize="pytorch-fid"), np.float64)[0] + 1) * 127.5
  b = np.asarray(inception.preprocess(x, resize="clean"), np.float64)[0] * 128 + 128
  return a, b


def compare(images: list[np.ndarray]) -> dict:
  """Pixel statistics of the two resizes over a list of [H, W, C] uint8 images."""
  from PIL import Image
  diffs, rmse_pt, rmse_clean = [], [], []
  for u8 in images:
    a, b = _both(u8)
    ref = _pil_resize(u8 if u8.shape[-1] == 3 else np.repeat(u8, 3, -1), (299, 299),
                      Image.LANCZOS).clip(0, 255)
    diffs.append(np.abs(a - b).ravel())
    rmse_pt.append(np.sqrt(np.mean((a - ref) ** 2)))
    rmse_clean.append(np.sqrt(np.mean((b - ref) ** 2)))
  d = np.concatenate(diffs)
  return {"num": len(images), "size": f"{images[0].shape[0]}x{images[0].shape[1]}"
          if len({im.shape for im in images}) == 1 else "various",
          "mean_abs_diff": float(d.mean()), "p99_abs_diff": float(np.percentile(d, 99)),
          "rmse_vs_lanczos_pytorch_fid": float(np.mean(rmse_pt)),
          "rmse_vs_lanczos_clean": float(np.mean(rmse_clean))}


def fid_between_resizes(images: np.ndarray, weights: str) -> float:
  """FID between one image set embedded with each resize ([N, H, W, C] in [-1, 1])."""
  from genjax import metrics
  fa, _ = metrics.extract(metrics.get_extractor("inception", weights), images)
  fb, _ = metrics.extract(metrics.get_extractor("inception_clean", weights), images)
  return metrics.frechet_distance(*metrics.feature_statistics(fa),
                                  *metrics.feature_statistics(fb))


def main(argv: Optional[list[str]] = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--images", default=None, help="a folder of PNG/JPEG images or an .npz")
  p.add_argument("--max_images", type=int, default=1000)
  p.add_argument("--weights", default=None, help="Inception weights: also the FID between "
                 "the two resizes (needs at least 2 images per set)")
  args = p.parse_args(argv)

  from PIL import Image

  from genjax.metrics import image_files
  from genjax.metrics import reference as ref_lib
  sets = {}
  if args.images:
    x = np.concatenate(list(image_files.iter_image_batches(args.images, 500, args.max_images)))
    sets[args.images] = np.round((x + 1) * 127.5).astype(np.uint8)
  else:
    digits = ref_lib.dataset_images("digits", "test")
    sets["digits test, 8x8 (upsampled)"] = np.round((digits + 1) * 127.5).astype(np.uint8)
    photos = _photos()
    sets["scikit-image photographs, 300-1411 px (downsampled)"] = photos
    sets["the same photographs at 64x64 (upsampled)"] = [
        np.round(_pil_resize(ph, (64, 64), Image.LANCZOS).clip(0, 255)).astype(np.uint8)
        for ph in photos]
  print("| images | N | size | mean abs diff | 99th pct abs diff | RMSE vs Lanczos, "
        "pytorch-fid | RMSE vs Lanczos, clean |" + (" FID(pytorch-fid, clean) |"
                                                    if args.weights else ""))
  print("|---|---|---|---|---|---|---|" + ("---|" if args.weights else ""))
  for name, images in sets.items():
    images = list(images)[:args.max_images]
    r = compare(images)
    row = (f"| {name} | {r['num']} | {r['size']} | {r['mean_abs_diff']:.2f} | "
           f"{r['p99_abs_diff']:.2f} | {r['rmse_vs_lanczos_pytorch_fid']:.2f} | "
           f"{r['rmse_vs_lanczos_clean']:.2f} |")
    if args.weights:
      if len({im.shape for im in images}) == 1 and len(images) > 1:
        x = np.stack(images).astype(np.float32) / 127.5 - 1.0
        row += f" {fid_between_resizes(x, args.weights):.3f} |"
      else:
        row += " - |"
    print(row, flush=True)


if __name__ == "__main__":
  main()
