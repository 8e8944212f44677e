"""The belief network of TD-VAE (Gregor et al. 2019, Sec. 4): frames -> belief states b_t.

Each frame goes through a small MLP; an LSTM over time aggregates them, so that ``b_t`` has
seen frames ``0..t`` and nothing later. Linen module; knows nothing of the objective.

Example:
  >>> net = BeliefLSTM(hidden=32, pre_hidden=(32,))
  >>> x = jnp.zeros([4, 6, 8, 8, 1])                 # [B, T, H, W, C]
  >>> p = net.init(jax.random.key(0), x)["params"]
  >>> net.apply({"params": p}, x).shape
  (4, 6, 32)
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from genjax.nets.conv import MLPEncoder, get_activation

Array = jax.Array


class BeliefLSTM(nn.Module):
  """``b_t = LSTM(pre(x_t), b_{t-1})``.

  Attributes:
    hidden: width of the belief state (LSTM hidden size).
    pre_hidden: widths of the per-frame MLP; its last entry is the LSTM input width.
    activation: name of the MLP activation.
    event_ndim: trailing axes of one frame (3 for images).
  """

  hidden: int = 64
  pre_hidden: Sequence[int] = (64,)
  activation: str = "relu"
  event_ndim: int = 3

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Args: x [B, T, *frame]. Returns: beliefs [B, T, hidden]; b_t depends on x_0..x_t."""
    if x.ndim != 2 + self.event_ndim:
      raise ValueError(f"BeliefLSTM: x must be [B, T, *frame] with a {self.event_ndim}-D "
                       f"frame, got shape {x.shape}.")
    if not self.pre_hidden:
      raise ValueError("BeliefLSTM: pre_hidden needs at least one width.")
    act = get_activation(self.activation)
    h = MLPEncoder(tuple(self.pre_hidden[:-1]), self.pre_hidden[-1], self.activation,
                   self.event_ndim, name="pre")(x)
    h = act(h)
    return nn.RNN(nn.OptimizedLSTMCell(self.hidden), name="lstm")(h)
