"""Encoders and decoders shared by the autoencoder family (AE, VAE, VQ-VAE, VQ-VAE-2, TD-VAE).

Flax Linen modules only; they know nothing of the objective that trains them. Images are NHWC.

* :class:`MLPEncoder` / :class:`MLPDecoder`: flatten -> dense stack -> vector, and back
  (Kingma & Welling 2014, appendix C: one or two hidden layers).
* :class:`ConvEncoder` / :class:`ConvDecoder`: stride-2 4x4 convolutions (down) and x2
  upsampling stages (up) around a :class:`ResidualStack`, the VQ-VAE encoder/decoder of
  van den Oord et al. 2017 (Sec. 4.1: "two strided convolutional layers with stride 2 and
  window size 4 x 4, followed by two residual 3 x 3 blocks"). The paper's decoder upsamples
  with 4x4 transposed convolutions; here each up stage is nearest-neighbour x2 followed by a
  3x3 convolution (as the taming-transformers / latent-diffusion decoders), because the
  gradient of a transposed convolution is about 6x slower under XLA on CPU. With ``out_dim``
  the encoder ends in a dense layer (a VAE's ``2 * latent_dim`` Gaussian parameters); with a
  vector input the decoder starts with one.
* :class:`GaussianMLP`: an MLP whose output is split into a mean and a log-variance
  (the Gaussian heads of VAE and TD-VAE).

Example:
  >>> enc = ConvEncoder(channels=(32, 64), out_dim=2 * 16)
  >>> p = enc.init(jax.random.key(0), jnp.zeros([4, 8, 8, 1]))["params"]
  >>> enc.apply({"params": p}, jnp.zeros([4, 8, 8, 1])).shape
  (4, 32)
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import variance_scaling

Array = jax.Array

# Flax's defaults (LeCun normal, fan_in), drawn flat: faster CPU compiles (layers.variance_scaling).
_kernel_init = variance_scaling(1.0, "fan_in", "truncated_normal")

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu, "silu": nn.silu, "tanh": jnp.tanh,
    "softplus": nn.softplus, "leaky_relu": nn.leaky_relu,
}


def get_activation(name: str) -> Callable[[Array], Array]:
  """The activation called ``name`` (relu, elu, gelu, silu, tanh, softplus, leaky_relu)."""
  if name not in ACTIVATIONS:
    raise ValueError(f"Unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}.")
  return ACTIVATIONS[name]


def _dense(features: int, name: Optional[str] = None) -> nn.Dense:
  return nn.Dense(features, kernel_init=_kernel_init, name=name)


def _conv(features: int, kernel: int, stride: int = 1, name: Optional[str] = None) -> nn.Conv:
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME",
                 kernel_init=_kernel_init, name=name)


class MLPEncoder(nn.Module):
  """Flattens the last ``flatten_dims`` axes and applies dense layers.

  Attributes:
    hidden: widths of the hidden layers, e.g. ``(512, 256)``.
    out_dim: output width (``2 * latent_dim`` for a Gaussian encoder).
    activation: name of the hidden activation (see :data:`ACTIVATIONS`).
    flatten_dims: trailing axes forming one example (3 for NHWC images, 1 for vectors).
  """

  hidden: Sequence[int] = (256, 256)
  out_dim: int = 32
  activation: str = "relu"
  flatten_dims: int = 3

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    """Args: x [..., *example_shape]. Returns: [..., out_dim]."""
    del train
    act = get_activation(self.activation)
    h = x.reshape(x.shape[:x.ndim - self.flatten_dims] + (-1,))
    for i, f in enumerate(self.hidden):
      h = act(_dense(f, f"hidden_{i}")(h))
    return _dense(self.out_dim, "out")(h)


class MLPDecoder(nn.Module):
  """Dense layers from a latent vector to an example of shape ``out_shape``.

  Attributes:
    hidden: widths of the hidden layers.
    out_shape: shape of one output, e.g. ``(8, 8, 1)`` (or ``(8, 8, 2)`` for mean and
      log-scale of a discretized logistic).
    activation: name of the hidden activation.
  """

  hidden: Sequence[int] = (256, 256)
  out_shape: Sequence[int] = (8, 8, 1)
  activation: str = "relu"

  @nn.compact
  def __call__(self, z: Array, train: bool = False) -> Array:
    """Args: z [..., D]. Returns: [..., *out_shape] (unconstrained: means or logits)."""
    del train
    act = get_activation(self.activation)
    h = z
    for i, f in enumerate(self.hidden):
      h = act(_dense(f, f"hidden_{i}")(h))
    h = _dense(math.prod(self.out_shape), "out")(h)
    return h.reshape(z.shape[:-1] + tuple(self.out_shape))


class GaussianMLP(nn.Module):
  """An MLP whose output is split into the mean and log-variance of a diagonal Gaussian.

  Attributes:
    hidden: widths of the hidden layers.
    out_dim: dimension of the Gaussian.
    activation: name of the hidden activation.
    flatten_dims: trailing axes of the input to flatten (0: the input is already a vector).
  """

  hidden: Sequence[int] = (64,)
  out_dim: int = 8
  activation: str = "tanh"
  flatten_dims: int = 1

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, Array]:
    """Args: x [..., D_in]. Returns: (mean [..., out_dim], logvar [..., out_dim])."""
    h = MLPEncoder(tuple(self.hidden), 2 * self.out_dim, self.activation,
                   max(self.flatten_dims, 1), name="mlp")(x)
    mean, logvar = jnp.split(h, 2, axis=-1)
    return mean, logvar


class ResidualStack(nn.Module):
  """VQ-VAE residual blocks: ``x += conv1x1(act(conv3x3(act(x))))``, then ``act``.

  van den Oord et al. 2017, Sec. 4.1 (and the Sonnet reference ``ResidualStack``).

  Attributes:
    num_blocks: number of residual blocks (0: identity followed by ``act``).
    res_channels: channels inside each block's 3x3 convolution.
    activation: name of the activation.
  """

  num_blocks: int = 2
  res_channels: int = 32
  activation: str = "relu"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Args: x [B, H, W, C]. Returns: [B, H, W, C]."""
    act = get_activation(self.activation)
    for i in range(self.num_blocks):
      h = _conv(self.res_channels, 3, name=f"block_{i}_conv3")(act(x))
      x = x + _conv(x.shape[-1], 1, name=f"block_{i}_conv1")(act(h))
    return act(x)


