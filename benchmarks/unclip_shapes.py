"""unCLIP (prior + decoder) against direct text-to-image latent diffusion on the shapes.

For a trained ``configs/unclip_decoder_shapes.py`` run (with its prior and CLIP) and a trained
``configs/ldm_shapes.py`` run, each restored from its workdir's own config record:

1. the prompts: test captions that none of the runs saw in training (the captions of every
   training example fed to the LDM, the decoder, the prior and the CLIP up to their restored
   steps; ``common.seen_captions`` / ``common.never_paired_prompts``, as
   ``benchmarks.ldm_shapes_adherence``);
2. ``--per_prompt`` samples of each prompt for each model and guidance scale (the LDM's ``w`` in
   ``--ldm_scales``; unCLIP's decoder ``w`` in ``--decoder_scales`` with the prior at
   ``--prior_scale``), each scored by
   * caption adherence of the shipped shapes classifier (:func:`genjax.metrics.prompt_adherence`),
   * the CLIP score (Hessel et al. 2021, w = 100) with the trained CLIP,
   * FD in the shapes classifier's feature space against ``--ref_num`` test images, beside the
     real floor (as many train images as samples),
   * diversity: the mean pairwise distance of the classifier features of the samples of one
     caption (averaged over the captions), and improved recall (Kynkaanniemi et al. 2019, k = 3)
     of the pooled samples against as many test images;
3. the training compute of each model: steps x batch, and XLA's FLOP count of one gradient
   step at the run's batch size (the unCLIP total adds the prior's; the frozen CLIP's own
   training is listed apart).

    python -m benchmarks.unclip_shapes --decoder_workdir=runs/unclip_decoder \\
        --prior_workdir=runs/unclip_prior --ldm_workdir=runs/ldm_shapes \\
        --num_prompts=64 --per_prompt=4 --ldm_scales=0,3 --decoder_scales=0,3 --prior_scale=1 \\
        --out=/tmp/unclip_shapes.json --png=docs/images/unclip_shapes_prompts.png
"""

from __future__ import annotations

import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("decoder_workdir", None, "The unCLIP decoder run.")
flags.DEFINE_string("prior_workdir", None, "The unCLIP prior run (default: the decoder's "
                    "config.unclip.prior_workdir).")
flags.DEFINE_string("ldm_workdir", None, "The text-to-image LDM run.")
flags.DEFINE_integer("ldm_step", None, "The LDM checkpoint to compare (default: the newest).")
flags.DEFINE_integer("num_prompts", 64, "Never-paired test captions.", lower_bound=2)
flags.DEFINE_integer("per_prompt", 4, "Samples per caption.", lower_bound=2)
flags.DEFINE_list("ldm_scales", ["0", "3"], "The LDM's guidance scales.")
flags.DEFINE_list("decoder_scales", ["0", "3"], "unCLIP's decoder guidance scales.")
flags.DEFINE_bool("true_embed_row", True, "Also decode the real images' embeddings.")
flags.DEFINE_float("prior_scale", -1.0, "unCLIP's prior guidance scale (< 0: its own config's).")
flags.DEFINE_integer("ref_num", 2000, "Test images of the FD reference.", lower_bound=10)
flags.DEFINE_integer("batch", 256, "Samples per jitted call.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Sampling seed.", lower_bound=0)
flags.DEFINE_string("out", None, "JSON of the results.")
flags.DEFINE_string("png", None, "A prompt grid (both models, first 6 prompts) to write.")
flags.mark_flags_as_required(["decoder_workdir", "ldm_workdir"])

KINDS = ("colour", "shape", "size", "position")


