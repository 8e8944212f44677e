"""Imagen and the text-conditioned cascade on the shapes: four measurements.

``--task=levels``: FD of the whole chain against the sampling-time augmentation level s
(Gaussian augmentation, one compiled chain with s its argument; CDM's finding is that a
moderate s beats none), with the low-resolution consistency ``PSNR(downsample(x_SR), x_low)``.

``--task=compute``: the cascade against one model at the final resolution: training FLOPs per
step (XLA's cost analysis of the trainer's whole jitted step: forward, backward, optimizer,
EMA) times the steps of every stage, FD and adherence of the final images, sampling time per
image (measured interleaved in this one process).

``--task=encoders``: a frozen against a jointly trained text encoder, at equal steps: caption
adherence (:func:`genjax.metrics.adherence.prompt_adherence`) on never-paired test captions
(``benchmarks.common.never_paired_prompts``: captions that no training batch of either run
held), beside the real ceiling and chance, at the guidance weights ``--scales``.

``--task=guidance``: the guidance sweep of one stage (or chain) at weights ``--scales`` with
``--thresholds`` (none / static / dynamic, the sampling core's ``sampling.thresholding``): FD
and adherence against w, and a grid per setting (``--png_dir``).

    python -m benchmarks.imagen_shapes --task=levels --workdir=runs/imagen32 \\
        --levels=0,50,100,250,500 --num=256 --png_dir=/tmp/imagen_pngs
    python -m benchmarks.imagen_shapes --task=compute --workdir=runs/imagen32 \\
        --direct_workdir=runs/imagen_direct32 --num=256
    python -m benchmarks.imagen_shapes --task=encoders --workdir=runs/imagen16 \\
        --joint_workdir=runs/imagen16_joint --num_prompts=128 --scales=0,1,3
    python -m benchmarks.imagen_shapes --task=guidance --workdir=runs/imagen16 \\
        --scales=0,1,3,5,10 --thresholds=none,static,dynamic --num=256 --png_dir=/tmp/imagen_pngs

Guidance weights are the core's: ``(1 + w) eps(x, c) - w eps(x, empty)``; Imagen's weight is
``1 + w``. Every workdir's own config record is used (the chain below from it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

flags.DEFINE_enum("task", None, ["levels", "compute", "encoders", "guidance"], "What to measure.")
flags.DEFINE_string("workdir", None, "A trained cascade stage (the chain below from its record).")
flags.DEFINE_string("direct_workdir", None, "compute: one model at the final resolution.")
flags.DEFINE_string("joint_workdir", None, "encoders: the jointly trained encoder's run (or "
                    "none: --workdir alone, under the name --label).")
flags.DEFINE_string("label", "frozen", "encoders: the name of --workdir's run in the results.")
flags.DEFINE_list("levels", ["0", "50", "100", "250", "500"], "levels: sampling-time s.")
flags.DEFINE_list("scales", ["0", "1", "3", "5", "10"], "Guidance weights w.")
flags.DEFINE_list("thresholds", ["none", "static", "dynamic"], "guidance: x0 thresholding.")
flags.DEFINE_integer("num", 256, "Samples per setting (FD).")
flags.DEFINE_integer("num_prompts", 128, "encoders / guidance: never-paired captions.")
flags.DEFINE_integer("batch", 128, "Samples per jitted call.")
flags.DEFINE_integer("steps", 0, "Sampler steps (0: each run's own).")
flags.DEFINE_string("out", "/tmp/imagen_bench.json", "Results JSON.")
flags.DEFINE_string("png_dir", None, "Grids of each setting.")
FLAGS = flags.FLAGS


# -- restoring ------------------------------------------------------------------------------


def _config_of(workdir: str):
  from genjax.training import run as run_lib
  from genjax.training import workdir as workdir_lib
  return run_lib.load_config(workdir_lib.current_config_path(workdir))


def restore_stage(workdir: str):
  """``(config, run, state, stage)`` of a trained cascade stage (its chain below restored)."""
  from genjax.cascade.method import build_stage
  from genjax.training import run as run_lib
  config = _config_of(workdir)
  run, state = run_lib.restore(config, workdir)
  return config, run, state, build_stage(config, run.dataset.spec)


def steps_of(workdir: str) -> int:
  from genjax.training import workdir as workdir_lib
  return int(max(workdir_lib.saved_steps(workdir)))


def chain_workdirs(workdir: str) -> list:
  """The chain's workdirs, lowest first."""
  out = []
  while workdir:
    out.insert(0, workdir)
    workdir = _config_of(workdir).get("cascade", {}).get("lower_workdir", "")
  return out


def train_step_flops(workdir_or_config) -> float:
  """FLOPs of one jitted train step of a run (its workdir) or config (XLA's cost analysis of
  the trainer's step: forward, backward, optimizer and EMA), at its batch size."""
  from genjax.training import optim as optim_lib
  from genjax.training import run as run_lib
  from genjax.training import trainer
  config = (_config_of(workdir_or_config) if isinstance(workdir_or_config, str)
            else workdir_or_config)
  run = run_lib.build_run(config)
  m = run.method
  tx = optim_lib.make_optimizer(run.optim, run.train.num_steps)
  example = run.iterator.batch_at(0)
  mesh = trainer.make_mesh()
  state = jax.eval_shape(lambda k: trainer.init_state(m, tx, k, example, run.train, mesh),
                         jax.random.key(0))
  step = trainer.make_train_step(m, run.train)
  batch = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), example)
  cost = jax.jit(step).lower(state, batch).cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost["flops"])


