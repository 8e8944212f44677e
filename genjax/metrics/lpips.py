"""LPIPS, the learned perceptual image patch similarity of Zhang et al. (2018), as pure JAX.

Zhang, Isola, Efros, Shechtman & Wang (2018), "The Unreasonable Effectiveness of Deep Features
as a Perceptual Metric", eq. (1):

  d(x, y) = sum_l 1 / (H_l W_l) sum_{h,w} || w_l * (f^l_hw(x) - f^l_hw(y)) ||_2^2,

where f^l are the activations of layer l of a backbone (AlexNet or VGG-16), each unit-normalised
along channels, and w_l >= 0 the learned per-channel weights (the "lin" layers). This is the
``lpips`` package's ``LPIPS(net=..., version="0.1")`` forward pass (spatial average, no
dropout at evaluation): inputs in [-1, 1] are scaled by its ``ScalingLayer``
((x - shift) / scale, shift = (-.030, -.088, -.188), scale = (.458, .448, .450)); the layers
are AlexNet's five ReLU outputs (conv1..conv5) or VGG-16's relu1_2, relu2_2, relu3_3, relu4_3,
relu5_3; features are normalised as f / (||f|| + 1e-10).

Weights come from a file, never a download (:func:`load_lpips`): the lin layers ship inside the
``lpips`` pip package (``lpips/weights/v0.1/alex.pth``), the backbone is torchvision's ImageNet
state dict; ``python -m genjax.metrics.convert_lpips`` joins them into one pickle-free .npz.

:func:`lpips_distance` is jit-, vmap- and grad-compatible (the channel norm has a finite
gradient at zero), so it serves as a perceptual training loss (e.g. for a latent-diffusion
first stage) as well as a metric.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp

from genjax.metrics.checks import check_images, is_concrete

NAME = "lpips"
ENV_VAR = "GENJAX_LPIPS_WEIGHTS"
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

# Backbone layers as torchvision numbers them in `.features`: (index, kernel, stride, padding)
# of each conv; "M" a max pool (AlexNet 3x3 stride 2, VGG 2x2 stride 2); "T" the end of a
# LPIPS slice (the ReLU output tapped there).
ALEXNET = ((0, 11, 4, 2), "T", "M", (3, 5, 1, 2), "T", "M", (6, 3, 1, 1), "T", (8, 3, 1, 1), "T",
           (10, 3, 1, 1), "T")
VGG16 = ((0, 3, 1, 1), (2, 3, 1, 1), "T", "M", (5, 3, 1, 1), (7, 3, 1, 1), "T", "M",
         (10, 3, 1, 1), (12, 3, 1, 1), (14, 3, 1, 1), "T", "M", (17, 3, 1, 1), (19, 3, 1, 1),
         (21, 3, 1, 1), "T", "M", (24, 3, 1, 1), (26, 3, 1, 1), (28, 3, 1, 1), "T")
ARCHITECTURES = {"alex": ALEXNET, "vgg": VGG16}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# The smallest image side each backbone takes (AlexNet: 11x11/4 conv, two 3x3/2 pools).
MIN_SIZE = {"alex": 31, "vgg": 16}
HOW_TO_GET = (
    "genjax never downloads weights. Make the file once: the linear layers ship in the lpips "
    "pip package (lpips/weights/v0.1/alex.pth or vgg.pth), the backbone is torchvision's "
    "ImageNet state dict (alexnet-owt-7be5be79.pth or vgg16-397923af.pth, downloaded once on a "
    "machine with internet); then `python -m genjax.metrics.convert_lpips --net alex "
    "--backbone alexnet-owt-7be5be79.pth --lin .../lpips/weights/v0.1/alex.pth --out "
    f"lpips_alex.npz` and pass that file (lpips_weights= / --lpips_weights) or set ${ENV_VAR}.")


def net_of(params: Any) -> str:
  """"alex" or "vgg", from the backbone's layers."""
  return "vgg" if "28" in params["backbone"] else "alex"


def _conv(x, p, stride, pad):
  y = jax.lax.conv_general_dilated(
      x, p["kernel"].astype(x.dtype), (stride, stride), ((pad, pad), (pad, pad)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
  return y + p["bias"].astype(x.dtype)


def _max_pool(x, net: str):
  k, s = (3, 2) if net == "alex" else (2, 2)
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, s, s, 1), "VALID")


