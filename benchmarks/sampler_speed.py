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

With ``--torch`` (needs the bench extra: torch, diffusers) the identical network is ported to
PyTorch (weights copied; outputs checked equal to 1e-5) and timed in the same process, interleaved
with genjax (each round runs every variant once), as a user would sample instead:
diffusers' ``DDPMScheduler`` loop (``scheduler.step`` each step), a minimal torch loop (the
update with precomputed coefficients), and the same loop over the TorchScript (scripted and
frozen) model; torch at 1 thread for batch 16 and 2 for batch 1024 (its fastest settings
here). The genjax loop baseline splits its keys before the loop (a Python list), so it pays no
per-step indexing.

``--profile`` traces 3 calls of the scan per batch and preset (``benchmarks.trace``) and
splits a step's time by the model line each thunk came from: the residual blocks' hidden dots,
the other dots (input, output, time embedding), the SiLUs, and the rest (residual adds, the
update).

genjax's executables are compiled with the library's sampling options on the CPU
(``genjax.training.compile_opts``, what sample.py and the trainer use); ``--presets`` times the
scan under further presets in the same rounds (``--presets=auto,default,wide``).

``--smoke``: 2 training steps, batch 16, one timed repeat; its figures mean nothing.
"""

from __future__ import annotations

import functools
import re
import statistics
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
flags.DEFINE_bool("torch", False, "Also time the identical PyTorch model under diffusers' "
                  "DDPMScheduler loop, a minimal torch loop and TorchScript (bench extra).")
flags.DEFINE_list("presets", ["auto"], "XLA CPU presets to compile genjax's sampler with "
                  "(genjax.training.compile_opts: 'auto' is the library's sampling choice); the "
                  "first gives the headline figures, the others are timed in the same rounds.")
flags.DEFINE_bool("profile", False, "Also trace the scan and split a step's time into the "
                  "hidden dots, the other dots, the SiLUs and the rest.")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: 2 training steps, batch 16, one "
                  "repeat; the figures mean nothing.")


def trained_model(workdir: str, train_steps: int, with_params: bool = False):
  """``(eps_fn(x, t, cond), schedule)`` of the trained configs/ddpm_2d.py model (and, with
  ``with_params``, its EMA params and network)."""
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
  if with_params:
    return eps_fn, sched, params, net
  return eps_fn, sched


def torch_mlp(params, net):
  """The MLPDenoiser as a torch ``nn.Module`` with the same weights (Flax kernels [in, out] are
  torch's weight.T) and the same sinusoidal embedding (DDPM's: sine first, k / (half - 1))."""
  import math

  import numpy as np
  import torch

  def linear(name):
    p = params[name]
    lin = torch.nn.Linear(*np.shape(p["kernel"]))
    with torch.no_grad():
      lin.weight.copy_(torch.from_numpy(np.asarray(p["kernel"]).T.copy()))
      lin.bias.copy_(torch.from_numpy(np.asarray(p["bias"]).copy()))
    return lin

  class TorchMLP(torch.nn.Module):
    def __init__(self):
      super().__init__()
      half = net.time_dim // 2
      self.register_buffer("freqs", torch.exp(
          -math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1)))
      self.temb0, self.temb1 = linear("temb_dense0"), linear("temb_dense1")
      self.dense_in, self.dense_out = linear("dense_in"), linear("dense_out")
      self.a = torch.nn.ModuleList([linear(f"block_{i}_dense_a") for i in range(net.depth)])
      self.p = torch.nn.ModuleList([linear(f"block_{i}_temb_proj") for i in range(net.depth)])
      self.b = torch.nn.ModuleList([linear(f"block_{i}_dense_b") for i in range(net.depth)])

    def forward(self, x, t):
      arg = t.to(torch.float32).reshape(-1, 1) * self.freqs[None]  # one row for a scalar t
      temb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
      temb = self.temb1(torch.nn.functional.silu(self.temb0(temb)))
      st = torch.nn.functional.silu(temb)
      h = self.dense_in(x)
      for a, p, b in zip(self.a, self.p, self.b):
        r = a(torch.nn.functional.silu(h)) + p(st)
        h = h + b(torch.nn.functional.silu(r))
      return self.dense_out(torch.nn.functional.silu(h))

  return TorchMLP().eval()


def torch_samplers(model, sched, batch: int):
  """``{name: fn()}``: diffusers' DDPMScheduler loop, a minimal loop, the TorchScript loop."""
  import numpy as np
  import torch
  from diffusers import DDPMScheduler

  T = sched.num_timesteps
  betas = np.asarray(sched.betas, np.float64)
  abar = np.cumprod(1 - betas)
  scheduler = DDPMScheduler(num_train_timesteps=T, trained_betas=betas.astype(np.float32),
                            variance_type="fixed_large", clip_sample=False,
                            prediction_type="epsilon")
  scheduler.set_timesteps(T)
  # x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z (t > 0).
  c1 = torch.tensor(1 / np.sqrt(1 - betas), dtype=torch.float32)
  c2 = torch.tensor(betas / np.sqrt(1 - abar), dtype=torch.float32)
  sig = torch.tensor(np.where(np.arange(T) > 0, np.sqrt(betas), 0.0), dtype=torch.float32)
  ts = [torch.tensor(t) for t in range(T - 1, -1, -1)]
  scripted = torch.jit.freeze(torch.jit.script(model))

  def diffusers_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 2, generator=g)
    with torch.inference_mode():
      for t in scheduler.timesteps:
        x = scheduler.step(model(x, t), t, x, generator=g).prev_sample
    return x

  def minimal(m):
    def loop():
      g = torch.Generator().manual_seed(0)
      x = torch.randn(batch, 2, generator=g)
      with torch.inference_mode():
        for t in ts:
          i = int(t)
          x = c1[i] * (x - c2[i] * m(x, t)) + sig[i] * torch.randn(batch, 2, generator=g)
      return x
    return loop

  return {"diffusers": diffusers_loop, "torch_loop": minimal(model),
          "torchscript": minimal(scripted)}


