"""Sample quality against the number of network evaluations (NFE), for every fast sampler.

  python benchmarks/nfe_quality.py --out runs/nfe_quality                       # 2-D + digits
  python benchmarks/nfe_quality.py --datasets swiss_roll --nfes 10,20,50,100,1000 --num 2000
  python benchmarks/nfe_quality.py --datasets digits --nfes 1000 --samplers EDM-Heun --resume

``--resume`` keeps the cells already in ``--out/nfe_quality.json`` and runs only the missing
ones; ``--samplers`` restricts the rows (comma-separated names from the table below).

For each dataset this trains (or reuses, from ``--out/<dataset>_{vp,edm}``) two models with the
repo's configs: a VP score SDE (``configs/sde_2d.py`` / ``configs/sde_vp.py``) and an EDM
denoiser (``configs/edm_2d.py`` / ``configs/edm.py``), then samples at each NFE with:

  ==============  =====================================================  ==============
  row             sampler (on the VP model unless noted)                 steps for NFE n
  ==============  =====================================================  ==============
  DDPM            ancestral on a strided chain (DDIM with eta = 1)       n
  DDIM            DDIM, eta = 0                                          n
  PC              reverse diffusion + 1 Langevin step (snr 0.01)         n / 2
  ODE-Heun        probability-flow ODE, Heun                             n / 2
  DPM-Solver-2/3  multistep, logSNR steps, to t = 1e-3                   n
  EDM-Heun        Karras sigmas + Heun (EDM model)                       (n + 1) / 2
  ==============  =====================================================  ==============

Quality: 2-D: the sliced 2-Wasserstein distance to held-out points (256 random directions,
``SW2 = sqrt(mean_theta W2^2(theta . x, theta . y))`` on equal-size sets; the data-vs-data floor
is the first row). Digits: the Frechet distance in the shipped digits classifier's feature space
against the 270 test digits (``genjax.metrics.sample_quality``), with its real-vs-real floor.
Writes ``nfe_quality.json``, ``nfe_quality.md`` and ``nfe_quality.png`` into ``--out``.
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

SAMPLERS = ("DDPM", "DDIM", "PC", "ODE-Heun", "DPM-Solver-2", "DPM-Solver-3", "EDM-Heun")


def sliced_wasserstein(x, y, key=0, num_projections=256) -> float:
  """SW2 between two equal-size point sets ``[N, D]`` (random unit directions, fixed seed)."""
  rng = np.random.default_rng(key)
  theta = rng.normal(size=(num_projections, x.shape[1]))
  theta /= np.linalg.norm(theta, axis=1, keepdims=True)
  n = min(len(x), len(y))
  px = np.sort(np.asarray(x[:n], np.float64) @ theta.T, axis=0)
  py = np.sort(np.asarray(y[:n], np.float64) @ theta.T, axis=0)
  return float(np.sqrt(np.mean((px - py) ** 2)))


def _config(name, overrides):
  config = importlib.import_module(f"configs.{name}").get_config()
  for k, v in overrides.items():
    sec, field = k.split(".")
    config[sec][field] = v
  return config


def _train(config, workdir):
  from genjax.training import run as run_lib
  from genjax.training.checkpoint import Checkpointer
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=1, async_save=False)
  done = ckpt.latest_step() == config.training.num_steps
  ckpt.close()
  t0 = time.time()
  if not done:
    run_lib.train_and_evaluate(config, workdir)
  return time.time() - t0


def _steps_for(sampler, nfe):
  if sampler in ("PC", "ODE-Heun"):
    return max(nfe // 2, 1)
  if sampler == "EDM-Heun":
    return (nfe + 1) // 2
  return nfe


def _sampler_overrides(sampler, steps):
  if sampler == "DDPM":
    return {"sampling.sampler": "ddim", "sampling.eta": 1.0, "sampling.steps": steps}
  if sampler == "DDIM":
    return {"sampling.sampler": "ddim", "sampling.eta": 0.0, "sampling.steps": steps}
  if sampler == "PC":
    return {"sampling.sampler": "pc", "sampling.steps": steps, "sampling.snr": 0.01}
  if sampler == "ODE-Heun":
    return {"sampling.sampler": "ode-heun", "sampling.steps": steps, "sampling.denoise": False}
  if sampler.startswith("DPM-Solver"):
    return {"sampling.sampler": f"dpm-solver-{sampler[-1]}", "sampling.steps": steps}
  return {"sampling.sampler": "edm-heun", "sampling.steps": steps}


def _real_nfe(sampler, steps):
  from genjax.score import edm_heun_nfe, pc_nfe
  if sampler in ("PC",):
    return pc_nfe(steps)
  if sampler == "ODE-Heun":
    return 2 * steps
  if sampler == "EDM-Heun":
    return edm_heun_nfe(steps)
  if sampler in ("DDPM", "DDIM"):
    from genjax.diffusion import ddim_timesteps
    return len(ddim_timesteps(1000, steps))
  return steps


def run_dataset(dataset, args):
  import jax
  from genjax.training import run as run_lib
  from genjax.training.sampling import generate
  points = dataset != "digits"
  base_vp, base_edm = ("sde_2d", "edm_2d") if points else ("sde_vp", "edm")
  common = {"training.num_steps": args.train_steps, "training.progress": False,
            "training.sample_every": 0, "training.ckpt_every": args.train_steps,
            "training.tensorboard": False}
  if points:
    common["data.dataset"] = dataset
  models = {}
  for kind, cfg_name in (("vp", base_vp), ("edm", base_edm)):
    config = _config(cfg_name, common)
    workdir = os.path.join(args.out, f"{dataset}_{kind}")
    secs = _train(config, workdir)
    models[kind] = (cfg_name, workdir, secs)
    print(f"[{dataset}] {kind}: trained in {secs:.0f}s ({workdir})", flush=True)

  run0, _ = run_lib.restore(_config(base_vp, common), models["vp"][1])
  test = np.asarray(run0.dataset.test.get(np.arange(min(len(run0.dataset.test), args.num)))["x"])
  rows = []
  if points:  # SW2 of n points is noisy: the floor is the mean (std) over 5 train subsets
    rng = np.random.default_rng(args.seed)
    vals = [sliced_wasserstein(np.asarray(run0.dataset.train.get(
        np.sort(rng.choice(len(run0.dataset.train), len(test), replace=False)))["x"]), test)
            for _ in range(5)]
    floor = {"sw2": float(np.mean(vals)), "sw2_std": float(np.std(vals))}
  else:
    from genjax.metrics import sample_quality
    base = sample_quality(test, baseline=True)["baseline"]
    floor = {"fd_digits": base["fd_digits"], "fd_digits_std": base.get("fd_digits_std", 0.0)}
  print(json.dumps({"dataset": dataset, "floor": floor}), flush=True)
  cache = {}
  if args.resume:  # keep what an earlier run of the same cells measured
    for old in args.previous:
      if old["dataset"] == dataset and old["num_samples"] == args.num:
        # (rows written before the metric keys were named by feature space: "fd")
        rows.extend({("fd_digits" if k == "fd" else k): v for k, v in r.items()}
                    for r in old["rows"])
  done = {(r["sampler"], r["nfe_target"]) for r in rows}
  result = {"dataset": dataset, "floor": floor, "rows": rows,
            "train_s": {k: round(v[2], 1) for k, v in models.items()},
            "train_steps": args.train_steps, "num_samples": args.num}
  for sampler in args.samplers:
    kind = "edm" if sampler == "EDM-Heun" else "vp"
    cfg_name, workdir, _ = models[kind]
    for nfe in args.nfes:
      if (sampler, nfe) in done:
        print(f"[{dataset}] {sampler} NFE {nfe}: kept from {args.out}", flush=True)
        continue
      steps = _steps_for(sampler, nfe)
      config = _config(cfg_name, dict(common, **_sampler_overrides(sampler, steps)))
      if (kind, workdir) not in cache:
        cache[kind, workdir] = run_lib.restore(config, workdir)[1]
      state = cache[kind, workdir]
      run = run_lib.build_run(config)
      t0 = time.time()
      x = generate(run.method, state.ema_params, jax.random.key(args.seed), args.num,
                   args.batch, progress=False)
      secs = time.time() - t0
      row = {"dataset": dataset, "sampler": sampler, "nfe_target": nfe,
             "nfe": _real_nfe(sampler, steps), "steps": steps, "sample_s": round(secs, 2),
             "finite": bool(np.all(np.isfinite(x)))}
      x = np.nan_to_num(x, nan=0.0, posinf=1e3, neginf=-1e3)
      if points:
        row["sw2"] = sliced_wasserstein(x, test)
      else:
        from genjax.metrics import sample_quality
        # clipped to [-1, 1] as a PNG would be (a diverged sampler's values are far outside)
        row["fd_digits"] = sample_quality(np.clip(x, -1, 1), baseline=False)["fd_digits"]
      rows.append(row)
      print(json.dumps(row), flush=True)
      write_outputs(args.done + [result], args.out)  # partial tables survive an interruption
  return result


def write_outputs(results, out):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  with open(os.path.join(out, "nfe_quality.json"), "w") as f:
    json.dump(results, f, indent=1)
  lines = []
  for res in results:
    metric = "sw2" if "sw2" in res["floor"] else "fd_digits"
    nfes = sorted({r["nfe_target"] for r in res["rows"]})
    spread = (f" +- {res['floor'][metric + '_std']:.3f}" if metric + "_std" in res["floor"]
              else "")
    lines.append(f"**{res['dataset']}** ({metric.upper() if metric == 'sw2' else metric}, lower is better; "
                 f"{res['num_samples']} samples; models trained {res['train_steps']} steps; "
                 f"data-vs-data floor {res['floor'][metric]:.3f}{spread})\n")
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


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--datasets", default="swiss_roll,digits")
  p.add_argument("--nfes", default="10,20,50,100,1000")
  p.add_argument("--num", type=int, default=2000, help="samples per cell (2-D); digits: min(num, 1000)")
  p.add_argument("--batch", type=int, default=1000)
  p.add_argument("--train_steps", type=int, default=5000)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="runs/nfe_quality")
  p.add_argument("--samplers", default=",".join(SAMPLERS),
                 help="comma-separated rows to run: " + ", ".join(SAMPLERS))
  p.add_argument("--resume", action="store_true",
                 help="keep the cells already in --out/nfe_quality.json; run only the others")
  args = p.parse_args()
  args.nfes = [int(n) for n in args.nfes.split(",")]
  args.samplers = [s.strip() for s in args.samplers.split(",")]
  unknown = sorted(set(args.samplers) - set(SAMPLERS))
  if unknown:
    p.error(f"unknown --samplers {unknown}; valid: {', '.join(SAMPLERS)}")
  previous_path = os.path.join(args.out, "nfe_quality.json")
  args.previous = []
  if args.resume and os.path.exists(previous_path):
    with open(previous_path) as f:
      args.previous = json.load(f)
  os.makedirs(args.out, exist_ok=True)
  results = []
  for ds in args.datasets.split(","):
    a = argparse.Namespace(**vars(args), done=list(results))
    if ds == "digits":
      a.num = min(args.num, 1000)
    results.append(run_dataset(ds, a))
    write_outputs(results, args.out)
  print(open(os.path.join(args.out, "nfe_quality.md")).read())


if __name__ == "__main__":
  main()
