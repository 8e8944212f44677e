"""Pixel against latent diffusion at equal training compute, on the captioned shapes at 32x32.

For each downsampling factor f in ``--factors`` (f = 1 is pixel-space diffusion,
``ldm.first_stage_workdir = "pixels"``):

1. the first stage (f > 1): ``configs/autoencoder_kl_shapes.py`` with ``ch_mult`` giving f
   (``(1,) + (2,) * log2 f``), ``--fs_steps`` steps, trained (or reused) in ``--out/ae_f<f>``;
   its test PSNR and the caption adherence of its reconstructions (what the latent keeps);
2. the second stage: ``configs/ldm_shapes.py`` (text-conditioned U-Net with cross-attention and
   a jointly trained text encoder) on the ``32/f`` latents, every run with the same U-Net
   width and depth per level; the levels go down to 4x4 (``ch_mult`` (1, 2, 2, 2) at 32x32,
   (1, 2, 2) at 16x16, (1, 2) at 8x8, (1,) at 4x4) and cross-attention sits at 8x8, 4x4 and
   the middle, as in ``configs/ldm_shapes.py``. Each trains for the same ``--budget_s`` CPU
   seconds of its process (``training.time_budget_clock = "process"``: equal compute on a
   shared machine), in ``--out/ldm_f<f>``;
3. ``--num`` samples at guidance ``--scale`` for the first ``--num`` test captions: FD in the
   shapes classifier's space (``fd_shapes``, against the test split, with the real-data floor)
   and caption adherence (``genjax.metrics.adherence.prompt_adherence``) on the same samples;
4. speed, measured interleaved in this one process after everything is compiled (so that the
   load of a shared machine falls on every model alike): train images per second of the jitted
   train step at the run's batch, and seconds to sample ``--speed_num`` images.

    python -m benchmarks.pixel_vs_latent --factors=1,2,4,8 --fs_steps=300 --budget_tflop=50 \
        --num=256 --out=/tmp/pixlat

Writes ``pixel_vs_latent.json`` and ``pixel_vs_latent.md`` into ``--out``.
"""

from __future__ import annotations

import json
import math
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_list("factors", ["1", "2", "4", "8"], "Downsampling factors f (1 = pixels).")
flags.DEFINE_integer("fs_steps", 300, "First-stage training steps.", lower_bound=1)
flags.DEFINE_integer("fs_batch", 32, "First-stage batch size.", lower_bound=1)
flags.DEFINE_float("budget_tflop", 50.0, "Training compute of every second stage: TFLOPs of "
                   "its train steps (XLA's count of one loss-gradient step x steps).")
flags.DEFINE_integer("batch", 64, "Second-stage batch size.", lower_bound=1)
flags.DEFINE_integer("ch", 32, "Second-stage U-Net width.", lower_bound=1)
flags.DEFINE_integer("num", 256, "Samples for FD and adherence.", lower_bound=2)
flags.DEFINE_float("scale", 3.0, "Classifier-free guidance w of the samples.")
flags.DEFINE_integer("sampling_steps", 50, "DDIM steps.", lower_bound=1)
flags.DEFINE_integer("speed_num", 64, "Images per timed sampling call.", lower_bound=1)
flags.DEFINE_integer("speed_repeats", 3, "Interleaved timing rounds.", lower_bound=1)
flags.DEFINE_string("out", "/tmp/pixel_vs_latent", "Output directory.")
flags.DEFINE_bool("flops_only", False, "Only XLA's FLOP counts per f (no training): the train "
                  "step (frozen encoder forward + denoiser and text encoder forward and "
                  "backward) and one sample (sampling_steps x 2 guided denoiser passes + the "
                  "decoder), with untrained first stages of each f's architecture.")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check (2 first-stage steps, 10 s budgets, "
                  "8 samples); its figures mean nothing.")


