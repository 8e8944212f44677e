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

Two input conventions (recorded in reference statistics; ``RESIZES``):

* ``"pytorch-fid"`` (default, ``RESIZE_CONVENTION``), as a PNG of the samples read back by
  pytorch-fid: images [N, H, W, C] in [-1, 1], C in {1, 3} (grayscale is repeated to RGB) ->
  [0, 1] -> quantized to 8 bits (round(255 x) / 255) -> bilinear resize to 299x299 with
  half-pixel centres and no antialiasing (``F.interpolate(mode="bilinear",
  align_corners=False)``) -> 2 x - 1 -> the network.
* ``"clean"`` (``CLEAN_RESIZE_CONVENTION``), clean-fid's ``mode="clean"`` (Parmar et al. 2022,
  "On Aliased Resizing and Surprising Subtleties in GAN Evaluation"): [-1, 1] -> uint8 ->
  PIL's bicubic resampling (antialiased when it shrinks) of each channel as a float32 image
  to 299x299 -> clip to [0, 255] -> (x - 128) / 128 -> the network (:func:`resize_clean`).

Outputs: pool3 features [N, 2048] (FID, KID, precision/recall) and the class probabilities for
the Inception Score: the softmax of the 1008 logits *without* the fc bias (``pool3 @ W``), as
the original IS code, torch-fidelity, torchmetrics and StyleGAN3 compute them; the biased form
is an explicit option (``logits_bias=True``).

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
import numpy as np

NAME = "inception_v3_fid"
FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299
ENV_VAR = "GENJAX_INCEPTION_WEIGHTS"
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
RESIZE_CONVENTION = ("pytorch-fid: [-1,1] -> [0,1] -> uint8 round -> bilinear "
                     "(align_corners=False, no antialias) to 299x299 -> [-1,1]; gray -> RGB")
CLEAN_RESIZE_CONVENTION = ("clean-fid: [-1,1] -> uint8 round -> PIL bicubic (antialiased) per "
                           "channel in float32 to 299x299 -> clip [0,255] -> (x-128)/128; "
                           "gray -> RGB")
# resize mode -> the convention string recorded in reference statistics.
RESIZES = {"pytorch-fid": RESIZE_CONVENTION, "clean": CLEAN_RESIZE_CONVENTION}
# pytorch-fid's official weights file is pt_inception-2015-12-05-6726825d.pth; the suffix is
# the start of its sha256 (torch.hub's convention). Statistics files of other projects (TTUR,
# pytorch-fid, clean-fid) were made with these weights.
OFFICIAL_SHA256_PREFIX = "6726825d"
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


def _check_resize(resize: str) -> None:
  if resize not in RESIZES:
    raise ValueError(f"unknown Inception resize {resize!r}; valid: {sorted(RESIZES)} "
                     "(pytorch-fid's bilinear, or clean-fid's antialiased bicubic).")


