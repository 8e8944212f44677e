"""Train-step throughput and MFU on a GPU/TPU: images/s and model FLOP utilisation.

    python -m benchmarks.accelerator                                  # every config below
    python -m benchmarks.accelerator --configs=ddpm_cifar10 --compute_dtype=bfloat16
    python -m benchmarks.accelerator --configs=dit_xl2 --param_sharding=fsdp --remat
    python -m benchmarks.accelerator --smoke                          # tiny, any backend (CI)

Configurations, at their papers' batch sizes:
  * ``ddpm_cifar10``: configs/ddpm_cifar10.py, the 35.7M U-Net of Ho et al. 2020 on 32x32x3,
    batch 128 (their Appendix B);
  * ``dit``: configs/dit.py (the narrowed DiT on 8x8 digits) at DiT's batch 256
    (Peebles & Xie 2023, Sec. 5);
  * ``dit_xl2``: DiT-XL/2 (hidden 1152, depth 28, 16 heads, patch 2; 675M params) on 32x32x4
    latents (ImageNet 256x256 through the SD VAE), 1,000 classes, batch 256.

Each runs the trainer's own jitted step (``genjax.training.trainer.make_train_step``: loss,
gradients, Adam, EMA, non-finite guard) on synthetic batches of the data's shape (no download)
over a mesh of every device, with the trainer's shardings. The FLOPs per step are XLA's own
count of the compiled step (``cost_analysis``); MFU = FLOPs/step x steps/s / peak, the peak from
``--peak_tflops`` or the table :data:`PEAK_TFLOPS` by device kind and dtype, times the device
count. Medians over ``--steps`` timed steps after ``--warmup``.

Needs an accelerator for meaningful figures; on a CPU it runs (``--smoke``) but the figures
describe the CPU.
"""

from __future__ import annotations

import statistics
import time

from absl import flags
import jax
import numpy as np

from benchmarks import common

CONFIGS = ("ddpm_cifar10", "dit", "dit_xl2")
# Dense peak TFLOP/s per device (vendor figures, without sparsity), by jax device_kind prefix.
PEAK_TFLOPS = {
    "NVIDIA H200": {"bfloat16": 989.0, "float32": 67.0},
    "NVIDIA H100": {"bfloat16": 989.0, "float32": 67.0},   # SXM; TF32 tensor cores: 494
    "NVIDIA A100": {"bfloat16": 312.0, "float32": 19.5},   # TF32 tensor cores: 156
    "TPU v4": {"bfloat16": 275.0, "float32": 275.0},
    "TPU v5 lite": {"bfloat16": 197.0, "float32": 197.0},
    "TPU v5p": {"bfloat16": 459.0, "float32": 459.0},
    "TPU v6 lite": {"bfloat16": 918.0, "float32": 918.0},
}

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", list(CONFIGS), f"Which of {', '.join(CONFIGS)}.")
flags.DEFINE_integer("batch", None, "Override the global batch size (default: the paper's).",
                     lower_bound=1)
flags.DEFINE_enum("compute_dtype", "bfloat16", ["float32", "bfloat16"],
                  "training.compute_dtype (float32 master params either way).")
flags.DEFINE_enum("param_sharding", "replicated", ["replicated", "fsdp"],
                  "training.param_sharding.")
