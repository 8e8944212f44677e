"""Guidance on the digits: class accuracy and sample quality against the guidance scale.

    python benchmarks/guidance.py --out runs/guidance                  # trains configs/ddpm_cfg.py
    python benchmarks/guidance.py --workdir runs/ddpm_cfg --scales 0,1,2,4
    python benchmarks/guidance.py --classifier runs/classifier --workdir runs/ddpm \
        --scales 0,1,2,4,8 --out runs/classifier_guidance    # classifier guidance

With ``--classifier`` (a ``configs/noisy_classifier.py`` run) the scales are classifier
guidance's s (Dhariwal & Nichol 2021) applied to the model in ``--workdir`` (conditional or
not); otherwise they are classifier-free guidance's w.

Trains (or reuses, from ``--workdir``) the class-conditional DDPM of ``configs/ddpm_cfg.py``
(p_uncond = 0.1; Ho & Salimans 2022), then samples the same number of digits of every class at
each guidance weight w (eps~ = (1 + w) eps(x, y) - w eps(x); ``w = -1`` is the unconditional
model) with the config's sampler, and reports:

* accuracy: the fraction of samples that the shipped digits classifier
  (``genjax.metrics.digits_classifier``, 99.6% on the test digits) assigns to the requested class;
* mean confidence: its mean probability of the requested class;
* FD, precision, recall against the test digits (``genjax.metrics.sample_quality``; the samples
  are class-balanced like the test set), with the train-vs-test floor.

Writes ``guidance.json``, ``guidance.md`` and ``guidance.png`` (one panel per w, one row per
class) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default="runs/guidance")
  p.add_argument("--workdir", default=None, help="a trained configs/ddpm_cfg.py run "
                 "(default: --out/model, trained here if it has no checkpoint)")
  p.add_argument("--train_steps", type=int, default=None,
                 help="training steps when training here (default: the config's)")
  p.add_argument("--scales", default="-1,0,0.5,1,2,4")
  p.add_argument("--per_class", type=int, default=50)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--classifier", default=None,
                 help="a noisy_classifier run: sweep classifier guidance's scale s instead of w")
  args = p.parse_args()
  import jax
  from configs import ddpm_cfg
  from genjax import viz
  from genjax.metrics import sample_quality
  from genjax.metrics.digits_classifier import load_digits_classifier
  from genjax.training import run as run_lib
  from genjax.training.checkpoint import Checkpointer
  from genjax.training.sampling import generate

  os.makedirs(args.out, exist_ok=True)
  workdir = args.workdir or os.path.join(args.out, "model")
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=1, async_save=False)
  trained = ckpt.latest_step() is not None
  ckpt.close()
  train_s = None
  if not trained:
    config = ddpm_cfg.get_config()
    if args.train_steps:
      config.training.num_steps = args.train_steps
    config.training.progress = False
    t0 = time.time()
    run_lib.train_and_evaluate(config, workdir)
    train_s = time.time() - t0
    print(f"trained {config.training.num_steps} steps in {train_s:.0f}s", flush=True)
  config, run, state = run_lib.load_trained(workdir)
  num_classes = run.dataset.spec.num_classes
  knob = "classifier_scale" if args.classifier else "guidance_scale"
  if args.classifier:
    config.sampling.classifier_workdir = args.classifier
  elif not config.diffusion.cond_drop_prob:
    sys.exit(f"{workdir} was trained without diffusion.cond_drop_prob; it has no unconditional "
             "model to guide with.")
  _, probs_fn = load_digits_classifier()
  num = args.per_class * num_classes
  labels = np.arange(num) % num_classes
  rows, panels = [], []
  floor = None
  for w in [float(s) for s in args.scales.split(",")]:
    c = config.copy_and_resolve_references()
    c.sampling[knob] = w
    method = run_lib.build_run(c).method
    t0 = time.time()
    x = generate(method, state.ema_params, jax.random.key(args.seed), num, num, progress=False)
    secs = time.time() - t0
    probs = np.asarray(probs_fn(np.clip(x, -1, 1)))
    q = sample_quality(np.clip(x, -1, 1), baseline=floor is None)  # as a PNG would be
    floor = floor or q["baseline"]
    row = {"scale": w, "accuracy": float(np.mean(probs.argmax(-1) == labels)),
           "confidence": float(np.mean(probs[np.arange(num), labels])),
           "fd_digits": q["fd_digits"], "precision_digits": q["precision_digits"],
           "recall_digits": q["recall_digits"],
           "sample_s": round(secs, 1)}
    rows.append(row)
    print(json.dumps(row), flush=True)
    order = np.argsort(labels, kind="stable").reshape(num_classes, -1)[:, :8]  # 8 per class
    panels.append((w, np.asarray(x)[order.T.reshape(-1)]))
  name = "classifier guidance (s)" if args.classifier else "classifier-free guidance (w)"
  result = {"guidance": name, "classifier": args.classifier, "workdir": workdir, "step": int(state.step), "train_s": train_s,
            "sampler": dict(config.sampling), "per_class": args.per_class,
            "floor": {k: floor[k] for k in ("fd_digits", "fd_digits_std", "precision_digits",
                                            "recall_digits") if k in floor},
            "rows": rows}
  with open(os.path.join(args.out, "guidance.json"), "w") as f:
    json.dump(result, f, indent=1, default=str)
  s = config.sampling
  lines = [f"{name}, {workdir} (step {int(state.step)}), sampler {s.sampler}"
           f" {s.steps} steps eta {s.eta}; {num} samples ({args.per_class} per class); "
           f"fd_digits floor {floor['fd_digits']:.3f}", "",
           f"| {name[-2]} | accuracy | confidence | fd_digits | precision_digits | "
           "recall_digits |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['scale']:g} | {r['accuracy']:.3f} | {r['confidence']:.3f} | "
                 f"{r['fd_digits']:.3f} | {r['precision_digits']:.3f} | "
                 f"{r['recall_digits']:.3f} |")
  with open(os.path.join(args.out, "guidance.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.9))
  for ax, (w, imgs) in zip(np.atleast_1d(axes), panels):
    viz.show_grid(ax, imgs, nrow=num_classes, title=f"{name[-2]} = {w:g}")
  fig.suptitle(f"{name}: one column per class 0-9")
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "guidance.png"), dpi=120)
  plt.close(fig)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
