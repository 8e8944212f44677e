"""DDPM sample quality on the embedded digits at a fixed time budget.

    python -m benchmarks.ddpm_digits --budget_s 240 [--variants baseline,default] [--out F.json]
    python -m benchmarks.ddpm_digits --smoke      # a quick end-to-end check

Trains each variant with ``training.time_budget_s`` (so every variant gets the same wall-clock
time on this machine; ``--clock process`` for CPU seconds), samples ``--num`` images with
DDIM-50 (eta = 0) from the EMA params, and scores them with genjax.metrics.sample_quality: the
Frechet distance in the shipped digits classifier's feature space, against held-out digits,
divided by the real-vs-real floor (digits train subsets of the same size).

Variants: ``baseline`` is a two-level 32/64 U-Net (2 res blocks, no attention, batch 64, Adam
2e-4, constant learning rate); ``default`` is configs/ddpm.py as shipped; ``mlp<W>x<D>`` (e.g.
``mlp512x3``) a residual MLP on the flattened digit. A variant may carry its own overrides:
``default+model.ch=48``; ``--set`` applies overrides to every variant.

The runs go to ``--workdir/<variant>`` (default: a fresh temporary directory); a finished run of
the same config and budget there is reused (``benchmarks.common.train_or_reuse``).

``--smoke``: both variants, 2 training steps, 32 samples, into a temporary directory; its
figures mean nothing.
"""

from __future__ import annotations

import ast
import json
import os
import tempfile

from absl import flags

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_list("variants", ["baseline", "default"], "Variants to train: baseline | default | "
                  "mlp<W>x<D>, each optionally followed by +section.field=value overrides.")
flags.DEFINE_float("budget_s", 240.0, "Training seconds per variant (see --clock).",
                   lower_bound=0.0)
flags.DEFINE_enum("clock", "wall", ["wall", "process"], "What --budget_s counts: wall-clock "
                  "seconds, or CPU seconds of this process.")
flags.DEFINE_multi_string("set", [], "Overrides for every variant, e.g. --set "
                          "training.num_steps=1500 --set model.ch=48 (values are Python "
                          "literals).")
flags.DEFINE_integer("num", 1000, "Samples scored per variant.", lower_bound=2)
flags.DEFINE_string("workdir", None, "Directory of the runs, one per variant (default: a new "
                    "temporary directory).")
flags.DEFINE_string("out", None, "Write the results as JSON here.")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: 2 training steps, 32 samples; the "
                  "figures mean nothing.")


def _override(kv: str) -> tuple[str, object]:
  """``"section.field=value"`` -> ``(dotted, value)``, the value a Python literal if it is one."""
  if "=" not in kv:
    from genjax import cli
    raise cli.UsageError(f"override {kv!r} must be section.field=value.")
  key, value = kv.split("=", 1)
  try:
    value = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    pass
  return key, value


def variant_config(name: str):
  """``name`` is a base variant, optionally followed by ``+section.field=value`` overrides."""
  import ml_collections
  name, *overrides = name.split("+")
  config = common.load_config("ddpm")
  if name == "baseline":  # a two-level 32/64 U-Net, trained for the time budget only
    m = config.model
    m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.dropout = 32, (1, 2), 2, (), 0.0
    config.optim.learning_rate = 2e-4
    config.optim.warmup_steps = 0
    config.optim.schedule = "constant"
    config.training.ema_decay = 0.999
    config.training.num_steps = 1_000_000
  elif name.startswith("mlp"):  # e.g. mlp, mlp512x4: a residual MLP on the flattened digit
    spec = name[3:] or "512x3"
    hidden, depth = (int(v) for v in spec.split("x"))
    config.model = ml_collections.ConfigDict(dict(name="mlp", hidden=hidden, depth=depth,
                                                  time_dim=128, dropout=0.0, num_classes=0))
    config.training.num_steps = 1_000_000
  elif name != "default":
    raise common.BenchmarkError(f"unknown variant {name!r}; valid: baseline, default, "
                                "mlp<W>x<D>.")
  config.sampling.sampler, config.sampling.steps, config.sampling.eta = "ddim", 50, 0.0
  config.training.sample_every = 0
  config.training.ckpt_every = 1_000_000
  return common.with_fields(config, [_override(kv) for kv in overrides])


def main(argv):
  del argv
  from genjax import viz
  from genjax.metrics import sample_quality
  from genjax.training import run as run_lib

  extra = [_override(kv) for kv in FLAGS.set]
  num = FLAGS.num
  if FLAGS.smoke:
    extra.append(("training.num_steps", 2))
    num = min(num, 32)
  root = FLAGS.workdir or tempfile.mkdtemp(prefix="ddpm_digits_")
  results = {}
  for name in FLAGS.variants:
    config = common.with_fields(variant_config(name), extra)
    wd = os.path.join(root, name)
    trained = common.train_or_reuse(config, wd, budget_s=FLAGS.budget_s, clock=FLAGS.clock)
    run, state = run_lib.restore(config, wd)
    s = common.sample(run.method, state.ema_params, num, batch=250)
    viz.save_image_grid(s.x[:100], os.path.join(wd, "ddim50.png"))
    q = sample_quality(s.as_images())
    results[name] = dict(steps=int(state.step), train_s=trained.train_s, sample_s=s.seconds,
                         fd_digits=q["fd_digits"], fd_digits_floor=q["baseline"]["fd_digits"],
                         fd_digits_floor_std=q["baseline"]["fd_digits_std"],
                         fd_digits_ratio=q["fd_digits_ratio"], kid_digits=q["kid_digits"],
                         precision_digits=q["precision_digits"],
                         recall_digits=q["recall_digits"],
                         grid=os.path.join(wd, "ddim50.png"))
    print(json.dumps({name: results[name]}), flush=True)
  print("\n| variant | steps | train s | fd_digits | real floor | fd_digits / floor | "
        "precision_digits | recall_digits |")
  print("|---|---|---|---|---|---|---|---|")
  for name, r in results.items():
    print(f"| {name} | {r['steps']} | {common.fmt(r['train_s'])} | {r['fd_digits']:.2f} | "
          f"{r['fd_digits_floor']:.2f} ± {r['fd_digits_floor_std']:.2f} | "
          f"{r['fd_digits_ratio']:.2f} | {r['precision_digits']:.2f} | "
          f"{r['recall_digits']:.2f} |")
  if FLAGS.out:
    common.write_json(FLAGS.out, results)


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
