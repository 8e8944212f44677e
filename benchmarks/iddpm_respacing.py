"""Improved DDPM: respaced ancestral sampling with the learned variance, against DDIM.

    python benchmarks/iddpm_respacing.py --workdir runs/iddpm --out runs/iddpm_respacing

Loads a trained improved-DDPM run (configs/iddpm.py: cosine schedule, learned variance,
L_hybrid) and samples it with (a) ancestral sampling on respaced chains of K steps, the learned
variance reinterpreted on each chain (Nichol & Dhariwal 2021, Sec. 4), (b) the same chains with
the fixed variances beta~ (fixed_small) and beta (fixed_large), and (c) DDIM with eta = 0 and 1.
Quality is the Frechet distance in the digits classifier's feature space against the test
digits (``genjax.metrics.sample_quality``). Writes ``respacing.json`` and ``respacing.md``.
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


def _sampler_factory(config, spec, params):
  """``sample(sampling overrides, var_type, num, seed) -> [num, *shape]`` on the learned-variance
  network: the fixed-variance rows use its mean (eps) channels only, so every row shares one
  trained model."""
  import dataclasses

  import jax

  from genjax.diffusion import method as dm
  from genjax.diffusion import schedules
  from genjax.nets.build import build_network
  from genjax.typed_config import from_section

  cfg = from_section(dm.DDPMConfig, config.diffusion, where="diffusion")
  base = from_section(dm.SamplingConfig, config.sampling, where="sampling")
  net = build_network(config.model, spec, out_channels=2 * spec.shape[-1])
  sched = schedules.get_schedule(cfg.schedule, cfg.num_timesteps)
  apply = lambda p, x, t, y: net.apply({"params": p}, x, t, y=y)
  eps_fn = dm.make_eps_fn(apply, params, sched, cfg.parameterization, None, learned=True)
  clip = (-1.0, 1.0) if cfg.clip_x0 else None

  def sample(overrides, var_type, num, seed):
    sampling = dataclasses.replace(base, **overrides)
    fn = eps_fn if var_type == "learned_range" else (lambda x, t: eps_fn(x, t)[0])
    run = jax.jit(lambda key: dm.sample_images(fn, sched, key, (num, *spec.shape), sampling, clip,
                                               var_type))
    return jax.device_get(run(jax.random.key(seed)))

  return sample


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True, help="a trained configs/iddpm.py run")
  p.add_argument("--out", default="runs/iddpm_respacing")
  p.add_argument("--steps", default="25,50,100", help="respaced chain lengths K")
  p.add_argument("--num", type=int, default=500)
  p.add_argument("--batch", type=int, default=500)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  from genjax.metrics import sample_quality
  from genjax.training import run as run_lib

  config, run, state = run_lib.load_trained(args.workdir)
  if config.diffusion.var_type != "learned_range":
    sys.exit(f"{args.workdir} has var_type={config.diffusion.var_type!r}; this benchmark needs "
             "a learned variance (configs/iddpm.py).")
  test = np.asarray(run.dataset.test.get(np.arange(min(len(run.dataset.test), args.num)))["x"])
  floor = sample_quality(test, baseline=True)["baseline"]["fd_digits"]
  cells = []
  for k in [int(s) for s in args.steps.split(",")]:
    cells += [("ancestral, learned variance", k, dict(sampler="ddpm", respacing=str(k)), {}),
              ("ancestral, beta~ (fixed_small)", k, dict(sampler="ddpm", respacing=str(k)),
               dict(var_type="fixed_small")),
              ("ancestral, beta (fixed_large)", k, dict(sampler="ddpm", respacing=str(k)),
               dict(var_type="fixed_large")),
              ("DDIM, eta = 0", k, dict(sampler="ddim", steps=k, eta=0.0), {}),
              ("DDIM, eta = 1", k, dict(sampler="ddim", steps=k, eta=1.0), {})]
  rows = []
  os.makedirs(args.out, exist_ok=True)
  sample_fn = _sampler_factory(config, run.dataset.spec, state.ema_params)
  for name, k, sampling, diffusion in cells:
    t0 = time.time()
    x = sample_fn(sampling, diffusion.get("var_type", "learned_range"), args.num, args.seed)
    row = {"sampler": name, "steps": k,
           "fd_digits": sample_quality(np.clip(x, -1, 1), baseline=False)["fd_digits"],
           "sample_s": round(time.time() - t0, 1)}
    rows.append(row)
    print(json.dumps(row), flush=True)
  with open(os.path.join(args.out, "respacing.json"), "w") as f:
    json.dump({"workdir": args.workdir, "floor": floor, "num": args.num, "rows": rows}, f,
              indent=1)
  ks = sorted({r["steps"] for r in rows})
  names = list(dict.fromkeys(r["sampler"] for r in rows))
  lines = [f"fd_digits against the test digits ({args.num} samples; floor {floor:.3f})", "",
           "| sampler | " + " | ".join(f"K = {k}" for k in ks) + " |",
           "|---" * (len(ks) + 1) + "|"]
  for n in names:
    lines.append(f"| {n} | " + " | ".join(
        f"{r['fd_digits']:.3f}" for k in ks for r in rows if r["sampler"] == n and r["steps"] == k) + " |")
  with open(os.path.join(args.out, "respacing.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
