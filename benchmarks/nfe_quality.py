"""Sample quality against the number of network evaluations (NFE), for every fast sampler.

  python -m benchmarks.nfe_quality --out runs/nfe_quality                       # 2-D + digits
  python -m benchmarks.nfe_quality --datasets swiss_roll --nfes 10,20,50,100,1000 --num 2000
  python -m benchmarks.nfe_quality --datasets digits --nfes 1000 --samplers EDM-Heun --resume
  python -m benchmarks.nfe_quality --smoke                     # a quick end-to-end check

``--resume`` keeps the cells already in ``--out/nfe_quality.json`` and runs only the missing
ones; ``--samplers`` restricts the rows (comma-separated names from the table below).

For each dataset this trains (or reuses: a finished run of the same config in
``--out/<dataset>_{vp,edm}``, ``benchmarks.common.train_or_reuse``) two models with the repo's
configs: a VP score SDE (``configs/sde_2d.py`` / ``configs/sde_vp.py``) and an EDM
denoiser (``configs/edm_2d.py`` / ``configs/edm.py``), then samples at each NFE with:

  ==============  =====================================================  ==============
  row             sampler (on the VP model unless noted)                 steps for NFE n
  ==============  =====================================================  ==============
  DDPM            ancestral on a strided chain (DDIM with eta = 1)       n
  DDIM            DDIM, eta = 0                                          n
  PC              reverse diffusion + 1 Langevin step (snr 0.01)         n / 2
  ODE-Heun        probability-flow ODE, Heun                             n / 2
  DPM-Solver-2/3  multistep, logSNR steps, to t = 1e-3                   n
  DPM-Solver++    2M / 3M (data prediction), logSNR steps                n
  UniPC-2/3       UniP + UniC (bh2), logSNR steps                        n
  DEIS-2/3        tAB-DEIS, logSNR steps                                 n
  PNDM            3 pseudo Runge-Kutta + PLMS steps, leading grid       n - 9 (n >= 13)
  Euler           Karras sigmas, Euler (sigma space)                     n
  Euler-a         Karras sigmas, Euler ancestral                         n
  EDM-Heun        Karras sigmas + Heun (EDM model)                       (n + 1) / 2
  ==============  =====================================================  ==============

``--guided``: a guided column on the digits: the class-conditional DDPM of
``configs/ddpm_cfg.py`` (trained ``--guided_train_steps``) sampled with classifier-free guidance
``w = --guided_w`` at ``--guided_nfe`` by every sampler that runs on it (all but EDM-Heun's EDM
model and PC), plus DPM-Solver++(2M) with dynamic thresholding: FD and the shipped classifier's
accuracy on the asked labels, and whether the samples stayed finite.

Quality: 2-D: the sliced 2-Wasserstein distance to held-out points (256 random directions,
``SW2 = sqrt(mean_theta W2^2(theta . x, theta . y))`` on equal-size sets; the data-vs-data floor
is the first row). Digits: the Frechet distance in the shipped digits classifier's feature space
against the 270 test digits (``genjax.metrics.sample_quality``), with its real-vs-real floor.
Writes ``nfe_quality.json``, ``nfe_quality.md`` and ``nfe_quality.png`` into ``--out``.

``--smoke``: both datasets, 2 training steps per model, NFE 10 only, 64 samples, into
``runs/nfe_quality_smoke`` unless ``--out`` is given; its figures mean nothing.
"""

from __future__ import annotations

import json
import os

from absl import flags
import numpy as np

from benchmarks import common

SAMPLERS = ("DDPM", "DDIM", "PC", "ODE-Heun", "DPM-Solver-2", "DPM-Solver-3",
            "DPM-Solver++(2M)", "DPM-Solver++(3M)", "UniPC-2", "UniPC-3", "DEIS-2", "DEIS-3",
            "PNDM", "Euler", "Euler-a", "EDM-Heun")