def preprocess(x: jax.Array, quantize: bool = True, resize: str = "pytorch-fid") -> jax.Array:
  """[N, H, W, C] in [-1, 1] -> the network's input [N, 299, 299, 3] (see the module docstring).

  Args:
    x: images, C in {1, 3}.
    quantize: round to 8 bits first, as when samples are saved as PNG and read back
      (``resize="clean"`` always quantizes: clean-fid resizes uint8 images).
    resize: "pytorch-fid" or "clean".
  """
  _check_resize(resize)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"Inception takes images [N, H, W, 1 or 3], got shape {tuple(x.shape)}.")
  x01 = jnp.clip((x.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0)
  if resize == "clean":
    u8 = jnp.round(x01 * 255.0)
    if u8.shape[-1] == 1:
      u8 = jnp.repeat(u8, 3, axis=-1)
    return (resize_clean(u8) - 128.0) / 128.0
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


def _pil_bicubic(x: float) -> float:
  """PIL's bicubic kernel (Keys 1981 with a = -0.5), ``bicubic_filter`` in Pillow's Resample.c."""
  a = -0.5
  x = abs(x)
  if x < 1.0:
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
  if x < 2.0:
    return (((x - 5.0) * x + 8.0) * x - 4.0) * a
  return 0.0


@functools.lru_cache(maxsize=16)
def pil_resample_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of PIL's bicubic resampling along one axis.

  Pillow's ``precompute_coeffs`` (Resample.c): output pixel i is centred at
  (i + 0.5) * in/out in input coordinates; when shrinking, the kernel is stretched by
  in/out (support 2 * in/out: the antialiasing that pytorch-fid's bilinear resize lacks);
  the taps inside the image are renormalised to sum to one.
  """
  scale = in_size / out_size
  filterscale = max(scale, 1.0)
  support = 2.0 * filterscale
  w = np.zeros((out_size, in_size), np.float64)
  for i in range(out_size):
    center = (i + 0.5) * scale
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), in_size)
    taps = np.array([_pil_bicubic((j - center + 0.5) / filterscale) for j in range(lo, hi)])
    total = taps.sum()
    w[i, lo:hi] = taps / total if total != 0.0 else taps
  return w


def resize_clean(u8: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """clean-fid's resize: [N, H, W, C] uint8 values (as floats) -> [N, size, size, C] in [0, 255].

  ``PIL.Image.fromarray(channel.astype(np.float32), mode="F").resize((size, size),
  Image.BICUBIC)`` for each channel, clipped to [0, 255] (clean-fid's
  ``make_resizer("PIL", False, "bicubic", (299, 299))``). PIL's two-pass separable resampling
  is a matrix product per axis (:func:`pil_resample_matrix`); it agrees with PIL to float32
  round-off.
  """
  n, h, w, c = u8.shape
  wh = jnp.asarray(pil_resample_matrix(h, size), jnp.float32)
  ww = jnp.asarray(pil_resample_matrix(w, size), jnp.float32)
  hi = jax.lax.Precision.HIGHEST
  y = jnp.einsum("ow,nhwc->nhoc", ww, u8.astype(jnp.float32), precision=hi)
  y = jnp.einsum("ph,nhoc->npoc", wh, y, precision=hi)
  return jnp.clip(y, 0.0, 255.0)


def class_probs(fc_params: Any, pool3: jax.Array, logits_bias: bool = False) -> jax.Array:
  """Inception Score class probabilities [N, 1008] from pool3 features [N, 2048].

  softmax(pool3 @ W) by default: the logits without the fc bias, as the original IS code
  (Salimans et al. 2016, ``tf.matmul(pool3, w)``), torch-fidelity and torchmetrics
  (``logits_unbiased``) and StyleGAN3 (``no_output_bias``) compute them, so that the score is
  comparable with published IS. ``logits_bias=True`` gives softmax(pool3 @ W + b), the full fc
  layer.

  Args:
    fc_params: {"kernel": [2048, 1008], "bias": [1008]}.
    pool3: [N, 2048] features.
    logits_bias: include the bias.
  """
  logits = jnp.matmul(pool3, fc_params["kernel"].astype(pool3.dtype),
                      precision=jax.lax.Precision.HIGHEST)
  if logits_bias:
    logits = logits + fc_params["bias"].astype(pool3.dtype)
  return jax.nn.softmax(logits, axis=-1)


def fid_features_and_probs(variables: Any, x: jax.Array, quantize: bool = True, *,
                           resize: str = "pytorch-fid",
                           logits_bias: bool = False) -> tuple[jax.Array, jax.Array]:
  """Pool3 features [N, 2048] and IS class probabilities [N, 1008] of images in [-1, 1].

  Args:
    variables: {"params", "batch_stats"} of :class:`InceptionV3FID`.
    x: [N, H, W, C] images in [-1, 1], C in {1, 3}.
    quantize: round to 8 bits first (pytorch-fid resize only).
    resize: "pytorch-fid" or "clean" (:func:`preprocess`).
    logits_bias: probabilities from the biased logits (:func:`class_probs`); default unbiased.
  """
  pool3, _ = InceptionV3FID().apply(variables, preprocess(x, quantize, resize))
  return pool3, class_probs(variables["params"]["fc"], pool3, logits_bias)


@functools.lru_cache(maxsize=1)
def variable_shapes() -> dict:
  """{"params": ..., "batch_stats": ...} shapes of the network, without computing anything."""
  shapes = jax.eval_shape(InceptionV3FID().init, jax.random.key(0),
                          jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
  return jax.tree.map(lambda s: tuple(s.shape), shapes)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime: float) -> tuple[Any, str, str]:
  import hashlib

  from genjax.metrics import convert_inception
  from genjax.metrics import weights as weights_lib

  if path.endswith(".pth") or path.endswith(".pt"):
    flat = convert_inception.convert_state_dict(convert_inception.read_pth(path))
    variables = weights_lib.unflatten(flat)
    with open(path, "rb") as f:
      source_sha256 = hashlib.sha256(f.read()).hexdigest()
  else:
    variables, meta, _ = weights_lib.load_weights(path, what="Inception-v3 FID weights",
                                                  how_to_get=HOW_TO_GET)
    source_sha256 = str(meta.get("source_sha256", ""))
  convert_inception.check_variables(variables, path)
  checksum = weights_lib.params_checksum(weights_lib.flatten_params(variables))
  return variables, checksum, source_sha256


def is_official(source_sha256: str) -> bool:
  """Whether weights came from pytorch-fid's official .pth (by the sha256 of that file)."""
  return source_sha256.startswith(OFFICIAL_SHA256_PREFIX)


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
  return _load_cached(os.path.abspath(path), os.path.getmtime(path))[:2]


def load_inception(path: Optional[str] = None) -> tuple[Any, str, str]:
  """Like :func:`load_inception_params`, plus the sha256 of the .pth the weights came from
  (read from a converted .npz's metadata; "" when unknown)."""
  load_inception_params(path)  # the checks and messages
  path = path or os.environ.get(ENV_VAR)
  return _load_cached(os.path.abspath(path), os.path.getmtime(path))
