"""Guidance on the digits: class accuracy and sample quality against the guidance scale.

    python -m benchmarks.guidance --out runs/guidance              # trains configs/ddpm_cfg.py
    python -m benchmarks.guidance --workdir runs/ddpm_cfg --scales 0,1,2,4
    python -m benchmarks.guidance --classifier runs/classifier --workdir runs/ddpm \
        --scales 0,1,2,4,8 --out runs/classifier_guidance    # classifier guidance
    python -m benchmarks.guidance --smoke                    # a quick end-to-end check

With ``--classifier`` (a ``configs/noisy_classifier.py`` run) the scales are classifier
guidance's s (Dhariwal & Nichol 2021) applied to the model in ``--workdir`` (conditional or
not); otherwise they are classifier-free guidance's w.

A ``--workdir`` that holds a trained run is used as it is, with the config it was trained with.
Otherwise this trains (or reuses: a finished run of the same config,
``benchmarks.common.train_or_reuse``) the class-conditional DDPM of ``configs/ddpm_cfg.py``
(p_uncond = 0.1; Ho & Salimans 2022) in ``--workdir`` (default ``--out/model``), then samples
the same number of digits of every class at each guidance weight w (eps~ = (1 + w) eps(x, y) -
w eps(x); ``w = -1`` is the unconditional model) with the config's sampler, and reports:

* accuracy: the fraction of samples that the shipped digits classifier
  (``genjax.metrics.digits_classifier``, 99.6% on the test digits) assigns to the requested class;
* mean confidence: its mean probability of the requested class;
* FD, precision, recall against the test digits (``genjax.metrics.sample_quality``; the samples
  are class-balanced like the test set), with the train-vs-test floor.

Writes ``guidance.json``, ``guidance.md`` and ``guidance.png`` (one panel per w, one row per
class) into ``--out``.

``--smoke``: trains configs/ddpm_cfg.py for 2 steps (unless ``--workdir`` holds a run), samples
2 digits per class at w = -1, 0, 1 with DDIM-5, into ``runs/guidance_smoke`` unless ``--out``
is given; its figures mean nothing.
"""

from __future__ import annotations

import json
import os

from absl import flags
import numpy as np

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output directory (default runs/guidance, or "
                    "runs/guidance_smoke with --smoke).")
flags.DEFINE_string("workdir", None, "A trained run to guide, used with its own config; if it "
                    "holds none, configs/ddpm_cfg.py is trained there (default: --out/model).")
flags.DEFINE_integer("train_steps", None, "Training steps when training here (default: the "
                     "config's).", lower_bound=1)
flags.DEFINE_list("scales", ["-1", "0", "0.5", "1", "2", "4"], "Guidance scales: w "
                  "(classifier-free), or s with --classifier.")
flags.DEFINE_integer("per_class", 50, "Samples per class at each scale.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Sampling seed.", lower_bound=0)
flags.DEFINE_string("classifier", None, "A configs/noisy_classifier.py run: sweep classifier "
                    "guidance's scale s instead of w.")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: 2 training steps, 2 samples per "
                  "class, w = -1, 0, 1, DDIM-5; the figures mean nothing.")


def _model(out: str):
  """``(config, run, state, train_s)`` of the model to guide."""
  from configs import ddpm_cfg
  from genjax.training import run as run_lib
  from genjax.training import workdir as workdir_lib
  if FLAGS.workdir and workdir_lib.saved_steps(FLAGS.workdir):
    config, run, state = run_lib.load_trained(FLAGS.workdir)
    record = common.read_record(FLAGS.workdir)
    return config, run, state, None if record is None else record.get("train_s")
  workdir = FLAGS.workdir or os.path.join(out, "model")
  config = ddpm_cfg.get_config()
  if FLAGS.train_steps:
    config.training.num_steps = FLAGS.train_steps
  trained = common.train_or_reuse(config, workdir)
  print(f"{'reused' if trained.reused else 'trained'} {workdir}: step {trained.step}, "
        f"{common.fmt(trained.train_s)} s", flush=True)
  config, run, state = run_lib.load_trained(workdir)
  return config, run, state, trained.train_s


