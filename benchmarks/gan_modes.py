"""Mode coverage of every GAN loss on the ring of 8 Gaussians, over several seeds (issue 4).

  python benchmarks/gan_modes.py --steps 3000 --seeds 0,1,2 --out runs/gan_modes

Trains ``configs/gan_2d.py`` once per (loss, seed) and scores ``gan.mode_eval_samples`` EMA
generator samples with the 8-Gaussians protocol of VEEGAN / Unrolled GAN
(``genjax.gan.diagnostics.mode_statistics``): a sample is high quality when it lies within 3
standard deviations of a mode's centre, and a mode is covered when it holds at least 20% of its
fair share of the samples. WGAN-GP takes k = 5 critic steps per generator step (Gulrajani et al.),
the others k = 1. Writes ``gan_modes.json``, ``gan_modes.md`` (mean ± std over seeds) and
``gan_modes.png`` (each run's samples over the data) into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

LOSSES = ("saturating", "non_saturating", "lsgan", "hinge", "wgan_gp")


def train_and_score(loss: str, seed: int, args) -> tuple[dict, np.ndarray, np.ndarray]:
  import jax
  from genjax.training import run as run_lib
  from genjax.training import sampling
  config = importlib.import_module("configs.gan_2d").get_config()
  config.gan.loss = loss
  config.gan.k = 5 if loss == "wgan_gp" else 1
  config.seed = seed
  config.training.num_steps = args.steps
  config.training.progress = False
  config.training.tensorboard = False
  config.training.sample_every = 0
  config.training.ckpt_every = args.steps
  workdir = os.path.join(args.out, f"{loss}_seed{seed}")
  t0 = time.time()
  run_lib.train_and_evaluate(config, workdir)
  secs = time.time() - t0
  run, state = run_lib.restore(config, workdir)
  stats = run.method.evaluators["modes"](state, run.dataset, jax.random.key(seed), 0)
  samples = sampling.generate(run.method, state.ema_params, jax.random.key(seed), 1000, 1000,
                              progress=False)
  data = np.asarray(run.dataset.test.get(np.arange(1000))["x"])
  row = {"loss": loss, "seed": seed, "k": config.gan.k, "steps": args.steps,
         "train_s": round(secs, 1), **stats}
  return row, samples, data


def summarize(rows: list[dict]) -> str:
  lines = ["| loss | k | modes covered (of 8) | high-quality fraction | runs |",
           "|---|---|---|---|---|"]
  for loss in LOSSES:
    rs = [r for r in rows if r["loss"] == loss]
    if not rs:
      continue
    m = np.array([r["modes_covered"] for r in rs], float)
    h = np.array([r["hq_fraction"] for r in rs], float)
    lines.append(f"| {loss} | {rs[0]['k']} | {m.mean():.1f} ± {m.std():.1f} | "
                 f"{h.mean():.3f} ± {h.std():.3f} | "
                 + ", ".join(f"{int(r['modes_covered'])}/{r['hq_fraction']:.2f}" for r in rs)
                 + " |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--steps", type=int, default=3000, help="generator steps per run")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--losses", default=",".join(LOSSES))
  p.add_argument("--out", default=os.path.join(ROOT, "runs", "gan_modes"))
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from genjax import viz

  losses = args.losses.split(",")
  seeds = [int(s) for s in args.seeds.split(",")]
  fig, axes = plt.subplots(len(seeds), len(losses), figsize=(2.6 * len(losses), 2.6 * len(seeds)),
                           squeeze=False)
  rows = []
  for j, loss in enumerate(losses):
    for i, seed in enumerate(seeds):
      row, samples, data = train_and_score(loss, seed, args)
      rows.append(row)
      print(json.dumps(row), flush=True)
      viz.points_2d(axes[i, j], samples, data,
                    title=f"{loss} s{seed}: {row['modes_covered']}/8, hq {row['hq_fraction']:.2f}")
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "gan_modes.png"), dpi=80)
  table = (f"8 Gaussians, {args.steps} generator steps per run, seeds {args.seeds}; mean ± std "
           "over seeds, then each run's modes/high-quality fraction.\n\n" + summarize(rows))
  with open(os.path.join(args.out, "gan_modes.json"), "w") as f:
    json.dump({"steps": args.steps, "seeds": seeds, "rows": rows}, f, indent=2)
  with open(os.path.join(args.out, "gan_modes.md"), "w") as f:
    f.write(table)
  print(table)


if __name__ == "__main__":
  main()
