"""Few-step samplers from distillation on the digits: progressive distillation and consistency
models, against their teachers at the same number of network evaluations (NFE).

    python train.py --config=configs/ddpm.py --workdir=runs/ddpm_v --config.diffusion.parameterization=v
    python train.py --config=configs/edm.py --workdir=runs/edm
    python train.py --config=configs/consistency_distill.py --workdir=runs/cd --config.consistency.teacher_workdir=runs/edm
    python train.py --config=configs/consistency_training.py --workdir=runs/ct --config.training.num_steps=3000
    python -m benchmarks.distill --v_teacher runs/ddpm_v --edm runs/edm --cd runs/cd --ct runs/ct --out runs/distill
    python -m benchmarks.distill --smoke      # a quick end-to-end check; trains its own tiny runs

Progressive distillation: the rounds ``--rounds 16,8,4,2,1`` are trained here (into
``--out/pd_<N>``; a finished round of the same config is reused,
``benchmarks.common.train_or_reuse``), each from the previous one (the first from
``--v_teacher``, which samples with 2 x 16 DDIM steps), ``--pd_steps`` updates per round. Every
student is scored at its own N (its method's sampler: DDIM on the grid ``t_i = i / N`` of the
continuous view of its schedule), the v-teacher with deterministic DDIM on the same grid at
every N (``genjax.sampling.ddim_sample``). Consistency models are scored at 1, 2 and 4 steps,
the EDM teacher with Heun at about the same NFE. Quality: the Frechet distance in the digits
classifier's feature space against the test digits (``genjax.metrics.sample_quality``),
``--num`` samples. Writes ``distill.json``, ``distill.md`` and ``distill.png`` (sample grids)
into ``--out``.

``--smoke`` trains its own stand-ins for the four runs into ``--out`` (2 steps each: a
v-prediction DDPM, an EDM model, consistency distillation from it, consistency training),
distils rounds 2 and 1 for 2 updates each and scores 16 samples per row, into
``runs/distill_smoke`` unless ``--out`` is given; its figures mean nothing.
"""

from __future__ import annotations

import json
import os

from absl import flags
import numpy as np

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_string("v_teacher", "runs/ddpm_v", "A trained v-prediction configs/ddpm.py run "
                    "(the first round's teacher).")
flags.DEFINE_string("edm", "runs/edm", "A trained configs/edm.py run (the consistency "
                    "teacher).")
flags.DEFINE_string("cd", "runs/cd", "A trained configs/consistency_distill.py run (skipped if "
                    "absent).")
flags.DEFINE_string("ct", "runs/ct", "A trained configs/consistency_training.py run (skipped "
                    "if absent).")
flags.DEFINE_list("rounds", ["16", "8", "4", "2", "1"], "Student steps N of the progressive "
                  "distillation rounds, each half the previous.")
flags.DEFINE_integer("pd_steps", 1000, "Training updates per distillation round.", lower_bound=1)
flags.DEFINE_integer("num", 500, "Samples per row.", lower_bound=2)
flags.DEFINE_integer("seed", 0, "Sampling seed.", lower_bound=0)
flags.DEFINE_string("out", None, "Output directory: tables, grids and the distillation rounds "
                    "(default runs/distill, or runs/distill_smoke with --smoke).")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: trains 2-step stand-ins for "
                  "--v_teacher, --edm, --cd and --ct in --out, rounds 2,1 of 2 updates, 16 "
                  "samples; the figures mean nothing.")


def _train_round(teacher: str, n: int, workdir: str, steps: int) -> common.TrainedRun:
  """One progressive-distillation round: N = ``n`` student steps from ``teacher``'s 2N."""
  from genjax.training import run as run_lib
  config = common.load_config("progressive_distill")
  tcfg = run_lib.load_config(os.path.join(teacher, "config.json"))
  config.model = tcfg.model
  config.diffusion = tcfg.diffusion
  config.distill.teacher_workdir = teacher
  config.distill.student_steps = n
  config.training.num_steps = steps
  return common.train_or_reuse(config, workdir)


def _smoke_runs(out: str) -> dict:
  """Tiny stand-ins for the four runs the benchmark needs, trained into ``out``."""
  fields = {"training.num_steps": 2, "training.sample_every": 0}
  paths = {k: os.path.join(out, "smoke_" + k) for k in ("v_teacher", "edm", "cd", "ct")}
  common.train_or_reuse(common.load_config(
      "ddpm", dict(fields, **{"diffusion.parameterization": "v"})), paths["v_teacher"])
  common.train_or_reuse(common.load_config("edm", fields), paths["edm"])
  common.train_or_reuse(common.load_config(
      "consistency_distill", dict(fields, **{"consistency.teacher_workdir": paths["edm"]})),
      paths["cd"])
  common.train_or_reuse(common.load_config("consistency_training", fields), paths["ct"])
  return paths


