"""Converts pytorch-fid's Inception weights (.pth) into a pickle-free genjax .npz.

  python -m genjax.metrics.convert_inception pt_inception-2015-12-05-6726825d.pth inception_fid.npz

Only this command (and loading a .pth directly) needs torch, and it reads the file with
``torch.load(weights_only=True)``, which refuses to run code. The mapping from torchvision's
names is mechanical:

  <module>.conv.weight [O, I, kh, kw]  -> params/<module>/conv/kernel [kh, kw, I, O]
  <module>.bn.weight / .bn.bias        -> params/<module>/bn/scale / bias
  <module>.bn.running_mean / _var      -> batch_stats/<module>/bn/mean / var
  fc.weight [1008, 2048] / fc.bias     -> params/fc/kernel [2048, 1008] / bias

(``num_batches_tracked`` and any ``AuxLogits.*`` entries are dropped; the FID network has no
aux classifier.) The result is checked against the Flax network's shapes before it is saved.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from typing import Any, Mapping

import numpy as np

_BN = {"weight": ("params", "scale"), "bias": ("params", "bias"),
       "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def read_pth(path: str) -> dict[str, np.ndarray]:
  """The state dict of a .pth file as NumPy arrays (torch.load with weights_only=True)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"Reading {path!r} (a PyTorch .pth) needs torch, which is not installed. Convert it "
        "once where torch is available: python -m genjax.metrics.convert_inception IN.pth "
        "OUT.npz, then use the .npz (no torch needed).") from e
  sd = torch.load(path, map_location="cpu", weights_only=True)
  if not isinstance(sd, Mapping):
    raise ValueError(f"{path!r} holds a {type(sd).__name__}, not a state dict.")
  return {k: v.detach().cpu().numpy() for k, v in sd.items() if hasattr(v, "detach")}


def convert_state_dict(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """torchvision/pytorch-fid Inception state dict -> flat {"params/...", "batch_stats/..."}.

  Args:
    state_dict: name -> array (NumPy or anything ``np.asarray`` takes).

  Returns:
    Flat dict of float32 arrays keyed by "/"-joined Flax paths.

  Raises:
    ValueError: a key this network does not have (with the key named).
  """
  flat = {}
  for key, value in state_dict.items():
    parts = key.split(".")
    if parts[-1] == "num_batches_tracked" or parts[0] == "AuxLogits":
      continue
    a = np.asarray(value, dtype=np.float32)
    if parts == ["fc", "weight"]:
      flat["params/fc/kernel"] = a.T
    elif parts == ["fc", "bias"]:
      flat["params/fc/bias"] = a
    elif len(parts) >= 3 and parts[-2] == "conv" and parts[-1] == "weight":
      flat["params/" + "/".join(parts[:-1]) + "/kernel"] = a.transpose(2, 3, 1, 0)
    elif len(parts) >= 3 and parts[-2] == "bn" and parts[-1] in _BN:
      coll, name = _BN[parts[-1]]
      flat[f"{coll}/" + "/".join(parts[:-1]) + f"/{name}"] = a
    else:
      raise ValueError(f"unexpected entry {key!r} in the state dict: is this pytorch-fid's "
                       "Inception (pt_inception-2015-12-05-6726825d.pth)?")
  return {k: np.ascontiguousarray(v) for k, v in flat.items()}


def check_variables(variables: Mapping[str, Any], where: str = "the weights") -> None:
  """Raises ValueError unless ``variables`` has exactly the Flax network's names and shapes."""
  from flax import traverse_util

  from genjax.metrics import inception

  want = traverse_util.flatten_dict(inception.variable_shapes(), sep="/")
  got = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(dict(variables),
                                                                        sep="/").items()}
  missing = sorted(set(want) - set(got))
  extra = sorted(set(got) - set(want))
  bad = sorted(k for k in set(want) & set(got) if want[k] != got[k])
  if missing or extra or bad:
    detail = "; ".join(
        f"{label}: {items[:4]}{' ...' if len(items) > 4 else ''}"
        for label, items in (("missing", missing), ("unexpected", extra),
                             ("wrong shape", [f"{k} {got[k]} != {want[k]}" for k in bad]))
        if items)
    raise ValueError(f"{where} do not match pytorch-fid's FID Inception-v3 ({detail}). "
                     f"{inception.HOW_TO_GET}")


def convert_file(src: str, dst: str) -> str:
  """Reads ``src`` (.pth), checks and writes ``dst`` (.npz); returns the weights checksum."""
  from genjax.metrics import inception
  from genjax.metrics import weights as weights_lib

  flat = convert_state_dict(read_pth(src))
  variables = weights_lib.unflatten(flat)
  check_variables(variables, src)
  with open(src, "rb") as f:
    src_sha = hashlib.sha256(f.read()).hexdigest()
  meta = {"name": inception.NAME, "source": os.path.basename(src), "source_sha256": src_sha,
          "converter": "python -m genjax.metrics.convert_inception",
          "resize": inception.RESIZE_CONVENTION}
  return weights_lib.save_weights(dst, variables, meta, compress=False)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("src", help="pytorch-fid weights, e.g. pt_inception-2015-12-05-6726825d.pth")
  p.add_argument("dst", help="output .npz")
  args = p.parse_args(argv)
  checksum = convert_file(args.src, args.dst)
  print(f"wrote {args.dst} (weights checksum {checksum[:16]}...)")


if __name__ == "__main__":
  main()
