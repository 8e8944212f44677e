"""Text-to-image from the command line: ``sample.py --prompt=... / --prompts_file=...``.

Any method whose ``modes`` include ``"text"`` takes captions as tokens,
``method.sample(params, key, num, inputs={"text": int32 [num, L]})``; this module reads the
prompts, tokenizes them with :func:`genjax.text.tokenize` at the length the model was trained
with (:func:`text_max_len`), samples ``per_prompt`` images of each and writes a grid with one
column per prompt and the prompt under its column.
"""

from __future__ import annotations

import os
import textwrap
from typing import Optional, Sequence

import numpy as np

CELL = 96       # pixels per image in the grid
CAPTION_H = 44  # pixels of caption under each column


def read_prompts(prompts: Optional[Sequence[str]], prompts_file: Optional[str]) -> list[str]:
  """The prompts of ``--prompt`` (repeatable) and ``--prompts_file`` (one per line; blank lines
  and lines starting with ``#`` skipped).

  Raises:
    ValueError: no prompt, a missing file, or an empty prompt.
  """
  out = [p for p in (prompts or [])]
  if prompts_file:
    if not os.path.isfile(prompts_file):
      raise ValueError(f"--prompts_file {prompts_file!r} does not exist.")
    with open(prompts_file, encoding="utf-8") as f:
      out += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
  if not out:
    raise ValueError("No prompt given: pass --prompt='a red circle' (repeatable) or "
                     "--prompts_file=FILE.")
  empty = [i for i, p in enumerate(out) if not p.strip()]
  if empty:
    raise ValueError(f"Prompt {empty[0] + 1} is empty; give a caption (the empty caption is the "
                     "unconditional branch of guidance).")
  return out


def text_max_len(config) -> int:
  """The token length of the model's captions: the data's ``config.data.text_len`` (the
  ``batch["text"]`` rows it trained on), else ``config.text.max_len``, else the tokenizer's
  default."""
  if "data" in config and config.data.get("text_len", None):
    return int(config.data.text_len)
  if "text" in config and config.text.get("max_len", None):
    return int(config.text.max_len)
  from genjax import text
  return int(getattr(text, "DEFAULT_MAX_LEN", 32))


def save_prompt_grid(samples: np.ndarray, prompts: Sequence[str], path: str) -> str:
  """Writes ``samples`` [P * n, H, W, C] in [-1, 1] (grouped by prompt) as a grid of ``P``
  columns of ``n`` images, each prompt written under its column."""
  from PIL import Image, ImageDraw, ImageFont
  p = len(prompts)
  n = len(samples) // p
  x = np.clip((np.asarray(samples, np.float32) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  gap = 4
  width = p * (CELL + gap) + gap
  height = n * (CELL + gap) + gap + CAPTION_H
  canvas = Image.new("RGB", (width, height), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  font = ImageFont.load_default()
  for j in range(p):
    for i in range(n):
      img = Image.fromarray(x[j * n + i]).resize((CELL, CELL), Image.NEAREST)
      canvas.paste(img, (gap + j * (CELL + gap), gap + i * (CELL + gap)))
    lines = textwrap.wrap(prompts[j], width=max(8, CELL // 6))[:4]
    for k, line in enumerate(lines):
      draw.text((gap + j * (CELL + gap), n * (CELL + gap) + gap + 10 * k), line, fill=(0, 0, 0),
                font=font)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  canvas.save(path)
  return path


def prompt_grid_to_files(config, workdir: str, out: str, prompts: Sequence[str],
                         per_prompt: int = 4, batch: int = 256, seed: int = 0,
                         step: Optional[int] = None) -> list[str]:
  """Restores a text-conditioned run, samples ``per_prompt`` images of each prompt and writes
  ``<tag>_prompts.png`` (the captioned grid) and ``<tag>_prompts.npz`` (samples, prompts,
  tokens).

  Raises:
    ValueError: bad prompts, or a method that does not take text.
  """
  import jax

  from genjax.text import tokenize
  from genjax.training import run as run_lib
  from genjax.training.sampling import generate
  if not isinstance(per_prompt, (int, np.integer)) or per_prompt < 1:
    raise ValueError(f"--num_per_prompt must be a positive integer, got {per_prompt!r}.")
  prompts = list(prompts)
  tokens = np.asarray(tokenize(prompts, text_max_len(config)), np.int32)
  run, state = run_lib.restore(config, workdir, step)
  if "text" not in run.method.modes:
    raise ValueError(f"--prompt needs a text-conditioned model; method {run.method.name!r} "
                     f"takes {', '.join(run.method.modes)} (e.g. configs/ldm_shapes.py).")
  text = np.repeat(tokens, per_prompt, axis=0)
  samples = generate(run.method, state.ema_params, jax.random.key(seed), len(text), batch,
                     inputs={"text": text}, xla_cpu_options=run.train.xla_cpu_options)
  os.makedirs(out, exist_ok=True)
  stem = os.path.join(out, f"{run.method.sample_tag}_prompts")
  png = save_prompt_grid(samples, prompts, stem + ".png")
  np.savez_compressed(stem + ".npz", samples=samples, prompts=np.asarray(prompts), tokens=tokens,
                      per_prompt=per_prompt, step=int(jax.device_get(state.step)))
  return [png, stem + ".npz"]
