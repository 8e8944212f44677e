"""DDPM sample quality on the embedded digits at a fixed CPU time budget.

    python benchmarks/ddpm_digits.py --budget_s 240 [--variants baseline default] [--out F.json]

Trains each variant with ``training.time_budget_s`` (so every variant gets the same wall-clock
time on this machine), samples --num images with DDIM-50 from the EMA params, and scores them
with genjax.metrics.sample_quality: the Frechet distance in the shipped digits classifier's
feature space, against held-out digits, divided by the real-vs-real floor (digits train
subsets of the same size). ``baseline`` is the foundation issue's reference: a small
two-level conv U-Net (32/64 channels, batch 64, 8x8, Adam 2e-4); ``default`` is
configs/ddpm.py as shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _override(config, kv: str):
  import ast
  key, value = kv.split("=", 1)
  section, field = key.split(".")
  try:
    value = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    pass
  config[section][field] = value


def variant_config(name: str):
  """``name`` is a base variant, optionally followed by ``+section.field=value`` overrides."""
  from configs import ddpm
  name, *overrides = name.split("+")
  config = ddpm.get_config()
  if name == "baseline":
    m = config.model
    m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.dropout = 32, (1, 2), 2, (), 0.0
    config.optim.learning_rate = 2e-4
    config.optim.warmup_steps = 0
    config.optim.schedule = "constant"
    config.training.ema_decay = 0.999
    config.training.num_steps = 1_000_000  # the reference trains for the time budget only
  elif name.startswith("mlp"):  # e.g. mlp, mlp512x4: a residual MLP on the flattened digit
    import ml_collections
    spec = name[3:] or "512x3"
    hidden, depth = (int(v) for v in spec.split("x"))
    config.model = ml_collections.ConfigDict(dict(name="mlp", hidden=hidden, depth=depth,
                                                  time_dim=128, dropout=0.0, num_classes=0))
    config.training.num_steps = 1_000_000
  elif name != "default":
    raise ValueError(f"unknown variant {name!r}")
  config.sampling.sampler, config.sampling.steps, config.sampling.eta = "ddim", 50, 0.0
  config.training.sample_every = 0
  config.training.ckpt_every = 1_000_000
  config.training.progress = False
  for kv in overrides:
    _override(config, kv)
  return config


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--variants", nargs="+", default=["baseline", "default"])
  ap.add_argument("--budget_s", type=float, default=240.0)
  ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every variant, "
                  "e.g. training.num_steps=1500 model.ch=48 (values are Python literals)")
  ap.add_argument("--num", type=int, default=1000, help="samples scored per variant")
  ap.add_argument("--workdir", default=None)
  ap.add_argument("--out", default=None)
  args = ap.parse_args()

  import jax
  from genjax.metrics import sample_quality
  from genjax.training import run as run_lib
  from genjax.training.sampling import generate
  from genjax import viz

  root = args.workdir or tempfile.mkdtemp(prefix="ddpm_digits_")
  results = {}
  for name in args.variants:
    config = variant_config(name)
    config.training.time_budget_s = args.budget_s
    for kv in args.set:
      _override(config, kv)
    wd = os.path.join(root, name)
    t0 = time.time()
    state = run_lib.train_and_evaluate(config, wd)
    train_s = time.time() - t0
    run, state = run_lib.restore(config, wd)
    t0 = time.time()
    samples = generate(run.method, state.ema_params, jax.random.key(0), args.num, 250)
    sample_s = time.time() - t0
    viz.save_image_grid(samples[:100], os.path.join(wd, "ddim50.png"))
    q = sample_quality(samples)
    results[name] = dict(steps=int(state.step), train_s=train_s, sample_s=sample_s,
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
    print(f"| {name} | {r['steps']} | {r['train_s']:.0f} | {r['fd_digits']:.2f} | "
          f"{r['fd_digits_floor']:.2f} ± {r['fd_digits_floor_std']:.2f} | "
          f"{r['fd_digits_ratio']:.2f} | {r['precision_digits']:.2f} | "
          f"{r['recall_digits']:.2f} |")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  main()
