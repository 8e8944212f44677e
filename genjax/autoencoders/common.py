"""What the autoencoder-family methods share: the ``config.model`` section, network builders,
the model view used by the figures, and small helpers (binarization, bits/dim, the plain
gradient step for methods that need ``train_step``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np
import optax

from genjax.metrics import likelihood as likelihood_lib
from genjax.nets.conv import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, get_activation
from genjax.types import DataSpec

Array = jax.Array
PyTree = Any


@dataclasses.dataclass(frozen=True)
class NetConfig:
  """The ``config.model`` section of the autoencoder family.

  Attributes:
    name: "mlp" (flatten + dense layers) or "conv" (stride-2 convolutions, VQ-VAE style).
    hidden: MLP hidden widths of the encoder (the decoder uses them reversed).
    channels: conv: output channels of each stride-2 stage of the encoder (each halves the
      resolution; the decoder mirrors them).
    num_res_blocks: conv: residual blocks at the lowest resolution (VQ-VAE: 2).
    res_channels: conv: channels inside the residual blocks.
    activation: hidden activation (relu, elu, gelu, silu, tanh, softplus, leaky_relu).
  """
  name: str = "mlp"
  hidden: tuple[int, ...] = (256, 256)
  channels: tuple[int, ...] = (32, 64)
  num_res_blocks: int = 0
  res_channels: int = 32
  activation: str = "relu"

  def __post_init__(self):
    if self.name not in ("mlp", "conv"):
      raise ValueError(f"config.model.name must be 'mlp' or 'conv', got {self.name!r}.")
    get_activation(self.activation)


def check_image_spec(spec: DataSpec, method: str) -> None:
  if spec.kind != "image" or len(spec.shape) != 3:
    raise ValueError(f"{method} models images [H, W, C]; the dataset gives {spec.kind} data of "
                     f"shape {spec.shape}. Use an image dataset, e.g. --config.data.dataset=digits.")


def make_encoder(net: NetConfig, out_dim: int):
  """Image [B, H, W, C] -> vector [B, out_dim] (MLP or conv)."""
  if net.name == "mlp":
    return MLPEncoder(tuple(net.hidden), out_dim, net.activation)
  return ConvEncoder(tuple(net.channels), net.num_res_blocks, net.res_channels, out_dim=out_dim,
                     activation=net.activation)


def make_decoder(net: NetConfig, spec: DataSpec, out_channels: int):
  """Vector [B, D] -> [B, H, W, out_channels] (MLP or conv), unconstrained outputs."""
  h, w, _ = spec.shape
  if net.name == "mlp":
    return MLPDecoder(tuple(reversed(net.hidden)), (h, w, out_channels), net.activation)
  n = 2 ** len(net.channels)
  if h % n or w % n:
    raise ValueError(f"config.model.channels={tuple(net.channels)} downsamples by {n}, which does "
                     f"not divide the image size {h}x{w}; use fewer stages or "
                     f"--config.data.image_size.")
  return ConvDecoder(out_channels, tuple(reversed(net.channels)), hidden=net.channels[-1],
                     num_res_blocks=net.num_res_blocks, res_channels=net.res_channels,
                     base_shape=(h // n, w // n), activation=net.activation)


def to_unit(x: Array) -> Array:
  """[-1, 1] -> [0, 1]."""
  return (x + 1.0) / 2.0


def binarize(x: Array, mode: str, key: Optional[Array] = None) -> Array:
  """Binary {0, 1} images from [-1, 1] data.

  * ``"threshold"``: ``x > 0`` (pixel above half intensity);
  * ``"stochastic"``: ``x01 ~ Bernoulli((x + 1) / 2)``, fresh every call (dynamic
    binarization, Salakhutdinov & Murray 2008, as in the IWAE paper).
  """
  if mode == "threshold":
    return (x > 0).astype(x.dtype)
  if mode == "stochastic":
    if key is None:
      raise ValueError("binarize: stochastic binarization needs a key.")
    return jax.random.bernoulli(key, to_unit(x)).astype(x.dtype)
  raise ValueError(f"Unknown binarize mode {mode!r}; use 'threshold' or 'stochastic'.")


def bin_offset_nats(num_levels: int, low: float = -1.0, high: float = 1.0) -> float:
  """log(1 / Delta) per dimension for data on ``num_levels`` evenly spaced levels that include
  both ends of [low, high] (the "centered" convention of ``genjax.metrics.likelihood``):
  Delta = (high - low) / (L - 1). The sklearn digits have L = 17 (values 0..16)."""
  return likelihood_lib.dequantization_offset((low, high), convention="centered",
                                              num_levels=num_levels)


def gradient_step(state, loss_fn: Callable, batch, key):
  """What the trainer's default step does, for methods that wrap it in a ``train_step``.

  Returns ``(new_state, metrics, aux)`` where ``loss_fn(params, batch, key) -> (loss,
  (metrics, aux))``.
  """
  (loss, (metrics, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key)
  metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
  return state.apply_gradients(grads), metrics, aux


@dataclasses.dataclass(frozen=True)
class AutoencoderModel:
  """Pure functions of one trained model, for evaluation and figures (``params`` are the EMA
  params the trainer samples with).

  Attributes:
    name: method name.
    reconstruct: ``(params, x [B, H, W, C]) -> x_hat`` in [-1, 1] (deterministic: means).
    sample: ``(params, key, num) -> [num, H, W, C]`` in [-1, 1].
    encode: ``(params, x) -> latent`` for interpolation (continuous), or None.
    decode: ``(params, latent) -> x`` in [-1, 1], or None.
    latent_dim: width of a vector latent (2 gives the latent-manifold figure), 0 otherwise.
    codes: ``(params, x) -> {level: int codes [B, h, w]}`` for VQ models, or None.
    num_codes: ``{level: K}`` for VQ models.
    rollout: TD-VAE only: ``(params, key, x_seq [B, T, ...], context) -> predicted frames``.
    sequence: TD-VAE only: ``(key, x [B, ...]) -> x_seq [B, T, ...]``.
    view_input: ``x -> x`` in [-1, 1]: the data as the model sees it (binarized images for a
      Bernoulli decoder), shown beside reconstructions; None: x itself.
  """
  name: str
  reconstruct: Callable[..., Array]
  sample: Callable[..., Array]
  encode: Optional[Callable[..., Array]] = None
  decode: Optional[Callable[..., Array]] = None
  latent_dim: int = 0
  codes: Optional[Callable[..., Mapping[str, Array]]] = None
  num_codes: Mapping[str, int] = dataclasses.field(default_factory=dict)
  rollout: Optional[Callable[..., Array]] = None
  sequence: Optional[Callable[..., Array]] = None
  view_input: Optional[Callable[[Array], Array]] = None


def iter_test_batches(dataset, num: int, batch_size: int = 256):
  """The first ``min(num, len(test))`` test examples in batches: yields numpy batch dicts."""
  n = min(int(num), len(dataset.test))
  for start in range(0, n, batch_size):
    yield dataset.test.get(np.arange(start, min(start + batch_size, n)))