def within_caption_distance(feats, per: int) -> float:
  """Mean Euclidean distance between the features of two different samples of one caption,
  averaged over the captions (``feats`` grouped by caption, ``per`` each)."""
  import numpy as np
  f = np.asarray(feats, np.float64).reshape(-1, per, feats.shape[-1])
  d = np.sqrt(np.maximum(((f[:, :, None] - f[:, None]) ** 2).sum(-1), 0.0))
  iu = np.triu_indices(per, 1)
  return float(d[:, iu[0], iu[1]].mean())


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  import numpy as np

  from benchmarks import common
  from genjax.clip.score import load_clip
  from genjax.latent.prompts import save_prompt_grid, text_max_len
  from genjax.metrics import (adherence, clip_score_images, extract, feature_statistics,
                              frechet_distance, get_extractor, precision_recall)
  from genjax.text import tokenize
  from genjax.training import run as run_lib
  from genjax.training import workdir as workdir_lib
  from genjax.training.sampling import generate

  t0 = time.time()
  # 1. The runs, from their own records.
  dec_cfg = run_lib.load_config(workdir_lib.current_config_path(FLAGS.decoder_workdir))
  prior_wd = FLAGS.prior_workdir or dec_cfg.unclip.prior_workdir
  with dec_cfg.unlocked():
    dec_cfg.unclip.prior_workdir = prior_wd
    dec_cfg.unclip.prior_guidance_scale = FLAGS.prior_scale
  ldm_cfg = run_lib.load_config(workdir_lib.current_config_path(FLAGS.ldm_workdir))
  dec_run, dec_state = run_lib.restore(dec_cfg, FLAGS.decoder_workdir)
  ldm_run, ldm_state = run_lib.restore(ldm_cfg, FLAGS.ldm_workdir, FLAGS.ldm_step)
  prior_cfg, prior_run, prior_state = run_lib.load_trained(prior_wd)
  clip_wd = dec_cfg.unclip.clip_workdir
  clip_cfg, clip_run, clip_state = run_lib.load_trained(clip_wd)
  clip = load_clip(clip_wd)
  steps = {name: int(jax.device_get(s.step)) for name, s in
           (("ldm", ldm_state), ("decoder", dec_state), ("prior", prior_state),
            ("clip", clip_state))}

  seen = set()
  for r, name in ((ldm_run, "ldm"), (dec_run, "decoder"), (prior_run, "prior"),
                  (clip_run, "clip")):
    seen |= common.seen_captions(r, steps[name])
  test_idx = common.never_paired_prompts(dec_run, FLAGS.num_prompts, seen)
  prompts = dec_run.dataset.test.captions(test_idx)
  per = FLAGS.per_prompt
  repeated = [p for p in prompts for _ in range(per)]
  out = {"steps": steps, "distinct_train_captions_seen": len(seen),
         "num_prompts": len(prompts), "per_prompt": per, "rows": [], "compute": {}}
  print(f"{len(seen)} distinct training captions seen by the four runs; {len(prompts)} "
        "never-paired test captions.")

  # Training compute: steps x batch and FLOPs of one gradient step (XLA's cost analysis of
  # the lowered step, which needs no compilation).
  def step_flops(run, state, cfg):
    b = int(cfg.training.batch_size)
    batch = jax.tree.map(jnp.asarray, run.iterator.batch_at(0))
    g = jax.jit(jax.grad(lambda p, bt, k: run.method.loss(p, bt, k)[0]))
    cost = g.lower(state.params, batch, jax.random.key(0)).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]), b

  for name, run, state, cfg in (("ldm", ldm_run, ldm_state, ldm_cfg),
                                ("decoder", dec_run, dec_state, dec_cfg),
                                ("prior", prior_run, prior_state, prior_cfg),
                                ("clip", clip_run, clip_state, clip_cfg)):
    fl, b = step_flops(run, state, cfg)
    out["compute"][name] = {"steps": steps[name], "batch": b, "gflop_per_step": fl / 1e9,
                            "train_tflop": fl * steps[name] / 1e12}
  print(out["compute"], flush=True)

  # 2. References: the FD reference (test images), the floor, the real images of the prompts.
  ext = get_extractor("shapes")
  ref_x = np.asarray(dec_run.dataset.test.get(np.arange(FLAGS.ref_num))["x"])
  ref_f, _ = extract(ext, ref_x)
  mu_r, sig_r = feature_statistics(ref_f)
  n = len(repeated)
  from genjax.metrics import reference as ref_lib
  train_x = ref_lib.dataset_images("shapes", "train", image_size=32, max_examples=n)
  train_f, _ = extract(ext, train_x)
  real_p = np.asarray(dec_run.dataset.test.get(np.arange(FLAGS.ref_num, FLAGS.ref_num + n))["x"])
  real_pf, _ = extract(ext, real_p)  # n other test images: the recall reference

  def score(name, x, seconds=None, captions=None, group=per):
    x = np.asarray(x)
    captions = repeated if captions is None else captions
    f, _ = extract(ext, x)
    mu, sig = feature_statistics(f)
    a = adherence.prompt_adherence(x, captions)
    toks = np.asarray(tokenize(captions, clip.text_len), np.int32)
    cs = np.asarray(clip_score_images(clip.encode_image, clip.encode_text, x, toks))
    prec, recall = precision_recall(real_pf[:len(f)], f)
    row = {"name": name, "num": len(x),
           "fd_shapes": float(frechet_distance(mu, sig, mu_r, sig_r)),
           "adherence": a["adherence"], **{k: a.get(k) for k in KINDS},
           "clip_score": float(cs.mean()),
           "within_caption_dist": within_caption_distance(f, group) if group > 1 else None,
           "precision": float(prec), "recall": float(recall), "sample_s": seconds}
    out["rows"].append(row)
    print(row, flush=True)
    if FLAGS.out:
      common.write_json(FLAGS.out, out)
    return row

  # The real rows: the real test images of the prompts, and the train floor (unconditional).
  real_own = np.asarray(dec_run.dataset.test.get(test_idx)["x"])
  score("real test images of the prompts, own captions", real_own, captions=list(prompts), group=1)
  score(f"real train images ({n}: FD floor, other captions: chance)", train_x, group=1)

  # 3. Samples.
  grids = {}
  models = (("LDM", ldm_cfg, ldm_state, FLAGS.ldm_scales, "LDM w={w:g}"),
            ("unCLIP", dec_cfg, dec_state, FLAGS.decoder_scales,
             "unCLIP decoder w={w:g}, prior w=" + f"{FLAGS.prior_scale:g}"))
  for name, cfg, state, scales, label in models:
    tokens = np.asarray(tokenize(repeated, text_max_len(cfg)), np.int32)
    for w in (float(s) for s in scales if s):
      method = common.method_for(cfg, guidance_scale=w)
      t1 = time.time()
      x = generate(method, state.ema_params, jax.random.key(FLAGS.seed), n, FLAGS.batch,
                   inputs={"text": tokens}, progress=False)
      score(label.format(w=w), x, time.time() - t1)
      grids[name] = (w, np.asarray(x))
  # unCLIP with the true image embeddings in place of the prior's: what the decoder can do.
  if FLAGS.true_embed_row:
    zi = np.asarray(clip.encode_image(jnp.asarray(np.repeat(real_own, per, 0))))
    w = float(FLAGS.decoder_scales[-1])
    tokens = np.asarray(tokenize(repeated, text_max_len(dec_cfg)), np.int32)
    method = common.method_for(dec_cfg, guidance_scale=w)
    x = generate(method, dec_state.ema_params, jax.random.key(FLAGS.seed), n, FLAGS.batch,
                 inputs={"text": tokens, "image_embed": zi}, progress=False)
    score(f"unCLIP decoder w={w:g} from the real images' z_i (no prior)", x)

  out["total_s"] = time.time() - t0

  head = ["fd_shapes", "adherence", *KINDS, "clip_score", "within_caption_dist", "precision",
          "recall"]
  print("| | " + " | ".join(head) + " |")
  print("|" + "---|" * (len(head) + 1))
  for r in out["rows"]:
    print("| " + " | ".join([r["name"]] + [common.fmt(r.get(k), ".3f") for k in head]) + " |")
  if FLAGS.png:
    k = min(5, len(prompts))
    cols = []
    names = []
    for name, (w, x) in grids.items():  # the last scale of each model
      cols.append(x.reshape((len(prompts), per) + x.shape[1:])[:k])
      names += [f"{name} w={w:g}: {p}" for p in prompts[:k]]
    save_prompt_grid(np.concatenate(cols).reshape((-1,) + cols[0].shape[2:]), names, FLAGS.png)
    out["png"] = FLAGS.png
  if FLAGS.out:
    common.write_json(FLAGS.out, out)


if __name__ == "__main__":
  app.run(main)
