"""A small CNN trained on the embedded 8x8 digits: the feature space for FD/KID/IS on digits.

The Inception network of FID has never seen 8x8 digits; a classifier trained on them gives a
feature space in which distances mean something for this dataset. genjax ships its weights
(``genjax/metrics/assets/digits_classifier.npz``, about 300 kB, no pickle) and the command
that made them:

  python -m genjax.metrics.digits_classifier --out genjax/metrics/assets/digits_classifier.npz

Training is deterministic (fixed seed, CPU) on the fixed train split of ``genjax.data``'s
digits (1,527 images); the test accuracy on the 270 held-out digits is stored in the file's
metadata and checked by the tests.

Input convention: [N, H, W, 1] in [-1, 1]. 8x8 images go in as they are. Larger grayscale
digits (models trained at 16x16 or 32x32) are first reduced to 8x8 (:func:`resize_to_digits`:
area averaging for integer factors). Compare such samples with reference digits brought to the
same size by ``genjax.data`` (``DataConfig(image_size=16)``) and back through this same
reduction, as :func:`genjax.metrics.sample_quality` does, not with the native 8x8 digits.

Features: the 64-d pre-activation of the penultimate dense layer (continuous, no point mass
at zero, so its covariance is well conditioned for FD), scaled to unit mean square on the
train split so that KID's polynomial kernel sees features of the size it was designed for. Probabilities: the softmax of the
logits (for the Inception Score).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.metrics import weights as weights_lib

ASSET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                          "digits_classifier.npz")
NAME = "digits_classifier"
SIZE = 8
FEATURE_DIM = 64
NUM_CLASSES = 10
# Written into reference statistics; changing how inputs are resized must change this string.
RESIZE_CONVENTION = ("digits: [N,H,W,1] in [-1,1] -> 8x8 by area average (sides multiple of 8) "
                     "else antialiased bilinear")


class DigitsCNN(nn.Module):
  """conv16 - conv32 - avgpool2 - conv32 - dense128 - dense64 (features) - dense10 (logits)."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """[N, 8, 8, 1] -> (features [N, 64], logits [N, 10])."""
    x = nn.relu(nn.Conv(16, (3, 3))(x))
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = x.reshape(x.shape[0], -1)
    x = nn.Dropout(0.3, deterministic=not train)(x)
    x = nn.relu(nn.Dense(128)(x))
    feats = nn.Dense(FEATURE_DIM)(x)
    h = nn.Dropout(0.3, deterministic=not train)(nn.relu(feats))
    return feats, nn.Dense(NUM_CLASSES)(h)


def resize_to_digits(x: jax.Array) -> jax.Array:
  """[N, H, W, 1] grayscale digits in [-1, 1] -> [N, 8, 8, 1].

  Sides that are multiples of 8 are reduced by area averaging (the exact inverse of
  nearest-neighbour upsampling); other sides (>= 8) by antialiased bilinear resampling
  (``jax.image.resize(..., "linear", antialias=True)``, as ``genjax.data.resize_images``).

  Raises:
    ValueError: not one channel, or a side smaller than 8.
  """
  if x.ndim != 4 or x.shape[-1] != 1:
    raise ValueError(f"the digits classifier takes grayscale images [N, H, W, 1], got shape "
                     f"{tuple(x.shape)}; convert RGB samples to grayscale first.")
  n, h, w, _ = x.shape
  if h < SIZE or w < SIZE:
    raise ValueError(f"the digits classifier takes images of at least 8x8, got {h}x{w}.")
  if (h, w) == (SIZE, SIZE):
    return x
  if h % SIZE == 0 and w % SIZE == 0:
    return x.reshape(n, SIZE, h // SIZE, SIZE, w // SIZE, 1).mean(axis=(2, 4))
  return jax.image.resize(x, (n, SIZE, SIZE, 1), "linear", antialias=True)


def _digits_split():
  from genjax.data.digits import load_digits_arrays
  return load_digits_arrays()


def _shift_augment(key: jax.Array, x: jax.Array) -> jax.Array:
  """Random translation by up to one pixel (background -1 enters at the border)."""
  n = x.shape[0]
  pad = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-1.0)
  off = jax.random.randint(key, (n, 2), 0, 3)

  def crop(img, o):
    return jax.lax.dynamic_slice(img, (o[0], o[1], 0), (SIZE, SIZE, 1))

  return jax.vmap(crop)(pad, off)


def train_classifier(seed: int = 0, steps: int = 3000, batch_size: int = 64,
                     learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                     log_every: int = 500) -> tuple[dict, dict]:
  """Trains :class:`DigitsCNN` on the digits train split; returns (params, metadata)."""
  x_tr, y_tr, x_te, y_te = _digits_split()
  model = DigitsCNN()
  key = jax.random.key(seed)
  key, init_key = jax.random.split(key)
  params = jax.jit(model.init)(init_key, x_tr[:1])["params"]
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
  sched = optax.cosine_decay_schedule(learning_rate, steps)
  tx = optax.adamw(sched, weight_decay=weight_decay)
  opt_state = tx.init(params)
  x_tr_j, y_tr_j = jnp.asarray(x_tr), jnp.asarray(y_tr)

  @jax.jit
  def step(params, opt_state, i):
    k = jax.random.fold_in(key, i)
    k_idx, k_aug, k_drop = jax.random.split(k, 3)
    idx = jax.random.randint(k_idx, (batch_size,), 0, x_tr_j.shape[0])
    xb = _shift_augment(k_aug, x_tr_j[idx])

    def loss_fn(p):
      _, logits = model.apply({"params": p}, xb, train=True, rngs={"dropout": k_drop})
      return optax.softmax_cross_entropy_with_integer_labels(logits, y_tr_j[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  t0 = time.time()
  for i in range(steps):
    params, opt_state, loss = step(params, opt_state, i)
    if log_every and (i + 1) % log_every == 0:
      print(f"step {i + 1}/{steps} loss {float(loss):.4f} ({time.time() - t0:.0f}s)", flush=True)

  # Rescale the feature layer so that features have unit mean square on the train split
  # (mean ||f||^2 / D = 1, like a standardised embedding): the polynomial kernel of KID,
  # (x.y / D + 1)^3, then works at its intended scale. relu(s h) = s relu(h) for s > 0, so
  # dividing the next kernel by s leaves the logits unchanged.
  feats, _ = apply(params, x_tr_j)
  scale = float(1.0 / jnp.sqrt(jnp.mean(feats * feats)))
  params = dict(params)
  params["Dense_1"] = jax.tree.map(lambda w: w * scale, params["Dense_1"])
  params["Dense_2"] = dict(params["Dense_2"], kernel=params["Dense_2"]["kernel"] / scale)
  _, logits = apply(params, jnp.asarray(x_te))
  test_acc = float((np.asarray(logits).argmax(-1) == y_te).mean())
  _, logits = apply(params, x_tr_j)
  train_acc = float((np.asarray(logits).argmax(-1) == y_tr).mean())
  meta = {
      "name": NAME,
      "architecture": "DigitsCNN: conv16-conv32-avgpool2-conv32-dense128-dense64(features)-dense10",
      "feature_dim": FEATURE_DIM,
      "resize": RESIZE_CONVENTION,
      "data": f"genjax.data digits, fixed split: {len(x_tr)} train / {len(x_te)} test",
      "test_accuracy": test_acc,
      "feature_scale": scale,
      "train_accuracy": train_acc,
      "num_test": int(len(x_te)),
      "seed": seed, "steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
      "weight_decay": weight_decay,
      "command": "python -m genjax.metrics.digits_classifier --out "
                 "genjax/metrics/assets/digits_classifier.npz",
      "jax_version": jax.__version__,
  }
  return jax.tree.map(np.asarray, params), meta


load_classifier_params = weights_lib.cached_loader(
    ASSET_PATH, what="digits classifier",
    how_to_get=lambda path: f"Recreate it with: python -m genjax.metrics.digits_classifier --out {path}")
load_classifier_params.__doc__ = ("(params, metadata, checksum) of the shipped (or given) "
                                  "classifier weights file.")


def apply_classifier(params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Pure function: (features [N, 64], probs [N, 10]) of digits x [N, H, W, 1] in [-1, 1]."""
  feats, logits = DigitsCNN().apply({"params": params}, resize_to_digits(x.astype(jnp.float32)))
  return feats, jax.nn.softmax(logits, axis=-1)


