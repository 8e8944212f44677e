"""Mode coverage of every GAN loss on the ring of 8 Gaussians, over several seeds.

  python -m benchmarks.gan_modes --steps 3000 --seeds 0,1,2 --out runs/gan_modes
  python -m benchmarks.gan_modes --smoke      # a quick end-to-end check

Trains ``configs/gan_2d.py`` once per (loss, seed) (a finished run of the same config in
``--out/<loss>_seed<seed>`` is reused, ``benchmarks.common.train_or_reuse``) and scores
``gan.mode_eval_samples`` EMA generator samples with the 8-Gaussians protocol of VEEGAN /
Unrolled GAN (``genjax.gan.diagnostics.mode_statistics``): a sample is high quality when it lies
within 3 standard deviations of a mode's centre, and a mode is covered when it holds at least
20% of its fair share of the samples. WGAN-GP takes k = 5 critic steps per generator step
(Gulrajani et al.), the others k = 1. Writes ``gan_modes.json``, ``gan_modes.md`` (mean ± std
over seeds) and ``gan_modes.png`` (each run's samples over the data) into ``--out``.

``--smoke``: every loss, seed 0, 2 generator steps, into ``runs/gan_modes_smoke`` unless
``--out`` is given; its figures mean nothing.
"""

from __future__ import annotations

import json
import os

from absl import flags
import numpy as np

from benchmarks import common

LOSSES = ("saturating", "non_saturating", "lsgan", "hinge", "wgan_gp")

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 3000, "Generator steps per run.", lower_bound=1)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds.")
flags.DEFINE_list("losses", list(LOSSES), "Losses to train: " + ", ".join(LOSSES) + ".")
flags.DEFINE_string("out", None, "Output directory: tables, plot and one workdir per run "
                    "(default runs/gan_modes, or runs/gan_modes_smoke with --smoke).")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: seed 0, 2 generator steps; the "
                  "figures mean nothing.")


def train_and_score(loss: str, seed: int, steps: int, out: str):
  """Trains (or reuses) one run; returns ``(row, samples, data)``."""
  import jax
  from genjax.training import run as run_lib
  config = common.load_config("gan_2d", {
      "gan.loss": loss, "gan.k": 5 if loss == "wgan_gp" else 1, "seed": seed,
      "training.num_steps": steps, "training.tensorboard": False,
      "training.sample_every": 0, "training.ckpt_every": steps})
  workdir = os.path.join(out, f"{loss}_seed{seed}")
  trained = common.train_or_reuse(config, workdir)
  run, state = run_lib.restore(config, workdir)
  stats = run.method.evaluators["modes"](state, run.dataset, jax.random.key(seed), 0)
  samples = common.sample(run.method, state.ema_params, 1000, seed=seed).x
  data = np.asarray(run.dataset.test.get(np.arange(1000))["x"])
  row = {"loss": loss, "seed": seed, "k": config.gan.k, "steps": steps,
         "train_s": None if trained.train_s is None else round(trained.train_s, 1), **stats}
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


def main(argv) -> None:
  del argv
  from genjax import cli
  unknown = sorted(set(FLAGS.losses) - set(LOSSES))
  if unknown:
    raise cli.UsageError(f"unknown --losses {unknown}; valid: {', '.join(LOSSES)}.")
  seeds = common.list_flag("seeds")
  steps = FLAGS.steps
  if FLAGS.smoke:
    seeds, steps = [0], 2
  out = FLAGS.out or os.path.join("runs", "gan_modes_smoke" if FLAGS.smoke else "gan_modes")
  os.makedirs(out, exist_ok=True)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from genjax import viz

  losses = FLAGS.losses
  fig, axes = plt.subplots(len(seeds), len(losses), figsize=(2.6 * len(losses), 2.6 * len(seeds)),
                           squeeze=False)
  rows = []
  for j, loss in enumerate(losses):
    for i, seed in enumerate(seeds):
      row, samples, data = train_and_score(loss, seed, steps, out)
      rows.append(row)
      print(json.dumps(row), flush=True)
      viz.points_2d(axes[i, j], samples, data,
                    title=f"{loss} s{seed}: {row['modes_covered']}/8, hq {row['hq_fraction']:.2f}")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "gan_modes.png"), dpi=80)
  table = (f"8 Gaussians, {steps} generator steps per run, seeds "
           f"{','.join(str(s) for s in seeds)}; mean ± std over seeds, then each run's "
           "modes/high-quality fraction.\n\n" + summarize(rows))
  common.write_json(os.path.join(out, "gan_modes.json"),
                    {"steps": steps, "seeds": seeds, "rows": rows})
  with open(os.path.join(out, "gan_modes.md"), "w") as f:
    f.write(table)
  print(table)


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
