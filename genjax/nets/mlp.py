"""Multilayer perceptrons: a plain :class:`MLP` block and a time-conditioned
:class:`MLPDenoiser` for flat-vector data (2-D toy distributions and the like)."""

from __future__ import annotations

import math

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import Dropout, normal_init, timestep_embedding, variance_scaling

# LeCun normal (Flax's Dense default), drawn flat: see layers.variance_scaling.
lecun_normal = variance_scaling(1.0, "fan_in", "truncated_normal")

Array = jax.Array


class MLP(nn.Module):
  """A stack of dense layers with an activation between them.

  Attributes:
    features: output width of each dense layer, e.g. ``(256, 256, 2)``.
    activation: applied after every layer except (unless ``activate_final``) the last.
    activate_final: also apply ``activation`` after the last layer.
    kernel_init: kernel initializer of every layer (LeCun normal, Flax's default).
    dtype: compute dtype (parameters are float32).

  Example:
    >>> enc = MLP((512, 512, 2 * 16), activation=nn.relu)
    >>> params = enc.init(jax.random.key(0), jnp.zeros([4, 784]))["params"]
    >>> enc.apply({"params": params}, jnp.zeros([4, 784])).shape
    (4, 32)
  """

  features: Sequence[int]
  activation: Callable[[Array], Array] = nn.relu
  activate_final: bool = False
  kernel_init: Callable[..., Array] = lecun_normal
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Args: x [..., D_in]. Returns: [..., features[-1]]."""
    if not self.features:
      raise ValueError("MLP: features must list at least one layer width, e.g. (256, 2).")
    for i, f in enumerate(self.features):
      x = nn.Dense(f, kernel_init=self.kernel_init, dtype=self.dtype,
                   param_dtype=jnp.float32, name=f"dense_{i}")(x)
      if i < len(self.features) - 1 or self.activate_final:
        x = self.activation(x)
    return x


class MLPDenoiser(nn.Module):
  """A time- (and optionally class-) conditioned residual MLP: ``eps_theta(x_t, t[, y])``.

  ``temb = dense(silu(dense(sinusoid(t, time_dim))))`` (+ ``label_emb(y)``), width
  ``hidden``; ``h = dense_in(x)``; then ``depth`` residual blocks
  ``h = h + dense_b(silu(dense_a(silu(h)) + temb_proj(silu(temb))))``, each with dropout
  before ``dense_b``; output ``dense_out(silu(h))`` with ``out_dim`` features. The
  conditioning enters every block, as in the DDPM U-Net's ResBlock.

  Attributes:
    hidden: width of every hidden layer.
    depth: number of residual blocks (two dense layers each).
    time_dim: width of the sinusoidal time embedding.
    out_dim: width of the output's last axis; None means the input's (the noise has the
      data's shape). For image-shaped x [B, *S, C] it is the output's channel count.
    num_classes: number of class labels, 0 for unconditional; label ``num_classes``
      means "no label" (``num_classes + 1`` embeddings, for classifier-free guidance).
    dropout: dropout rate (used when ``train=True``, with the ``"dropout"`` rng).
    dtype: compute dtype (parameters are float32).

  Example:
    >>> net = MLPDenoiser()
    >>> x, t = jnp.zeros([16, 2]), jnp.arange(16)
    >>> params = net.init(jax.random.key(0), x, t)["params"]
    >>> net.apply({"params": params}, x, t).shape
    (16, 2)
  """

  hidden: int = 256
  depth: int = 3
  time_dim: int = 128
  out_dim: Optional[int] = None
  num_classes: int = 0
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, t: Array, y: Optional[Array] = None,
               train: bool = False) -> Array:
    """Args:
      x: [B, D] flat data (e.g. 2-D points), or [B, *S, C] (e.g. 8x8 digits), flattened to
        [B, prod(S) C]; the output is then reshaped to [B, *S, out_dim or C].
      t: [B] or scalar timesteps, int or float, embedded as given. Discrete timesteps are
        zero-based (``t in {0..T-1}``; index t is the paper's step t+1); scale continuous
        times in [eps, 1] (e.g. by 1000) before calling.
      y: [B] int labels in ``{0..num_classes}``; given iff ``num_classes > 0``.
      train: enable dropout.

    Returns:
      [B, out_dim or D] (or [B, *S, out_dim or C]), in x's dtype.
    """
    x = jnp.asarray(x)
    t = jnp.asarray(t)
    if x.ndim < 2:
      raise ValueError(f"MLPDenoiser: x must be [B, D] or [B, *S, C], got shape {x.shape}.")
    b, example_shape = x.shape[0], x.shape[1:]
    out_shape = example_shape[:-1] + (self.out_dim or example_shape[-1],)
    x = x.reshape(b, -1)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != b):
      raise ValueError(f"MLPDenoiser: t must be a scalar or [B] = [{b}], got {t.shape}.")
    if self.num_classes > 0 and y is None:
      raise ValueError(f"MLPDenoiser: num_classes={self.num_classes} needs labels y [B]; "
                       f"pass y = jnp.full([B], {self.num_classes}) for 'no label'.")
    if self.num_classes == 0 and y is not None:
      raise ValueError("MLPDenoiser: labels y were given but num_classes=0; set "
                       "num_classes or pass y=None.")

    def dense(f, name):
      return nn.Dense(f, kernel_init=lecun_normal, dtype=self.dtype, param_dtype=jnp.float32,
                      name=name)

    # A scalar t (one per sampler step) is embedded once and broadcast over the batch.
    temb = timestep_embedding(jnp.reshape(t, (-1,)), self.time_dim)
    temb = dense(self.hidden, "temb_dense1")(nn.silu(dense(self.hidden, "temb_dense0")(temb)))
    if self.num_classes > 0:
      temb = temb + nn.Embed(self.num_classes + 1, self.hidden, dtype=self.dtype,
                             param_dtype=jnp.float32, embedding_init=normal_init(1.0),
                             name="label_emb")(jnp.asarray(y))
    h = dense(self.hidden, "dense_in")(x.astype(self.dtype))
    for i in range(self.depth):
      r = dense(self.hidden, f"block_{i}_dense_a")(nn.silu(h))
      r = r + dense(self.hidden, f"block_{i}_temb_proj")(nn.silu(temb))
      r = Dropout(self.dropout)(nn.silu(r), deterministic=not train)
      h = h + dense(self.hidden, f"block_{i}_dense_b")(r)
    out = dense(math.prod(out_shape), "dense_out")(nn.silu(h))
    return out.reshape((b,) + out_shape).astype(x.dtype)