# -- scoring --------------------------------------------------------------------------------


def fd_shapes(images: np.ndarray) -> dict:
  """FD in the shipped shapes classifier's feature space against the test split, with the
  real-against-real floor at as many images."""
  from genjax import metrics
  ev = metrics.Evaluator(("fd",), "shapes", None, image_shape=images.shape[1:],
                         num=len(images))
  ev.update(np.clip(images, -1.0, 1.0))
  out = ev.compute()
  metrics.add_shapes_baseline(out, ev)
  key = [k for k in out if k.startswith("fd")][0]
  return {"fd": float(out[key]), "floor": float(out["baseline"][key])}


def adherence(images, prompts) -> dict:
  from genjax.metrics.adherence import prompt_adherence
  r = prompt_adherence(np.clip(images, -1, 1), list(prompts))
  return {k: r.get(k) for k in ("adherence", "exact", "colour", "shape", "size", "position",
                                "relation", "count")}


def psnr(a, b) -> float:
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=(1, 2, 3))
  return float(np.mean(10 * np.log10(4.0 / np.maximum(mse, 1e-12))))


def unseen_prompts(workdirs, num: int):
  """``(prompts, tokens)``: ``num`` test captions that no training batch of any run held."""
  from benchmarks import common
  from genjax.data import shapes
  from genjax.latent.prompts import text_max_len
  from genjax.text import tokenize
  from genjax.training import run as run_lib
  seen = set()
  run = None
  for w in workdirs:
    run = run_lib.build_run(_config_of(w))
    seen |= common.seen_captions(run, steps_of(w))
  idx = common.never_paired_prompts(run, num, seen)
  src = run.dataset.test
  prompts = list(shapes.captions(idx + src.start, src.cfg))
  return prompts, np.asarray(tokenize(prompts, text_max_len(_config_of(workdirs[0]))), np.int32)


