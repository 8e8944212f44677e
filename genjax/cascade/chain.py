"""Sampling a whole cascade from its last stage: every stage's grid side by side.

``sample.py`` on a cascade stage calls :func:`sample_to_files`: the chain below the stage is
restored from the workdirs its config names, the base stage samples, each super-resolution
stage samples conditioned on the stage below (with the configured augmentation level), and the
outputs are written as ``<tag>.png`` (the last stage's grid), ``<tag>_stages.png`` (each
sample's stages in one row, lowest resolution first, shown at the last stage's size, nearest
neighbour) and ``<tag>.npz`` (``samples``: the last stage; ``stage<i>``: every stage).
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np

from genjax import viz

__all__ = ["sample_to_files", "stage_rows"]


def stage_rows(stages: list, size: int) -> np.ndarray:
  """``[num, len(stages), size, size, C]``: each stage's images enlarged to ``size`` by pixel
  repetition (sizes must divide ``size``)."""
  out = []
  for x in stages:
    x = np.asarray(x)
    f = size // x.shape[1]
    if f * x.shape[1] != size:
      raise ValueError(f"stage size {x.shape[1]} does not divide {size}.")
    out.append(x.repeat(f, axis=1).repeat(f, axis=2))
  return np.stack(out, axis=1)


def sample_to_files(config, workdir: str, out: str, num: int = 64, batch: int = 256,
                    seed: int = 0, step: Optional[int] = None) -> list[str]:
  """Restores the cascade stage in ``workdir`` with the chain below it and writes its files.

  Raises:
    ValueError: ``num`` or ``batch`` is not a positive integer, or a stage below that does not
      fit (see :func:`genjax.cascade.method.build_stage`).
    CheckpointError: no intact checkpoint in a stage's workdir.
  """
  from genjax.cascade.method import build_stage
  from genjax.training import run as run_lib
  for name, value in (("num", num), ("batch", batch)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be a positive integer (samples), got {value!r}.")
  run, state = run_lib.restore(config, workdir, step)
  stage = build_stage(config, run.dataset.spec)
  b = min(batch, num)
  fn = jax.jit(lambda p, k: stage.sample_stages(p, k, b))
  key = jax.random.key(seed)
  chunks = [jax.device_get(fn(state.ema_params, jax.random.fold_in(key, i)))
            for i in range(-(-num // b))]
  stages = [np.concatenate([c[j] for c in chunks])[:num] for j in range(len(chunks[0]))]
  os.makedirs(out, exist_ok=True)
  tag = run.method.sample_tag
  png = os.path.join(out, f"{tag}.png")
  viz.save_image_grid(stages[-1][:256], png)
  size = stages[-1].shape[1]
  rows = stage_rows([s[:32] for s in stages], size)
  side = os.path.join(out, f"{tag}_stages.png")
  # Four samples per grid row, each as its stages side by side.
  viz.save_image_grid(rows.reshape((-1,) + rows.shape[2:]), side, nrow=4 * len(stages))
  npz = os.path.join(out, f"{tag}.npz")
  np.savez_compressed(npz, samples=stages[-1], step=int(jax.device_get(state.step)),
                      **{f"stage{i}": s for i, s in enumerate(stages)})
  return [png, side, npz]
