"""Inception-v3 as the FID community uses it, in Flax Linen, with pytorch-fid's conventions.

This is the network of pytorch-fid (``pytorch_fid.inception.fid_inception_v3``), the port of
the 2015 TensorFlow graph (``inception-2015-12-05``) that TTUR's original FID code used:
torchvision's Inception-v3 topology with 1008 output classes and the FID-specific blocks

  * ``FIDInceptionA`` / ``FIDInceptionC`` / ``FIDInceptionE_1``: the 3x3 average pool of the
    pool branch does not count the zero padding (TensorFlow's ``avg_pool`` semantics,
    ``count_include_pad=False``);
  * ``FIDInceptionE_2`` (``Mixed_7c``): the pool branch uses a 3x3 *max* pool (a quirk of the
    TF graph that every comparable FID reproduces);

each conv followed by BatchNorm (eps 1e-3, running statistics) and ReLU, no aux classifier.
With the official weights its pool3 features give FIDs comparable with the literature.

Input convention (``RESIZE_CONVENTION``, recorded in reference statistics), as a PNG of the
samples read back by pytorch-fid: images [N, H, W, C] in [-1, 1], C in {1, 3} (grayscale is
repeated to RGB) -> [0, 1] -> quantized to 8 bits (round(255 x) / 255) -> bilinear resize to
299x299 with half-pixel centres and no antialiasing (``F.interpolate(mode="bilinear",
align_corners=False)``) -> 2 x - 1 -> the network. Outputs: pool3 features [N, 2048] (FID,
KID, precision/recall) and the softmax of the 1008 logits (Inception Score).

Weights are never downloaded. Give the official pytorch-fid file
(``pt_inception-2015-12-05-6726825d.pth``; loading a .pth needs torch, with
``weights_only=True``) or, better, the .npz that
``python -m genjax.metrics.convert_inception IN.pth OUT.npz`` makes from it once.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

NAME = "inception_v3_fid"
FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299
ENV_VAR = "GENJAX_INCEPTION_WEIGHTS"
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
RESIZE_CONVENTION = ("pytorch-fid: [-1,1] -> [0,1] -> uint8 round -> bilinear "
                     "(align_corners=False, no antialias) to 299x299 -> [-1,1]; gray -> RGB")
HOW_TO_GET = (
    f"Download the pytorch-fid weights on a machine with internet access ({FID_WEIGHTS_URL}), "
    "convert them once with `python -m genjax.metrics.convert_inception "
    "pt_inception-2015-12-05-6726825d.pth inception_fid.npz` (needs torch), and pass that file "
    f"(--weights / weights=) or set ${ENV_VAR}.")



class BasicConv2d(nn.Module):
  """Conv (no bias) - BatchNorm(eps=1e-3, running statistics) - ReLU, torchvision's block."""

  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel_size, self.strides, padding=((ph, ph), (pw, pw)),
                use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3_same(x):
  """avg_pool2d(3, stride 1, padding 1, count_include_pad=False): TF's average pool."""
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class FIDInceptionA(nn.Module):
  """Mixed_5b/5c/5d: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(no pad count)-1x1."""

  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(64, (1, 1), name="branch1x1")(x)
    b5 = BasicConv2d(48, (1, 1), name="branch5x5_1")(x)
    b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv2d(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a (grid reduction 35 -> 17)."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(384, (3, 3), strides=(2, 2), name="branch3x3")(x)
    bd = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv2d(96, (3, 3), strides=(2, 2), name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class FIDInceptionC(nn.Module):
  """Mixed_6b..6e: factorized 7x7 convolutions; avgpool without counting the padding."""

  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = BasicConv2d(192, (1, 1), name="branch1x1")(x)
    b7 = BasicConv2d(c7, (1, 1), name="branch7x7_1")(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv2d(c7, (1, 1), name="branch7x7dbl_1")(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv2d(192, (1, 1), name="branch_pool")(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a (grid reduction 17 -> 8)."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(192, (1, 1), name="branch3x3_1")(x)
    b3 = BasicConv2d(320, (3, 3), strides=(2, 2), name="branch3x3_2")(b3)
    b7 = BasicConv2d(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv2d(192, (3, 3), strides=(2, 2), name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class FIDInceptionE(nn.Module):
  """Mixed_7b (``pool="avg"``, FIDInceptionE_1) and Mixed_7c (``pool="max"``, FIDInceptionE_2)."""

  pool: str = "avg"

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(320, (1, 1), name="branch1x1")(x)
    b3 = BasicConv2d(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
    bd = BasicConv2d(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
    if self.pool == "avg":
      pooled = _avg_pool_3x3_same(x)
    else:  # The FID graph's max pool in Mixed_7c (pytorch-fid's FIDInceptionE_2).
      pooled = nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))
    bp = BasicConv2d(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3FID(nn.Module):
  """pytorch-fid's ``fid_inception_v3()`` network. Submodule names follow torchvision's.

  ``__call__(x [N, 299, 299, 3] scaled to [-1, 1]) -> (pool3 [N, 2048], logits [N, 1008])``.
  Any input size >= 75 works (the net is convolutional up to the global pool), but FID uses
  299 (:func:`preprocess`).
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = BasicConv2d(32, (3, 3), strides=(2, 2), name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = BasicConv2d(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = FIDInceptionA(32, name="Mixed_5b")(x)
    x = FIDInceptionA(64, name="Mixed_5c")(x)
    x = FIDInceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = FIDInceptionC(128, name="Mixed_6b")(x)
    x = FIDInceptionC(160, name="Mixed_6c")(x)
    x = FIDInceptionC(160, name="Mixed_6d")(x)
    x = FIDInceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = FIDInceptionE("avg", name="Mixed_7b")(x)
    x = FIDInceptionE("max", name="Mixed_7c")(x)
    pool3 = x.mean(axis=(1, 2))
    return pool3, nn.Dense(NUM_CLASSES, name="fc")(pool3)


def preprocess(x: jax.Array, quantize: bool = True) -> jax.Array:
  """[N, H, W, C] in [-1, 1] -> [N, 299, 299, 3] in [-1, 1], pytorch-fid's input pipeline.

  Args:
    x: images, C in {1, 3}.
    quantize: round to 8 bits first, as when samples are saved as PNG and read back.
  """
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"Inception takes images [N, H, W, 1 or 3], got shape {tuple(x.shape)}.")
  x01 = jnp.clip((x.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0)
  if quantize:
    x01 = jnp.round(x01 * 255.0) / 255.0
  if x01.shape[-1] == 1:
    x01 = jnp.repeat(x01, 3, axis=-1)
  n = x01.shape[0]
  if x01.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    # Half-pixel centres, two taps, edge renormalised: F.interpolate(bilinear,
    # align_corners=False, antialias=False) for up- and downsampling.
    x01 = jax.image.resize(x01, (n, INPUT_SIZE, INPUT_SIZE, 3), "linear", antialias=False)
  return 2.0 * x01 - 1.0


def fid_features_and_probs(variables: Any, x: jax.Array,
                           quantize: bool = True) -> tuple[jax.Array, jax.Array]:
  """Pool3 features [N, 2048] and class probabilities [N, 1008] of images in [-1, 1]."""
  pool3, logits = InceptionV3FID().apply(variables, preprocess(x, quantize))
  return pool3, jax.nn.softmax(logits, axis=-1)


@functools.lru_cache(maxsize=1)
def variable_shapes() -> dict:
  """{"params": ..., "batch_stats": ...} shapes of the network, without computing anything."""
  shapes = jax.eval_shape(InceptionV3FID().init, jax.random.key(0),
                          jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
  return jax.tree.map(lambda s: tuple(s.shape), shapes)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime: float) -> tuple[Any, str]:
  from genjax.metrics import convert_inception
  from genjax.metrics import weights as weights_lib

  if path.endswith(".pth") or path.endswith(".pt"):
    flat = convert_inception.convert_state_dict(convert_inception.read_pth(path))
    variables = weights_lib.unflatten(flat)
  else:
    variables, _, _ = weights_lib.load_weights(path, what="Inception-v3 FID weights",
                                               how_to_get=HOW_TO_GET)
  convert_inception.check_variables(variables, path)
  checksum = weights_lib.params_checksum(weights_lib.flatten_params(variables))
  return variables, checksum


def load_inception_params(path: Optional[str] = None) -> tuple[Any, str]:
  """Inception variables ({"params", "batch_stats"}) and their checksum.

  Args:
    path: pytorch-fid .pth (needs torch) or converted .npz; default ``$GENJAX_INCEPTION_WEIGHTS``.

  Raises:
    FileNotFoundError: no path given, or no such file; the message says how to get one.
    ValueError: the file does not hold this network's weights.
  """
  path = path or os.environ.get(ENV_VAR)
  if not path:
    raise FileNotFoundError(f"No Inception-v3 weights given. genjax never downloads them. "
                            f"{HOW_TO_GET}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"Inception-v3 weights file not found: {path!r}. {HOW_TO_GET}")
  return _load_cached(os.path.abspath(path), os.path.getmtime(path))
