"""Cascaded diffusion on the digits: FD against the sampling-time augmentation level s, and the
cascade against one model at the final resolution trained with the same FLOPs.

    python -m benchmarks.cascade --sr_workdir=runs/cascade16 --direct_workdir=runs/direct16 \
        --levels=0,25,50,100,200,400 --num=500

``--sr_workdir`` is a trained super-resolution stage (configs/cascade_digits_sr16.py; its config
record names the stage below), ``--direct_workdir`` a base-stage run at the final resolution
(configs/cascade_digits_base.py with data.image_size=16). For every level s the whole chain is
sampled with ``cascade.sample_aug_level = s`` and scored with the shipped digits classifier
(FD in its feature space, the images reduced to 8x8 first, with the real-against-real floor),
and the low-resolution consistency ``PSNR(downsample(x_SR), x_low)`` against the clean output of
the stage below says how closely the SR stage follows its condition. Training FLOPs per step
come from XLA's cost analysis of each run's gradient step; the number of steps from each run's
checkpoints. Results go to ``--out`` (JSON) and are printed as a table.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

flags.DEFINE_string("sr_workdir", None, "Trained SR stage (its stage below from its config).")
flags.DEFINE_string("direct_workdir", None, "One model trained at the final resolution.")
flags.DEFINE_list("levels", ["0", "25", "50", "100", "200", "400"], "Sampling-time levels s.")
flags.DEFINE_integer("num", 500, "Samples per setting.")
flags.DEFINE_integer("batch", 250, "Samples per jitted call.")
flags.DEFINE_string("out", "/tmp/cascade_bench.json", "Results JSON.")
flags.DEFINE_string("png_dir", None, "Also write each setting's stage grid here.")
FLAGS = flags.FLAGS


def _fd(images: np.ndarray) -> dict:
  from genjax import metrics
  ev = metrics.Evaluator(("fd",), "digits", None, image_shape=images.shape[1:], num=len(images))
  ev.update(np.clip(images, -1.0, 1.0))
  out = ev.compute()
  metrics.add_digits_baseline(out, ev)
  return {"fd": out["fd_digits"], "floor": out["baseline"]["fd_digits"]}


def _psnr(a, b) -> float:
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=(1, 2, 3))
  return float(np.mean(10 * np.log10(4.0 / np.maximum(mse, 1e-12))))  # range [-1, 1]: peak 2


def _train_flops(config, spec, batch: int) -> float:
  from genjax import methods
  m = methods.build_method(config, spec)
  x = jnp.zeros((batch,) + tuple(spec.shape))
  params, _ = m.init(jax.random.key(0), {"x": x})
  g = jax.jit(jax.grad(lambda p, b, k: m.loss(p, b, k)[0]))
  cost = g.lower(params, {"x": x}, jax.random.key(1)).cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost["flops"])


def _steps(workdir: str) -> int:
  from genjax.training import workdir as workdir_lib
  return int(max(workdir_lib.saved_steps(workdir)))


def _stage_runs(workdir: str):
  """``[(config, spec, workdir)]`` of the chain ending at ``workdir``, lowest first."""
  from genjax.data import DataConfig, load_dataset
  from genjax.training import run as run_lib
  from genjax.training import workdir as workdir_lib
  from genjax.typed_config import to_dict
  out = []
  while workdir:
    config = run_lib.load_config(workdir_lib.current_config_path(workdir))
    spec = load_dataset(DataConfig.from_dict(to_dict(config.data))).spec
    out.insert(0, (config, spec, workdir))
    workdir = config.get("cascade", {}).get("lower_workdir", "")
  return out


def _sample_chain(config, spec, workdir, level, num, batch, seed=0):
  from genjax.cascade.method import build_stage
  from genjax.training import run as run_lib
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.cascade.sample_aug_level = level
  _, state = run_lib.restore(config, workdir)
  stage = build_stage(config, spec)
  b = min(batch, num)
  fn = jax.jit(lambda p, k: stage.sample_stages(p, k, b))
  key = jax.random.key(seed)
  jax.block_until_ready(fn(state.ema_params, key))  # compile outside the timing
  t0 = time.perf_counter()
  chunks = [jax.device_get(fn(state.ema_params, jax.random.fold_in(key, i)))
            for i in range(-(-num // b))]
  sec = time.perf_counter() - t0
  return [np.concatenate([c[j] for c in chunks])[:num] for j in range(len(chunks[0]))], sec


def main(argv):
  del argv
  from genjax.cascade import augment
  from genjax.cascade.chain import stage_rows
  from genjax import viz
  results = {"levels": {}, "num": FLAGS.num}
  chain = _stage_runs(FLAGS.sr_workdir)
  config, spec, wd = chain[-1]
  # 1. Training FLOPs of the cascade (every stage) and of the direct model.
  flops = 0.0
  for c, s, w in chain:
    c2 = c.copy_and_resolve_references()
    per = _train_flops(c2, s, int(c.training.batch_size))
    results.setdefault("stages", []).append({"workdir": w, "size": s.shape[0],
                                             "steps": _steps(w), "flops_per_step": per})
    flops += per * _steps(w)
  results["cascade_train_flops"] = flops
  # 2. FD and low-resolution consistency against the sampling-time level s.
  for level in [int(v) for v in FLAGS.levels]:
    stages, sec = _sample_chain(config, spec, wd, level, FLAGS.num, FLAGS.batch)
    low = stages[-2]
    cons = _psnr(augment.downsample(jnp.asarray(stages[-1]), low.shape[1]), low)
    row = dict(_fd(stages[-1]), low_res_psnr=cons, sample_s_per_image=sec / FLAGS.num,
               fd_lower_stage=_fd(low)["fd"])
    results["levels"][level] = row
    print(f"s={level:4d}  FD {row['fd']:.3f} (floor {row['floor']:.3f})  FD of the stage below "
          f"{row['fd_lower_stage']:.3f}  low-res PSNR {cons:.1f} dB  "
          f"{1e3 * row['sample_s_per_image']:.1f} ms/image", flush=True)
    if FLAGS.png_dir:
      rows = stage_rows([s[:32] for s in stages], stages[-1].shape[1])
      viz.save_image_grid(rows.reshape((-1,) + rows.shape[2:]),
                          os.path.join(FLAGS.png_dir, f"cascade_s{level}.png"),
                          nrow=4 * len(stages))
  # 3. One model at the final resolution.
  if FLAGS.direct_workdir:
    (dc, ds, dw), = _stage_runs(FLAGS.direct_workdir)
    per = _train_flops(dc.copy_and_resolve_references(), ds, int(dc.training.batch_size))
    stages, sec = _sample_chain(dc, ds, dw, 0, FLAGS.num, FLAGS.batch)
    results["direct"] = dict(_fd(stages[-1]), steps=_steps(dw), flops_per_step=per,
                             train_flops=per * _steps(dw), sample_s_per_image=sec / FLAGS.num)
    d = results["direct"]
    print(f"direct: FD {d['fd']:.3f} (floor {d['floor']:.3f}), {d['train_flops'] / 1e12:.1f} "
          f"TFLOP of training vs the cascade's {flops / 1e12:.1f}; "
          f"{1e3 * d['sample_s_per_image']:.1f} ms/image", flush=True)
    if FLAGS.png_dir:
      viz.save_image_grid(stages[-1][:32], os.path.join(FLAGS.png_dir, "direct.png"), nrow=8)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, "w") as f:
    json.dump(results, f, indent=1, default=float)
  print(f"Wrote {FLAGS.out}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["sr_workdir"])
  app.run(main)