def load_digits_classifier(path: Optional[str] = None
                           ) -> tuple[Callable[[jax.Array], jax.Array],
                                      Callable[[jax.Array], jax.Array]]:
  """The shipped digits classifier as two jitted pure functions.

  Args:
    path: weights .npz; default the shipped ``genjax/metrics/assets/digits_classifier.npz``.

  Returns:
    (features_fn, probs_fn): ``features_fn(x [N, H, W, 1] in [-1, 1]) -> [N, 64]`` and
    ``probs_fn(x) -> [N, 10]`` class probabilities. Images larger than 8x8 are reduced to
    8x8 first (:func:`resize_to_digits`).

  Example:
    >>> features_fn, probs_fn = load_digits_classifier()
    >>> features_fn(x_test).shape
    (270, 64)
  """
  from genjax.metrics.checks import check_images
  params = jax.tree.map(jnp.asarray, load_classifier_params(path)[0])
  apply = jax.jit(apply_classifier)

  def run(x):
    return apply(params, jnp.asarray(check_images(x, "digits classifier", channels=(1,))))

  return (lambda x: run(x)[0], lambda x: run(x)[1])


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default=ASSET_PATH, help="output .npz (default: the shipped asset)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--steps", type=int, default=3000)
  args = p.parse_args(argv)
  params, meta = train_classifier(seed=args.seed, steps=args.steps)
  checksum = weights_lib.save_weights(args.out, params, meta)
  print(f"wrote {args.out}: test accuracy {meta['test_accuracy']:.4f} "
        f"(train {meta['train_accuracy']:.4f}), checksum {checksum[:16]}...")


if __name__ == "__main__":
  main()