def unet_for(size: int) -> dict:
  """The second stage's U-Net levels for a ``size x size`` latent: down to 4x4."""
  levels = int(math.log2(size // 4)) + 1
  ch_mult = (1,) + (2,) * (levels - 1)
  attn = tuple(r for r in (8, 4) if r <= size)
  return {"model.ch_mult": ch_mult, "model.attn_resolutions": attn}


def first_stage(f: int, out: str):
  """Trains (or reuses) the KL-f first stage; returns its workdir, or "pixels" for f = 1."""
  if f == 1:
    return "pixels", None
  config = common.load_config("configs/autoencoder_kl_shapes.py", {
      "model.ch_mult": (1,) + (2,) * int(math.log2(f)),
      "training.num_steps": FLAGS.fs_steps, "training.batch_size": FLAGS.fs_batch,
      "training.sample_every": FLAGS.fs_steps, "training.ckpt_every": FLAGS.fs_steps})
  workdir = os.path.join(out, f"ae_f{f}")
  trained = common.train_or_reuse(config, workdir)
  return workdir, trained


def train_step_flops(config) -> float:
  """XLA's FLOP count of one loss-gradient step of ``config``'s method at its batch size."""
  from genjax.training import run as run_lib
  run = run_lib.build_run(config)
  m = run.method
  batch = {k: jax.numpy.asarray(v) for k, v in
           run.dataset.train.get(np.arange(config.training.batch_size)).items()
           if k in ("x", "text")}
  params, _ = m.init(jax.random.key(0), batch)
  g = jax.jit(jax.grad(lambda p, b, k: m.loss(p, b, k)[0]))
  cost = g.lower(params, batch, jax.random.key(1)).cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost["flops"])


def flops_per_f(f: int) -> dict:
  """XLA's FLOPs of one train step and of one sample at factor f, from the architectures alone
  (random parameters; no first stage needs to be trained)."""
  import jax.numpy as jnp
  from genjax.latent.autoencoder import build_first_stage_model
  from genjax.nets.build import build_network
  from genjax.nets.text import TextEncoder
  from genjax.text import vocab_size
  from genjax.typed_config import to_dict
  from genjax.types import DataSpec

  def cost(fn, *args):
    c = jax.jit(fn).lower(*args).cost_analysis()
    c = c[0] if isinstance(c, (list, tuple)) else c
    return float(c["flops"])

  spec = DataSpec(shape=(32, 32, 3), num_classes=0, kind="image")
  b = FLAGS.batch
  x = jnp.zeros((b, 32, 32, 3))
  enc_flops = dec_flops = 0.0
  lat = (32, 32, 3)
  if f > 1:
    fs_config = common.load_config("configs/autoencoder_kl_shapes.py", {
        "model.ch_mult": (1,) + (2,) * int(math.log2(f))})
    fs = build_first_stage_model(fs_config, spec, "kl")
    fs_params = fs.net.init(jax.random.key(0), x[:1])["params"]
    lat = tuple(fs.latent_shape)
    enc_flops = cost(lambda p, x: fs.encode(p, x, jax.random.key(0)), fs_params, x) / b
    dec_flops = cost(fs.decode, fs_params, jnp.zeros((1,) + lat))
  config = second_stage_config(f, "pixels")
  te = TextEncoder(vocab_size=vocab_size(), max_len=int(config.data.text_len), width=64, depth=2,
                   num_heads=4)
  tokens = jnp.ones((b, int(config.data.text_len)), jnp.int32)
  te_params = te.init(jax.random.key(0), tokens[:1])["params"]
  ms = dict(to_dict(config.model))
  net = build_network(ms, DataSpec(shape=lat, num_classes=0, kind="image"), context_dim=64,
                      out_channels=lat[-1])
  z = jnp.zeros((b,) + lat)
  t = jnp.zeros((b,), jnp.int32)
  ctx = te.apply({"params": te_params}, tokens[:1])[0]
  net_params = net.init(jax.random.key(0), z[:1], t[:1], context=ctx)["params"]

  def loss(p, z, tokens):
    c = te.apply({"params": p["text"]}, tokens)[0]
    out = net.apply({"params": p["net"]}, z, t, context=c, context_mask=tokens != 0)
    return jnp.mean((out - z) ** 2)
  params = {"net": net_params, "text": te_params}
  train = cost(jax.grad(loss), params, z, tokens) / b + enc_flops
  fwd = cost(lambda p, z: net.apply({"params": p}, z, t[:1], context=ctx), net_params, z[:1])
  sample = 2 * FLAGS.sampling_steps * fwd + dec_flops
  return {"f": f, "latent_shape": list(lat), "train_gflop_per_image": train / 1e9,
          "encoder_gflop_per_image": enc_flops / 1e9, "denoiser_fwd_gflop": fwd / 1e9,
          "sample_gflop_per_image": sample / 1e9,
          "denoiser_params": int(sum(np.size(a) for a in jax.tree.leaves(net_params)))}


def second_stage_config(f: int, fs_workdir: str, num_steps: int = 1):
  size = 32 // f
  fields = {"ldm.first_stage_workdir": fs_workdir, "model.ch": FLAGS.ch,
            "text_encoder.width": 64, "training.batch_size": FLAGS.batch,
            "training.num_steps": num_steps, "training.sample_every": num_steps,
            "training.ckpt_every": num_steps, "training.log_every": 50,
            "sampling.steps": FLAGS.sampling_steps, "sampling.guidance_scale": FLAGS.scale,
            **unet_for(size)}
  return common.load_config("configs/ldm_shapes.py", fields)


def main(argv):
  del argv
  from genjax.latent.ldm import LDMConfig, load_first_stage
  from genjax.latent.prompts import text_max_len
  from genjax.metrics import adherence
  from genjax.metrics.evaluate import Evaluator, add_shapes_baseline
  from genjax.metrics.image import psnr
  from genjax.text import tokenize
  from genjax.training import run as run_lib
  from genjax.training.sampling import generate
  from genjax.typed_config import from_section

  if FLAGS.smoke:
    FLAGS.fs_steps, FLAGS.budget_tflop, FLAGS.num, FLAGS.sampling_steps = 2, 0.01, 8, 2
    FLAGS.speed_num, FLAGS.speed_repeats = 4, 1
  factors = common.list_flag("factors", int)
  for f in factors:
    if f not in (1, 2, 4, 8):
      raise common.BenchmarkError(f"--factors takes 1, 2, 4, 8; got {f}.")
  os.makedirs(FLAGS.out, exist_ok=True)
  if FLAGS.flops_only:
    rows = [flops_per_f(f) for f in factors]
    for r in rows:
      r["train_cost_vs_f1"] = r["train_gflop_per_image"] / rows[0]["train_gflop_per_image"]
      r["sample_cost_vs_f1"] = r["sample_gflop_per_image"] / rows[0]["sample_gflop_per_image"]
      print(json.dumps(r), flush=True)
    common.write_json(os.path.join(FLAGS.out, "pixel_vs_latent_flops.json"), {"rows": rows})
    return
  test_idx = np.arange(FLAGS.num)
  prompts = real = None
  rows, runs = [], {}
  floor = None
  for f in factors:
    fs_workdir, fs_trained = first_stage(f, FLAGS.out)
    step_flops = train_step_flops(second_stage_config(f, fs_workdir))
    num_steps = max(1, int(round(FLAGS.budget_tflop * 1e12 / step_flops)))
    config = second_stage_config(f, fs_workdir, num_steps)
    workdir = os.path.join(FLAGS.out, f"ldm_f{f}")
    print(f"f={f}: {step_flops / 1e9:.2f} GFLOP per train step -> {num_steps} steps", flush=True)
    trained = common.train_or_reuse(config, workdir)
    config, run, state = run_lib.load_trained(workdir)
    if prompts is None:  # the first --num test captions and their real images
      prompts = run.dataset.test.captions(test_idx)
      real = run.dataset.test.get(test_idx)
    row = {"f": f, "first_stage": fs_workdir, "step": trained.step, "train_s": trained.train_s,
           "train_step_gflop": step_flops / 1e9,
           "train_cpu_s": trained.train_cpu_s,
           "params": int(sum(np.size(a) for a in jax.tree.leaves(state.params)))}
    # What the first stage keeps.
    fs, fs_params, scale = load_first_stage(from_section(LDMConfig, config.ldm, where="ldm"),
                                            run.dataset.spec)
    row["latent_shape"] = list(fs.latent_shape)
    if fs_trained is not None:
      fs_config = json.load(open(os.path.join(fs_workdir, "config.json")))
      row["first_stage_steps"] = fs_trained.step
      row["first_stage_disc_start"] = fs_config["first_stage"]["disc_start"]
      recon = np.clip(np.asarray(jax.jit(fs.reconstruct)(fs_params, real["x"])), -1, 1)
      row["recon_psnr"] = float(np.mean(np.asarray(psnr(recon, real["x"], data_range=2.0))))
      row["recon_adherence"] = adherence.prompt_adherence(recon, prompts)["adherence"]
    # Samples: FD and adherence.
    tokens = np.asarray(tokenize(prompts, text_max_len(config)), np.int32)
    t0 = time.time()
    x = np.asarray(generate(run.method, state.ema_params, jax.random.key(0), len(prompts),
                            min(256, len(prompts)), inputs={"text": tokens}, progress=False))
    row["eval_sample_s"] = time.time() - t0
    ev = Evaluator(("fd", "pr"), "shapes", image_shape=x.shape[1:], num=len(x))
    ev.update(np.clip(x, -1, 1))
    q = ev.compute()
    if floor is None:
      add_shapes_baseline(q, ev)
      floor = q["baseline"]
    row.update({k: q[k] for k in q if k.startswith(("fd_", "precision", "recall"))
                and not isinstance(q[k], dict)})
    adh = adherence.prompt_adherence(x, prompts)
    row.update({"adherence": adh["adherence"], "exact": adh["exact"],
                **{k: adh.get(k) for k in ("colour", "shape", "size", "position")}})
    rows.append(row)
    runs[f] = (config, run, state)
    print(json.dumps(row), flush=True)
    np.savez_compressed(os.path.join(FLAGS.out, f"samples_f{f}.npz"), x=x[:64],
                        prompts=np.asarray(prompts[:64]))

  # Speed, interleaved: every model compiled first, then timed in rounds.
  timers = {}
  for f, (config, run, state) in runs.items():
    tokens = np.asarray(tokenize(prompts[:FLAGS.speed_num], text_max_len(config)), np.int32)
    sample_fn = jax.jit(lambda p, k, tok, m=run.method: m.sample(p, k, len(tok),
                                                                 inputs={"text": tok}))
    batch = {k: jax.numpy.asarray(v) for k, v in
             run.dataset.train.get(np.arange(FLAGS.batch)).items() if k in ("x", "text")}
    loss_grad = jax.jit(jax.grad(lambda p, b, k, m=run.method: m.loss(p, b, k)[0]))
    args_s = (state.ema_params, jax.random.key(1), tokens)
    args_t = (state.params, batch, jax.random.key(2))
    jax.block_until_ready(sample_fn(*args_s))
    jax.block_until_ready(loss_grad(*args_t))
    timers[f] = (sample_fn, args_s, loss_grad, args_t)
  times = {f: {"sample": [], "train": []} for f in timers}
  for _ in range(FLAGS.speed_repeats):
    for f, (sample_fn, args_s, loss_grad, args_t) in timers.items():
      t0 = time.perf_counter()
      jax.block_until_ready(sample_fn(*args_s))
      times[f]["sample"].append(time.perf_counter() - t0)
      t0 = time.perf_counter()
      for _ in range(3):
        jax.block_until_ready(loss_grad(*args_t))
      times[f]["train"].append((time.perf_counter() - t0) / 3)
  for row in rows:
    t = times[row["f"]]
    row["sample_s_per_image"] = float(np.median(t["sample"])) / FLAGS.speed_num
    row["train_img_per_s"] = FLAGS.batch / float(np.median(t["train"]))
  base = next((r for r in rows if r["f"] == 1), rows[0])
  for row in rows:
    row["train_speedup_vs_first"] = row["train_img_per_s"] / base["train_img_per_s"]
    row["sample_speedup_vs_first"] = base["sample_s_per_image"] / row["sample_s_per_image"]
  ceiling = adherence.prompt_adherence(real["x"], prompts)["adherence"]
  chance = adherence.prompt_adherence(real["x"], list(np.roll(np.asarray(prompts, object), 1)))
  result = {"factors": factors, "budget_tflop": FLAGS.budget_tflop, "fs_steps": FLAGS.fs_steps,
            "num": FLAGS.num, "scale": FLAGS.scale, "sampling_steps": FLAGS.sampling_steps,
            "floor": {k: floor[k] for k in ("fd_shapes", "fd_shapes_std") if k in floor},
            "real_adherence": ceiling, "chance_adherence": chance["adherence"], "rows": rows}
  common.write_json(os.path.join(FLAGS.out, "pixel_vs_latent.json"), result)
  lines = [f"equal training compute: {FLAGS.budget_tflop:g} TFLOP per second stage; first stages "
           f"{FLAGS.fs_steps} steps; {FLAGS.num} samples at w = {FLAGS.scale:g}, DDIM "
           f"{FLAGS.sampling_steps}; fd_shapes floor {floor['fd_shapes']:.3f}; adherence real "
           f"{ceiling:.3f}, chance {chance['adherence']:.3f}", "",
           "| f | latent | first-stage PSNR | recon adherence | GFLOP / step | steps | train img/s "
           "(x f=1) | sample s/img (speedup) | fd_shapes | adherence | colour | shape | size | "
           "position |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['f']} | {'x'.join(map(str, r['latent_shape']))} | "
        f"{common.fmt(r.get('recon_psnr'), '.1f')} | {common.fmt(r.get('recon_adherence'), '.3f')}"
        f" | {r['train_step_gflop']:.2f} | {r['step']} | {r['train_img_per_s']:.1f} ({r['train_speedup_vs_first']:.2f}x) | "
        f"{r['sample_s_per_image']:.3f} ({r['sample_speedup_vs_first']:.2f}x) | "
        f"{r['fd_shapes']:.3f} | {r['adherence']:.3f} | {common.fmt(r['colour'], '.3f')} | "
        f"{common.fmt(r['shape'], '.3f')} | {common.fmt(r['size'], '.3f')} | "
        f"{common.fmt(r['position'], '.3f')} |")
  with open(os.path.join(FLAGS.out, "pixel_vs_latent.md"), "w") as fh:
    fh.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
