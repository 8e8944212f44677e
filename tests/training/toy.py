"""A tiny method and in-memory dataset for testing the trainer on its own."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from genjax.training.method import Method
from genjax.types import DataSpec


class ArraySource:
  def __init__(self, x, label=None):
    self.x = np.asarray(x, np.float32)
    self.label = np.zeros(len(x), np.int32) if label is None else np.asarray(label, np.int32)

  def __len__(self):
    return len(self.x)

  def get(self, idx):
    idx = np.asarray(idx)
    return {"x": self.x[idx], "label": self.label[idx]}


@dataclasses.dataclass(frozen=True)
class ToyDataset:
  train: ArraySource
  test: ArraySource
  spec: DataSpec


def toy_dataset(n=512, nan_rows=()):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 2)).astype(np.float32)
  for r in nan_rows:
    x[r] = np.nan
  return ToyDataset(ArraySource(x), ArraySource(x[:64]), DataSpec(shape=(2,), kind="points"))


def toy_method():
  """Fits an affine map x -> A x + c with a key-dependent noise term in the loss."""
  target = jnp.array([[0.5, -1.0], [2.0, 0.3]])

  def init(key, batch):
    k1, _ = jax.random.split(key)
    return {"w": 0.1 * jax.random.normal(k1, (2, 2)), "b": jnp.zeros(2)}, {}

  def loss(params, batch, key):
    x = batch["x"]
    noise = 0.01 * jax.random.normal(key, x.shape)
    pred = x @ params["w"] + params["b"]
    l = jnp.mean((pred - (x + noise) @ target) ** 2)
    return l, {"pred_mean": pred.mean()}

  def sample(params, key, num):
    z = jax.random.normal(key, (num, 2))
    return z @ params["w"] + params["b"]

  return Method(name="toy", init=init, loss=loss, sample=sample)