def step_profile(scan_fn, key, T: int, calls: int = 3) -> tuple[dict, float]:
  """({part: microseconds per step}, traced microseconds per step) of ``scan_fn(key)``: the time
  of every thunk of the scan's body (summed over XLA's worker threads), by the line of the
  model its HLO instruction came from (``_part``)."""
  import collections

  from benchmarks import trace
  text = scan_fn.lower(key).compile().as_text()
  meta, names = trace.hlo_metadata(text), trace.hlo_instruction_names(text)
  jax.block_until_ready(scan_fn(key))
  totals, wall = trace.trace_events(lambda: jax.block_until_ready(scan_fn(key)), calls, names)
  parts = collections.Counter()
  for name, ns in totals.items():
    if name in names and not name.startswith("while"):  # a while's span holds its body's
      parts[_part(name, meta.get(name, ("", ""))[0])] += ns / calls / T / 1e3
  return dict(parts), wall / calls / T * 1e6


def _part(name: str, op_name: str) -> str:
  if re.search(r"/block_\d+_dense_[ab]/dot_general", op_name):
    return "hidden dots"
  if "dot_general" in op_name or not op_name and name.startswith("dot"):  # XLA's own 1-row dots
    return "other dots"
  if "silu" in op_name:
    return "SiLU"
  return "rest"