def backbone_features(params: Any, x: jax.Array) -> list[jax.Array]:
  """The five tapped ReLU outputs of the backbone for scaled inputs x [N, H, W, 3]."""
  net = net_of(params)
  taps = []
  for layer in ARCHITECTURES[net]:
    if layer == "T":
      taps.append(x)
    elif layer == "M":
      x = _max_pool(x, net)
    else:
      idx, _, stride, pad = layer
      x = jax.nn.relu(_conv(x, params["backbone"][str(idx)], stride, pad))
  return taps


def _unit_normalize(f: jax.Array) -> jax.Array:
  """f / (||f||_channels + 1e-10), the lpips package's normalize_tensor, with a finite gradient
  where f = 0 (dead ReLU positions)."""
  s = jnp.sum(f * f, axis=-1, keepdims=True)
  pos = s > 0
  norm = jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)
  return f / (norm + EPS)


def lpips_distance(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
  """LPIPS distance of Zhang et al. (2018), eq. (1), per image pair.

  Args:
    params: {"backbone": {torchvision index: {"kernel" [kh, kw, I, O], "bias" [O]}},
      "lin": {"0".."4": [C_l]}} (:func:`load_lpips`).
    x: [N, H, W, C] images in [-1, 1], C in {1, 3} (grayscale is repeated to RGB).
    y: [N, H, W, C] images in [-1, 1].

  Returns:
    [N] distances (0 for identical images), in the images' floating dtype.

  Raises:
    ValueError: shapes differ, not NHWC, values beyond [-1, 1] (checked on concrete arrays),
      or images smaller than the backbone takes.
  """
  x = jnp.asarray(x)
  y = jnp.asarray(y)
  if tuple(x.shape) != tuple(y.shape):
    raise ValueError(f"lpips: the two images must have one shape, got {tuple(x.shape)} and "
                     f"{tuple(y.shape)}.")
  # dtype, layout, finiteness and the [-1, 1] convention of both (values: concrete arrays only).
  check_images(jnp.concatenate([x, y]) if is_concrete(x) and is_concrete(y) else x, "lpips")
  net = net_of(params)
  if min(x.shape[1:3]) < MIN_SIZE[net]:
    raise ValueError(f"lpips ({net}) takes images of at least {MIN_SIZE[net]}x{MIN_SIZE[net]}, "
                     f"got {x.shape[1]}x{x.shape[2]}; use psnr/ssim for smaller images.")
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
  x, y = x.astype(dtype), y.astype(dtype)
  if x.shape[-1] == 1:
    x, y = jnp.repeat(x, 3, axis=-1), jnp.repeat(y, 3, axis=-1)
  shift = jnp.asarray(SHIFT, dtype)
  scale = jnp.asarray(SCALE, dtype)
  n = x.shape[0]
  feats = backbone_features(params, (jnp.concatenate([x, y]) - shift) / scale)
  total = jnp.zeros((n,), dtype)
  for l, f in enumerate(feats):
    f = _unit_normalize(f)
    d = (f[:n] - f[n:]) ** 2
    w = params["lin"][str(l)].astype(dtype)
    total = total + jnp.mean(jnp.sum(d * w, axis=-1), axis=(1, 2))
  return total


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> tuple[Any, str, str]:
  del mtime
  from genjax.metrics import weights as weights_lib

  params, _, checksum = weights_lib.load_weights(path, what="LPIPS weights",
                                                 how_to_get=HOW_TO_GET)
  if "backbone" not in params or "lin" not in params:
    raise ValueError(f"{path!r} holds no LPIPS weights (no backbone/lin entries). {HOW_TO_GET}")
  from genjax.metrics.convert_lpips import check_params
  check_params(params, path)
  params = jax.tree.map(jnp.asarray, params)
  return params, net_of(params), checksum


def load_lpips(path: Optional[str] = None) -> tuple[Any, str, str]:
  """LPIPS params, the backbone's name ("alex" | "vgg") and the weights' checksum.

  Args:
    path: a .npz made by ``python -m genjax.metrics.convert_lpips``; default ``$GENJAX_LPIPS_WEIGHTS``.

  Raises:
    FileNotFoundError: no path, or no such file; the message says how to make one.
    ValueError: the file does not hold LPIPS weights.
  """
  path = path or os.environ.get(ENV_VAR)
  if not path:
    raise FileNotFoundError(f"No LPIPS weights given. {HOW_TO_GET}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"LPIPS weights file not found: {path!r}. {HOW_TO_GET}")
  return _load_cached(os.path.abspath(path), os.path.getmtime(path))