flags.DEFINE_bool("remat", False, "training.remat (rematerialise each block).")
flags.DEFINE_integer("steps", 20, "Timed steps (median).", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed steps after compiling.", lower_bound=0)
flags.DEFINE_float("peak_tflops", None, "Peak TFLOP/s of one device (default: PEAK_TFLOPS).",
                   lower_bound=0.0)
flags.DEFINE_string("out", None, "Write the results as JSON here.")
flags.DEFINE_bool("smoke", False, "Tiny networks, batch 8, 2 steps: a check that it runs.")


def build(name: str, smoke: bool):
  """``(config, DataSpec, paper batch)`` of a configuration."""
  from genjax.types import DataSpec
  if name not in CONFIGS:
    raise ValueError(f"--configs: unknown {name!r}; valid: {', '.join(CONFIGS)}.")
  if name == "ddpm_cifar10":
    config = common.load_config("ddpm_cifar10")
    spec, batch = DataSpec(shape=(32, 32, 3), num_classes=10), 128
    if smoke:
      config.model.ch, config.model.ch_mult = 8, (1, 2)
  else:
    config = common.load_config("dit")
    batch = 256
    if name == "dit":
      spec = DataSpec(shape=(8, 8, 1), num_classes=10)
    else:
      spec = DataSpec(shape=(32, 32, 4), num_classes=1000)
      config.model.hidden_size, config.model.depth, config.model.num_heads = 1152, 28, 16
    if smoke:
      config.model.hidden_size, config.model.depth, config.model.num_heads = 16, 1, 2
  return config, spec, batch


def peak_tflops(dtype: str) -> float | None:
  if FLAGS.peak_tflops:
    return FLAGS.peak_tflops
  kind = jax.devices()[0].device_kind
  for prefix, peaks in PEAK_TFLOPS.items():
    if kind.startswith(prefix):
      return peaks[dtype]
  return None


def measure(name: str, batch: int | None, smoke: bool) -> dict:
  from genjax import methods
  from genjax.training import netopts, optim, trainer
  from genjax.training.config import OptimConfig, TrainConfig
  config, spec, paper_batch = build(name, smoke)
  b = batch or (8 if smoke else paper_batch)
  cfg = TrainConfig(batch_size=b, compute_dtype=FLAGS.compute_dtype, remat=FLAGS.remat,
                    param_sharding=FLAGS.param_sharding, progress=False, tensorboard=False)
  config = netopts.apply_network_options(config, cfg.compute_dtype, cfg.remat)
  method = methods.build_method(config, spec)
  mesh = trainer.make_mesh()
  trainer.check_batch_divides(b, mesh)
  rng = np.random.default_rng(0)
  batch_np = {"x": rng.uniform(-1, 1, (b,) + spec.shape).astype(np.float32),
              "label": rng.integers(0, max(spec.num_classes, 1), b).astype(np.int32)}
  tx = optim.make_optimizer(OptimConfig(), 1000)
  state = trainer.init_state(method, tx, jax.random.key(0), batch_np, cfg, mesh)
  shardings = trainer.state_shardings(state, mesh, cfg.param_sharding)
  step = jax.jit(trainer.make_train_step(method, cfg), out_shardings=(shardings, None),
                 donate_argnums=(0,))
  data = jax.device_put(batch_np, trainer.batch_sharding(mesh))
  t0 = time.perf_counter()
  compiled = step.lower(state, data).compile()
  compile_s = time.perf_counter() - t0
  flops = common.xla_flops(step, state, data)
  times = []
  for i in range(FLAGS.warmup + (1 if smoke else FLAGS.steps)):
    t0 = time.perf_counter()
    state, metrics = compiled(state, data)
    jax.block_until_ready(metrics["loss"])
    if i >= FLAGS.warmup:
      times.append(time.perf_counter() - t0)
  sec = statistics.median(times)
  params = sum(x.size for x in jax.tree.leaves(state.params))
  peak = peak_tflops(cfg.compute_dtype)
  row = {"config": name, "batch": b, "params": int(params), "devices": jax.device_count(),
         "device_kind": jax.devices()[0].device_kind, "compute_dtype": cfg.compute_dtype,
         "param_sharding": cfg.param_sharding, "remat": cfg.remat, "step_s": sec,
         "img_per_s": b / sec, "tflops_per_step": flops / 1e12,
         "achieved_tflops": flops / sec / 1e12, "compile_s": compile_s,
         "loss": float(metrics["loss"])}
  row["mfu"] = (row["achieved_tflops"] / (peak * jax.device_count())) if peak else None
  return row


def main(argv):
  del argv
  rows = []
  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind} "
        f"({jax.default_backend()})")
  for name in FLAGS.configs:
    row = measure(name, FLAGS.batch, FLAGS.smoke)
    rows.append(row)
    mfu = "n/a (unknown peak: --peak_tflops)" if row["mfu"] is None else f"{row['mfu']:.1%}"
    print(f"{name:13s} batch {row['batch']:4d} {row['params'] / 1e6:7.1f}M params  "
          f"{row['img_per_s']:9.1f} img/s  {row['achieved_tflops']:8.2f} TFLOP/s  MFU {mfu}  "
          f"(compile {row['compile_s']:.0f} s)")
  if FLAGS.out:
    common.write_json(FLAGS.out, {"rows": rows})


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
