"""Reading published checkpoints without running their code.

* ``.safetensors`` files through the ``safetensors`` package's numpy API (no torch); bfloat16
  tensors, which numpy cannot name, are read from the file's own header and byte ranges as
  ``ml_dtypes.bfloat16`` and returned as float32.
* PyTorch ``.bin`` / ``.pt`` / ``.ckpt`` / ``.pth`` state dicts only when torch is installed, and
  always with ``torch.load(..., weights_only=True)``: the restricted unpickler that loads
  tensors and plain containers and refuses to run code.
* A diffusers/transformers model folder: ``config.json`` plus ``diffusion_pytorch_model`` /
  ``model`` weights, single-file or sharded (``*.index.json``).

Every problem with a file (missing, truncated, not a checkpoint, of another architecture) is a
:class:`PretrainedError`, one line naming the file and what is wrong, raised before any
conversion work.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Optional

import numpy as np

__all__ = ["PretrainedError", "WEIGHT_NAMES", "find_weights", "load_state_dict",
           "read_config", "read_model_folder", "read_safetensors", "read_torch"]

StateDict = dict[str, np.ndarray]

TORCH_SUFFIXES = (".bin", ".pt", ".ckpt", ".pth")
# File names diffusers / transformers save, in order of preference (safetensors first).
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors",
                "diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json",
                "diffusion_pytorch_model.bin", "pytorch_model.bin",
                "diffusion_pytorch_model.bin.index.json", "pytorch_model.bin.index.json")


class PretrainedError(ValueError):
  """A checkpoint that cannot be read or converted; the message is one line that names the file
  or key and what is wrong."""


def _st_dtype(name: str):
  if name == "BF16":
    import ml_dtypes
    return ml_dtypes.bfloat16
  table = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
  if name not in table:
    raise PretrainedError(f"unsupported safetensors dtype {name}")
  return table[name]


def _safetensors_header(path: str) -> tuple[dict, int]:
  """The JSON header and the offset where the data starts; checks that the file is complete."""
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    head = f.read(8)
    if len(head) < 8:
      raise PretrainedError(f"{path}: not a safetensors file (only {size} bytes).")
    (n,) = struct.unpack("<Q", head)
    if n > size - 8:
      raise PretrainedError(f"{path}: truncated safetensors file (the header says {n} bytes "
                            f"of metadata, the file has {size - 8}); download it again.")
    try:
      header = json.loads(f.read(n))
    except ValueError:
      raise PretrainedError(f"{path}: not a safetensors file (its header is not JSON).") from None
  end = max([v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"] or [0])
  if 8 + n + end > size:
    raise PretrainedError(f"{path}: truncated safetensors file ({size} bytes, its header needs "
                          f"{8 + n + end}); download it again.")
  return header, 8 + n


def read_safetensors(path: str) -> StateDict:
  """All tensors of a ``.safetensors`` file as numpy arrays (bfloat16 as float32); no torch.

  Raises:
    PretrainedError: a missing, truncated or malformed file.
  """
  if not os.path.isfile(path):
    raise PretrainedError(f"{path}: no such file.")
  header, start = _safetensors_header(path)
  from safetensors import safe_open
  out = {}
  try:
    with safe_open(path, framework="np") as f:
      for key in f.keys():
        if header[key]["dtype"] == "BF16":  # numpy has no bfloat16: read the bytes ourselves
          lo, hi = header[key]["data_offsets"]
          with open(path, "rb") as raw:
            raw.seek(start + lo)
            buf = raw.read(hi - lo)
          out[key] = np.frombuffer(buf, _st_dtype("BF16")).reshape(
              header[key]["shape"]).astype(np.float32)
        else:
          out[key] = f.get_tensor(key)
  except PretrainedError:
    raise
  except Exception as e:  # safetensors' own checks: overlapping offsets, bad dtype, ...
    raise PretrainedError(f"{path}: not a valid safetensors file ({' '.join(str(e).split())})."
                          ) from None
  return out


def read_torch(path: str) -> StateDict:
  """A PyTorch state dict (``.bin``/``.pt``/``.ckpt``/``.pth``) as numpy arrays, read with
  ``torch.load(weights_only=True)`` (never a full unpickle). A checkpoint that wraps the state
  dict (``{"state_dict": ...}``, ``{"model": ...}``, DiT's ``{"ema": ...}``) is unwrapped.

  Raises:
    PretrainedError: torch is not installed, or the file is not a weights-only state dict.
  """
  if not os.path.isfile(path):
    raise PretrainedError(f"{path}: no such file.")
  try:
    import torch
  except ImportError:
    raise PretrainedError(f"{path}: reading PyTorch checkpoints needs torch (pip install torch), "
                          "or convert the file to .safetensors on a machine that has it."
                          ) from None
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:
    raise PretrainedError(f"{path}: cannot be read as a weights-only PyTorch checkpoint "
                          f"({' '.join(str(e).split())[:200]}).") from None
  for wrapper in ("ema", "state_dict", "model", "module"):
    if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
      obj = obj[wrapper]
      break
  if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
    raise PretrainedError(f"{path}: not a state dict of tensors.")
  return {k: (v.float() if v.dtype == torch.bfloat16 else v).detach().cpu().numpy()
          for k, v in obj.items()}


def _read_index(path: str) -> StateDict:
  """A sharded checkpoint: its ``*.index.json`` ``weight_map`` names each tensor's shard."""
  try:
    with open(path) as f:
      weight_map = json.load(f)["weight_map"]
  except (OSError, ValueError, KeyError, TypeError):
    raise PretrainedError(f"{path}: not a sharded-checkpoint index (no weight_map).") from None
  folder = os.path.dirname(path)
  out: StateDict = {}
  for shard in sorted(set(weight_map.values())):
    part = load_state_dict(os.path.join(folder, shard))
    want = {k for k, v in weight_map.items() if v == shard}
    missing = sorted(want - set(part))
    if missing:
      raise PretrainedError(f"{os.path.join(folder, shard)}: lacks {missing[0]!r}, which "
                            f"{os.path.basename(path)} places there.")
    out.update(part)
  return out


def load_state_dict(path: str) -> StateDict:
  """The tensors of one weights file (``.safetensors``, a torch state dict, or a sharded
  ``*.index.json``), as numpy arrays keyed by their names in the file."""
  if path.endswith(".index.json"):
    return _read_index(path)
  if path.endswith(".safetensors"):
    return read_safetensors(path)
  if path.endswith(TORCH_SUFFIXES):
    return read_torch(path)
  raise PretrainedError(f"{path}: unknown weights format; expected .safetensors, "
                        f"{', '.join(TORCH_SUFFIXES)} or a sharded *.index.json.")


def find_weights(folder: str) -> str:
  """The weights file of a diffusers/transformers model folder (safetensors preferred)."""
  for name in WEIGHT_NAMES:
    p = os.path.join(folder, name)
    if os.path.isfile(p):
      return p
  raise PretrainedError(f"{folder}: no weights file (expected one of {', '.join(WEIGHT_NAMES)}).")


def read_config(folder_or_file: str) -> dict[str, Any]:
  """A model folder's ``config.json`` (or the given JSON file) as a dict."""
  path = (os.path.join(folder_or_file, "config.json") if os.path.isdir(folder_or_file)
          else folder_or_file)
  if not os.path.isfile(path):
    raise PretrainedError(f"{os.path.dirname(path) or path}: no config.json (a diffusers or "
                          "transformers model folder has one beside its weights).")
  try:
    with open(path) as f:
      cfg = json.load(f)
  except ValueError as e:
    raise PretrainedError(f"{path}: not valid JSON ({e}).") from None
  if not isinstance(cfg, dict):
    raise PretrainedError(f"{path}: expected a JSON object.")
  return cfg


def read_model_folder(folder: str, class_names: Optional[tuple[str, ...]] = None
                      ) -> tuple[dict[str, Any], StateDict]:
  """``(config, state_dict)`` of a diffusers/transformers model folder.

  Args:
    folder: the folder with ``config.json`` and the weights.
    class_names: the accepted ``_class_name`` (diffusers) or ``architectures`` (transformers)
      values; a folder of another architecture is refused naming both.
  """
  if not os.path.isdir(folder):
    raise PretrainedError(f"{folder}: no such folder.")
  cfg = read_config(folder)
  if class_names is not None:
    have = cfg.get("_class_name") or (cfg.get("architectures") or [None])[0]
    if have not in class_names:
      raise PretrainedError(f"{folder}: holds a {have or 'model of unknown class'}, not a "
                            f"{' or '.join(class_names)}.")
  return cfg, load_state_dict(find_weights(folder))
