"""Speed of the DDPM U-Net (genjax.nets.UNet): images/s and achieved GFLOP/s.

Times, for each configuration, on 32x32x3 inputs:
  * one jitted train step: forward, backward, an optax Adam update and an EMA update of the
    params (the work of one DDPM training step, with the noising done inline);
  * one jitted forward pass (eval mode, as in sampling).
The FLOPs are XLA's own count (``jitted.lower(...).compile().cost_analysis()["flops"]``);
the achieved rate is compared with a jitted float32 2048x2048 matmul (2 * 2048^3 FLOPs)
timed in the same process, in the same rounds as the U-Net calls (so that all see the same
load on a shared machine). Medians over ``--repeats`` rounds after ``--warmup`` rounds, each
call ended with ``block_until_ready``.

With ``--torch`` the same architecture is also timed in PyTorch, eager, in the same process and
in the same rounds (each round calls every timed operation once, so both frameworks see the same
load on a shared machine):
diffusers' ``UNet2DModel`` with the configuration of ``google/ddpm-cifar10-32`` (the port of
Ho et al.'s network; 35,746,307 parameters, as genjax's) or its ch=32 variant, the same train
step (forward, MSE to the noise, backward, ``torch.optim.Adam``, an EMA of the params) and
forward, and a ``torch.mm`` of the same size as the reference rate. That reference needs the
``bench`` extra (``pip install -e ".[bench]"``: torch and diffusers; never used at runtime).

Usage:
  python -m benchmarks.unet_speed                       # both configurations, batch 8
  python -m benchmarks.unet_speed --torch               # ... and the PyTorch reference beside
  python -m benchmarks.unet_speed --configs small --repeats 3 --out /tmp/unet_speed.json
  python -m benchmarks.unet_speed --dtype bfloat16      # mixed precision (GPU/TPU)
  python -m benchmarks.unet_speed --torch --presets=default,no_ynn,ynn_dot   # XLA CPU options
  python -m benchmarks.unet_speed --smoke               # a quick end-to-end check

``--smoke``: the small configuration at batch 2, one timed round after none, a 256^2 matmul
(with ``--torch``, the reference too); its figures mean nothing.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time

from absl import flags
import jax
import jax.numpy as jnp
import optax

from genjax.nets import UNet

CONFIGS = {
    # Ho et al. 2020, CIFAR-10: 35.7M parameters.
    "cifar10": dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                    dropout=0.1),
    "small": dict(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                  dropout=0.1),
}

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["cifar10", "small"], f"Configurations to time: "
                  f"{', '.join(sorted(CONFIGS))}.")
flags.DEFINE_integer("batch", 8, "Batch size.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed rounds (median reported).", lower_bound=1)
flags.DEFINE_integer("warmup", 2, "Untimed rounds after compiling.", lower_bound=0)
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype (params stay "
                  "float32).")
flags.DEFINE_integer("matmul_size", 2048, "n of the n x n float32 matmul that gives the "
                     "reference rate.", lower_bound=1)
flags.DEFINE_bool("torch", False, "Also time the PyTorch reference (diffusers UNet2DModel; "
                  "needs the bench extra) in this process.")
flags.DEFINE_list("presets", ["default"], "XLA CPU compiler-option presets "
                  "(genjax.training.compile_opts.PRESETS, several joined by '+') to compile "
                  "genjax's executables with; each is timed in the same rounds.")
flags.DEFINE_string("out", None, "Write the results as JSON here.")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: small, batch 2, one round, a "
                  "256^2 matmul; the figures mean nothing.")


def _flops(compiled) -> float:
  """XLA's FLOP count of a compiled computation (cost_analysis is a dict or [dict])."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float(cost.get("flops", float("nan"))) if cost else float("nan")


def time_interleaved(calls: dict, warmup: int, repeats: int) -> dict:
  """Seconds per call of each no-argument callable (each blocks until its result is ready),
  timed in rounds that call every one of them once, so that all see the same machine load;
  ``warmup`` untimed rounds first. Returns {name: [seconds per timed round]}."""
  times = {k: [] for k in calls}
  for i in range(warmup + repeats):
    for name, fn in calls.items():
      t0 = time.perf_counter()
      fn()
      if i >= warmup:
        times[name].append(time.perf_counter() - t0)
  return times