_NEW = {"DPM-Solver++(2M)": "dpm-solver++-2m", "DPM-Solver++(3M)": "dpm-solver++-3m",
        "UniPC-2": "unipc-2", "UniPC-3": "unipc-3", "DEIS-2": "deis-2", "DEIS-3": "deis-3",
        "PNDM": "pndm", "Euler": "edm-euler", "Euler-a": "euler-ancestral"}
GUIDED_EXTRA = "DPM-Solver++(2M) + dyn. thr."

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["swiss_roll", "digits"], "Datasets: digits and/or 2-D toys "
                  "(swiss_roll, 8gaussians, moons, checkerboard).")
flags.DEFINE_list("nfes", ["10", "20", "50", "100", "1000"], "Target NFEs (the columns).")
flags.DEFINE_integer("num", 2000, "Samples per cell (2-D); digits: min(num, 1000).",
                     lower_bound=2)
flags.DEFINE_integer("batch", 1000, "Samples per jitted sampling call.", lower_bound=1)
flags.DEFINE_integer("train_steps", 5000, "Training steps of each model.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Sampling seed (and the floor's subsets).", lower_bound=0)
flags.DEFINE_string("out", None, "Output directory: tables, plot and the trained models "
                    "(default runs/nfe_quality, or runs/nfe_quality_smoke with --smoke).")
flags.DEFINE_list("samplers", list(SAMPLERS), "Rows to run: " + ", ".join(SAMPLERS) + ".")
flags.DEFINE_bool("resume", False, "Keep the cells already in --out/nfe_quality.json; run only "
                  "the others.")
flags.DEFINE_bool("guided", False, "Also measure the guided column (class-conditional digits "
                  "model, configs/ddpm_cfg.py).")
flags.DEFINE_float("guided_w", 2.0, "The guided column's classifier-free guidance weight.")
flags.DEFINE_integer("guided_nfe", 20, "The guided column's NFE.", lower_bound=1)
flags.DEFINE_integer("guided_train_steps", 2000, "Training steps of the guided model.",
                     lower_bound=1)
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: 2 training steps per model, NFE 10, "
                  "64 samples; the figures mean nothing.")


def sliced_wasserstein(x, y, key=0, num_projections=256) -> float:
  """SW2 between two equal-size point sets ``[N, D]`` (random unit directions, fixed seed)."""
  rng = np.random.default_rng(key)
  theta = rng.normal(size=(num_projections, x.shape[1]))
  theta /= np.linalg.norm(theta, axis=1, keepdims=True)
  n = min(len(x), len(y))
  px = np.sort(np.asarray(x[:n], np.float64) @ theta.T, axis=0)
  py = np.sort(np.asarray(y[:n], np.float64) @ theta.T, axis=0)
  return float(np.sqrt(np.mean((px - py) ** 2)))


