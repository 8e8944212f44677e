"""Computes the reference statistics of a dataset split or of any image set, once, into an .npz.

  python -m genjax.metrics.ref_stats --dataset digits --split test --extractor digits \\
      --out runs/ref/digits_test_digits.npz
  python -m genjax.metrics.ref_stats --dataset cifar10 --split train --extractor inception \\
      --weights pt_inception-2015-12-05-6726825d.pth --data_dir ~/tensorflow_datasets \\
      --out runs/ref/cifar10_train_inception.npz
  python -m genjax.metrics.ref_stats --images=path/to/folder --extractor inception_clean \\
      --weights inception_fid.npz --out runs/ref/folder_clean.npz      # PNG/JPEG, or an .npz

The file stores mu/sigma (float64), up to ``--max_features`` reference features (for KID and
precision/recall), the extractor's weights checksum and resize convention and the image shape;
``genjax.metrics.evaluate`` refuses it when any of these differ from the evaluation's. Images
are read and embedded batch by batch, so a folder of any size takes fixed memory.
"""

from __future__ import annotations

import argparse
import os
import sys

from genjax.metrics import image_files
from genjax.metrics import reference as ref_lib
from genjax.metrics.extractors import EXTRACTORS, get_extractor


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--dataset", help="a genjax.data dataset name (digits, mnist, cifar10, ...)")
  src.add_argument("--images", help="a folder of PNG/JPEG images (recursively, one size) or an "
                                    ".npz of images (uint8, or floats in [-1, 1])")
  p.add_argument("--split", default="test", choices=("train", "test"))
  p.add_argument("--extractor", default="digits", choices=EXTRACTORS)
  p.add_argument("--weights", default=None,
                 help="extractor weights (.npz; Inception also .pth). Default: the shipped "
                      "digits classifier / $GENJAX_INCEPTION_WEIGHTS")
  p.add_argument("--image_size", type=int, default=None,
                 help="--dataset only: resize the dataset's images to this side first (as the "
                      "model's training data was, e.g. 16 for digits at 16x16)")
  p.add_argument("--data_dir", default=None, help="TFDS data directory")
  p.add_argument("--max_examples", type=int, default=None, help="use only the first N images")
  p.add_argument("--max_features", type=int, default=50_000,
                 help="reference features stored for KID and precision/recall (0: none)")
  p.add_argument("--batch_size", type=int, default=None, help="images per device call")
  p.add_argument("--out", required=True, help="output .npz")
  args = p.parse_args(argv)

  extractor = get_extractor(args.extractor, args.weights)
  command = "python -m genjax.metrics.ref_stats " + " ".join(sys.argv[1:] if argv is None
                                                             else argv)
  if args.images:
    if args.image_size:
      p.error("--image_size applies to --dataset only; resize the images themselves.")
    total = image_files.count_images(args.images)
    if args.max_examples:
      total = min(total, args.max_examples)
    stats = ref_lib.compute_ref_stats_stream(
        extractor, image_files.iter_image_batches(args.images, 500, args.max_examples),
        dataset=os.path.abspath(args.images), split="all", max_features=args.max_features,
        batch_size=args.batch_size, progress=True, total=total, command=command)
  else:
    images = ref_lib.dataset_images(args.dataset, args.split, args.image_size, args.data_dir,
                                    args.max_examples)
    stats = ref_lib.compute_ref_stats(
        extractor, images, dataset=args.dataset, split=args.split,
        max_features=args.max_features, progress=True, data_dir=args.data_dir,
        command=command)
  ref_lib.save_ref_stats(args.out, stats)
  print(f"wrote {args.out}: {stats.meta['num']} images {tuple(stats.meta['image_shape'])}, "
        f"{extractor.space} features (D={extractor.feature_dim}, weights "
        f"{extractor.checksum[:12]}...)")


if __name__ == "__main__":
  main()
