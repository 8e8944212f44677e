"""Pickle-free .npz weight files for the feature extractors, with a content checksum.

A file holds one array per parameter, keyed by its "/"-joined path in the Flax params tree,
plus ``__metadata__``: a 0-d unicode array with a JSON object (what made the file, its test
accuracy, ...). It is read with ``np.load(allow_pickle=False)``, so loading never executes
code (DESIGN.md item 12).

The checksum identifies the *weights*, not the file: it hashes each parameter's name, dtype,
shape and bytes in sorted order, so re-saving or recompressing the same weights keeps it.
Reference statistics record it, and are refused when features come from other weights.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any, Mapping

import numpy as np
from flax import traverse_util

METADATA_KEY = "__metadata__"


def flatten_params(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """{"a": {"b": w}} -> {"a/b": np.asarray(w)}."""
  flat = traverse_util.flatten_dict(params, sep="/")
  return {k: np.asarray(v) for k, v in flat.items()}


def unflatten(flat: Mapping[str, np.ndarray]) -> dict:
  """{"a/b": w} -> {"a": {"b": w}}, the inverse of :func:`flatten_params`."""
  return traverse_util.unflatten_dict(dict(flat), sep="/")


def params_checksum(flat: Mapping[str, np.ndarray]) -> str:
  """sha256 (hex) of the sorted (name, dtype, shape, bytes) of every parameter."""
  h = hashlib.sha256()
  for k in sorted(flat):
    a = np.ascontiguousarray(flat[k])
    h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def save_weights(path: str, params: Mapping[str, Any], metadata: Mapping[str, Any],
                 compress: bool = True) -> str:
  """Writes params and JSON metadata to ``path`` (.npz); returns the weights checksum.

  ``compress=False`` suits large float weights, which barely compress and save 10x faster.
  """
  flat = flatten_params(params)
  if METADATA_KEY in flat:
    raise ValueError(f"a parameter may not be named {METADATA_KEY!r}.")
  checksum = params_checksum(flat)
  meta = dict(metadata, checksum=checksum)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.npz"
  (np.savez_compressed if compress else np.savez)(tmp, **flat, **{METADATA_KEY: np.array(json.dumps(meta, sort_keys=True))})
  os.replace(tmp, path)
  return checksum


def load_weights(path: str, *, what: str = "weights", how_to_get: str = ""
                 ) -> tuple[dict, dict, str]:
  """Reads a file written by :func:`save_weights`.

  Args:
    path: the .npz file.
    what: name of the network, for error messages.
    how_to_get: a sentence telling the user how to obtain the file, for error messages.

  Returns:
    (params tree of np arrays, metadata dict, checksum of the loaded weights).

  Raises:
    FileNotFoundError: the file does not exist (the message says how to get it).
    ValueError: the file is not a weights .npz.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"{what} file not found: {path!r}. {how_to_get}".strip())
  try:
    with np.load(path, allow_pickle=False) as z:
      flat = {k: z[k] for k in z.files}
  except Exception as e:  # zipfile.BadZipFile, ValueError (pickled object arrays), OSError.
    raise ValueError(f"{path!r} is not a readable {what} .npz file ({e}). {how_to_get}") from e
  meta = json.loads(str(flat.pop(METADATA_KEY))) if METADATA_KEY in flat else {}
  checksum = params_checksum(flat)
  return unflatten(flat), meta, checksum


def cached_loader(default_path: str, *, what: str, how_to_get):
  """``load(path=None) -> (params, metadata, checksum)`` for a shipped weights file: reads
  ``path`` (default ``default_path``) with :func:`load_weights`, cached per absolute path and
  modification time, so a rewritten file is read again.

  Args:
    default_path: the shipped file.
    what: name of the network, for error messages.
    how_to_get: ``path -> sentence`` telling the user how to recreate the file.
  """

  @functools.lru_cache(maxsize=4)
  def cached(path: str, mtime: float) -> tuple[dict, dict, str]:
    del mtime  # Part of the cache key only.
    return load_weights(path, what=what, how_to_get=how_to_get(path))

  def load(path: str | None = None) -> tuple[dict, dict, str]:
    path = os.path.abspath(path or default_path)
    return cached(path, os.path.getmtime(path) if os.path.exists(path) else -1.0)

  load.cache_clear = cached.cache_clear
  return load
