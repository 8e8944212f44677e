"""One lax.scan sampler against a Python loop over a jitted step, on a trained 2-D MLP DDPM.

    python -m benchmarks.sampler_speed [--workdir runs/ddpm_2d] [--out benchmarks/results/sampler_speed.json]
    python -m benchmarks.sampler_speed --smoke      # a quick end-to-end check

It trains the configs/ddpm_2d.py MLP eps-model (T=1000) for --train_steps steps (or reuses a
finished run of the same config in --workdir, ``benchmarks.common.train_or_reuse``; default: a
new temporary directory), then times, in this one process, DDPM ancestral sampling (a) as
genjax's jitted ``lax.scan`` (``genjax.sampling.ddpm_sample``) and (b) as a Python loop calling
a jitted single step, the way pipeline-style libraries sample, at batch 16 and 1024. Both run
the same step (``genjax.sampling.ancestral.ddpm_step_fn``). It also compares XLA's per-step
time with the model's FLOPs (XLA cost analysis) at the machine's measured 2048x2048 matmul rate.

``--smoke``: 2 training steps, batch 16, one timed repeat; its figures mean nothing.
"""

from __future__ import annotations

import tempfile

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A configs/ddpm_2d.py run to reuse or train (default: a new "
                    "temporary directory).")
flags.DEFINE_integer("train_steps", 2000, "Training steps of the model.", lower_bound=1)
flags.DEFINE_list("batches", ["16", "1024"], "Batch sizes to time.")
flags.DEFINE_integer("repeats", 5, "Timed calls per batch (median reported).", lower_bound=1)
flags.DEFINE_string("out", None, "Write the results as JSON here.")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: 2 training steps, batch 16, one "
                  "repeat; the figures mean nothing.")


def trained_model(workdir: str, train_steps: int):
  """``(eps_fn(x, t, cond), schedule)`` of the trained configs/ddpm_2d.py model."""
  from genjax import sampling
  from genjax.nets.build import build_network
  from genjax.training import run as run_lib
  config = common.load_config("ddpm_2d", {
      "training.num_steps": train_steps, "training.sample_every": 0,
      "training.tensorboard": False})
  common.train_or_reuse(config, workdir)
  run, state = run_lib.restore(config, workdir)
  net = build_network(config.model, run.dataset.spec)
  sched = sampling.get_schedule(config.diffusion.schedule, config.diffusion.num_timesteps)
  params = state.ema_params
  eps_fn = sampling.denoiser(lambda x, t, cond: net.apply({"params": params}, x, t), sched,
                             config.diffusion.parameterization)
  return eps_fn, sched


def main(argv):
  del argv
  from genjax import sampling
  from genjax.sampling.ancestral import ddpm_step_fn

  batches = common.list_flag("batches")
  train_steps, repeats = FLAGS.train_steps, FLAGS.repeats
  if FLAGS.smoke:
    train_steps, batches, repeats = 2, [16], 1
  workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="sampler_speed_")
  eps_fn, sched = trained_model(workdir, train_steps)
  T = sched.num_timesteps
  rate = common.matmul_gflops()
  results = {"device": str(jax.devices()[0]), "T": T, "matmul_gflops": rate, "rows": []}
  print(f"device {jax.devices()[0]}, T={T}, 2048^2 matmul: {rate:.1f} GFLOP/s")

  step = ddpm_step_fn(eps_fn, sched, var_type="fixed_large")  # what the scan runs each step
  for B in batches:
    key = jax.random.key(0)
    scan_fn = jax.jit(lambda k: sampling.ddpm_sample(eps_fn, sched, k, (B, 2)))
    step_fn = jax.jit(lambda x, t, k: step(x, (t, k)))
    keys = jax.random.split(key, T)

    def loop():
      x = jax.random.normal(key, (B, 2))
      for i, t in enumerate(range(T - 1, -1, -1)):
        x = step_fn(x, np.int32(t), keys[i])
      return x

    scan_s = common.time_fn(lambda: scan_fn(key), repeats=repeats)
    loop_s = common.time_fn(loop, repeats=repeats)
    flops = common.xla_flops(step_fn, jnp.zeros((B, 2)), np.int32(5), keys[0])
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
  if FLAGS.out:
    common.write_json(FLAGS.out, results)


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
