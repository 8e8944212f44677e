"""DALL-E on ``shapes``: caption adherence on never-paired compositions with and without
reranking (by CLIP, as the paper does, and by the judge itself), FD in the shapes classifier's
space (``fd_shapes``, the figure of ``sample.py --eval=fd``), sampling time per image, and the
same for a text-to-image latent diffusion model beside it, with the training compute of both.

    python train.py --config=configs/dvae_shapes.py --workdir=runs/dvae_shapes
    python train.py --config=configs/dalle_shapes.py --workdir=runs/dalle_shapes \
        --config.dalle.dvae_workdir=runs/dvae_shapes
    python -m benchmarks.dalle_shapes --dalle_workdir=runs/dalle_shapes \
        --clip_workdir=runs/clip --ldm_workdir=runs/ldm_shapes --candidates=8 --flops

* **Never-paired compositions**: the evaluation captions are test-split captions whose exact
  composition (every object's colour, shape, size and place, as the caption states them) is
  the caption of no training image that any of the compared runs saw (the batches of their
  steps, recomputed from the data iterators). The judge is the shipped shapes classifier
  (``genjax.metrics.adherence.caption_adherence``); the real test images of the same captions
  give its ceiling, and the same images against another image's caption give chance.
* **Reranking** (Ramesh et al. 2021, Sec. 2.5): ``--candidates=N`` draws N images per caption
  once; the rows keep candidate 0 (no reranking), the best of the N by the CLIP score of the
  trained CLIP model of ``--clip_workdir`` (the paper's scorer) and the best by the judge's own
  adherence (an upper bound: the scorer is the judge).
* **FD**: ``fd_shapes`` through ``genjax.metrics.Evaluator(("fd",), "shapes")`` (the shipped
  classifier's 128-d features, scaled to unit mean square on training images, against the
  10,000 test images), beside the real-against-real floor at the same N
  (``add_shapes_baseline``), for one sample for each of the first ``--fd_captions`` test captions,
  and for the best of ``--fd_candidates`` by CLIP.
* **Time**: seconds per image of the jitted sampler at batch ``--batch`` after compilation
  (DALL-E: one ``lax.scan`` over the image tokens with a key-value cache plus the dVAE
  decoder; the LDM: its configured sampler and classifier-free guidance plus the first stage's
  decoder). Kept-image times multiply by N.
* **Training compute** (``--flops``): XLA's cost analysis of each stage's train step
  (``jax.jit(step).lower(state, batch).cost_analysis()["flops"]``) times the steps
  the run took, for the first stage (dVAE, KL autoencoder) and the second (transformer,
  diffusion U-Net with its text encoder).
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
flags.DEFINE_string("clip_workdir", None, "A trained CLIP on shapes (the reranking scorer).")
flags.DEFINE_string("ldm_workdir", None, "Optional: a text-to-image LDM on shapes to compare.")
flags.DEFINE_integer("ldm_step", None, "Checkpoint of the LDM run (default: the last).")
flags.DEFINE_float("ldm_guidance", 3.0, "Classifier-free guidance scale of the LDM.")
flags.DEFINE_integer("num_prompts", 64, "Never-paired test captions to evaluate.")
flags.DEFINE_integer("candidates", 8, "Candidates per caption for reranking (1: no reranking).")
flags.DEFINE_integer("fd_captions", 500, "FD of one sample for each of the first N test captions.")
flags.DEFINE_integer("fd_candidates", 4, "FD also of the best of this many by CLIP (0/1: skip).")
flags.DEFINE_integer("batch", 256, "Samples per jitted call.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_bool("flops", False, "Also count the training compute of both runs.")
flags.DEFINE_string("out", None, "JSON results file.")
flags.DEFINE_string("png", None, "PNG of captions' samples (rows per model: candidate 0, "
                    "best by CLIP, best by the judge; last row: real).")
FLAGS = flags.FLAGS

KINDS = ("colour", "shape", "size", "position", "relation", "count")


def adherence_scorer():
  """Reranking scorer: the shapes classifier's adherence of each image to its caption."""
  from genjax import text as text_lib
  from genjax.data import shapes
  from genjax.metrics.adherence import caption_adherence

  def score(images, text):
    req = shapes.parse_prompts(text_lib.detokenize(np.asarray(text)))
    return np.asarray(caption_adherence(np.asarray(images), req)["per_image"])
  return score


def clip_scorer(workdir: str):
  """Reranking scorer: the CLIP score of a trained CLIP (``genjax.dalle.rerank.clip_scorer``)."""
  from genjax.clip.score import load_clip
  from genjax.dalle.rerank import clip_scorer as make
  towers = load_clip(workdir)
  fn = make(towers.encode_image, towers.encode_text)

  def score(images, text, chunk=512):
    return np.concatenate([np.asarray(fn(jnp.asarray(images[i:i + chunk]),
                                         jnp.asarray(text[i:i + chunk])))
                           for i in range(0, len(images), chunk)])
  return score