def _steps_for(sampler, nfe):
  """The sampler's ``steps`` for a target NFE (None where it cannot reach it)."""
  if sampler == "PNDM":
    return nfe - 9 if nfe - 9 >= 4 else None
  if sampler in ("PC", "ODE-Heun"):
    return max(nfe // 2, 1)
  if sampler == "EDM-Heun":
    return (nfe + 1) // 2
  return nfe


def _sampling_fields(sampler, steps) -> dict:
  """The ``config.sampling`` fields of one row (genjax.sampling.SamplingConfig)."""
  if sampler == "DDPM":
    return {"sampler": "ddim", "eta": 1.0, "steps": steps}
  if sampler == "DDIM":
    return {"sampler": "ddim", "eta": 0.0, "steps": steps}
  if sampler == "PC":
    return {"sampler": "pc", "steps": steps, "snr": 0.01}
  if sampler == "ODE-Heun":
    return {"sampler": "ode-heun", "steps": steps, "denoise": False}
  if sampler == GUIDED_EXTRA:
    return {"sampler": "dpm-solver++-2m", "steps": steps, "thresholding": "dynamic"}
  if sampler in _NEW:
    return {"sampler": _NEW[sampler], "steps": steps}
  if sampler.startswith("DPM-Solver"):
    return {"sampler": f"dpm-solver-{sampler[-1]}", "steps": steps}
  return {"sampler": "edm-heun", "steps": steps}


def _real_nfe(sampler, steps) -> int:
  """Network evaluations per sample of a row at ``steps``."""
  from genjax import sampling
  if sampler == "PC":
    return sampling.pc_nfe(steps)
  if sampler == "ODE-Heun":
    return 2 * steps
  if sampler == "EDM-Heun":
    return sampling.edm_heun_nfe(steps)
  if sampler == "PNDM":
    from genjax.sampling import pndm
    return pndm.pndm_nfe(steps)
  if sampler.startswith("DPM-Solver") and sampler not in _NEW and sampler != GUIDED_EXTRA:
    return sampling.dpm_solver_nfe(steps, int(sampler[-1]), "multistep")
  return steps  # DDIM, the multistep solvers, Euler(-a): one evaluation per step


def run_dataset(dataset, num, previous, done_results, out):
  from genjax.training import run as run_lib
  points = dataset != "digits"
  base_vp, base_edm = ("sde_2d", "edm_2d") if points else ("sde_vp", "edm")
  common_fields = {"training.num_steps": FLAGS.train_steps, "training.sample_every": 0,
                   "training.ckpt_every": FLAGS.train_steps, "training.tensorboard": False}
  if points:
    common_fields["data.dataset"] = dataset
  models = {}
  for kind, cfg_name in (("vp", base_vp), ("edm", base_edm)):
    config = common.load_config(cfg_name, common_fields)
    workdir = os.path.join(out, f"{dataset}_{kind}")
    trained = common.train_or_reuse(config, workdir)
    models[kind] = (config, workdir, trained)
    how = "reused" if trained.reused else "trained"
    print(f"[{dataset}] {kind}: {how} ({workdir}, step {trained.step}, "
          f"{common.fmt(trained.train_s)} s)", flush=True)

  run0, _ = run_lib.restore(models["vp"][0], models["vp"][1])
  test = np.asarray(run0.dataset.test.get(np.arange(min(len(run0.dataset.test), num)))["x"])
  rows = []
  if points:  # SW2 of n points is noisy: the floor is the mean (std) over 5 train subsets
    rng = np.random.default_rng(FLAGS.seed)
    vals = [sliced_wasserstein(np.asarray(run0.dataset.train.get(
        np.sort(rng.choice(len(run0.dataset.train), len(test), replace=False)))["x"]), test)
            for _ in range(5)]
    floor = {"sw2": float(np.mean(vals)), "sw2_std": float(np.std(vals))}
  else:
    from genjax.metrics import sample_quality
    base = sample_quality(test, baseline=True)["baseline"]
    floor = {"fd_digits": base["fd_digits"], "fd_digits_std": base.get("fd_digits_std", 0.0)}
  print(json.dumps({"dataset": dataset, "floor": floor}), flush=True)
  for old in previous:  # with --resume: keep what an earlier run of the same cells measured
    if old["dataset"] == dataset and old["num_samples"] == num:
      # (rows written before the metric keys were named by feature space: "fd")
      rows.extend({("fd_digits" if k == "fd" else k): v for k, v in r.items()}
                  for r in old["rows"])
  done = {(r["sampler"], r["nfe_target"]) for r in rows}
  result = {"dataset": dataset, "floor": floor, "rows": rows,
            "train_s": {k: None if v[2].train_s is None else round(v[2].train_s, 1)
                        for k, v in models.items()},
            "train_steps": FLAGS.train_steps, "num_samples": num}
  states = {}
  for sampler in FLAGS.samplers:
    kind = "edm" if sampler == "EDM-Heun" else "vp"
    config, workdir, _ = models[kind]
    for nfe in [int(n) for n in FLAGS.nfes]:
      if (sampler, nfe) in done:
        print(f"[{dataset}] {sampler} NFE {nfe}: kept from {out}", flush=True)
        continue
      steps = _steps_for(sampler, nfe)
      if steps is None:
        continue
      if kind not in states:
        states[kind] = run_lib.restore(config, workdir)[1]
      s = common.sample(common.method_for(config, **_sampling_fields(sampler, steps)),
                        states[kind].ema_params, num, seed=FLAGS.seed, batch=FLAGS.batch)
      row = {"dataset": dataset, "sampler": sampler, "nfe_target": nfe,
             "nfe": _real_nfe(sampler, steps), "steps": steps, "sample_s": round(s.seconds, 2),
             "finite": s.finite}
      x = np.nan_to_num(s.x, nan=0.0, posinf=1e3, neginf=-1e3)
      if points:
        row["sw2"] = sliced_wasserstein(x, test)
      else:
        from genjax.metrics import sample_quality
        # clipped to [-1, 1] as a PNG would be (a diverged sampler's values are far outside)
        row["fd_digits"] = sample_quality(s.as_images(), baseline=False)["fd_digits"]
      rows.append(row)
      print(json.dumps(row), flush=True)
      write_outputs(done_results + [result], out)  # partial tables survive an interruption
  return result


def run_guided(out, previous):
  """The guided column: every sampler at ``--guided_nfe`` with ``w = --guided_w``."""
  from genjax.metrics import sample_quality
  from genjax.metrics.digits_classifier import load_digits_classifier
  from genjax.training import run as run_lib
  fields = {"training.num_steps": FLAGS.guided_train_steps, "training.sample_every": 0,
            "training.ckpt_every": FLAGS.guided_train_steps, "training.tensorboard": False}
  config = common.load_config("ddpm_cfg", fields)
  workdir = os.path.join(out, "digits_cfg")
  trained = common.train_or_reuse(config, workdir)
  print(f"[guided] model: {workdir} step {trained.step}", flush=True)
  run0, state = run_lib.restore(config, workdir)
  num = min(FLAGS.num, 1000)
  nc = run0.dataset.spec.num_classes
  labels = np.arange(num) % nc
  _, probs_fn = load_digits_classifier()
  rows = [r for r in previous if r.get("w") == FLAGS.guided_w and r["nfe_target"] == FLAGS.guided_nfe
          and r.get("num_samples") == num]
  done = {r["sampler"] for r in rows}
  for sampler in [s_ for s_ in SAMPLERS if s_ not in ("PC", "EDM-Heun")] + [GUIDED_EXTRA]:
    if sampler in done:
      continue
    steps = _steps_for(sampler, FLAGS.guided_nfe)
    if steps is None:
      continue
    f = _sampling_fields(sampler, steps)
    if sampler == "DDPM":
      f = {"sampler": "ddim", "eta": 1.0, "steps": steps}
    s = common.sample(common.method_for(config, guidance_scale=FLAGS.guided_w, **f),
                      state.ema_params, num, seed=FLAGS.seed, batch=FLAGS.batch)
    x = s.as_images()
    probs = np.asarray(probs_fn(x))
    row = {"sampler": sampler, "w": FLAGS.guided_w, "nfe_target": FLAGS.guided_nfe,
           "nfe": _real_nfe(sampler if sampler != GUIDED_EXTRA else "DPM-Solver++(2M)", steps),
           "finite": s.finite, "num_samples": num,
           "fd_digits": sample_quality(x, baseline=False)["fd_digits"],
           "accuracy": float(np.mean(probs.argmax(-1) == labels)),
           "sample_s": round(s.seconds, 2)}
    rows.append(row)
    print(json.dumps(row), flush=True)
    common.write_json(os.path.join(out, "nfe_quality_guided.json"), rows)
  lines = [f"**guided digits** (configs/ddpm_cfg.py trained {FLAGS.guided_train_steps} steps; "
           f"w = {FLAGS.guided_w:g}; NFE {FLAGS.guided_nfe}; {num} samples, labels cycling "
           "0-9)\n", "| sampler | fd_digits | accuracy | finite |", "|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['sampler']} | {r['fd_digits']:.3f} | {r['accuracy']:.3f} | "
                 f"{r['finite']} |")
  with open(os.path.join(out, "nfe_quality_guided.md"), "w") as fh:
    fh.write("\n".join(lines) + "\n")
  return rows


def write_outputs(results, out):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  common.write_json(os.path.join(out, "nfe_quality.json"), results)
  lines = []
  for res in results:
    metric = "sw2" if "sw2" in res["floor"] else "fd_digits"
    nfes = sorted({r["nfe_target"] for r in res["rows"]})
    spread = (f" +- {res['floor'][metric + '_std']:.3f}" if metric + "_std" in res["floor"]
              else "")
    lines.append(f"**{res['dataset']}** ({metric.upper() if metric == 'sw2' else metric}, "
                 f"lower is better; {res['num_samples']} samples; models trained "
                 f"{res['train_steps']} steps; data-vs-data floor "
                 f"{res['floor'][metric]:.3f}{spread})\n")
    lines.append("| sampler | " + " | ".join(f"NFE {n}" for n in nfes) + " |")
    lines.append("|---" * (len(nfes) + 1) + "|")
    for s in SAMPLERS:
      cells = []
      for n in nfes:
        r = [r for r in res["rows"] if r["sampler"] == s and r["nfe_target"] == n]
        cells.append("-" if not r else (f"{r[0][metric]:.3f}" + ("" if r[0]["nfe"] == n
                                                                  else f" ({r[0]['nfe']})")))
      lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("")
  lines.append("Cells show the metric at the target NFE; the actual NFE is in parentheses where "
               "it differs (EDM-Heun: 2N - 1).")
  with open(os.path.join(out, "nfe_quality.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
  for ax, res in zip(axes[0], results):
    metric = "sw2" if "sw2" in res["floor"] else "fd_digits"
    for s in SAMPLERS:
      r = sorted((r for r in res["rows"] if r["sampler"] == s), key=lambda r: r["nfe"])
      if r:
        ax.plot([q["nfe"] for q in r], [q[metric] for q in r], marker="o", label=s)
    ax.axhline(res["floor"][metric], color="k", ls="--", lw=1, label="data vs data")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("NFE")
    ax.set_ylabel(metric.upper() if metric == "sw2" else metric)
    ax.set_title(res["dataset"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "nfe_quality.png"), dpi=110)
  plt.close(fig)


def main(argv):
  del argv
  from genjax import cli
  unknown = sorted(set(FLAGS.samplers) - set(SAMPLERS))
  if unknown:
    raise cli.UsageError(f"unknown --samplers {unknown}; valid: {', '.join(SAMPLERS)}.")
  common.list_flag("nfes")  # checked before any training
  if FLAGS.smoke:
    FLAGS.train_steps, FLAGS.nfes, FLAGS.num = 2, ["10"], min(FLAGS.num, 64)
    FLAGS.guided_train_steps = 2
  out = FLAGS.out or os.path.join("runs", "nfe_quality_smoke" if FLAGS.smoke else "nfe_quality")
  previous_path = os.path.join(out, "nfe_quality.json")
  previous = []
  if FLAGS.resume and os.path.exists(previous_path):
    with open(previous_path) as f:
      previous = json.load(f)
  os.makedirs(out, exist_ok=True)
  results = []
  for ds in FLAGS.datasets:
    num = min(FLAGS.num, 1000) if ds == "digits" else FLAGS.num
    results.append(run_dataset(ds, num, previous, list(results), out))
    write_outputs(results, out)
  if FLAGS.guided:
    gpath = os.path.join(out, "nfe_quality_guided.json")
    prev = []
    if FLAGS.resume and os.path.exists(gpath):
      with open(gpath) as f:
        prev = json.load(f)
    run_guided(out, prev)
  with open(os.path.join(out, "nfe_quality.md")) as f:
    print(f.read())
  if FLAGS.guided:
    with open(os.path.join(out, "nfe_quality_guided.md")) as f:
      print(f.read())


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
