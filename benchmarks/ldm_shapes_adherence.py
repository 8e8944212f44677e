"""Text-to-image latent diffusion on the shapes: caption adherence against guidance scale.

For a trained ``configs/ldm_shapes.py`` run:

1. the prompts: captions of the shapes test split that the run never saw in training (each
   test caption is compared with the captions of every training example the run's iterator
   fed it up to the restored step, ``run.iterator.indices_at``); the report gives how many
   test captions were seen;
2. caption adherence (:func:`genjax.metrics.adherence.prompt_adherence`) of ``--per_prompt``
   samples of each prompt at classifier-free guidance scales ``--scales``, with its per-kind
   rates;
3. beside it: what the first stage keeps (its reconstructions of the real images of those
   captions, scored against them), the ceiling (the real test images of those captions scored against their own
   captions, and :func:`genjax.metrics.adherence.real_ceiling` on the first 2,000 test images)
   and chance (the same real images scored against another image's caption).

The never-paired captions are those of ``benchmarks.dalle_shapes`` (``common.seen_captions``,
``common.never_paired_prompts``), so the two text-to-image families are scored alike.

    python -m benchmarks.ldm_shapes_adherence --config=configs/ldm_shapes.py \\
        --config.ldm.first_stage_workdir=runs/autoencoder_kl_shapes --workdir=runs/ldm_shapes \\
        --num_prompts=64 --per_prompt=2 --scales=0,1,3,5 --out=/tmp/ldm_shapes_adherence.json
"""

from __future__ import annotations

import time

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/ldm_shapes.py", "The run's config.",
                                lock_config=False)
flags.DEFINE_string("workdir", None, "The text-to-image LDM run's workdir.")
flags.DEFINE_integer("num_prompts", 64, "Unseen test captions to sample.", lower_bound=1)
flags.DEFINE_integer("per_prompt", 2, "Samples per caption.", lower_bound=1)
flags.DEFINE_list("scales", ["0", "1", "3", "5"], "Classifier-free guidance scales w.")
flags.DEFINE_integer("batch", 256, "Samples per jitted call.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Sampling seed.", lower_bound=0)
flags.DEFINE_integer("ceiling_num", 2000, "Test images for real_ceiling.", lower_bound=1)
flags.DEFINE_string("out", None, "JSON of the results.")
flags.mark_flags_as_required(["workdir"])

ROW_KINDS = ("colour", "shape", "size", "position", "relation", "count")


def row(name: str, r: dict) -> dict:
  return {"name": name, "adherence": r["adherence"], "exact": r["exact"],
          **{k: r.get(k) for k in ROW_KINDS}, "spurious": r.get("spurious")}


def main(argv):
  del argv
  import jax
  import numpy as np

  from benchmarks import common
  from genjax.latent.ldm import LDMConfig, load_first_stage
  from genjax.latent.prompts import text_max_len
  from genjax.metrics import adherence
  from genjax.text import tokenize
  from genjax.training import run as run_lib
  from genjax.training.sampling import generate
  from genjax.typed_config import from_section

  config = FLAGS.config
  t0 = time.time()
  run, state = run_lib.restore(config, FLAGS.workdir)
  step = int(jax.device_get(state.step))
  seen = common.seen_captions(run, step)
  test_idx = common.never_paired_prompts(run, FLAGS.num_prompts, seen)
  prompts = run.dataset.test.captions(test_idx)
  skipped = int(test_idx[-1]) + 1 - len(test_idx)  # test captions before the last one taken
  out = {"workdir": FLAGS.workdir, "step": step, "train_examples_seen": step *
         int(config.training.batch_size), "distinct_train_captions_seen": len(seen),
         "test_captions_checked": len(prompts) + skipped, "test_captions_seen_in_training":
         skipped, "num_prompts": len(prompts), "per_prompt": FLAGS.per_prompt,
         "sampler": {k: config.sampling[k] for k in ("sampler", "steps", "eta")}, "rows": []}
  print(f"step {step}: {len(seen)} distinct training captions seen; {skipped} of "
        f"{len(prompts) + skipped} test captions were among them and are skipped.")

  # Real images of the chosen captions: the ceiling on these captions, and chance.
  real = run.dataset.test.get(test_idx)
  out["rows"].append(row("real, own caption", adherence.prompt_adherence(real["x"], prompts)))
  others = list(np.roll(np.asarray(prompts, dtype=object), 1))
  out["rows"].append(row("real, another caption (chance)",
                         adherence.prompt_adherence(real["x"], others)))
  # The first stage's reconstructions of those images: what the latent space keeps.
  fs, fs_params, _ = load_first_stage(from_section(LDMConfig, config.ldm, where="ldm"),
                                      run.dataset.spec)
  recon = np.clip(np.asarray(jax.jit(fs.reconstruct)(fs_params, real["x"])), -1.0, 1.0)
  out["rows"].append(row("first-stage reconstruction, own caption",
                         adherence.prompt_adherence(recon, prompts)))
  ceiling = adherence.real_ceiling(FLAGS.ceiling_num)
  out["real_ceiling"] = ceiling
  out["rows"].append(row(f"real_ceiling ({FLAGS.ceiling_num} test images)", ceiling))

  per = FLAGS.per_prompt
  tokens = np.repeat(np.asarray(tokenize(prompts, text_max_len(config)), np.int32), per, axis=0)
  repeated = [p for p in prompts for _ in range(per)]
  for w in (float(s) for s in FLAGS.scales):
    method = common.method_for(config, guidance_scale=w)
    t1 = time.time()
    x = generate(method, state.ema_params, jax.random.key(FLAGS.seed), len(tokens), FLAGS.batch,
                 inputs={"text": tokens}, progress=False)
    r = row(f"LDM w={w:g}", adherence.prompt_adherence(np.asarray(x), repeated))
    r["sample_s"] = time.time() - t1
    out["rows"].append(r)
    print(r)
  out["total_s"] = time.time() - t0

  head = ["", "adherence", "exact"] + list(ROW_KINDS)
  print("| " + " | ".join(head) + " |")
  print("|" + "---|" * len(head))
  for r in out["rows"]:
    print("| " + " | ".join([r["name"]] + [common.fmt(r[k], ".3f") for k in head[1:]]) + " |")
  if FLAGS.out:
    common.write_json(FLAGS.out, out)


if __name__ == "__main__":
  app.run(main)
