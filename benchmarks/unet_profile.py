"""Where the DDPM U-Net's train step spends its time: a per-op profile from XLA's own trace.

Builds the train step of ``benchmarks.unet_speed`` (forward, backward, Adam, EMA), runs it under
``jax.profiler`` and reads the trace back (``jax.profiler.ProfileData``): on the CPU backend
every thunk the executable runs (a fusion, a YNNPACK/oneDNN library call, a copy) is one event
on an XLA worker thread, named after its HLO instruction. Each instruction is mapped through
the compiled HLO's metadata (``op_name``, e.g. ``jit(train_step)/transpose(jvp(UNet))/
down_1_block_0/norm1/reduce_sum``) to

  * the pass: forward, backward (``transpose(...)``), or the optimizer/EMA update;
  * the layer kind: convolution, dense (attention/time projections), GroupNorm, attention
    (softmax and its matmuls), dropout (its random bits), elementwise/other;
  * the primitive at the root of the fusion.

Times are summed over worker threads (CPU time: with 2 threads, about twice the wall time) and
divided by the number of traced steps.

Usage:
  python -m benchmarks.unet_profile --config=small --batch=8
  python -m benchmarks.unet_profile --config=cifar10 --batch=8 --steps=3 --top=30
  python -m benchmarks.unet_profile --dump_hlo=/tmp/unet_train.hlo   # the compiled program too
"""

from __future__ import annotations

import collections
import json
import re

from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import unet_speed
from benchmarks.trace import hlo_instruction_names, hlo_metadata, trace_events

FLAGS = flags.FLAGS  # --batch and --out are those of benchmarks.unet_speed
flags.DEFINE_enum("config", "small", sorted(unet_speed.CONFIGS), "U-Net configuration.")
flags.DEFINE_integer("steps", 3, "Traced train steps.", lower_bound=1)
flags.DEFINE_integer("top", 20, "How many of the costliest instructions to list.", lower_bound=0)
flags.DEFINE_enum("executable", "train", ["train", "fwd"], "Which executable to profile.")
flags.DEFINE_string("preset", "default", "XLA CPU compiler-option preset (a name of "
                    "genjax.training.compile_opts.PRESETS, or several joined by '+').")
flags.DEFINE_string("dump_hlo", None, "Also write the compiled HLO text here.")

def classify(op_name: str, shape: str = "") -> tuple[str, str, str]:
  """(pass, layer kind, primitive) of one HLO instruction from its ``op_name`` and result shape.

  XLA canonicalises every convolution to ``b01f_01io->b01f``; a backward one that produces a
  ``[C_in, k, k, C_out]`` kernel (k = 3) is the kernel gradient, the other backward ones the input
  gradient."""
  parts = op_name.split("/")
  prim = parts[-1] if parts else "?"
  if op_name.startswith("(no metadata)"):
    return "not attributed (thread-pool waits, copies XLA inserted)", "not attributed", prim
  if "transpose(" in op_name:
    phase = "backward"
  elif "jvp(" in op_name or "UNet" in op_name:
    phase = "forward"
  else:
    phase = "update (Adam, EMA) / other"
  mods = [p for p in parts[1:-1] if not p.startswith(("jvp(", "transpose(", "jit("))]
  leaf = mods[-1] if mods else ""
  if "Dropout" in op_name or "_uniform" in op_name or "threefry" in op_name or prim in (
      "shift_right_logical", "shift_left", "xor", "iota_2x32_shape", "random_bits"):
    kind = "dropout (random bits + mask)"
  elif prim == "conv_general_dilated":
    dims = [int(d) for d in re.findall(r"\d+", shape.split("[", 1)[-1])] if "[" in shape else []
    if phase != "backward":
      kind = "convolution, forward"
    elif len(dims) == 4 and dims[1] == dims[2] == 3:
      kind = "convolution, kernel gradient"
    else:
      kind = "convolution, input gradient"
  elif re.match(r"(norm|GroupNorm)", leaf) or "norm" in leaf:
    kind = "GroupNorm"
  elif any("attn" in p for p in mods) and leaf not in ("q", "k", "v", "proj_out"):
    kind = "attention (scores, softmax, weighted sum)"
  elif prim == "dot_general":
    kind = "dense (q/k/v/out, time MLP)"
  elif re.match(r"conv|nin_shortcut|conv_in|conv_out|downsample|upsample", leaf):
    kind = "conv bias / layout around convolutions"
  else:
    kind = "elementwise / other"
  return phase, kind, prim


def main(argv):
  del argv
  from genjax import cli
  from genjax.training import compile_opts
  # An executable restored from the persistent cache may carry no op_name metadata.
  jax.config.update("jax_enable_compilation_cache", False)
  try:
    opts = compile_opts.options(FLAGS.preset) or None
  except ValueError as e:
    raise cli.UsageError(f"--preset: {e}")
  info, ops = unet_speed.jax_case(FLAGS.config, unet_speed.CONFIGS[FLAGS.config], FLAGS.batch,
                                  jnp.float32, opts)
  fn = ops[FLAGS.executable]
  hlo = fn.compiled.as_text()
  if FLAGS.dump_hlo:
    with open(FLAGS.dump_hlo, "w") as f:
      f.write(hlo)
  meta = hlo_metadata(hlo)
  for _ in range(2):  # warm up
    fn()
  totals, wall = trace_events(fn, FLAGS.steps, hlo_instruction_names(hlo))
  per_step = {k: v / FLAGS.steps / 1e6 for k, v in totals.items()}  # ms
  cpu_ms = sum(per_step.values())

  by_kind, by_phase, by_prim = (collections.Counter() for _ in range(3))
  rows = []
  for name, ms in per_step.items():
    op, shape = meta.get(name, (None, ""))
    if op is None:  # an instruction without metadata (a layout copy XLA inserted)
      op = "(no metadata)/" + name.rsplit(".", 1)[0]
    phase, kind, prim = classify(op, shape)
    by_kind[kind] += ms
    by_phase[phase] += ms
    by_prim[("ynn: " if name.startswith("ynn") else "") + prim] += ms
    rows.append((ms, name, op))
  rows.sort(reverse=True)

  print(f"{FLAGS.config} U-Net, {info['params'] / 1e6:.2f}M params, batch {FLAGS.batch}, "
        f"preset {FLAGS.preset}, "
        f"{FLAGS.executable}: wall {1e3 * wall / FLAGS.steps:.1f} ms/step, "
        f"CPU time in thunks {cpu_ms:.1f} ms/step (summed over worker threads)")
  for title, table in (("layer kind", by_kind), ("pass", by_phase), ("root primitive", by_prim)):
    print(f"\nby {title}:")
    for k, ms in table.most_common():
      print(f"  {ms:9.1f} ms  {100 * ms / cpu_ms:5.1f}%  {k}")
  if FLAGS.top:
    print(f"\ncostliest {FLAGS.top} instructions:")
    for ms, name, op in rows[:FLAGS.top]:
      print(f"  {ms:8.2f} ms  {name:<32} {op}")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(dict(info=info, wall_ms=1e3 * wall / FLAGS.steps, cpu_ms=cpu_ms,
                     by_kind=dict(by_kind), by_phase=dict(by_phase), by_prim=dict(by_prim),
                     top=[dict(ms=ms, name=n, op=o) for ms, n, o in rows[:FLAGS.top]]), f,
                indent=2)


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
