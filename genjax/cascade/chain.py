"""Sampling a whole cascade from its last stage: every stage's grid side by side.

``sample.py`` on a cascade stage calls :func:`sample_to_files`: the chain below the stage is
restored from the workdirs its config names, the base stage samples, each super-resolution
stage samples conditioned on the stage below (with the configured augmentation level), and the
outputs are written as ``<tag>.png`` (the last stage's grid), ``<tag>_stages.png`` (each
sample's stages in one row, lowest resolution first, shown at the last stage's size, nearest
neighbour) and ``<tag>.npz`` (``samples``: the last stage; ``stage<i>``: every stage).

With prompts (``sample.py --prompt=... / --prompts_file=...`` on a text-conditioned stage,
Imagen), :func:`prompts_to_files` conditions every text stage of the chain on each prompt and
writes ``<tag>_prompts.png`` (the last stage, one column per prompt, the prompt under it),
``<tag>_prompts_stages.png`` (each sample's stages side by side, lowest resolution first, one
block of rows per prompt with the prompt beside it) and ``<tag>_prompts.npz``.
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np

from genjax import viz

__all__ = ["prompts_to_files", "sample_to_files", "save_stage_prompt_grid", "stage_rows"]


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


def save_stage_prompt_grid(stages: list, prompts, path: str, cell: int = 64) -> str:
  """Each sample's stages side by side (lowest first, each enlarged to ``cell`` pixels, nearest
  neighbour), the samples of each prompt in consecutive rows with the prompt at their right.

  Args:
    stages: ``[stage0 [P * n, h0, w0, C], ...]`` in [-1, 1], grouped by prompt.
    prompts: the ``P`` prompts.
    path: the PNG to write.
  """
  import textwrap

  from PIL import Image, ImageDraw, ImageFont
  p = len(prompts)
  n = len(stages[0]) // p
  gap, text_w = 4, 200
  k = len(stages)
  canvas = Image.new("RGB", (gap + k * (cell + gap) + text_w, gap + p * n * (cell + gap) + p * gap),
                     (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  font = ImageFont.load_default()
  y = gap
  for j in range(p):
    top = y
    for i in range(n):
      for s, x in enumerate(stages):
        img = np.clip((np.asarray(x[j * n + i], np.float32) + 1) * 127.5, 0, 255).round()
        img = img.astype(np.uint8)
        if img.shape[-1] == 1:
          img = np.repeat(img, 3, axis=-1)
        pil = Image.fromarray(img).resize((cell, cell), Image.NEAREST)
        canvas.paste(pil, (gap + s * (cell + gap), y))
      y += cell + gap
    for r, line in enumerate(textwrap.wrap(str(prompts[j]), width=30)[:6]):
      draw.text((gap + k * (cell + gap) + 4, top + 12 * r), line, fill=(0, 0, 0), font=font)
    y += gap
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  canvas.save(path)
  return path


def prompts_to_files(config, workdir: str, out: str, prompts, per_prompt: int = 4,
                     batch: int = 256, seed: int = 0, step: Optional[int] = None) -> list[str]:
  """Restores a text-conditioned cascade stage with its chain, samples ``per_prompt`` images of
  each prompt through every stage and writes the files of the module docstring.

  Raises:
    ValueError: a stage without text conditioning, a bad ``per_prompt`` / ``batch``, or a
      prompt outside the shapes vocabulary.
  """
  from genjax.cascade.method import build_stage
  from genjax.latent.prompts import save_prompt_grid, text_max_len
  from genjax.text import tokenize
  from genjax.training import run as run_lib
  for name, value in (("num_per_prompt", per_prompt), ("batch", batch)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"--{name} must be a positive integer, got {value!r}.")
  if config.get("cascade", {}).get("text_encoder", "none") == "none":
    raise ValueError("--prompt needs a text-conditioned cascade stage (cascade.text_encoder: "
                     "clip, weights or joint; e.g. configs/imagen_shapes_sr.py).")
  prompts = list(prompts)
  tokens = np.asarray(tokenize(prompts, text_max_len(config)), np.int32)  # checked before work
  run, state = run_lib.restore(config, workdir, step)
  stage = build_stage(config, run.dataset.spec)
  text = np.repeat(tokens, per_prompt, axis=0)
  num = len(text)
  b = min(batch, num)
  fn = jax.jit(lambda p, k, t: stage.sample_stages(p, k, b, text=t))
  key = jax.random.key(seed)
  padded = np.resize(text, (-(-num // b) * b, text.shape[1]))
  chunks = [jax.device_get(fn(state.ema_params, jax.random.fold_in(key, i),
                              padded[i * b:(i + 1) * b])) for i in range(-(-num // b))]
  stages = [np.concatenate([c[j] for c in chunks])[:num] for j in range(len(chunks[0]))]
  os.makedirs(out, exist_ok=True)
  stem = os.path.join(out, f"{run.method.sample_tag}_prompts")
  png = save_prompt_grid(stages[-1], prompts, stem + ".png")
  side = save_stage_prompt_grid(stages, prompts, stem + "_stages.png")
  np.savez_compressed(stem + ".npz", samples=stages[-1], prompts=np.asarray(prompts),
                      tokens=tokens, per_prompt=per_prompt,
                      step=int(jax.device_get(state.step)),
                      **{f"stage{i}": s for i, s in enumerate(stages)})
  return [png, side, stem + ".npz"]