def main(argv):
  del argv
  from genjax import cli, sampling
  from genjax.sampling.ancestral import ddpm_step_fn
  from genjax.training import compile_opts

  presets = [p.strip() for p in FLAGS.presets if p.strip()] or ["auto"]
  try:
    for p in presets:
      compile_opts.options(compile_opts.AUTO["sample"] if p == "auto" else p)  # a known preset
    opts = {p: compile_opts.compiler_options(p, "sample") for p in presets}
  except ValueError as e:
    raise cli.UsageError(f"--presets: {e}")
  if FLAGS.profile:  # an executable from the persistent cache may carry no op_name metadata
    jax.config.update("jax_enable_compilation_cache", False)
  batches = common.list_flag("batches")
  train_steps, repeats = FLAGS.train_steps, FLAGS.repeats
  if FLAGS.smoke:
    train_steps, batches, repeats = 2, [16], 1
  workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="sampler_speed_")
  eps_fn, sched, params, net = trained_model(workdir, train_steps, with_params=True)
  tmodel = None
  if FLAGS.torch:
    import torch
    tmodel = torch_mlp(params, net)
    xs = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    tt = np.arange(64) * 15
    ref = np.asarray(net.apply({"params": params}, xs, tt))
    with torch.no_grad():
      got = tmodel(torch.from_numpy(xs), torch.from_numpy(tt)).numpy()
    err = float(np.abs(ref - got).max())
    print(f"torch port: max |genjax - torch| = {err:.2e} on 64 rows")
    if err > 1e-4:
      raise SystemExit(f"the torch port differs from the genjax model by {err}")
  T = sched.num_timesteps
  rate = common.matmul_gflops()
  results = {"device": str(jax.devices()[0]), "T": T, "matmul_gflops": rate,
             "xla_cpu_options": {p: opts[p] for p in presets}, "rows": []}
  print(f"device {jax.devices()[0]}, T={T}, 2048^2 matmul: {rate:.1f} GFLOP/s")

  step = ddpm_step_fn(eps_fn, sched, var_type="fixed_large")  # what the scan runs each step
  for B in batches:
    key = jax.random.key(0)
    sample = lambda k: sampling.ddpm_sample(eps_fn, sched, k, (B, 2))
    scans = {p: jax.jit(sample, compiler_options=opts[p]) for p in presets}
    scan_fn = scans[presets[0]]
    step_fn = jax.jit(lambda x, t, k: step(x, (t, k)), compiler_options=opts[presets[0]])
    keys = list(jax.random.split(key, T))  # split before the loop: no per-step indexing
    ts = [np.int32(t) for t in range(T - 1, -1, -1)]

    def loop():
      x = jax.random.normal(key, (B, 2))
      for t, k in zip(ts, keys):
        x = step_fn(x, t, k)
      return x

    fns = {"scan": lambda: scan_fn(key), "loop": loop}
    for p in presets[1:]:  # the scan under the other presets, in the same rounds
      fns[f"scan@{p}"] = functools.partial(scans[p], key)
    if tmodel is not None:
      import torch
      torch.set_num_threads(1 if B <= 16 else 2)
      fns.update(torch_samplers(tmodel, sched, B))
    rounds = _interleaved(fns, repeats)
    secs = {k: statistics.median(v) for k, v in rounds.items()}
    scan_s, loop_s = secs["scan"], secs["loop"]
    flops = common.xla_flops(step_fn, jnp.zeros((B, 2)), np.int32(5), keys[0])
    ideal_us = flops / (rate * 1e9) * 1e6
    row = {"batch": B, "scan_us_per_step": scan_s / T * 1e6, "loop_us_per_step": loop_s / T * 1e6,
           "speedup": loop_s / scan_s, "flops_per_step": flops,
           "matmul_rate_us_per_step": ideal_us,
           "scan_vs_matmul_rate": (scan_s / T * 1e6) / ideal_us}
    for name in secs:
      if name not in ("scan", "loop"):
        row[f"{name}_us_per_step"] = secs[name] / T * 1e6
        row[f"scan_vs_{name}"] = secs[name] / scan_s
        # The same ratio taken within each round, then the median: robust to load changing
        # between rounds on a shared machine.
        row[f"scan_vs_{name}_per_round"] = statistics.median(
            a / b for a, b in zip(rounds[name], rounds["scan"]))
    results["rows"].append(row)
    print(f"batch {B:5d}: scan {row['scan_us_per_step']:8.1f} us/step | loop "
          f"{row['loop_us_per_step']:8.1f} us/step | scan is {row['speedup']:.1f}x faster | "
          f"{flops / 1e6:.1f} MFLOP/step = {ideal_us:.1f} us at the matmul rate "
          f"(scan takes {row['scan_vs_matmul_rate']:.1f}x that)")
    for p in presets if FLAGS.profile else ():
      parts, traced_us = step_profile(scans[p], key, T)
      row["profile_us_per_step" + ("" if p == presets[0] else f"@{p}")] = parts
      total = sum(parts.values())
      print(f"            profile@{p} (traced step {traced_us:.1f} us; time in thunks, summed "
            f"over threads): " + ", ".join(f"{k} {v:.1f} us ({v / total:.0%})" for k, v in
                                           sorted(parts.items(), key=lambda kv: -kv[1])))
    for name in secs:
      if name not in ("scan", "loop"):
        print(f"            {name:12s} {row[f'{name}_us_per_step']:8.1f} us/step: genjax's scan "
              f"is {row[f'scan_vs_{name}']:.2f}x faster "
              f"({row[f'scan_vs_{name}_per_round']:.2f}x within a round, median)")
  if FLAGS.out:
    common.write_json(FLAGS.out, results)


def _interleaved(fns, repeats: int) -> dict:
  """Seconds of each ``fn()`` per round, timed in rounds that call every fn once (one warm-up
  round first), so that all see the same load on a shared machine."""
  import time
  times = {k: [] for k in fns}
  for r in range(repeats + 1):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn())
      if r:
        times[name].append(time.perf_counter() - t0)
  return times


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
