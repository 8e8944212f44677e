"""The multilayer-perceptron GAN of Goodfellow et al. 2014 (sec. 5), for flat data and small images.

"The generator nets used a mixture of rectifier linear activations and sigmoid activations, while
the discriminator net used maxout activations. Dropout was applied in training the discriminator
net." (Goodfellow et al. 2014 sec. 5; the authors' MNIST model: G 2 x 1200 ReLU with a sigmoid
output, D 2 x 240 maxout units of 5 pieces with dropout.) Our data live in [-1, 1], so an image
generator ends in ``tanh``; point data (2-D toys) use a linear output.

Call convention: ``G.apply({"params": p}, z [B, Z], train, ref_size=None) -> [B, *out_shape]``;
``D.apply({"params": p}, x [B, ...], train, rngs={"dropout": key}) -> [B]`` logits.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import Dropout
from genjax.nets.mlp import lecun_normal

Array = jax.Array

ACTIVATIONS = {
    "relu": nn.relu,
    "leaky_relu": lambda x: nn.leaky_relu(x, 0.2),
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "silu": nn.silu,
    "elu": nn.elu,
}
OUTPUTS = ("tanh", "linear")


def _activation(name: str, who: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"{who}: unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}.")
  return ACTIVATIONS[name]


class MLPGenerator(nn.Module):
  """``G(z)``: dense layers, then a dense output reshaped to ``out_shape``.

  Attributes:
    out_shape: shape of one example, e.g. (8, 8, 1) or (2,).
    hidden: widths of the hidden layers.
    activation: hidden activation (see :data:`ACTIVATIONS`).
    output: "tanh" (images in [-1, 1]) or "linear" (unbounded points).
    dtype: compute dtype (parameters float32).

  Example:
    >>> g = MLPGenerator((2,), hidden=(64, 64), output="linear")
    >>> p = g.init(jax.random.key(0), jnp.zeros([5, 8]))["params"]
    >>> g.apply({"params": p}, jnp.zeros([5, 8])).shape
    (5, 2)
  """

  out_shape: Sequence[int]
  hidden: Sequence[int] = (1200, 1200)
  activation: str = "relu"
  output: str = "tanh"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: Array, train: bool = False, ref_size: Optional[int] = None) -> Array:
    """Args: z [B, Z] noise; train, ref_size: unused (no dropout or normalization).
    Returns: [B, *out_shape]."""
    del train, ref_size
    act = _activation(self.activation, "MLPGenerator")
    if self.output not in OUTPUTS:
      raise ValueError(f"MLPGenerator: output must be one of {OUTPUTS}; got {self.output!r}.")
    h = z.reshape(z.shape[0], -1).astype(self.dtype)
    for i, w in enumerate(self.hidden):
      h = act(nn.Dense(w, kernel_init=lecun_normal, dtype=self.dtype, name=f"dense_{i}")(h))
    size = 1
    for s in self.out_shape:
      size *= int(s)
    out = nn.Dense(size, kernel_init=lecun_normal, dtype=self.dtype, name="dense_out")(h)
    if self.output == "tanh":
      out = jnp.tanh(out)
    return out.reshape((z.shape[0], *self.out_shape)).astype(jnp.float32)


class MLPDiscriminator(nn.Module):
  """``D(x)``: flatten, dense layers with maxout (or a plain activation) and dropout, one logit.

  A maxout unit (Goodfellow et al. 2013) is the max over ``maxout_pieces`` affine pieces; with
  ``maxout_pieces = 1`` the hidden layers use ``activation`` instead.

  Attributes:
    hidden: units per hidden layer.
    maxout_pieces: pieces per maxout unit (1: no maxout).
    activation: used when ``maxout_pieces == 1``.
    dropout: dropout rate on hidden layers (training only, ``"dropout"`` rng).
    input_dropout: dropout rate on the input.
    dtype: compute dtype.
  """

  hidden: Sequence[int] = (240, 240)
  maxout_pieces: int = 5
  activation: str = "leaky_relu"
  dropout: float = 0.5
  input_dropout: float = 0.2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    """Args: x [B, ...]; train: enable dropout. Returns: [B] logits (float32)."""
    if self.maxout_pieces < 1:
      raise ValueError(f"MLPDiscriminator: maxout_pieces must be >= 1; got {self.maxout_pieces}.")
    act = _activation(self.activation, "MLPDiscriminator")
    h = x.reshape(x.shape[0], -1).astype(self.dtype)
    h = Dropout(self.input_dropout)(h, deterministic=not train)
    for i, w in enumerate(self.hidden):
      k = self.maxout_pieces
      h = nn.Dense(w * k, kernel_init=lecun_normal, dtype=self.dtype, name=f"dense_{i}")(h)
      h = jnp.max(h.reshape(h.shape[0], w, k), axis=-1) if k > 1 else act(h)
      h = Dropout(self.dropout)(h, deterministic=not train)
    out = nn.Dense(1, kernel_init=lecun_normal, dtype=self.dtype, name="logit")(h)
    return out[:, 0].astype(jnp.float32)