class ConvEncoder(nn.Module):
  """Stride-2 4x4 convolutions, a residual stack, then a feature map or a vector.

  Each entry of ``channels`` halves the resolution. A 3x3 convolution follows the last one
  (van den Oord et al. 2017's encoder). Then either a 1x1 convolution to ``out_channels``
  (a VQ-VAE's ``z_e`` map), or flatten + dense to ``out_dim`` (a VAE's Gaussian parameters).
  The input may have any number of channels (VQ-VAE-2 stacks encoders).

  Attributes:
    channels: output channels of each stride-2 convolution, e.g. ``(32, 64)`` (/4).
    num_res_blocks: residual blocks at the lowest resolution.
    res_channels: channels inside the residual blocks.
    out_channels: channels of the output map (exclusive with ``out_dim``).
    out_dim: width of the output vector (exclusive with ``out_channels``).
    activation: name of the activation.
  """

  channels: Sequence[int] = (32, 64)
  num_res_blocks: int = 0
  res_channels: int = 32
  out_channels: Optional[int] = None
  out_dim: Optional[int] = None
  activation: str = "relu"

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    """Args: x [B, H, W, C] with H, W divisible by 2**len(channels).

    Returns:
      [B, H / 2^n, W / 2^n, out_channels] or [B, out_dim].
    """
    del train
    if (self.out_channels is None) == (self.out_dim is None):
      raise ValueError("ConvEncoder: set exactly one of out_channels (a feature map) or "
                       "out_dim (a vector).")
    if x.ndim != 4:
      raise ValueError(f"ConvEncoder: x must be NHWC [B, H, W, C], got shape {x.shape}.")
    n = 2 ** len(self.channels)
    if x.shape[1] % n or x.shape[2] % n:
      raise ValueError(f"ConvEncoder: image size {x.shape[1:3]} is not divisible by {n} "
                       f"(= 2**len(channels={tuple(self.channels)})); use fewer stages or "
                       f"resize the data (--config.data.image_size).")
    act = get_activation(self.activation)
    h = x
    for i, c in enumerate(self.channels):
      h = act(_conv(c, 4, stride=2, name=f"down_{i}")(h))
    if self.channels:
      h = _conv(self.channels[-1], 3, name="conv_mid")(h)
    h = ResidualStack(self.num_res_blocks, self.res_channels, self.activation, name="res")(h)
    if self.out_channels is not None:
      return _conv(self.out_channels, 1, name="out")(h)
    return _dense(self.out_dim, "out")(h.reshape(h.shape[0], -1))


class ConvDecoder(nn.Module):
  """A feature map or a vector -> 3x3 conv -> residual stack -> x2 upsampling stages.

  Each entry of ``channels`` doubles the resolution (nearest-neighbour, then a 3x3
  convolution with that many output channels); a final 3x3 convolution gives
  ``out_channels``. A vector input [B, D] first goes through a dense layer to a
  ``base_shape`` map with ``hidden`` channels.

  Attributes:
    out_channels: channels of the output (e.g. 1 for a grey image's logits or means, 2 for
      a mean and a log-scale per pixel).
    channels: output channels of each x2 upsampling stage, e.g. ``(64, 32)``.
    hidden: channels of the first 3x3 convolution (and of the dense map for vector input).
    num_res_blocks: residual blocks at the lowest resolution.
    res_channels: channels inside the residual blocks.
    base_shape: ``(h, w)`` of the first map when the input is a vector.
    activation: name of the activation.
  """

  out_channels: int = 1
  channels: Sequence[int] = (64, 32)
  hidden: int = 64
  num_res_blocks: int = 0
  res_channels: int = 32
  base_shape: Optional[Sequence[int]] = None
  activation: str = "relu"

  @nn.compact
  def __call__(self, z: Array, train: bool = False) -> Array:
    """Args: z [B, h, w, c] or [B, D] (then ``base_shape`` is required).

    Returns:
      [B, h * 2^n, w * 2^n, out_channels] (unconstrained).
    """
    del train
    act = get_activation(self.activation)
    if z.ndim == 2:
      if self.base_shape is None:
        raise ValueError("ConvDecoder: a vector input needs base_shape=(h, w).")
      h0, w0 = self.base_shape
      h = act(_dense(h0 * w0 * self.hidden, "dense_in")(z)).reshape(z.shape[0], h0, w0, self.hidden)
    elif z.ndim == 4:
      h = z
    else:
      raise ValueError(f"ConvDecoder: z must be [B, D] or [B, h, w, c], got shape {z.shape}.")
    h = _conv(self.hidden, 3, name="conv_in")(h)
    h = ResidualStack(self.num_res_blocks, self.res_channels, self.activation, name="res")(h)
    for i, c in enumerate(self.channels):
      h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest-neighbour x2
      h = act(_conv(c, 3, name=f"up_{i}")(h))
    return _conv(self.out_channels, 3, name="out")(h)