def main(argv):
  del argv
  from genjax import viz
  from genjax.metrics import sample_quality
  from genjax.metrics.digits_classifier import load_digits_classifier

  scales = common.list_flag("scales", float)
  if FLAGS.smoke:
    FLAGS.train_steps = 2
    FLAGS.per_class = min(FLAGS.per_class, 2)
    scales = [-1.0, 0.0, 1.0]
  out = FLAGS.out or os.path.join("runs", "guidance_smoke" if FLAGS.smoke else "guidance")
  os.makedirs(out, exist_ok=True)
  config, run, state, train_s = _model(out)
  workdir = FLAGS.workdir or os.path.join(out, "model")
  num_classes = run.dataset.spec.num_classes
  knob = "classifier_scale" if FLAGS.classifier else "guidance_scale"
  extra = {}
  if FLAGS.classifier:
    extra["classifier_workdir"] = FLAGS.classifier
  elif not config.diffusion.get("cond_drop_prob", 0.0):
    raise common.BenchmarkError(
        f"{workdir} was trained without diffusion.cond_drop_prob; it has no unconditional "
        "model to guide with. Train configs/ddpm_cfg.py, or pass --classifier.")
  if FLAGS.smoke and config.sampling.get("sampler", "ddim") != "ddpm":
    extra["steps"] = 5
  _, probs_fn = load_digits_classifier()
  num = FLAGS.per_class * num_classes
  labels = np.arange(num) % num_classes
  rows, panels = [], []
  floor = None
  for w in scales:
    method = common.method_for(config, **extra, **{knob: w})
    s = common.sample(method, state.ema_params, num, seed=FLAGS.seed)
    x = s.as_images()  # as a PNG would be
    probs = np.asarray(probs_fn(x))
    q = sample_quality(x, baseline=floor is None)
    floor = floor or q["baseline"]
    row = {"scale": w, "accuracy": float(np.mean(probs.argmax(-1) == labels)),
           "confidence": float(np.mean(probs[np.arange(num), labels])),
           "fd_digits": q["fd_digits"], "precision_digits": q["precision_digits"],
           "recall_digits": q["recall_digits"], "sampler": s.tag,
           "sample_s": round(s.seconds, 1)}
    rows.append(row)
    print(json.dumps(row), flush=True)
    order = np.argsort(labels, kind="stable").reshape(num_classes, -1)[:, :8]  # 8 per class
    panels.append((w, np.asarray(s.x)[order.T.reshape(-1)]))
  name = "classifier guidance (s)" if FLAGS.classifier else "classifier-free guidance (w)"
  sampling = dict(common.with_sampling(config, **extra).sampling)
  result = {"guidance": name, "classifier": FLAGS.classifier, "workdir": workdir,
            "step": int(state.step), "train_s": train_s, "sampler": sampling,
            "per_class": FLAGS.per_class,
            "floor": {k: floor[k] for k in ("fd_digits", "fd_digits_std", "precision_digits",
                                            "recall_digits") if k in floor},
            "rows": rows}
  with open(os.path.join(out, "guidance.json"), "w") as f:
    json.dump(result, f, indent=1, default=str)
  lines = [f"{name}, {workdir} (step {int(state.step)}), sampler {sampling.get('sampler')} "
           f"{sampling.get('steps', 0) or 'default'} steps eta {sampling.get('eta', 0.0)}; "
           f"{num} samples ({FLAGS.per_class} per class); fd_digits floor "
           f"{floor['fd_digits']:.3f}", "",
           f"| {name[-2]} | accuracy | confidence | fd_digits | precision_digits | "
           "recall_digits |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['scale']:g} | {r['accuracy']:.3f} | {r['confidence']:.3f} | "
                 f"{r['fd_digits']:.3f} | {r['precision_digits']:.3f} | "
                 f"{r['recall_digits']:.3f} |")
  with open(os.path.join(out, "guidance.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.9))
  for ax, (w, imgs) in zip(np.atleast_1d(axes), panels):
    viz.show_grid(ax, imgs, nrow=num_classes, title=f"{name[-2]} = {w:g}")
  fig.suptitle(f"{name}: one column per class 0-9")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "guidance.png"), dpi=120)
  plt.close(fig)
  print("\n".join(lines))


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
