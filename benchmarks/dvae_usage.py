"""Codebook usage of DALL-E's discrete VAE on ``shapes``: where the codes are lost, and what a
trained dVAE's codes keep.

    # short runs of configs/dvae_shapes.py with one setting changed (KL weight start / end,
    # learning rate, batch size), in process, measured on 512 fixed test images at a few steps:
    python -m benchmarks.dvae_usage --variants="beta0=0,beta=1;beta0=10,beta=10;lr=3e-4" --steps=300
    # trained dVAE runs: codes used, distinct decoded code patches, argmax reconstructions
    # judged by the shapes classifier against the images' own captions:
    python -m benchmarks.dvae_usage --workdirs=runs/dvae_shapes_old,runs/dvae_shapes

Figures of a short run: the logits' spread (mean over positions of their std over the K codes),
``genjax.dalle.gumbel.posterior_usage`` (mean posterior entropy per position, perplexity of the
aggregate posterior), the argmax codes in use and their perplexity, and the test MSE of the
argmax reconstructions. A variant is ``key=value`` pairs joined by commas: ``beta0`` /
``beta`` (KL weight at step 0 / after ``dvae.kl_anneal_steps``), ``lr``, ``bs``.

"Distinct decoded code patches": each used code is decoded as an 8x8 grid of that one code,
and the centre 4x4-pixel patches are clustered greedily (codes whose patches differ by less than
``--tol`` RMS are synonyms), most used codes first.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

flags.DEFINE_string("variants", "", "Semicolon-separated variants for short runs.")
flags.DEFINE_integer("steps", 300, "Steps of each short run.")
flags.DEFINE_list("workdirs", [], "Trained dvae runs on shapes to describe.")
flags.DEFINE_float("tol", 0.05, "RMS below which two decoded code patches are synonyms.")
flags.DEFINE_string("out", None, "JSON results file.")
FLAGS = flags.FLAGS

REPORT_STEPS = (0, 10, 25, 50, 100, 200, 300, 400, 600, 800, 1000, 1500, 2000)


def short_run(variant: str, steps: int, num_test: int = 512) -> list:
  """Trains configs/dvae_shapes.py for ``steps`` with the variant's settings; returns the
  figures at ``REPORT_STEPS``."""
  import optax
  from configs import dvae_shapes
  from genjax.autoencoders import vq as vq_lib
  from genjax.dalle import gumbel
  from genjax.dalle.dvae import make_dvae_model
  from genjax.training import run as run_lib
  opts = dict(kv.split("=") for kv in variant.split(",") if "=" in kv)
  unknown = set(opts) - {"beta0", "beta", "lr", "bs"}
  if unknown:
    raise ValueError(f"--variants: unknown settings {sorted(unknown)}; use beta0, beta, lr, bs.")
  config = dvae_shapes.get_config()
  config.dvae.kl_weight_start = float(opts.get("beta0", config.dvae.kl_weight_start))
  config.dvae.kl_weight_end = float(opts.get("beta", config.dvae.kl_weight_end))
  lr = float(opts.get("lr", config.optim.learning_rate))
  bs = int(opts.get("bs", config.training.batch_size))
  run = run_lib.build_run(config)
  model, cfg = make_dvae_model(config, run.dataset.spec)
  test = jnp.asarray(run.dataset.test.get(np.arange(num_test))["x"])
  key = jax.random.key(0)
  params = model.init(key, test[:2])
  opt = optax.chain(optax.clip_by_global_norm(config.optim.grad_clip), optax.adam(lr))
  opt_state = opt.init(params)
  sigma = cfg.recon_sigma

  def loss_fn(p, x, k, step):
    tau = gumbel.cosine_anneal(step, cfg.tau_start, cfg.tau_end, cfg.tau_anneal_steps)
    beta = gumbel.cosine_anneal(step, cfg.kl_weight_start, cfg.kl_weight_end,
                                cfg.kl_anneal_steps)
    lg = model.logits(p, x)
    out = model.decode_onehot(p, gumbel.gumbel_softmax(k, lg, tau))
    sq = jnp.sum(jnp.square(out - x), axis=(1, 2, 3))
    kl = jnp.sum(gumbel.kl_to_uniform(lg), axis=(1, 2))
    return jnp.mean(sq / (2 * sigma ** 2) + beta * kl)

  @jax.jit
  def step_fn(p, o, x, k, step):
    g = jax.grad(loss_fn)(p, x, k, step)
    u, o = opt.update(g, o, p)
    return optax.apply_updates(p, u), o

  @jax.jit
  def measure(p):
    lg = model.logits(p, test)
    codes = jnp.argmax(lg, -1)
    perp, used = vq_lib.code_perplexity(codes, model.num_codes)
    ent, agg = gumbel.posterior_usage(lg)
    xr = model.decode_codes(p, codes)
    return {"logit_std": jnp.mean(jnp.std(lg, -1)), "q_entropy": ent, "q_agg_perplexity": agg,
            "codes_used": used * model.num_codes, "perplexity": perp,
            "argmax_mse": jnp.mean(jnp.square(xr - test))}

  rows = []
  for i in range(steps + 1):
    if i in REPORT_STEPS or i == steps:
      row = {"variant": variant, "step": i,
             **{k: round(float(v), 4) for k, v in measure(params).items()}}
      print(json.dumps(row), flush=True)
      rows.append(row)
    if i < steps:
      x = jnp.asarray(run.dataset.train.get(np.arange(i * bs, (i + 1) * bs))["x"])
      params, opt_state = step_fn(params, opt_state, x, jax.random.fold_in(key, i + 1), i + 1)
  return rows


def describe(workdir: str, tol: float, num: int = 1000, num_judged: int = 500) -> dict:
  """Codes used by a trained dVAE on ``num`` test images, its distinct decoded code patches, and
  its argmax reconstructions of the first ``num_judged`` judged by the shapes classifier."""
  from genjax.dalle.dvae import make_dvae_model
  from genjax.metrics.adherence import caption_adherence
  from genjax.training import run as run_lib
  config, run, state = run_lib.load_trained(workdir)
  if config.method != "dvae" or config.data.dataset != "shapes":
    raise ValueError(f"{workdir!r} holds a {config.method!r} run on {config.data.dataset!r}, "
                     "not a dvae on shapes.")
  model, _ = make_dvae_model(config, run.dataset.spec)
  p = state.ema_params
  batch = run.dataset.test.get(np.arange(num))
  x = jnp.asarray(batch["x"])
  codes = np.asarray(jax.jit(model.codes)(p, x))
  used, counts = np.unique(codes, return_counts=True)
  h, w = model.code_shape
  grids = jnp.broadcast_to(jnp.asarray(used)[:, None, None], (len(used), h, w))
  img = np.asarray(jax.jit(model.decode_codes)(p, grids))
  side = img.shape[1] // h
  c0 = (h // 2) * side
  patches = img[:, c0:c0 + side, c0:c0 + side].reshape(len(used), -1)
  reps = []
  for i in np.argsort(-counts):
    if not any(np.sqrt(np.mean((patches[i] - patches[j]) ** 2)) < tol for j in reps):
      reps.append(i)
  freq = counts / counts.sum()
  recon = np.asarray(jax.jit(lambda q, v: model.decode_codes(q, model.codes(q, v)))(p, x))
  judged = {k: v[:num_judged] for k, v in batch.items()}
  adh = caption_adherence(recon[:num_judged], judged)
  return {"workdir": workdir, "step": int(jax.device_get(state.step)),
          "codes_used": int(len(used)), "perplexity": float(np.exp(-np.sum(freq * np.log(freq)))),
          "top_code_share": float(freq.max()), "distinct_decoded_patches": len(reps),
          "argmax_mse": float(np.mean((recon - batch["x"]) ** 2)),
          **{k: adh[k] for k in ("adherence", "exact", "colour", "shape", "size", "position")}}


def main(argv):
  del argv
  if not FLAGS.variants and not FLAGS.workdirs:
    raise app.UsageError("give --variants (short runs) and/or --workdirs (trained dVAEs).")
  out = {"short_runs": [], "trained": []}
  for v in [v for v in FLAGS.variants.split(";") if v.strip()]:
    out["short_runs"] += short_run(v.strip(), FLAGS.steps)
  for wd in FLAGS.workdirs:
    r = describe(wd, FLAGS.tol)
    print(json.dumps(r), flush=True)
    out["trained"].append(r)
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  app.run(main)