def make_matmul(n: int):
  """A jitted float32 n x n matmul, as a no-argument callable, and its FLOP count 2 n^3."""
  key_a, key_b = jax.random.split(jax.random.key(0))
  a = jax.random.normal(key_a, (n, n), jnp.float32)
  b = jax.random.normal(key_b, (n, n), jnp.float32)
  mm = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
  return (lambda: jax.block_until_ready(mm(a, b))), 2.0 * n ** 3


def jax_case(name: str, kwargs: dict, batch: int, dtype,
             compiler_options: dict | None = None) -> tuple[dict, dict]:
  """Builds and compiles genjax's train step and forward (with XLA ``compiler_options``, e.g. a
  preset of ``genjax.training.compile_opts.PRESETS``); returns (info, {op: callable})."""
  net = UNet(dtype=dtype, **kwargs)
  x = jax.random.uniform(jax.random.key(1), (batch, 32, 32, 3), jnp.float32, -1, 1)
  t = jnp.arange(batch, dtype=jnp.int32) * (1000 // batch)

  c0 = time.perf_counter()
  params = jax.jit(net.init)(jax.random.key(0), x, t)["params"]
  jax.block_until_ready(params)
  init_s = time.perf_counter() - c0
  num_params = sum(math.prod(p.shape) for p in jax.tree.leaves(params))

  tx = optax.adam(2e-4)  # Ho et al.: Adam, lr 2e-4
  betas = jnp.linspace(1e-4, 0.02, 1000)  # linear schedule, T = 1000
  alphas_cumprod = jnp.cumprod(1.0 - betas)
  ema_decay = 0.9999

  def train_step(params, ema, opt_state, x, key):
    k_t, k_n, k_d = jax.random.split(key, 3)
    t = jax.random.randint(k_t, (x.shape[0],), 0, 1000)
    noise = jax.random.normal(k_n, x.shape)
    abar = alphas_cumprod[t][:, None, None, None]
    x_t = jnp.sqrt(abar) * x + jnp.sqrt(1.0 - abar) * noise

    def loss_fn(p):
      eps = net.apply({"params": p}, x_t, t, train=True, rngs={"dropout": k_d})
      return jnp.mean((eps - noise) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
    return params, ema, opt_state, loss

  def forward(params, x, t):
    return net.apply({"params": params}, x, t)

  ema = jax.tree.map(jnp.copy, params)
  opt_state = tx.init(params)
  key = jax.random.key(2)

  train_jit = jax.jit(train_step, donate_argnums=(0, 1, 2))
  c0 = time.perf_counter()
  train_compiled = train_jit.lower(params, ema, opt_state, x, key).compile(compiler_options)
  train_compile_s = time.perf_counter() - c0
  fwd_jit = jax.jit(forward)
  c0 = time.perf_counter()
  fwd_compiled = fwd_jit.lower(params, x, t).compile(compiler_options)
  fwd_compile_s = time.perf_counter() - c0

  train_flops, fwd_flops = _flops(train_compiled), _flops(fwd_compiled)
  carry = {"state": (params, ema, opt_state)}

  def train():
    out = train_compiled(*carry["state"], x, key)
    jax.block_until_ready(out)
    carry["state"] = tuple(out[:3])  # the first three arguments are donated

  def fwd():
    jax.block_until_ready(fwd_compiled(carry["state"][0], x, t))

  train.compiled, fwd.compiled = train_compiled, fwd_compiled  # for profiling tools
  info = dict(
      config=name, kwargs={k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
      params=num_params, batch=batch, dtype=jnp.dtype(dtype).name,
      init_compile_and_run_s=init_s, train_compile_s=train_compile_s, fwd_compile_s=fwd_compile_s,
      train_gflop=train_flops / 1e9, fwd_gflop=fwd_flops / 1e9)
  return info, {"train": train, "fwd": fwd}


def torch_case(name: str, kwargs: dict, batch: int) -> tuple[dict, dict]:
  """The PyTorch reference: diffusers' UNet2DModel of Ho et al.'s CIFAR-10 network, eager;
  returns (info, {op: callable})."""
  import torch
  from diffusers import UNet2DModel
  torch.set_num_threads(os.cpu_count() or 1)
  ch, mult = kwargs["ch"], kwargs["ch_mult"]
  if kwargs["attn_resolutions"] != (16,) or len(mult) != 4:
    raise ValueError("the torch reference mirrors the 4-level, attention-at-16x16 configs only")
  # google/ddpm-cifar10-32: attention in the second down block and the third up block (16x16).
  net = UNet2DModel(
      sample_size=32, in_channels=3, out_channels=3, layers_per_block=kwargs["num_res_blocks"],
      block_out_channels=tuple(ch * m for m in mult),
      down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
      up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
      norm_num_groups=32, norm_eps=1e-6, downsample_padding=0, flip_sin_to_cos=False,
      freq_shift=1, act_fn="silu", dropout=kwargs["dropout"])
  num_params = sum(p.numel() for p in net.parameters())
  opt = torch.optim.Adam(net.parameters(), lr=2e-4)
  ema = [p.detach().clone() for p in net.parameters()]
  alphas_cumprod = torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, 1000), 0)
  gen = torch.Generator().manual_seed(0)
  x = torch.rand(batch, 3, 32, 32, generator=gen) * 2 - 1
  t_eval = torch.arange(batch) * (1000 // batch)

  def train_step():
    net.train()
    t = torch.randint(0, 1000, (batch,), generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    abar = alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = abar.sqrt() * x + (1 - abar).sqrt() * noise
    loss = torch.mean((net(x_t, t).sample - noise) ** 2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
      torch._foreach_lerp_(ema, [p.detach() for p in net.parameters()], 1 - 0.9999)
    return loss

  def forward():
    net.eval()
    with torch.no_grad():
      return net(x, t_eval).sample

  info = dict(config=name, framework=f"torch {torch.__version__} (diffusers UNet2DModel)",
              params=num_params, batch=batch, threads=torch.get_num_threads())
  return info, {"train": train_step, "fwd": forward}


def torch_matmul(n: int):
  import torch
  gen = torch.Generator().manual_seed(0)
  a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
  return lambda: torch.mm(a, b)


def main(argv):
  del argv
  from genjax import cli
  names = [c.strip() for c in FLAGS.configs if c.strip()]
  unknown = [c for c in names if c not in CONFIGS]
  if unknown:
    raise cli.UsageError(f"unknown --configs {unknown}; choose from {sorted(CONFIGS)}.")
  if FLAGS.smoke:
    names = ["small"]
    FLAGS.batch, FLAGS.repeats, FLAGS.warmup, FLAGS.matmul_size = 2, 1, 0, 256
  dtype = jnp.bfloat16 if FLAGS.dtype == "bfloat16" else jnp.float32

  device = jax.devices()[0]
  print(f"jax {jax.__version__} on {device.platform} ({device.device_kind}), "
        f"{os.cpu_count()} CPUs visible, batch {FLAGS.batch}, {FLAGS.dtype}, "
        f"median of {FLAGS.repeats} after {FLAGS.warmup} warm-up", flush=True)
  matmul, matmul_flops = make_matmul(FLAGS.matmul_size)
  results = []
  from genjax.training import compile_opts
  presets = [p.strip() for p in FLAGS.presets if p.strip()] or ["default"]
  try:
    opts = {p: compile_opts.options(p) or None for p in presets}
  except ValueError as e:
    raise cli.UsageError(f"--presets: {e}")
  for name in names:
    info, ops = jax_case(name, CONFIGS[name], FLAGS.batch, dtype,
                         opts[presets[0]])
    calls = {"fwd": ops["fwd"], "mm": matmul, "train": ops["train"], "mm2": matmul}
    for p in presets[1:]:  # the other presets, timed in the same rounds
      _, p_ops = jax_case(name, CONFIGS[name], FLAGS.batch, dtype, opts[p])
      calls.update({f"fwd@{p}": p_ops["fwd"], f"train@{p}": p_ops["train"]})
    if FLAGS.torch:
      t_info, t_ops = torch_case(name, CONFIGS[name], FLAGS.batch)
      t_mm = torch_matmul(FLAGS.matmul_size)
      calls.update({"torch_fwd": t_ops["fwd"], "torch_mm": t_mm, "torch_train": t_ops["train"],
                    "torch_mm2": t_mm})
    print(f"{name}: {info['params'] / 1e6:.2f}M params; compile train {info['train_compile_s']:.1f}"
          f" s, forward {info['fwd_compile_s']:.1f} s; timing {FLAGS.repeats} interleaved rounds",
          flush=True)
    times = time_interleaved(calls, FLAGS.warmup, FLAGS.repeats)
    med = {k: statistics.median(v) for k, v in times.items()}
    mm_gflops = matmul_flops / statistics.median(times["mm"] + times["mm2"]) / 1e9
    r = dict(info, train_step_s=med["train"], train_img_s=FLAGS.batch / med["train"],
             train_gflops=info["train_gflop"] / med["train"], train_times_s=times["train"],
             fwd_s=med["fwd"], fwd_img_s=FLAGS.batch / med["fwd"],
             fwd_gflops=info["fwd_gflop"] / med["fwd"], fwd_times_s=times["fwd"],
             matmul_gflops=mm_gflops)
    r["preset"] = presets[0]
    r["presets"] = {p: dict(train_img_s=FLAGS.batch / med[f"train@{p}"],
                            fwd_img_s=FLAGS.batch / med[f"fwd@{p}"]) for p in presets[1:]}
    r["train_frac_matmul"] = r["train_gflops"] / mm_gflops
    r["fwd_frac_matmul"] = r["fwd_gflops"] / mm_gflops
    if FLAGS.torch:
      t_mm = matmul_flops / statistics.median(times["torch_mm"] + times["torch_mm2"]) / 1e9
      r["torch"] = dict(t_info, train_step_s=med["torch_train"],
                        train_img_s=FLAGS.batch / med["torch_train"], fwd_s=med["torch_fwd"],
                        fwd_img_s=FLAGS.batch / med["torch_fwd"], matmul_gflops=t_mm,
                        train_times_s=times["torch_train"], fwd_times_s=times["torch_fwd"])
    results.append(r)

  header = (f"{'config':<8} {'params':>7} | {'train img/s':>11} {'GFLOP/step':>10} "
            f"{'GFLOP/s':>8} {'%mm':>4} | {'fwd img/s':>9} {'GFLOP/call':>10} {'GFLOP/s':>8} "
            f"{'%mm':>4} | {'matmul GFLOP/s':>14}")
  print()
  print(header)
  print("-" * len(header))
  for r in results:
    print(f"{r['config']:<8} {r['params'] / 1e6:>6.2f}M | {r['train_img_s']:>11.2f} "
          f"{r['train_gflop']:>10.1f} {r['train_gflops']:>8.1f} "
          f"{100 * r['train_frac_matmul']:>3.0f}% | "
          f"{r['fwd_img_s']:>9.2f} {r['fwd_gflop']:>10.1f} {r['fwd_gflops']:>8.1f} "
          f"{100 * r['fwd_frac_matmul']:>3.0f}% | {r['matmul_gflops']:>14.1f}")
  print(f"%mm: achieved GFLOP/s (XLA's count) over a {FLAGS.matmul_size}^2 float32 matmul's, "
        "timed in the same rounds")
  for r in results:
    for p, v in r["presets"].items():
      print(f"{r['config']} with preset {p}: train {v['train_img_s']:.2f} img/s "
            f"({v['train_img_s'] / r['train_img_s']:.2f}x {r['preset']}), fwd {v['fwd_img_s']:.2f} "
            f"img/s ({v['fwd_img_s'] / r['fwd_img_s']:.2f}x {r['preset']})"
            + (f"; genjax / torch: train {v['train_img_s'] / r['torch']['train_img_s']:.2f}x, "
               f"fwd {v['fwd_img_s'] / r['torch']['fwd_img_s']:.2f}x" if "torch" in r else ""))
    if "torch" in r:
      t = r["torch"]
      print(f"torch {r['config']}: {t['params'] / 1e6:.2f}M params | train {t['train_img_s']:.2f} "
            f"img/s (genjax / torch {r['train_img_s'] / t['train_img_s']:.2f}x) | fwd "
            f"{t['fwd_img_s']:.2f} img/s (genjax / torch {r['fwd_img_s'] / t['fwd_img_s']:.2f}x) "
            f"| torch.mm {t['matmul_gflops']:.1f} GFLOP/s vs XLA {r['matmul_gflops']:.1f}")

  if FLAGS.out:
    payload = dict(jax=jax.__version__, platform=device.platform, device=device.device_kind,
                   cpus=os.cpu_count(), python=platform.python_version(),
                   xla_flags=os.environ.get("XLA_FLAGS", ""),
                   args={k: FLAGS[k].value for k in ("configs", "batch", "repeats", "warmup",
                                                       "dtype", "matmul_size", "torch",
                                                       "presets")},
                   results=results)
    with open(FLAGS.out, "w") as f:
      json.dump(payload, f, indent=2)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
