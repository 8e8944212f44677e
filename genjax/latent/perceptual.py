"""Perceptual distances for training a first stage without downloadable weights.

LDM and VQGAN train their autoencoders with LPIPS (Zhang et al. 2018) on VGG-16 features.
Those weights cannot be fetched here, so by default the perceptual term is LPIPS's eq. (1)
without its learned ``lin`` weights, on the features of a classifier that genjax ships and
that was trained on the data at hand::

  d(x, y) = sum_l mean_{h,w} || f^l_hw(x) / ||f^l_hw(x)|| - f^l_hw(y) / ||f^l_hw(y)|| ||_2^2

with ``f^l`` the activations of each conv layer (and the feature layer, as a 1x1 map). With an
LPIPS weights file (``genjax.metrics.lpips``) the real LPIPS is used instead.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
PerceptualFn = Callable[[Array, Array], Array]  # (x, y) [B, H, W, C] -> [B]

KINDS = ("auto", "digits", "shapes", "lpips", "none")


def _unit(f: Array) -> Array:
  return f * jax.lax.rsqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True) + 1e-10)


def feature_distance(feats_x: list, feats_y: list) -> Array:
  """LPIPS eq. (1) with unit weights: per layer the spatial mean of the squared difference of
  channel-normalized features, summed over layers. Feature maps are [B, ..., C]; returns [B]."""
  total = 0.0
  for fx, fy in zip(feats_x, feats_y):
    d = jnp.sum(jnp.square(_unit(fx) - _unit(fy)), axis=-1)
    total = total + jnp.mean(d.reshape(d.shape[0], -1), axis=-1)
  return total


def _classifier_perceptual(net, params, resize) -> PerceptualFn:
  """The distance in a shipped classifier's conv layers and feature layer."""
  params = jax.tree.map(jnp.asarray, params)

  def feats(x):
    (f, _), state = net.apply({"params": params}, resize(x.astype(jnp.float32)),
                              capture_intermediates=True)
    inter = state["intermediates"]
    convs = [inter[k]["__call__"][0] for k in sorted(inter) if k.startswith("Conv")]
    return convs + [f[:, None, :]]

  return lambda x, y: feature_distance(feats(x), feats(y))


def digits_perceptual(path: Optional[str] = None) -> PerceptualFn:
  """The distance in the shipped digits classifier's conv and feature layers (grey images)."""
  from genjax.metrics import digits_classifier as dc
  return _classifier_perceptual(dc.DigitsCNN(), dc.load_classifier_params(path)[0],
                                dc.resize_to_digits)


def lpips_perceptual(weights: Optional[str]) -> PerceptualFn:
  """LPIPS (Zhang et al. 2018) from a converted weights file; grey images are repeated to RGB."""
  from genjax.metrics import lpips
  params = lpips.load_lpips(weights)[0]

  def fn(x, y):
    if x.shape[-1] == 1:
      x, y = (jnp.repeat(a, 3, axis=-1) for a in (x, y))
    return lpips.lpips_distance(params, x, y)

  return fn


def shapes_perceptual(path: Optional[str] = None) -> PerceptualFn:
  """The distance in the shipped shapes attribute classifier's conv and feature layers (RGB)."""
  from genjax.metrics import shapes_classifier as sc
  return _classifier_perceptual(sc.ShapesCNN(), sc.load_classifier_params(path)[0],
                                sc.resize_to_shapes)


def make_perceptual(kind: str, image_shape, lpips_weights: str = "") -> Optional[PerceptualFn]:
  """The perceptual distance named by ``kind`` (``auto``: LPIPS if weights are given, else the
  digits classifier on grey images, else the shapes classifier on RGB images).

  Raises:
    ValueError: an unknown kind, or one that cannot take these images.
  """
  if kind not in KINDS:
    raise ValueError(f"first_stage.perceptual must be one of {', '.join(KINDS)}, got {kind!r}.")
  channels = image_shape[-1]
  if kind == "auto":
    if lpips_weights:
      kind = "lpips"
    elif channels == 1:
      kind = "digits"
    else:
      kind = "shapes"
  if kind == "none":
    return None
  if kind == "digits":
    if channels != 1:
      raise ValueError("first_stage.perceptual='digits' needs grey images; use 'shapes', "
                       "'lpips' (with first_stage.lpips_weights) or 'none'.")
    return digits_perceptual()
  if kind == "lpips":
    return lpips_perceptual(lpips_weights or None)
  if channels != 3:
    raise ValueError("first_stage.perceptual='shapes' needs RGB images.")
  return shapes_perceptual()