def main(argv):
  del argv
  import jax
  from genjax import sampling
  from genjax.distill.method import x0_network
  from genjax.metrics import sample_quality
  from genjax.training import run as run_lib

  rounds = common.list_flag("rounds")
  out = FLAGS.out or os.path.join("runs", "distill_smoke" if FLAGS.smoke else "distill")
  os.makedirs(out, exist_ok=True)
  paths = {"v_teacher": FLAGS.v_teacher, "edm": FLAGS.edm, "cd": FLAGS.cd, "ct": FLAGS.ct}
  num, pd_steps = FLAGS.num, FLAGS.pd_steps
  if FLAGS.smoke:
    paths = _smoke_runs(out)
    rounds, num, pd_steps = [2, 1], min(num, 16), 2
  key = jax.random.key(FLAGS.seed)
  rows, grids = [], {}
  floor = {}

  def score(name, nfe, x, **extra):
    x = np.asarray(x)
    q = sample_quality(np.clip(np.nan_to_num(x), -1, 1),  # as a PNG would be
                       baseline=not floor)
    if not floor:
      floor.update({k: q["baseline"].get(k, 0.0) for k in ("fd_digits", "fd_digits_std")})
    row = {"model": name, "nfe": nfe, "fd_digits": q["fd_digits"],
           "precision_digits": q["precision_digits"], "recall_digits": q["recall_digits"],
           **extra}
    rows.append(row)
    grids[f"{name}, NFE {nfe}"] = x[:32]
    print(json.dumps(row), flush=True)

  # Progressive distillation: the v-teacher with deterministic DDIM on the students' grid
  # t_i = i / N of the continuous view ``ns`` of its schedule.
  tconf, trun, tstate = run_lib.load_trained(paths["v_teacher"])
  spec = trun.dataset.spec
  _, _, ns, dcfg, raw_of = x0_network(tconf, spec)
  raw = raw_of(tstate.ema_params)
  eps_fn = sampling.denoiser(lambda z, t, cond: raw(z, t), ns, dcfg.parameterization)
  teacher_sample = jax.jit(
      lambda k, n: sampling.ddim_sample(eps_fn, ns, k, (num, *spec.shape), num_steps=n),
      static_argnums=1)
  for n in [2 * rounds[0]] + rounds:
    score("v-DDPM teacher, DDIM", n, teacher_sample(key, n))
  teacher = paths["v_teacher"]
  for n in rounds:
    wd = os.path.join(out, f"pd_{n}")
    trained = _train_round(teacher, n, wd, pd_steps)
    print(f"round N={n}: " + ("reused" if trained.reused
                              else f"trained in {trained.train_s:.0f}s"), flush=True)
    _, run, state = run_lib.load_trained(wd)
    score("progressive distillation student", n,
          common.sample(run.method, state.ema_params, num, seed=FLAGS.seed).x,
          round_steps=pd_steps)
    teacher = wd

  # Consistency models and their EDM teacher.
  econf, _, estate = run_lib.load_trained(paths["edm"])
  for heun_steps in (2, 3, 18):  # NFE 3, 5, 35
    method = common.method_for(econf, steps=heun_steps)
    score("EDM teacher, Heun", sampling.edm_heun_nfe(heun_steps),
          common.sample(method, estate.ema_params, num, seed=FLAGS.seed).x)
  for name, wd in (("consistency distillation", paths["cd"]),
                   ("consistency training", paths["ct"])):
    if not os.path.exists(os.path.join(wd, "config.json")):
      print(f"skipping {name}: no run in {wd}", flush=True)
      continue
    conf, _, state = run_lib.load_trained(wd)
    for steps in (1, 2, 4):
      method = common.method_for(conf, steps=steps)
      score(name, steps, common.sample(method, state.ema_params, num, seed=FLAGS.seed).x,
            train_steps=int(state.step))

  common.write_json(os.path.join(out, "distill.json"),
                    {"num": num, "floor": floor, "rows": rows, "runs": paths})
  lines = [f"fd_digits against the test digits ({num} samples; train-vs-test floor "
           f"{floor['fd_digits']:.3f})", "",
           "| model | NFE | fd_digits | precision_digits | recall_digits |",
           "|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['model']} | {r['nfe']} | {r['fd_digits']:.3f} | "
                 f"{r['precision_digits']:.3f} | {r['recall_digits']:.3f} |")
  with open(os.path.join(out, "distill.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  _plot(grids, os.path.join(out, "distill.png"))
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
  from genjax import cli
  cli.run(main)
