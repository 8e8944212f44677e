"""Trains the shapes classifier and writes its weights (the shipped asset by default).

  python -m genjax.metrics.train_shapes_classifier [--out PATH] [--steps N] [--seed S]

Images come from the ``shapes`` train split (default config), generated on the fly in a
background thread (``genjax.data.BatchIterator``), so no image is seen twice; the accuracies
are measured on the first ``--num_eval`` images of the test split and written into the file's
metadata.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.data import BatchIterator
from genjax.data import shapes as shapes_lib
from genjax.metrics import shapes_classifier as sc
from genjax.metrics import weights as weights_lib


def cell_loss(logits: jax.Array, targets: dict) -> tuple[jax.Array, dict]:
  """Occupancy BCE over all cells + colour/shape/size cross-entropy over occupied cells."""
  parts = sc.split_logits(logits)
  occ = targets["occupied"]
  loss_occ = optax.sigmoid_binary_cross_entropy(parts["occupied"], occ.astype(jnp.float32)).mean()
  denom = jnp.maximum(occ.sum(), 1)
  metrics = {"loss_occupied": loss_occ}
  total = loss_occ
  for k in ("colour", "shape", "size"):
    t = jnp.maximum(targets[k], 0)
    ce = optax.softmax_cross_entropy_with_integer_labels(parts[k], t)
    metrics[f"loss_{k}"] = (ce * occ).sum() / denom
    total = total + metrics[f"loss_{k}"]
  return total, metrics


def train_classifier(seed: int = 0, steps: int = 3000, batch_size: int = 128,
                     learning_rate: float = 2e-3, weight_decay: float = 1e-4,
                     max_noise: float = 0.1, num_eval: int = 2000,
                     log_every: int = 250) -> tuple[dict, dict]:
  """Trains :class:`sc.ShapesCNN`; returns (params, metadata)."""
  cfg = shapes_lib.ShapesConfig()
  train, test = shapes_lib.splits(cfg)
  model = sc.ShapesCNN()
  key = jax.random.key(seed)
  key, init_key = jax.random.split(key)
  params = jax.jit(model.init)(init_key, jnp.zeros((1, sc.INPUT, sc.INPUT, 3)))["params"]
  sched = optax.cosine_decay_schedule(learning_rate, steps)
  tx = optax.adamw(sched, weight_decay=weight_decay)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, targets, i):
    k_noise, k_sigma = jax.random.split(jax.random.fold_in(key, i))
    sigma = jax.random.uniform(k_sigma, (x.shape[0], 1, 1, 1), maxval=max_noise)
    x = sc.resize_to_shapes(x + sigma * jax.random.normal(k_noise, x.shape))

    def loss_fn(p):
      _, logits = model.apply({"params": p}, x)
      return cell_loss(logits, targets)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, metrics

  t0 = time.time()
  with BatchIterator(train, batch_size, seed, prefetch=4) as it:
    for i in range(steps):
      b = next(it)
      targets = {k: jnp.asarray(v) for k, v in sc.cell_targets(b).items()}
      params, opt_state, loss, metrics = step(params, opt_state, jnp.asarray(b["x"]), targets, i)
      if log_every and (i + 1) % log_every == 0:
        m = " ".join(f"{k} {float(v):.4f}" for k, v in metrics.items())
        print(f"step {i + 1}/{steps} loss {float(loss):.4f} {m} ({time.time() - t0:.0f}s)",
              flush=True)

  # Rescale the feature layer to unit mean square on training images (see
  # genjax.metrics.digits_classifier): relu(s h) = s relu(h), so the logits are unchanged.
  apply = jax.jit(lambda p, x: model.apply({"params": p}, sc.resize_to_shapes(x)))
  x_scale = train.get(np.arange(2000))["x"]
  feats, _ = apply(params, jnp.asarray(x_scale))
  scale = float(1.0 / jnp.sqrt(jnp.mean(feats * feats)))
  params = dict(params)
  # Dense_0 makes the features; Dense_1 reads relu(features) (its last 128 input rows).
  params["Dense_0"] = jax.tree.map(lambda w: w * scale, params["Dense_0"])
  k1 = params["Dense_1"]["kernel"]
  params["Dense_1"] = dict(params["Dense_1"], kernel=k1.at[64:].divide(scale))
  params = jax.tree.map(np.asarray, params)

  test_batch = test.get(np.arange(num_eval))
  read = jax.jit(sc.read_cells)(params, jnp.asarray(test_batch["x"]))
  acc = sc.accuracies_of({k: np.asarray(v) for k, v in read.items()}, test_batch)
  meta = {
      "name": sc.NAME,
      "architecture": sc.ShapesCNN.__doc__.replace("\n", " "),
      "feature_dim": sc.FEATURE_DIM,
      "resize": sc.RESIZE_CONVENTION,
      "data": f"genjax.data shapes {cfg}, train split generated on the fly; accuracies on test "
              f"images [0, {num_eval})",
      "test_accuracy": acc,
      "feature_scale": scale,
      "num_test": num_eval,
      "seed": seed, "steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
      "weight_decay": weight_decay, "max_noise": max_noise,
      "train_seconds": round(time.time() - t0, 1),
      "command": sc.COMMAND,
      "jax_version": jax.__version__,
  }
  return params, meta


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default=sc.ASSET_PATH, help="output .npz (default: the shipped asset)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--steps", type=int, default=3000)
  p.add_argument("--batch_size", type=int, default=128)
  p.add_argument("--num_eval", type=int, default=2000)
  p.add_argument("--log_every", type=int, default=250)
  args = p.parse_args(argv)
  params, meta = train_classifier(seed=args.seed, steps=args.steps, batch_size=args.batch_size,
                                  num_eval=args.num_eval, log_every=args.log_every)
  checksum = weights_lib.save_weights(args.out, params, meta)
  acc = ", ".join(f"{k} {v:.4f}" for k, v in meta["test_accuracy"].items())
  print(f"wrote {args.out}: test accuracy {acc}; checksum {checksum[:16]}...")


if __name__ == "__main__":
  main()
