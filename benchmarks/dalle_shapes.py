"""DALL-E on ``shapes``: caption adherence on never-paired compositions, FD in the shapes
classifier's feature space, and sampling time per image, with and without reranking.

    python train.py --config=configs/dvae_shapes.py --workdir=runs/dvae_shapes
    python train.py --config=configs/dalle_shapes.py --workdir=runs/dalle_shapes \
        --config.dalle.dvae_workdir=runs/dvae_shapes
    python -m benchmarks.dalle_shapes --dalle_workdir=runs/dalle_shapes --candidates=1,8

* **Never-paired compositions**: the evaluation captions are test-split captions whose exact
  composition (every object's colour, shape, size and place, as the caption states them) is
  the caption of no training image the run saw (the batches of its steps, recomputed from the
  data iterator). The judge is the shipped shapes classifier
  (``genjax.metrics.adherence.caption_adherence``); the real test images of the same captions
  give its ceiling.
* **FD**: Frechet distance between generated images and real test images in the shapes
  classifier's features, beside the real-against-real floor at the same sample size.
* **Time**: seconds per image of the jitted sampler (one ``lax.scan`` over the tokens with a
  key-value cache, plus the dVAE decoder), after compilation.
* **Reranking**: ``--candidates=N`` draws N images per caption and keeps the best by the
  scorer (``genjax.dalle.rerank``). The paper's scorer is CLIP; ``--scorer=adherence`` uses the
  shapes classifier's adherence to the caption, which is also the judge, so its reranked
  adherence is an upper bound on what an independent scorer would give.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.common import never_paired_prompts, seen_captions

flags.DEFINE_string("dalle_workdir", None, "A trained dalle run on shapes.")
flags.DEFINE_integer("num_prompts", 64, "Never-paired test captions to evaluate.")
flags.DEFINE_list("candidates", ["1", "8"], "Numbers of candidates per caption (1: no rerank).")
flags.DEFINE_string("scorer", "adherence", "Reranking scorer: adherence (shapes classifier).")
flags.DEFINE_integer("num_real", 1000, "Real test images for the FD reference.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_integer("fd_captions", 0, "Also FD and adherence of one sample for each of the first "
                     "N test captions (seen or not), beside the real images' FD (0: skip).")
flags.DEFINE_string("out", None, "JSON results file.")
flags.DEFINE_string("png", None, "PNG of captions' samples (rows: no rerank, reranked, real).")
FLAGS = flags.FLAGS


def adherence_scorer():
  """Reranking scorer: the shapes classifier's adherence of each image to its caption."""
  from genjax import text as text_lib
  from genjax.data import shapes
  from genjax.metrics.adherence import caption_adherence

  def score(images, text):
    req = shapes.parse_prompts(text_lib.detokenize(np.asarray(text)))
    return jnp.asarray(caption_adherence(np.asarray(images), req)["per_image"])
  return score


def features(x):
  from genjax.metrics import shapes_classifier as sc
  params, _, _ = sc.load_classifier_params()
  fn = jax.jit(lambda p, v: sc.apply_classifier(p, v)[0])
  return np.concatenate([np.asarray(fn(params, jnp.asarray(x[i:i + 500])))
                         for i in range(0, len(x), 500)])


def fd(f1, f2) -> float:
  from genjax.metrics.distances import frechet_distance
  return float(frechet_distance(f1.mean(0), np.cov(f1, rowvar=False),
                                f2.mean(0), np.cov(f2, rowvar=False)))


def fd_on_test_captions(model, params, run, n, f_ref, seed=0, chunk=100) -> dict:
  """FD and adherence of one sample for each of the first ``n`` test captions, and the FD of
  those real images (the floor at that N)."""
  from genjax.metrics.adherence import caption_adherence
  real = run.dataset.test.get(np.arange(n))
  fn = jax.jit(lambda k, t: model.sample(params, k, t))
  gen = np.concatenate([np.asarray(fn(jax.random.key(seed + i), jnp.asarray(real["text"][s:s + chunk])))
                        for i, s in enumerate(range(0, n, chunk))])
  return {"n": n, "fd_generated_vs_ref": fd(features(gen), f_ref),
          "fd_real_vs_ref": fd(features(real["x"]), f_ref),
          "adherence_generated": caption_adherence(gen, real)["adherence"]}


