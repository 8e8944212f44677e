"""Few-step samplers from distillation on the digits: progressive distillation and consistency
models, against their teachers at the same number of network evaluations (NFE).

    python train.py --config=configs/ddpm.py --workdir=runs/ddpm_v --config.diffusion.parameterization=v
    python train.py --config=configs/edm.py --workdir=runs/edm
    python train.py --config=configs/consistency_distill.py --workdir=runs/cd --config.consistency.teacher_workdir=runs/edm
    python train.py --config=configs/consistency_training.py --workdir=runs/ct --config.training.num_steps=3000
    python benchmarks/distill.py --v_teacher runs/ddpm_v --edm runs/edm --cd runs/cd --ct runs/ct --out runs/distill

Progressive distillation: the rounds ``--rounds 16,8,4,2,1`` are trained here (into
``--out/pd_<N>``, skipped when present), each from the previous one (the first from
``--v_teacher``, which samples with 2 x 16 DDIM steps), ``--pd_steps`` updates per round. Every
student is scored at its own N, the v-teacher with DDIM on the same grid at every N.
Consistency models are scored at 1, 2 and 4 steps, the EDM teacher with Heun at about the same
NFE. Quality: the Frechet distance in the digits classifier's feature space against the test
digits (``genjax.metrics.sample_quality``), ``--num`` samples. Writes ``distill.json``,
``distill.md`` and ``distill.png`` (sample grids) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _train_round(teacher, n, workdir, steps):
  from configs import progressive_distill
  from genjax.training import run as run_lib
  from genjax.training.checkpoint import Checkpointer
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=1, async_save=False)
  done = ckpt.latest_step() is not None
  ckpt.close()
  if done:
    return None
  config = progressive_distill.get_config()
  tcfg = run_lib.load_config(os.path.join(teacher, "config.json"))
  config.model = tcfg.model
  config.diffusion = tcfg.diffusion
  config.distill.teacher_workdir = teacher
  config.distill.student_steps = n
  config.training.num_steps = steps
  config.training.progress = False
  t0 = time.time()
  run_lib.train_and_evaluate(config, workdir)
  return time.time() - t0


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--v_teacher", default="runs/ddpm_v")
  p.add_argument("--edm", default="runs/edm")
  p.add_argument("--cd", default="runs/cd")
  p.add_argument("--ct", default="runs/ct")
  p.add_argument("--rounds", default="16,8,4,2,1")
  p.add_argument("--pd_steps", type=int, default=1000)
  p.add_argument("--num", type=int, default=500)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="runs/distill")
  args = p.parse_args()
  import jax
  from genjax.distill import progressive as pd
  from genjax.distill.method import x0_network
  from genjax.metrics import sample_quality
  from genjax.training import run as run_lib
  from genjax.training.sampling import generate

  os.makedirs(args.out, exist_ok=True)
  key = jax.random.key(args.seed)
  rows, grids = [], {}
  floor = {}

  def score(name, nfe, x, **extra):
    q = sample_quality(np.clip(np.asarray(x), -1, 1), baseline=not floor)  # as a PNG would be
    floor.update({k: q["baseline"].get(k, 0.0) for k in ("fd_digits", "fd_digits_std")}
                 if not floor else {})
    row = {"model": name, "nfe": nfe, "fd_digits": q["fd_digits"],
           "precision_digits": q["precision_digits"], "recall_digits": q["recall_digits"],
           **extra}
    rows.append(row)
    grids[f"{name}, NFE {nfe}"] = np.asarray(x)[:32]
    print(json.dumps(row), flush=True)

  # Progressive distillation.
  tconf, trun, tstate = run_lib.load_trained(args.v_teacher)
  spec = trun.dataset.spec
  _, x0_of, ns, _ = x0_network(tconf, spec)
  teacher_sample = jax.jit(lambda k, n: pd.pd_sample(x0_of(tstate.ema_params), ns, k,
                                                     (args.num, *spec.shape), n),
                           static_argnums=1)
  rounds = [int(n) for n in args.rounds.split(",")]
  for n in [2 * rounds[0]] + rounds:
    score("v-DDPM teacher, DDIM", n, np.clip(teacher_sample(key, n), -1, 1))
  teacher = args.v_teacher
  for n in rounds:
    wd = os.path.join(args.out, f"pd_{n}")
    secs = _train_round(teacher, n, wd, args.pd_steps)
    print(f"round N={n}: " + ("reused" if secs is None else f"trained in {secs:.0f}s"), flush=True)
    _, run, state = run_lib.load_trained(wd)
    score("progressive distillation student", n,
          generate(run.method, state.ema_params, key, args.num, args.num, progress=False),
          round_steps=args.pd_steps)
    teacher = wd

  # Consistency models and their EDM teacher.
  econf, erun, estate = run_lib.load_trained(args.edm)
  for heun_steps in (2, 3, 18):  # NFE 3, 5, 35
    c = econf.copy_and_resolve_references()
    c.sampling.steps = heun_steps
    m = run_lib.build_run(c).method
    score("EDM teacher, Heun", 2 * heun_steps - 1,
          generate(m, estate.ema_params, key, args.num, args.num, progress=False))
  for name, wd in (("consistency distillation", args.cd), ("consistency training", args.ct)):
    if not os.path.exists(os.path.join(wd, "config.json")):
      print(f"skipping {name}: no run in {wd}", flush=True)
      continue
    conf, run, state = run_lib.load_trained(wd)
    for steps in (1, 2, 4):
      c = conf.copy_and_resolve_references()
      c.sampling.steps = steps
      m = run_lib.build_run(c).method
      score(name, steps, generate(m, state.ema_params, key, args.num, args.num, progress=False),
            train_steps=int(state.step))

  with open(os.path.join(args.out, "distill.json"), "w") as f:
    json.dump({"num": args.num, "floor": floor, "rows": rows}, f, indent=1)
  lines = [f"fd_digits against the test digits ({args.num} samples; train-vs-test floor "
           f"{floor['fd_digits']:.3f})", "",
           "| model | NFE | fd_digits | precision_digits | recall_digits |",
           "|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['model']} | {r['nfe']} | {r['fd_digits']:.3f} | "
                 f"{r['precision_digits']:.3f} | {r['recall_digits']:.3f} |")
  with open(os.path.join(args.out, "distill.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  _plot(grids, os.path.join(args.out, "distill.png"))
  print("\n".join(lines))


def _plot(grids, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from genjax import viz
  cols = 6
  rows = (len(grids) + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.6 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, (title, imgs) in zip(axes.ravel(), grids.items()):
    viz.show_grid(ax, imgs, nrow=8, title=title.replace(", NFE", "\nNFE"))
    ax.title.set_fontsize(7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  main()