def best_of(images: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
  """Rows ``b n .. b n + n - 1`` are caption b's candidates; the best of each by ``scores``."""
  b = len(images) // n
  pick = np.argmax(np.asarray(scores).reshape(b, n), axis=1)
  return images[np.arange(b) * n + pick]


def fd_shapes(images: np.ndarray, repeats: int = 3) -> dict:
  """``fd_shapes`` of images against the shapes test split and the real floor at the same N:
  the evaluator of ``sample.py --eval=fd`` on shapes."""
  from genjax import metrics
  ev = metrics.Evaluator(("fd",), "shapes", image_shape=images.shape[1:], num=len(images))
  ev.update(np.clip(images, -1.0, 1.0))
  out = ev.compute()
  metrics.add_shapes_baseline(out, ev, repeats=repeats)
  return {"n": len(images), "fd_shapes": out["fd_shapes"],
          "floor": out["baseline"]["fd_shapes"], "floor_std": out["baseline"]["fd_shapes_std"]}


class Model:
  """A trained text-to-image run: ``sample(key, tokens [M, L]) -> images [M, H, W, C]``."""

  def __init__(self, name, workdir, step=None, guidance=None):
    from benchmarks import common
    from genjax.training import run as run_lib
    self.name, self.workdir = name, workdir
    config, self.run, self.state = run_lib.load_trained(workdir, step=step)
    self.config = config
    if config.data.dataset != "shapes":
      raise ValueError(f"{workdir!r} holds a run on {config.data.dataset!r}; this benchmark "
                       "needs captions of shapes.")
    self.method = (common.method_for(config, guidance_scale=guidance) if guidance is not None
                   else self.run.method)
    self.step = int(jax.device_get(self.state.step))

  def sample(self, key, tokens, batch):
    from genjax.training.sampling import generate
    return generate(self.method, self.state.ema_params, key, len(tokens), batch,
                    inputs={"text": np.asarray(tokens, np.int32)}, progress=False)

  def seconds_per_image(self, tokens, batch) -> float:
    t = np.asarray(tokens[:batch], np.int32)
    fn = jax.jit(lambda p, k, tt: self.method.sample(p, k, len(t), inputs={"text": tt}))
    jax.block_until_ready(fn(self.state.ema_params, jax.random.key(0), t))      # compile
    t0 = time.perf_counter()
    jax.block_until_ready(fn(self.state.ema_params, jax.random.key(1), t))
    return (time.perf_counter() - t0) / len(t)


def train_flops(workdir: str, step=None) -> dict:
  """FLOPs of one compiled train step of the run in ``workdir`` (XLA cost analysis), and steps."""
  from genjax.training import run as run_lib
  from genjax.training.trainer import make_train_step
  config, run, state = run_lib.load_trained(workdir, step=step)
  fn = make_train_step(run.method, run.train)
  batch = jax.tree.map(jnp.asarray, run.iterator.batch_at(0))
  cost = jax.jit(fn).lower(state, batch).cost_analysis()   # of the lowered HLO: no compile
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  steps = int(jax.device_get(state.step))
  per_step = float(cost["flops"])
  return {"workdir": workdir, "method": config.method, "steps": steps,
          "batch_size": int(config.training.batch_size), "flops_per_step": per_step,
          "total_flops": per_step * steps}


def first_stage_workdir(model: Model) -> str:
  if model.config.method == "dalle":
    return model.config.dalle.dvae_workdir
  return model.config.ldm.first_stage_workdir


def row(name, images, real, extra=None) -> dict:
  from genjax.metrics.adherence import caption_adherence
  adh = caption_adherence(np.asarray(images), real)
  out = {"name": name, "adherence": adh["adherence"], "exact": adh["exact"],
         **{k: adh.get(k) for k in KINDS}}
  out.update(extra or {})
  return out


def benchmark(dalle_workdir, clip_workdir=None, ldm_workdir=None, ldm_step=None,
              ldm_guidance=3.0, num_prompts=64, candidates=8, fd_captions=500, fd_candidates=4,
              batch=256, seed=0, flops=False, png=None) -> dict:
  from genjax.data import shapes
  models = [Model("DALL-E", dalle_workdir)]
  if ldm_workdir:
    models.append(Model(f"LDM w={ldm_guidance:g}", ldm_workdir, ldm_step, ldm_guidance))
  clip = clip_scorer(clip_workdir) if clip_workdir else None
  judge = adherence_scorer()
  test = models[0].run.dataset.test
  seen = set()
  for m in models:
    seen |= seen_captions(m.run, m.step)
  idx = never_paired_prompts(models[0].run, num_prompts, seen)
  real = test.get(idx)
  text = np.asarray(real["text"])
  result = {"num_prompts": int(len(idx)), "seen_training_captions": len(seen),
            "candidates": candidates, "rows": [], "fd": [], "models": []}
  result["rows"].append(row("real images of the captions", real["x"], real))
  result["rows"].append(row("real images, another image's caption (chance)",
                            np.roll(np.asarray(real["x"]), 1, axis=0), real))
  if clip is not None:
    result["real_clip_score"] = float(np.mean(clip(np.asarray(real["x"]), text)))
  grids = []
  fd_text = np.asarray(test.get(np.arange(fd_captions))["text"]) if fd_captions else None
  for mi, m in enumerate(models):
    info = {"name": m.name, "workdir": m.workdir, "step": m.step}
    key = jax.random.fold_in(jax.random.key(seed), mi)
    rep = np.repeat(text, candidates, axis=0)
    info["seconds_per_image"] = m.seconds_per_image(rep, min(batch, len(rep)))
    t0 = time.perf_counter()
    images = np.asarray(m.sample(key, rep, batch))
    info["sample_wall_s"] = time.perf_counter() - t0
    first = images[::candidates]
    extra = {"model": m.name, "kept_of": 1, "s_per_kept_image": info["seconds_per_image"]}
    if clip is not None:
      clip_scores = clip(images, rep)
      extra["mean_clip_score"] = float(np.mean(clip_scores[::candidates]))
    result["rows"].append(row(f"{m.name}, 1 sample", first, real, extra))
    kept = [first]
    if candidates > 1:
      per_kept = info["seconds_per_image"] * candidates
      if clip is not None:
        best = best_of(images, clip_scores, candidates)
        result["rows"].append(row(
            f"{m.name}, best of {candidates} by CLIP", best, real,
            {"model": m.name, "kept_of": candidates, "s_per_kept_image": per_kept,
             "mean_clip_score": float(np.mean(best_of(clip_scores[:, None], clip_scores,
                                                      candidates)))}))
        kept.append(best)
      best = best_of(images, judge(images, rep), candidates)
      result["rows"].append(row(f"{m.name}, best of {candidates} by the judge (upper bound)",
                                best, real, {"model": m.name, "kept_of": candidates,
                                             "s_per_kept_image": per_kept}))
      kept.append(best)
    grids += [k[:16] for k in kept]
    if fd_captions:
      fkey = jax.random.fold_in(key, 7)
      one = np.asarray(m.sample(fkey, fd_text, batch))
      result["fd"].append(dict(model=m.name, kept_of=1, **fd_shapes(one)))
      if clip is not None and fd_candidates > 1:
        rep_fd = np.repeat(fd_text, fd_candidates, axis=0)
        many = np.asarray(m.sample(jax.random.fold_in(fkey, 1), rep_fd, batch))
        best = best_of(many, clip(many, rep_fd), fd_candidates)
        result["fd"].append(dict(model=m.name, kept_of=fd_candidates, scorer="clip",
                                 **fd_shapes(best)))
    if flops:
      info["train_flops"] = {"first_stage": train_flops(first_stage_workdir(m)),
                             "second_stage": train_flops(m.workdir, m.step)}
      info["total_train_flops"] = sum(v["total_flops"] for v in info["train_flops"].values())
    result["models"].append(info)
    print(json.dumps(info, default=float), flush=True)
  grids.append(np.asarray(real["x"][:16]))
  if png:
    from genjax import viz
    viz.save_image_grid(np.concatenate(grids), png, nrow=16)
  result["prompts"] = shapes.captions(idx[:16] + test.start, test.cfg)
  return result


def table(result: dict) -> str:
  head = ["", "adherence", "exact", *KINDS, "CLIP score", "s / kept image"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  f = lambda v, s=".3f": "" if v is None else format(v, s)
  for r in result["rows"]:
    lines.append("| " + " | ".join([r["name"], f(r["adherence"]), f(r["exact"]),
                                    *[f(r.get(k), ".2f") for k in KINDS],
                                    f(r.get("mean_clip_score"), ".1f"),
                                    f(r.get("s_per_kept_image"), ".3f")]) + " |")
  lines += ["", "| model | kept | N | fd_shapes | real floor at N |", "|---|---|---|---|---|"]
  for r in result["fd"]:
    kept = "1 sample" if r["kept_of"] == 1 else f"best of {r['kept_of']} by CLIP"
    lines.append(f"| {r['model']} | {kept} | {r['n']} | {r['fd_shapes']:.3f} | "
                 f"{r['floor']:.3f} +- {r['floor_std']:.3f} |")
  return "\n".join(lines)


def main(argv):
  del argv
  if not FLAGS.dalle_workdir:
    raise app.UsageError("--dalle_workdir is required (a trained configs/dalle_shapes.py run).")
  if FLAGS.candidates < 1:
    raise app.UsageError(f"--candidates must be >= 1, got {FLAGS.candidates}.")
  result = benchmark(FLAGS.dalle_workdir, FLAGS.clip_workdir, FLAGS.ldm_workdir, FLAGS.ldm_step,
                     FLAGS.ldm_guidance, FLAGS.num_prompts, FLAGS.candidates, FLAGS.fd_captions,
                     FLAGS.fd_candidates, FLAGS.batch, FLAGS.seed, FLAGS.flops, FLAGS.png)
  print(table(result))
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(result, f, indent=1, default=float)


if __name__ == "__main__":
  app.run(main)