def benchmark(workdir, num_prompts=64, candidates=(1, 8), num_real=1000, seed=0, png=None,
              fd_captions=0):
  from genjax.dalle import rerank as rerank_lib
  from genjax.dalle.method import build_dalle_model
  from genjax.data import shapes
  from genjax.metrics.adherence import caption_adherence
  from genjax.training import run as run_lib
  config, run, state = run_lib.load_trained(workdir)
  if config.data.dataset != "shapes":
    raise ValueError(f"--dalle_workdir holds a run on {config.data.dataset!r}; this benchmark "
                     "needs captions of shapes.")
  model, _ = build_dalle_model(config, run.dataset.spec)
  params = state.ema_params
  steps = int(jax.device_get(state.step))
  seen = seen_captions(run, steps)
  idx = never_paired_prompts(run, num_prompts, seen)
  real = run.dataset.test.get(idx)
  text = jnp.asarray(real["text"])
  sample_fn = jax.jit(lambda k, t: model.sample(params, k, t))
  score = adherence_scorer()
  ref = run.dataset.test.get(np.arange(len(run.dataset.test) - num_real, len(run.dataset.test)))
  f_ref = features(ref["x"])
  result = {"step": steps, "num_prompts": int(len(idx)), "seen_training_captions": len(seen),
            "real": {}, "generated": {}}
  real_adh = caption_adherence(real["x"], real)
  result["real"] = {"adherence": real_adh["adherence"], "exact": real_adh["exact"],
                    "fd_vs_ref": fd(features(real["x"]), f_ref)}
  grids = []
  for n in candidates:
    key = jax.random.key(seed)
    rep = jnp.repeat(text, n, axis=0)
    jax.block_until_ready(sample_fn(key, rep))            # compile
    t0 = time.perf_counter()
    jax.block_until_ready(sample_fn(jax.random.fold_in(key, 1), rep))
    per_image = (time.perf_counter() - t0) / rep.shape[0]
    best, _, scores = rerank_lib.rerank(lambda k, t: sample_fn(k, t), score,
                                        jax.random.fold_in(key, 2), text, n)
    best = np.asarray(best)
    adh = caption_adherence(best, real)
    result["generated"][f"candidates_{n}"] = {
        "adherence": adh["adherence"], "exact": adh["exact"],
        **{k: adh[k] for k in ("colour", "shape", "size", "position", "relation", "count")},
        "fd_vs_ref": fd(features(best), f_ref),
        "seconds_per_sampled_image": per_image,
        "seconds_per_kept_image": per_image * n,
        "mean_candidate_score": float(np.mean(np.asarray(scores)))}
    grids.append(best[:16])
  grids.append(np.asarray(real["x"][:16]))
  if png:
    from genjax import viz
    viz.save_image_grid(np.concatenate(grids), png, nrow=16)
  if fd_captions:
    result["test_captions"] = fd_on_test_captions(model, params, run, fd_captions, f_ref, seed)
  result["prompts"] = shapes.captions(idx[:16] + run.dataset.test.start, run.dataset.test.cfg)
  return result


def main(argv):
  del argv
  if not FLAGS.dalle_workdir:
    raise app.UsageError("--dalle_workdir is required (a trained configs/dalle_shapes.py run).")
  if FLAGS.scorer != "adherence":
    raise app.UsageError("--scorer: only 'adherence' is available (no trained CLIP model ships).")
  cands = [int(c) for c in FLAGS.candidates]
  result = benchmark(FLAGS.dalle_workdir, FLAGS.num_prompts, cands, FLAGS.num_real, FLAGS.seed,
                     FLAGS.png, FLAGS.fd_captions)
  print(json.dumps(result, indent=2, default=float))
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(result, f, indent=2, default=float)


if __name__ == "__main__":
  app.run(main)
