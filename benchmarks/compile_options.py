"""XLA CPU compiler options per executable, and bfloat16 against float32, on the DDPM U-Net.

    python -m benchmarks.compile_options                    # U-Net ch=32, CIFAR-10 shape, batch 8
    python -m benchmarks.compile_options --ch=128 --batch=8  # the paper's 35.7M network
    python -m benchmarks.compile_options --smoke            # a quick end-to-end check

Times, in one process and interleaved (each round calls every variant once, so that all see the
same load), a jitted train step (forward, backward, Adam, as the trainer's) and a jitted
forward (what sampling runs), each compiled with every preset of
``genjax.training.compile_opts.PRESETS``, and the train step with ``dtype=bfloat16`` (float32
params). Prints medians and ratios to XLA's default; the trainer's ``training.xla_cpu_options
="auto"`` is set from this table (docs/scale.md).
"""

from __future__ import annotations

import statistics
import time

from absl import flags
import jax
import jax.numpy as jnp
import optax

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_integer("ch", 32, "U-Net base channels (128: the 35.7M CIFAR-10 network).")
flags.DEFINE_integer("batch", 8, "Batch size.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed rounds (median).", lower_bound=1)
flags.DEFINE_string("out", None, "Write the results as JSON here.")
flags.DEFINE_bool("smoke", False, "ch=8, batch 2, one round: the figures mean nothing.")


def main(argv):
  del argv
  from genjax.nets import UNet
  from genjax.training import compile_opts
  ch, b, repeats = FLAGS.ch, FLAGS.batch, FLAGS.repeats
  if FLAGS.smoke:
    ch, b, repeats = 8, 2, 1
  x = jax.random.normal(jax.random.key(0), (b, 32, 32, 3))
  t = jnp.arange(b) * 7
  nets = {d: UNet(ch=ch, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,), dropout=0.1, dtype=d)
          for d in ("float32", "bfloat16")}
  params = nets["float32"].init(jax.random.key(1), x, t)["params"]
  tx = optax.adam(2e-4)
  opt = tx.init(params)

  def train_step(net):
    def step(params, opt, x, t, key):
      def loss(p):
        eps = jax.random.normal(key, x.shape)
        out = net.apply({"params": p}, x + eps, t, train=True, rngs={"dropout": key})
        return jnp.mean((out - eps) ** 2)
      l, g = jax.value_and_grad(loss)(params)
      u, opt = tx.update(g, opt, params)
      return optax.apply_updates(params, u), opt, l
    return step

  forward = lambda params, x, t: nets["float32"].apply({"params": params}, x, t)
  variants = {}
  for preset, opts in compile_opts.PRESETS.items():
    variants[f"train/{preset}"] = (jax.jit(train_step(nets["float32"]), compiler_options=opts or None),
                                   (params, opt, x, t, jax.random.key(2)))
    variants[f"forward/{preset}"] = (jax.jit(forward, compiler_options=opts or None), (params, x, t))
  variants["train/bfloat16"] = (jax.jit(train_step(nets["bfloat16"])),
                                (params, opt, x, t, jax.random.key(2)))
  compile_s = {}
  for name, (fn, args) in variants.items():
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s[name] = time.perf_counter() - t0
  times = {k: [] for k in variants}
  for _ in range(repeats):
    for name, (fn, args) in variants.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - t0)
  med = {k: statistics.median(v) for k, v in times.items()}
  rows = []
  for name in variants:
    kind = name.split("/")[0]
    base = med[f"{kind}/default"]
    rows.append({"variant": name, "ms": med[name] * 1e3, "vs_default": base / med[name],
                 "first_call_s": compile_s[name]})
    print(f"{name:18s} {med[name] * 1e3:9.1f} ms   speed vs default {base / med[name]:5.2f}x   "
          f"(compile + first call {compile_s[name]:.1f} s)")
  if FLAGS.out:
    common.write_json(FLAGS.out, {"ch": ch, "batch": b, "repeats": repeats,
                                  "device": str(jax.devices()[0]), "rows": rows})


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
