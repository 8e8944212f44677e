"""ControlNet on a trained base: adherence to the control, sample quality and training cost.

For a trained controlnet run (and its base):

1. adherence (the condition's metric: edge F1 for edges, mask IoU for masks) between the
   control map of each test image and the same map recomputed from the sample drawn under it,
   at control scales 0 (the base alone: ControlNet + base at scale 0 is exactly the base),
   0.5, 1 and 2, with the FD of the samples in the digits classifier's feature space beside it
   and the real-data floors (the map of the real image: 1; the map of another test image:
   chance);
2. the same adherence at scale 1 for every saved checkpoint of the run, and the first step at
   which it passes 80% of its final value (the paper's "sudden convergence");
3. the cost of one ControlNet train step against one train step of the base (same batch),
   timed interleaved in one process;
4. a grid of control map | samples at scales 0, 1, 2 (``--grid``).

On the captioned shapes (``configs/controlnet_shapes_masks.py`` on the text-to-image latent
model) each sample is drawn with its test image's caption and mask; beside mask IoU it reports
FD in the shapes classifier's space (``fd_shapes``) and caption adherence, and the floors: the
same numbers for real images (train images for FD, the test images with their own captions and
with another image's caption), and the mask IoU of the base's first-stage reconstructions
(what the latent space keeps of the masks).

    python -m benchmarks.controlnet_adherence \\
        --config=configs/controlnet_digits_edges.py --workdir=runs/cn_edges \\
        --base_config=configs/ddpm.py --num=256 --out=/tmp/cn_bench.json --grid=grid.png
    python -m benchmarks.controlnet_adherence \\
        --config=configs/controlnet_shapes_masks.py --workdir=runs/cn_masks \\
        --base_config=configs/ldm_shapes.py --num=256 --grid=masks.png
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "The controlnet run's config.", lock_config=True)
config_flags.DEFINE_config_file("base_config", "configs/ddpm.py", "The base's config (for the "
                                "train-step cost).", lock_config=False)
flags.DEFINE_string("workdir", None, "The controlnet run's workdir.")
flags.DEFINE_integer("num", 256, "Test images for the final adherence and FD.")
flags.DEFINE_integer("curve_num", 128, "Test images per checkpoint for the adherence curve.")
flags.DEFINE_list("scales", ["0", "0.5", "1", "2"], "Control scales.")
flags.DEFINE_integer("timing_reps", 20, "Interleaved timed train steps of each.")
flags.DEFINE_string("out", None, "JSON of the results.")
flags.DEFINE_string("grid", None, "PNG of control map | samples at scales 0, 1, 2.")
flags.DEFINE_bool("smoke", False, "Tiny sizes (an end-to-end check).")
flags.DEFINE_string("curve_cache", None, "JSON of adherence-curve points already measured "
                    "(step -> result); new points are added, so the curve can be measured while "
                    "the run trains (--curve_only).")
flags.DEFINE_bool("curve_only", False, "Only measure the curve points not yet in --curve_cache.")
flags.DEFINE_bool("skip_cost", False, "Skip the train-step timing.")
flags.DEFINE_bool("curve_from_cache", False, "Take the curve from --curve_cache as it is "
                  "(another process measures it).")
flags.mark_flags_as_required(["config", "workdir"])


def train_step_cost(cn_config, base_config, reps: int) -> dict:
  """Seconds per jitted train step of ControlNet and of the base on the same batch size,
  measured alternately in one process (so that a shared machine's load hits both alike)."""
  import jax

  from genjax.training import run as run_lib
  from genjax.training import trainer
  from genjax.training import optim as optim_lib

  def compiled(config):
    run = run_lib.build_run(config)
    mesh = trainer.make_mesh()
    tx = optim_lib.make_optimizer(run.optim, run.train.num_steps)
    batch = run.iterator.batch_at(0)
    state = trainer.init_state(run.method, tx, jax.random.key(0), batch, run.train, mesh)
    step = jax.jit(trainer.make_train_step(run.method, run.train))
    state, _ = step(state, batch)
    jax.block_until_ready(state.params)
    return step, state, batch

  cn = compiled(cn_config)
  base = compiled(base_config)
  times = {"controlnet": [], "base": []}
  states = {"controlnet": cn[1], "base": base[1]}
  for _ in range(reps):
    for name, (step, _, batch) in (("controlnet", cn), ("base", base)):
      t0 = time.perf_counter()
      states[name], m = step(states[name], batch)
      jax.block_until_ready(m["loss"])
      times[name].append(time.perf_counter() - t0)
  import numpy as np
  med = {k: float(np.median(v)) for k, v in times.items()}
  return {"controlnet_s_per_step": med["controlnet"], "base_s_per_step": med["base"],
          "ratio": med["controlnet"] / med["base"], "reps": reps,
          "batch_size": int(cn_config.training.batch_size)}


def shapes_floors(config, run, num: int) -> dict:
  """Real-data floors on the captioned shapes: FD of real train images, caption adherence of
  the real test images to their own and to another image's caption, and mask IoU of the real
  test images and of the latent base's first-stage reconstructions."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from genjax.controlnet import conditions as cond_lib
  from genjax.controlnet.method import load_base
  from genjax.metrics import reference as ref_lib
  from genjax.metrics.adherence import caption_adherence
  from genjax.metrics.evaluate import evaluate
  data = run.dataset.test.get(np.arange(num))
  x = np.asarray(data["x"])
  out = {}
  train = ref_lib.dataset_images("shapes", "train", image_size=x.shape[1], max_examples=num)
  out["fd_shapes_real_train"] = float(evaluate(np.asarray(train), ("fd",), "shapes")["fd_shapes"])
  out["caption_adherence_real"] = float(caption_adherence(x, data)["adherence"])
  rolled = {k: np.roll(v, 1, axis=0) for k, v in data.items()}
  out["caption_adherence_chance"] = float(caption_adherence(x, rolled)["adherence"])
  ctype = cond_lib.get_condition("mask")
  ref = ctype.compute(data, None)
  base = load_base(config.controlnet.base_workdir)
  if base.latent is not None:
    rec = np.concatenate([np.asarray(jax.jit(lambda a: base.latent.decode(base.latent.encode(a)))(
        jnp.asarray(x[i:i + 128]))) for i in range(0, num, 128)])
    out["mask_iou_first_stage_recon"] = float(jnp.mean(ctype.adherence(
        ref, ctype.recompute(jnp.asarray(rec)))))
    out["caption_adherence_first_stage_recon"] = float(caption_adherence(rec, data)["adherence"])
    out["fd_shapes_first_stage_recon"] = float(evaluate(np.clip(rec, -1, 1), ("fd",),
                                                        "shapes")["fd_shapes"])
  return out


def main(argv):
  del argv
  import jax
  import numpy as np

  from genjax.controlnet import conditions as cond_lib
  from genjax.controlnet.figures import save_pairs
  from genjax.controlnet.method import evaluate_adherence
  from genjax.training import run as run_lib
  from genjax.training import workdir as workdir_lib

  config = FLAGS.config
  scales = tuple(float(s) for s in FLAGS.scales)
  num, curve_num, reps = FLAGS.num, FLAGS.curve_num, FLAGS.timing_reps
  if FLAGS.smoke:
    num, curve_num, reps = 16, 8, 2
  out = {"workdir": FLAGS.workdir, "condition": config.controlnet.condition,
         "sampler": dict(config.sampling)}
  ctype = cond_lib.get_condition(config.controlnet.condition)
  args = dict(config.controlnet.condition_args or {})

  # 1. The adherence curve over the saved checkpoints (at scale 1).
  cache = {}
  if FLAGS.curve_cache and os.path.exists(FLAGS.curve_cache):
    with open(FLAGS.curve_cache) as f:
      cache = {int(k): v for k, v in json.load(f).items()}
  sample = None
  for step in workdir_lib.saved_steps(FLAGS.workdir):
    if step in cache or FLAGS.curve_from_cache:
      continue
    run, st = run_lib.restore(config, FLAGS.workdir, step)
    sample = sample or jax.jit(run.method.sample, static_argnums=(2,))
    r = evaluate_adherence(sample, ctype, args, st.ema_params, run.dataset, jax.random.key(0),
                           curve_num, config.controlnet.condition, scales=(1.0,))
    cache[int(step)] = {"step": int(step), "adherence": r["scale_1"]["adherence"],
                        **{k: v for k, v in r["scale_1"].items() if k != "adherence"}}
    print(cache[int(step)])
    if FLAGS.curve_cache:
      with open(FLAGS.curve_cache, "w") as f:
        json.dump(cache, f, indent=1)
  if FLAGS.curve_only:
    return
  curve = [cache[k] for k in sorted(cache)]
  out["curve"] = curve

  # 2. Final checkpoint, every scale.
  run, state = run_lib.restore(config, FLAGS.workdir)
  final_step = int(jax.device_get(state.step))
  sample = sample or jax.jit(run.method.sample, static_argnums=(2,))
  res = evaluate_adherence(sample, ctype, args, state.ema_params, run.dataset,
                           jax.random.key(0), num, config.controlnet.condition, scales=scales)
  res["step"] = final_step
  out["final"] = res
  print(json.dumps(res, indent=1))
  if curve:
    final = curve[-1]["adherence"]
    base_level = res["scale_0"]["adherence"]
    passed = [c["step"] for c in curve if c["adherence"] >= 0.8 * final]
    out["step_80pct_of_final"] = passed[0] if passed else None
    # also 80% of the way from the base's adherence to the final one
    gain = [c["step"] for c in curve if c["adherence"] - base_level >= 0.8 * (final - base_level)]
    out["step_80pct_of_gain"] = gain[0] if gain else None

  if config.data.dataset == "shapes":
    out["floors"] = shapes_floors(config, run, num)
    print(out["floors"])

  # 3. Train-step cost.
  if not FLAGS.skip_cost:
    out["cost"] = train_step_cost(config, FLAGS.base_config, reps)
    print(out["cost"])

  # 4. The grid.
  if FLAGS.grid:
    n = 16
    data = run.dataset.test.get(np.arange(n))
    images = np.asarray(data["x"])
    extra = {k: np.asarray(v) for k, v in data.items() if k not in ("x", "label")}
    maps = np.asarray(ctype.compute({"x": images, **extra}, jax.random.key(1), **args))
    cols = [np.asarray(sample(state.ema_params, jax.random.key(7), n,
                              inputs={"images": images, "scale": np.float32(s), **extra}))
            for s in (0.0, 1.0, 2.0)]
    save_pairs(maps, cols, FLAGS.grid, pairs_per_row=2)
    out["grid"] = FLAGS.grid
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  app.run(main)
