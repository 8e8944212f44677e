"""DiT against the U-Net as the denoiser of class-conditional latent diffusion on the digits.

Takes trained ``ldm`` runs (``--workdirs``, e.g. a ``configs/ldm_digits.py`` U-Net and a
``configs/dit_latent.py`` DiT on the same first stage) and reports for each, with one protocol:

* parameters of the denoiser and XLA's FLOP count of one forward pass on one latent
  (``jax.jit(...).lower(...).compile().cost_analysis()``, ``benchmarks.common.xla_flops``);
* class accuracy of the shipped digits classifier on ``--per_class`` samples of every class
  (w = ``--scale``, DDIM ``--sampling_steps``), and fd_digits against the test digits with the
  real-data floor;
* speed, measured interleaved in this one process after everything is compiled: train images
  per second of the loss gradient at the run's batch size, and seconds to sample
  ``--speed_num`` images.

    python -m benchmarks.dit_vs_unet_latent --workdirs=/tmp/latent/runs/ldm_unet,/tmp/dit/lat/matched \
        --out=/tmp/dit/dit_vs_unet.json
"""

from __future__ import annotations

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", None, "Trained ldm runs (class-conditional, digits).")
flags.DEFINE_integer("per_class", 50, "Samples per class.", lower_bound=1)
flags.DEFINE_float("scale", 0.0, "Classifier-free guidance w.")
flags.DEFINE_integer("sampling_steps", 20, "DDIM steps.", lower_bound=1)
flags.DEFINE_integer("speed_num", 256, "Images per timed sampling call.", lower_bound=1)
flags.DEFINE_integer("speed_repeats", 5, "Interleaved timing rounds.", lower_bound=1)
flags.DEFINE_string("out", None, "JSON of the results.")
flags.mark_flags_as_required(["workdirs"])


def main(argv):
  del argv
  from genjax.latent.ldm import LDMConfig, load_first_stage
  from genjax.metrics import sample_quality
  from genjax.metrics.digits_classifier import load_digits_classifier
  from genjax.nets.build import build_network
  from genjax.training import run as run_lib
  from genjax.typed_config import from_section, to_dict
  from genjax.types import DataSpec

  _, probs_fn = load_digits_classifier()
  rows, timers, floor = [], [], None
  for wd in FLAGS.workdirs:
    config, run, state = run_lib.load_trained(wd)
    if config.method != "ldm" or config.ldm.condition != "class":
      raise common.BenchmarkError(f"{wd} is not a class-conditional ldm run.")
    spec = run.dataset.spec
    fs, _, _ = load_first_stage(from_section(LDMConfig, config.ldm, where="ldm"), spec)
    lat = tuple(fs.latent_shape)
    ms = dict(to_dict(config.model))
    ms["out_channels"] = lat[-1]
    net = build_network(ms, DataSpec(shape=lat, num_classes=spec.num_classes, kind="image"))
    p = state.ema_params["net"]
    z = jnp.zeros((1,) + lat)
    one = jnp.zeros((1,), jnp.int32)
    flops = common.xla_flops(jax.jit(lambda prm, x: net.apply({"params": prm}, x, one, y=one)),
                             p, z)
    method = common.method_for(config, guidance_scale=FLAGS.scale, steps=FLAGS.sampling_steps)
    num = FLAGS.per_class * spec.num_classes
    s = common.sample(method, state.ema_params, num, seed=0)
    x = s.as_images()
    labels = np.arange(num) % spec.num_classes
    q = sample_quality(x, baseline=floor is None)
    floor = floor or q["baseline"]
    rows.append({"workdir": wd, "network": config.model.name, "model": dict(to_dict(config.model)),
                 "step": int(state.step), "params": int(sum(np.size(a) for a in jax.tree.leaves(p))),
                 "fwd_mflops_per_latent": flops / 1e6,
                 "accuracy": float(np.mean(np.asarray(probs_fn(x)).argmax(-1) == labels)),
                 "fd_digits": q["fd_digits"], "precision": q["precision_digits"],
                 "recall": q["recall_digits"], "batch": int(config.training.batch_size)})
    # Compiled pieces for the interleaved timing.
    labels_s = jnp.arange(FLAGS.speed_num) % spec.num_classes
    sample_fn = jax.jit(lambda prm, k, m=method: m.sample(prm, k, FLAGS.speed_num,
                                                          inputs={"label": labels_s}))
    batch = {k: jnp.asarray(v) for k, v in
             run.dataset.train.get(np.arange(config.training.batch_size)).items()
             if k in ("x", "label")}
    grad_fn = jax.jit(jax.grad(lambda prm, b, k, m=run.method: m.loss(prm, b, k)[0]))
    args_s, args_t = (state.ema_params, jax.random.key(1)), (state.params, batch,
                                                             jax.random.key(2))
    jax.block_until_ready(sample_fn(*args_s))
    jax.block_until_ready(grad_fn(*args_t))
    timers.append((sample_fn, args_s, grad_fn, args_t))
    print(json.dumps(rows[-1], default=str), flush=True)
  sample_t = [[] for _ in rows]
  train_t = [[] for _ in rows]
  for _ in range(FLAGS.speed_repeats):
    for i, (sample_fn, args_s, grad_fn, args_t) in enumerate(timers):
      t0 = time.perf_counter()
      jax.block_until_ready(sample_fn(*args_s))
      sample_t[i].append(time.perf_counter() - t0)
      t0 = time.perf_counter()
      for _ in range(5):
        jax.block_until_ready(grad_fn(*args_t))
      train_t[i].append((time.perf_counter() - t0) / 5)
  for i, r in enumerate(rows):
    r["sample_s"] = float(np.median(sample_t[i]))
    r["train_img_per_s"] = r["batch"] / float(np.median(train_t[i]))
  for r in rows:
    r["train_speed_vs_first"] = r["train_img_per_s"] / rows[0]["train_img_per_s"]
    r["sample_time_vs_first"] = r["sample_s"] / rows[0]["sample_s"]
  print(f"fd_digits floor {floor['fd_digits']:.3f}; {FLAGS.speed_num} samples per timed call, "
        f"DDIM {FLAGS.sampling_steps}")
  print("| network | params | fwd MFLOPs / latent | steps | class accuracy | fd_digits | "
        "precision / recall | train img/s (ratio) | sampling s (ratio) |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['network']} | {r['params']:,} | {r['fwd_mflops_per_latent']:.2f} | {r['step']} | "
          f"{r['accuracy']:.3f} | {r['fd_digits']:.3f} | {r['precision']:.2f} / "
          f"{r['recall']:.2f} | {r['train_img_per_s']:.0f} ({r['train_speed_vs_first']:.2f}x) | "
          f"{r['sample_s']:.2f} ({r['sample_time_vs_first']:.2f}x) |")
  if FLAGS.out:
    common.write_json(FLAGS.out, {"floor": floor.get("fd_digits"), "scale": FLAGS.scale,
                                  "sampling_steps": FLAGS.sampling_steps, "rows": rows})


if __name__ == "__main__":
  app.run(main)
