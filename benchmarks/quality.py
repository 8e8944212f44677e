"""One sample-quality table across model families, on the embedded digits (issue 5).

  python benchmarks/quality.py --budget_s 240 --num 1000 --out runs/quality

Each row trains one model family with its config at a fixed CPU time budget
(``training.time_budget_s``), samples ``--num`` digits and scores them in the digits
classifier's feature space (``genjax.metrics.sample_quality``): FD and KID against the 270
test digits, the Inception-style score of the classifier (IS, max 10), precision and recall
(k=3), plus NFE (network evaluations per sample) and the training and sampling times. The
first row is the real-against-real floor: digits-train images scored the same way (mean over
random subsets of ``--num`` images). Writes ``quality.json`` and ``quality.md`` (the table for
the README) into ``--out``.

Adding a model family is one line in ``ROWS``. Rows that share a ``workdir`` share one
training run (e.g. DDIM-50 and ancestral sampling of one DDPM).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the table.

  Attributes:
    name: what the table shows, e.g. "DDPM (DDIM-50)".
    config: config file, relative to the repo root.
    nfe: network evaluations per sample.
    overrides: dotted config fields to set, e.g. {"sampling.sampler": "ddpm"}.
    workdir: training-run name; rows with the same one train once. Default: the name.
  """

  name: str
  config: str
  nfe: int
  overrides: tuple[tuple[str, Any], ...] = ()
  workdir: Optional[str] = None


def _o(**kw) -> tuple[tuple[str, Any], ...]:
  return tuple((k.replace("__", "."), v) for k, v in kw.items())


# One line per model family (issue 5 lists: DDPM DDIM-50 and ancestral; score-SDE and fast
# samplers; VAE, beta-VAE, VQ-VAE with its prior; GANs). Families add their rows as they land.
ROWS: list[Row] = [
    Row("DDPM (DDIM-50)", "configs/ddpm.py", 50,
        _o(sampling__sampler="ddim", sampling__steps=50), workdir="ddpm"),
    Row("DDPM (ancestral, T=1000)", "configs/ddpm.py", 1000,
        _o(sampling__sampler="ddpm"), workdir="ddpm"),
]


def load_config(path: str, overrides):
  spec = importlib.util.spec_from_file_location("bench_config", os.path.join(ROOT, path))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  config = mod.get_config()
  for dotted, value in overrides:
    *parents, leaf = dotted.split(".")
    section = config
    for p in parents:
      section = section[p]
    if leaf not in section:
      raise ValueError(f"{path}: unknown config field {dotted!r}.")
    section[leaf] = value
  return config


def run_row(row: Row, args, trained: dict) -> dict:
  """Trains (once per workdir), samples and scores one row."""
  import jax
  from genjax.metrics import sample_quality
  from genjax.training import run as run_lib
  from genjax.training import sampling

  workdir = os.path.join(args.out, row.workdir or row.name.replace(" ", "_"))
  overrides = row.overrides + (("training.time_budget_s", float(args.budget_s)),
                               ("training.progress", not args.quiet),
                               ("seed", args.seed))
  config = load_config(row.config, overrides)
  if workdir not in trained:
    t0 = time.time()
    run_lib.train_and_evaluate(config, workdir)
    trained[workdir] = time.time() - t0
  run, state = run_lib.restore(config, workdir)
  t0 = time.time()
  samples = sampling.generate(run.method, state.ema_params, jax.random.key(args.seed), args.num,
                              args.batch, progress=not args.quiet)
  sample_s = time.time() - t0
  q = sample_quality(samples, baseline=False)
  return {"name": row.name, "config": row.config, "nfe": row.nfe,
          "train_steps": int(jax.device_get(state.step)), "train_s": trained[workdir],
          "sample_s": sample_s, **{k: q[k] for k in _METRICS}}


_METRICS = ("fd", "kid", "kid_std", "is", "precision", "recall")


def baseline_row(num: int) -> dict:
  """The real-against-real floor: digits-train images as if they were samples."""
  import numpy as np
  from genjax.metrics import reference, sample_quality

  train = reference.dataset_images("digits", "train")
  q = sample_quality(train[np.random.default_rng(0).permutation(len(train))[:num]])
  b = q["baseline"]
  return {"name": f"real digits (train vs test; {b['repeats']} subsets)", "config": "-",
          "nfe": 0, "train_steps": 0, "train_s": 0.0, "sample_s": 0.0,
          **{k: b[k] for k in _METRICS if k in b}, "kid_std": q["kid_std"], "fd_std": b["fd_std"]}


def to_markdown(rows: list[dict], args) -> str:
  head = ("| model | NFE | FD | KID x 1e3 | IS | precision | recall | train s (steps) | "
          "sample s |\n|---|---|---|---|---|---|---|---|---|")
  lines = [head]
  for r in rows:
    fd = f"{r['fd']:.3f}" + (f" ± {r['fd_std']:.3f}" if "fd_std" in r else "")
    lines.append(
        f"| {r['name']} | {r['nfe']} | {fd} | {1e3 * r['kid']:.2f} ± {1e3 * r['kid_std']:.2f} | "
        f"{r['is']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | "
        f"{r['train_s']:.0f} ({r['train_steps']}) | {r['sample_s']:.1f} |")
  return (f"Digits, {args.num} samples per model, {args.budget_s:.0f} s CPU training budget; "
          "features of the genjax digits classifier; reference: the 270 test digits.\n\n"
          + "\n".join(lines) + "\n")


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--budget_s", type=float, default=240.0, help="training seconds per model")
  p.add_argument("--num", type=int, default=1000, help="samples per model")
  p.add_argument("--batch", type=int, default=500, help="sampling batch")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--only", default="", help="comma-separated substrings of row names to run")
  p.add_argument("--out", default=os.path.join(ROOT, "runs", "quality"))
  p.add_argument("--quiet", action="store_true")
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)

  rows = [baseline_row(args.num)]
  trained: dict = {}
  selected = [r for r in ROWS
              if not args.only or any(s in r.name for s in args.only.split(","))]
  for row in selected:
    rows.append(run_row(row, args, trained))
    print(json.dumps(rows[-1]), flush=True)
  table = to_markdown(rows, args)
  with open(os.path.join(args.out, "quality.json"), "w") as f:
    json.dump({"budget_s": args.budget_s, "num": args.num, "seed": args.seed, "rows": rows}, f,
              indent=2)
  with open(os.path.join(args.out, "quality.md"), "w") as f:
    f.write(table)
  print(table)


if __name__ == "__main__":
  main()
