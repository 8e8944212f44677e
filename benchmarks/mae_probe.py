"""Linear-probe accuracy of frozen encoders (He et al. 2022, Sec. 4): the MAE's encoder, the same
encoder at a random initialisation, the denoising autoencoder's encoder and raw pixels.

    python train.py --config=configs/mae.py --workdir=runs/mae
    python train.py --config=configs/dae.py --workdir=runs/dae
    python -m benchmarks.mae_probe --mae_workdir=runs/mae --dae_workdir=runs/dae

Each encoder's features of every train image fit a multinomial logistic regression on
standardised features (``genjax.mae.probe``); the table gives its test accuracy on each label.
On the digits the label is the class; on ``shapes`` the attributes of the first object (shape,
colour, size) and the object count. Prints a markdown table and writes ``--out`` (JSON).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

flags.DEFINE_string("mae_workdir", None, "A trained mae run.")
flags.DEFINE_string("dae_workdir", None, "A trained ae run (the denoising AE of configs/dae.py).")
flags.DEFINE_string("out", None, "JSON results file.")
flags.DEFINE_integer("max_train", 5000, "Cap on train images (shapes' split is large).")
flags.DEFINE_float("l2", 1.0, "Inverse L2 strength of the probe.")
FLAGS = flags.FLAGS

SHAPES_LABELS = {"shape": ("shape", 0), "colour": ("colour", 0), "size": ("size", 0),
                 "num_objects": ("num_objects", None)}


def _labels(batch, dataset_name):
  if dataset_name != "shapes":
    return {"class": np.asarray(batch["label"])}
  out = {}
  for name, (key, col) in SHAPES_LABELS.items():
    v = np.asarray(batch[key])
    out[name] = v if col is None else v[:, col]
  return out


def _features(fn, source, n, dataset_name, batch_size=256):
  feats, labels = [], {}
  for s in range(0, n, batch_size):
    b = source.get(np.arange(s, min(s + batch_size, n)))
    feats.append(np.asarray(fn(jnp.asarray(b["x"]))))
    for k, v in _labels(b, dataset_name).items():
      labels.setdefault(k, []).append(v)
  return np.concatenate(feats), {k: np.concatenate(v) for k, v in labels.items()}


def probe(mae_workdir, dae_workdir=None, max_train=5000, l2=1.0) -> dict:
  from genjax.autoencoders.ae_method import build_ae_model
  from genjax.mae.method import build_mae_model
  from genjax.mae.probe import linear_probe_accuracy
  from genjax.training import run as run_lib
  config, run, state = run_lib.load_trained(mae_workdir)
  name = config.data.dataset
  model, _, _ = build_mae_model(config, run.dataset.spec)
  feat = jax.jit(model.features)
  x0 = jnp.asarray(run.dataset.train.get(np.arange(2))["x"])
  random_params = model.init(jax.random.key(0), x0)
  fns = {"MAE encoder (trained)": lambda x: feat(state.ema_params, x),
         "MAE encoder (random init)": lambda x: feat(random_params, x)}
  if dae_workdir:
    dconfig, drun, dstate = run_lib.load_trained(dae_workdir)
    if tuple(drun.dataset.spec.shape) != tuple(run.dataset.spec.shape):
      raise ValueError(f"--dae_workdir holds a model of {drun.dataset.spec.shape} images, the MAE "
                       f"{run.dataset.spec.shape}.")
    ae_model, _ = build_ae_model(dconfig, drun.dataset.spec)
    enc = jax.jit(ae_model.encode)
    fns[f"{dconfig.method} encoder ({dconfig.ae.corruption} corruption)"] = (
        lambda x: enc(dstate.ema_params, x))
  fns["raw pixels"] = lambda x: x.reshape(x.shape[0], -1)
  n_tr = min(max_train, len(run.dataset.train))
  n_te = min(max_train, len(run.dataset.test))
  table = {}
  for fname, fn in fns.items():
    tr, ytr = _features(fn, run.dataset.train, n_tr, name)
    te, yte = _features(fn, run.dataset.test, n_te, name)
    table[fname] = {k: linear_probe_accuracy(tr, ytr[k], te, yte[k], l2) for k in ytr}
    table[fname]["dim"] = int(tr.shape[1])
  return {"dataset": name, "num_train": n_tr, "num_test": n_te,
          "mae_step": int(jax.device_get(state.step)), "table": table}


def markdown(result) -> str:
  keys = [k for k in next(iter(result["table"].values())) if k != "dim"]
  lines = ["| features | dim | " + " | ".join(f"{k} acc." for k in keys) + " |",
           "|---|---|" + "---|" * len(keys)]
  for name, row in result["table"].items():
    lines.append(f"| {name} | {row['dim']} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  if not FLAGS.mae_workdir:
    raise app.UsageError("--mae_workdir is required (a trained configs/mae.py run).")
  result = probe(FLAGS.mae_workdir, FLAGS.dae_workdir, FLAGS.max_train, FLAGS.l2)
  print(markdown(result))
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  app.run(main)
