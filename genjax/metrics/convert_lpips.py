"""Joins LPIPS's linear layers and a torchvision backbone into one pickle-free genjax .npz.

  python -m genjax.metrics.convert_lpips --net alex \\
      --backbone alexnet-owt-7be5be79.pth \\
      --lin $(python -c "import lpips, os; print(os.path.dirname(lpips.__file__))")/weights/v0.1/alex.pth \\
      --out lpips_alex.npz

Only this command needs torch (files are read with ``torch.load(weights_only=True)``, which
refuses to run code). Any mix of these state-dict entries is understood:

  features.<i>.weight [O, I, kh, kw] / .bias   (torchvision's alexnet / vgg16)
      -> backbone/<i>/kernel [kh, kw, I, O] / bias
  net.slice<k>.<i>.weight / .bias              (an lpips.LPIPS model's state dict)
      -> backbone/<i>/kernel / bias
  lin<l>.model.1.weight [1, C, 1, 1]           (lpips/weights/v0.1/<net>.pth; or lins.<l>.)
      -> lin/<l> [C]

(``classifier.*``, ``scaling_layer.*`` and ``num_batches_tracked`` are dropped.) The result is
checked against the architecture's layer shapes before it is saved.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from typing import Any, Mapping

import numpy as np

_BACKBONE = re.compile(r"^(?:features|net\.slice\d+)\.(\d+)\.(weight|bias)$")
_LIN = re.compile(r"^lins?\.?(\d+)\.model\.1\.weight$")
_DROPPED = re.compile(r"^(classifier\.|scaling_layer\.)|num_batches_tracked$")


def expected_shapes(net: str) -> dict[str, tuple[int, ...]]:
  """{"backbone/<i>/kernel": (kh, kw, I, O), ..., "lin/<l>": (C,)} of an LPIPS network."""
  from genjax.metrics import lpips

  if net not in lpips.ARCHITECTURES:
    raise ValueError(f"unknown LPIPS backbone {net!r}; valid: {sorted(lpips.ARCHITECTURES)}.")
  shapes, c_in, out_ch = {}, 3, iter(_conv_widths(net))
  for layer in lpips.ARCHITECTURES[net]:
    if isinstance(layer, tuple):
      idx, k, _, _ = layer
      c_out = next(out_ch)
      shapes[f"backbone/{idx}/kernel"] = (k, k, c_in, c_out)
      shapes[f"backbone/{idx}/bias"] = (c_out,)
      c_in = c_out
  for l, c in enumerate(lpips.CHANNELS[net]):
    shapes[f"lin/{l}"] = (c,)
  return shapes


def _conv_widths(net: str) -> tuple[int, ...]:
  if net == "alex":
    return (64, 192, 384, 256, 256)
  return (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def convert_state_dicts(net: str, *state_dicts: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """torchvision backbone + lpips lin state dicts -> flat {"backbone/...", "lin/..."} float32.

  Raises:
    ValueError: an entry this network does not have, or a missing/misshapen one (named).
  """
  flat = {}
  for sd in state_dicts:
    for key, value in sd.items():
      a = np.asarray(value, np.float32)
      if (m := _BACKBONE.match(key)):
        idx, kind = m.groups()
        flat[f"backbone/{idx}/" + ("kernel" if kind == "weight" else "bias")] = (
            a.transpose(2, 3, 1, 0) if kind == "weight" else a)
      elif (m := _LIN.match(key)):
        flat[f"lin/{m.group(1)}"] = a.reshape(-1)
      elif _DROPPED.search(key):
        continue
      else:
        raise ValueError(f"unexpected entry {key!r}: expected torchvision's features.<i>.* or "
                         "lpips's lin<l>.model.1.weight.")
  flat = {k: np.ascontiguousarray(v) for k, v in flat.items()}
  check_params(flat, f"the {net} state dicts", net)
  return flat


def check_params(params: Mapping[str, Any], where: str = "the weights",
                 net: str | None = None) -> None:
  """Raises ValueError unless ``params`` (nested or "/"-flat) match an LPIPS network exactly."""
  from flax import traverse_util

  from genjax.metrics import lpips

  flat = dict(params) if any("/" in k for k in params) else traverse_util.flatten_dict(
      dict(params), sep="/")
  if net is None:
    net = "vgg" if "backbone/28/kernel" in flat else "alex"
  want = expected_shapes(net)
  got = {k: tuple(np.shape(v)) for k, v in flat.items()}
  missing = sorted(set(want) - set(got))
  extra = sorted(set(got) - set(want))
  bad = sorted(f"{k} {got[k]} != {want[k]}" for k in set(want) & set(got) if want[k] != got[k])
  if missing or extra or bad:
    detail = "; ".join(f"{label}: {items[:4]}{' ...' if len(items) > 4 else ''}"
                       for label, items in (("missing", missing), ("unexpected", extra),
                                            ("wrong shape", bad)) if items)
    raise ValueError(f"{where} do not match LPIPS-{net} ({detail}). {lpips.HOW_TO_GET}")


def read_pth(path: str) -> dict[str, np.ndarray]:
  """A .pth state dict as NumPy arrays (torch.load with weights_only=True)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"Reading {path!r} (a PyTorch .pth) needs torch; run this converter "
                      "where torch is installed, then use the .npz (no torch needed).") from e
  sd = torch.load(path, map_location="cpu", weights_only=True)
  if not isinstance(sd, Mapping):
    raise ValueError(f"{path!r} holds a {type(sd).__name__}, not a state dict.")
  return {k: v.detach().cpu().numpy() for k, v in sd.items() if hasattr(v, "detach")}


def convert_files(net: str, sources: list[str], dst: str) -> str:
  """Reads the .pth ``sources``, checks and writes ``dst``; returns the weights checksum."""
  from genjax.metrics import lpips
  from genjax.metrics import weights as weights_lib

  flat = convert_state_dicts(net, *[read_pth(p) for p in sources])
  shas = {}
  for p in sources:
    with open(p, "rb") as f:
      shas[os.path.basename(p)] = hashlib.sha256(f.read()).hexdigest()
  meta = {"name": lpips.NAME, "net": net, "version": "0.1", "sources_sha256": shas,
          "converter": "python -m genjax.metrics.convert_lpips"}
  return weights_lib.save_weights(dst, weights_lib.unflatten(flat), meta, compress=False)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--net", default="alex", choices=("alex", "vgg"))
  p.add_argument("--backbone", required=True,
                 help="torchvision state dict (alexnet-owt-7be5be79.pth / vgg16-397923af.pth), "
                      "or an lpips.LPIPS state dict")
  p.add_argument("--lin", default=None,
                 help="lpips's linear layers (lpips/weights/v0.1/<net>.pth); not needed when "
                      "--backbone is an lpips.LPIPS state dict that holds them")
  p.add_argument("--out", required=True, help="output .npz")
  args = p.parse_args(argv)
  checksum = convert_files(args.net, [args.backbone] + ([args.lin] if args.lin else []),
                           args.out)
  print(f"wrote {args.out} (LPIPS-{args.net}, weights checksum {checksum[:16]}...)")


if __name__ == "__main__":
  main()