def sampler(stage, params, num: int, batch: int, smp=None):
  """``sample(key, tokens=None, level=None) -> (stages, seconds)``, one compiled chain."""
  b = min(batch, num)

  def run(p, k, tokens, level):
    return stage.sample_stages(p, k, b, text=tokens, aug_level=level, sampling=smp)

  fn = jax.jit(run)

  def sample(key, tokens=None, level=None):
    lvl = None if level is None else jnp.int32(level)
    reps = -(-num // b)
    toks = None
    if tokens is not None:
      toks = np.resize(np.asarray(tokens), (reps * b, tokens.shape[1]))
    arg = lambda i: None if toks is None else jnp.asarray(toks[i * b:(i + 1) * b])
    jax.block_until_ready(fn(params, key, arg(0), lvl))  # compile outside the timing
    t0 = time.perf_counter()
    chunks = [jax.device_get(fn(params, jax.random.fold_in(key, i), arg(i), lvl))
              for i in range(reps)]
    sec = time.perf_counter() - t0
    return [np.concatenate([c[j] for c in chunks])[:num] for j in range(len(chunks[0]))], sec

  return sample


def sampling_of(config, **changes):
  from genjax.sampling import registry
  smp = registry.from_config(config.get("sampling"), default="ddim")
  if FLAGS.steps:
    changes.setdefault("steps", FLAGS.steps)
  return dataclasses.replace(smp, mode="sample", **changes)


def save_stages(stages, path: str, per_row: int = 4):
  from genjax import viz
  from genjax.cascade.chain import stage_rows
  rows = stage_rows([s[:32] for s in stages], stages[-1].shape[1])
  viz.save_image_grid(rows.reshape((-1,) + rows.shape[2:]), path, nrow=per_row * len(stages))


# -- tasks ----------------------------------------------------------------------------------


def task_levels(results):
  config, run, state, stage = restore_stage(FLAGS.workdir)
  prompts, tokens = None, None
  if stage.text is not None:
    prompts, tokens = unseen_prompts(chain_workdirs(FLAGS.workdir), FLAGS.num)
  sample = sampler(stage, state.ema_params, FLAGS.num, FLAGS.batch, sampling_of(config))
  from genjax.cascade import augment
  for level in [int(v) for v in FLAGS.levels]:
    stages, sec = sample(jax.random.key(0), tokens, level)
    low = stages[-2]
    cons = psnr(augment.downsample(jnp.asarray(stages[-1]), low.shape[1]), low)
    row = dict(fd_shapes(stages[-1]), low_res_psnr=cons, s_per_image=sec / FLAGS.num,
               fd_lower=fd_shapes(low)["fd"])
    if prompts is not None:
      row["adherence"] = adherence(stages[-1], prompts)["adherence"]
      row["adherence_lower"] = adherence(low, prompts)["adherence"]
    results.setdefault("levels", {})[level] = row
    print(f"s={level}: {json.dumps(row, default=float)}", flush=True)
    if FLAGS.png_dir:
      save_stages(stages, os.path.join(FLAGS.png_dir, f"imagen_chain_s{level}.png"))


def task_compute(results):
  chain = chain_workdirs(FLAGS.workdir)
  rows = []
  for w in chain + [FLAGS.direct_workdir]:
    per = train_step_flops(w)
    rows.append({"workdir": w, "steps": steps_of(w), "flops_per_step": per,
                 "train_flops": per * steps_of(w)})
    print(json.dumps(rows[-1]), flush=True)
  results["stages"] = rows[:-1]
  results["cascade_train_flops"] = sum(r["train_flops"] for r in rows[:-1])
  results["direct"] = rows[-1]
  prompts, tokens = unseen_prompts(chain + [FLAGS.direct_workdir], FLAGS.num)
  for name, w in (("cascade", FLAGS.workdir), ("direct", FLAGS.direct_workdir)):
    config, run, state, stage = restore_stage(w)
    stages, sec = sampler(stage, state.ema_params, FLAGS.num, FLAGS.batch,
                          sampling_of(config))(jax.random.key(0), tokens)
    row = dict(fd_shapes(stages[-1]), s_per_image=sec / FLAGS.num,
               **adherence(stages[-1], prompts))
    results.setdefault("quality", {})[name] = row
    print(f"{name}: {json.dumps(row, default=float)}", flush=True)
    if FLAGS.png_dir:
      save_stages(stages, os.path.join(FLAGS.png_dir, f"imagen_{name}.png"))


def task_encoders(results):
  from genjax.metrics.adherence import real_ceiling
  runs = {FLAGS.label: FLAGS.workdir}
  if FLAGS.joint_workdir:
    runs["joint"] = FLAGS.joint_workdir
  # The captions no training batch held: both runs read the same batches (same data seed and
  # batch size), so one run's first steps_of(run) batches are the other's too.
  prompts, tokens = unseen_prompts(list(runs.values()), FLAGS.num_prompts)
  results["steps"] = {k: steps_of(w) for k, w in runs.items()}
  from genjax.data import shapes
  for name, w in runs.items():
    config, run, state, stage = restore_stage(w)
    for scale in [float(v) for v in FLAGS.scales]:
      smp = sampling_of(config, guidance_scale=scale)
      stages, sec = sampler(stage, state.ema_params, len(prompts), FLAGS.batch,
                            smp)(jax.random.key(0), tokens)
      row = dict(adherence(stages[-1], prompts), s_per_image=sec / len(prompts))
      results.setdefault(name, {})[scale] = row
      print(f"{name} w={scale}: {json.dumps(row, default=float)}", flush=True)
      if FLAGS.png_dir and scale == float(FLAGS.scales[-1]):
        from genjax.latent.prompts import save_prompt_grid
        k = 8
        save_prompt_grid(stages[-1][:k], prompts[:k],
                         os.path.join(FLAGS.png_dir, f"imagen_{name}_w{scale:g}.png"))
    size = int(stage.shape[0])
  # The ceiling (real test images against their own captions) and chance (the first real
  # test images against the never-paired captions), at the generated images' size.
  real = shapes.generate(np.arange(len(prompts)), shapes.ShapesConfig(image_size=size))
  results["ceiling_first_test_images"] = real_ceiling(2000, size)["adherence"]
  results["chance"] = adherence(real["x"], prompts)["adherence"]


def task_guidance(results):
  config, run, state, stage = restore_stage(FLAGS.workdir)
  prompts, tokens = unseen_prompts(chain_workdirs(FLAGS.workdir), FLAGS.num)
  for th in FLAGS.thresholds:
    for scale in [float(v) for v in FLAGS.scales]:
      smp = sampling_of(config, guidance_scale=scale, thresholding=th)
      stages, sec = sampler(stage, state.ema_params, FLAGS.num, FLAGS.batch,
                            smp)(jax.random.key(0), tokens)
      x = stages[-1]
      row = dict(fd_shapes(x), **adherence(x, prompts), s_per_image=sec / FLAGS.num,
                 out_of_range=float(np.mean(np.abs(x) > 1.0)))
      results.setdefault(th, {})[scale] = row
      print(f"{th} w={scale}: {json.dumps(row, default=float)}", flush=True)
      if FLAGS.png_dir:
        from genjax.latent.prompts import save_prompt_grid
        save_prompt_grid(x[:8], prompts[:8],
                         os.path.join(FLAGS.png_dir, f"imagen_guidance_{th}_w{scale:g}.png"))


def main(argv):
  del argv
  results = {"task": FLAGS.task, "num": FLAGS.num}
  if FLAGS.png_dir:
    os.makedirs(FLAGS.png_dir, exist_ok=True)
  {"levels": task_levels, "compute": task_compute, "encoders": task_encoders,
   "guidance": task_guidance}[FLAGS.task](results)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, "w") as f:
    json.dump(results, f, indent=1, default=float)
  print(f"Wrote {FLAGS.out}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["task", "workdir"])
  app.run(main)
