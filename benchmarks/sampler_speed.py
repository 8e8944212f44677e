"""One lax.scan sampler against a Python loop over a jitted step, on a trained 2-D MLP DDPM.

    python benchmarks/sampler_speed.py [--workdir runs/ddpm_2d] [--out benchmarks/results/sampler_speed.json]

It trains the configs/ddpm_2d.py MLP eps-model (T=1000) for --train_steps steps (or restores
--workdir if it has a checkpoint), then times, in this one process, DDPM ancestral sampling
(a) as genjax's jitted ``lax.scan`` (``genjax.diffusion.ddpm_sample``) and (b) as a Python loop
calling a jitted single step, the way pipeline-style libraries sample, at batch 16 and 1024.
At batch 1024 it also compares XLA's per-step time with the model's FLOPs (XLA cost analysis)
at the machine's measured 2048x2048 matmul rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import matmul_gflops, time_fn, xla_flops
from genjax.diffusion import gaussian, samplers


def trained_model(workdir: str | None, train_steps: int):
  from configs import ddpm_2d
  from genjax.training import run as run_lib
  config = ddpm_2d.get_config()
  config.training.num_steps = train_steps
  config.training.sample_every = 0
  config.training.progress = False
  config.training.tensorboard = False
  workdir = workdir or tempfile.mkdtemp(prefix="sampler_speed_")
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    run_lib.train_and_evaluate(config, workdir)
  run, state = run_lib.restore(config, workdir)
  from genjax.diffusion import schedules
  from genjax.nets.build import build_network
  net = build_network(config.model, run.dataset.spec)
  sched = schedules.get_schedule(config.diffusion.schedule, config.diffusion.num_timesteps)
  params = state.ema_params
  eps_fn = lambda x, t: net.apply({"params": params}, x, t)
  return eps_fn, sched


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--workdir", default=None, help="a trained configs/ddpm_2d.py run (optional)")
  ap.add_argument("--train_steps", type=int, default=2000)
  ap.add_argument("--batches", type=int, nargs="+", default=[16, 1024])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--out", default=None, help="write the results as JSON here")
  args = ap.parse_args()

  eps_fn, sched = trained_model(args.workdir, args.train_steps)
  T = sched.num_timesteps
  rate = matmul_gflops()
  results = {"device": str(jax.devices()[0]), "T": T, "matmul_gflops": rate, "rows": []}
  print(f"device {jax.devices()[0]}, T={T}, 2048^2 matmul: {rate:.1f} GFLOP/s")

  for B in args.batches:
    key = jax.random.key(0)
    scan_fn = jax.jit(lambda k: samplers.ddpm_sample(eps_fn, sched, k, (B, 2)))

    def one_step(x, t, k):
      tt = jnp.full((B,), t, jnp.int32)
      out = gaussian.p_mean_variance(sched, eps_fn(x, tt), x, tt, "fixed_large")
      noise = jnp.where(t > 0, jnp.exp(0.5 * out["log_var"]), 0.0) * jax.random.normal(k, x.shape)
      return out["mean"] + noise

    step_fn = jax.jit(one_step)
    keys = jax.random.split(key, T)

    def loop():
      x = jax.random.normal(key, (B, 2))
      for i, t in enumerate(range(T - 1, -1, -1)):
        x = step_fn(x, np.int32(t), keys[i])
      return x

    scan_s = time_fn(lambda: scan_fn(key), repeats=args.repeats)
    loop_s = time_fn(loop, repeats=args.repeats)
    flops = xla_flops(step_fn, jnp.zeros((B, 2)), np.int32(5), keys[0])
    ideal_us = flops / (rate * 1e9) * 1e6
    row = {"batch": B, "scan_us_per_step": scan_s / T * 1e6, "loop_us_per_step": loop_s / T * 1e6,
           "speedup": loop_s / scan_s, "flops_per_step": flops,
           "matmul_rate_us_per_step": ideal_us,
           "scan_vs_matmul_rate": (scan_s / T * 1e6) / ideal_us}
    results["rows"].append(row)
    print(f"batch {B:5d}: scan {row['scan_us_per_step']:8.1f} us/step | loop "
          f"{row['loop_us_per_step']:8.1f} us/step | scan is {row['speedup']:.1f}x faster | "
          f"{flops / 1e6:.1f} MFLOP/step = {ideal_us:.1f} us at the matmul rate "
          f"(scan takes {row['scan_vs_matmul_rate']:.1f}x that)")
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  main()
