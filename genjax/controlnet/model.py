"""A frozen base U-Net with one or more ControlNets, as the denoiser the sampling core takes.

The condition of a controlled model is a pytree (the sampling core's ``cond``; DESIGN.md item
4)::

    {"label": [B] int (class-conditional bases only),
     "control": (map_1, ..., map_K),   # [B, H_k, W_k, C_k], one per ControlNet
     "scale": [B, K] float}            # each ControlNet's control scale, per example

so that classifier-free guidance (the core's :func:`~genjax.sampling.guidance.
classifier_free_guidance`) batches ``[cond; null]`` through it like any other condition.
:func:`null_condition` builds the null branch: the null label, and in guess mode also a zero
control scale, so that the control enters only the conditional branch.

Several ControlNets combine by summing their residuals, each multiplied by its scale
(diffusers' ``MultiControlNetModel``; the paper's Sec. 3.4 "composing multiple ControlNets").
Guess mode (the paper's Sec. 3.4, "classifier-free guidance resolution weighting") also weights
the residuals by resolution, from 0.1 on the first skip to 1 on the middle block
(``logspace(-1, 0, n + 1)`` over the n skips and the middle, diffusers'
``ControlNetModel(guess_mode=True)``; the official code's ``0.825 ** (12 - i)`` for 13
residuals is the same curve).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax.nets.controlnet import ControlNet
from genjax.nets.unet import UNet

Array = jax.Array


def guess_mode_weights(num_residuals: int) -> np.ndarray:
  """The resolution weights of guess mode: ``logspace(-1, 0, num_residuals)``, the first skip
  (full resolution) weighted 0.1, the middle block 1 (diffusers' ``ControlNetModel``)."""
  return np.logspace(-1.0, 0.0, num_residuals)


BASE_INPUTS = ("context", "context_mask", "aug_level", "emb")  # other U-Net inputs in cond


def control_residuals(net: ControlNet, params, x: Array, t: Array, y: Optional[Array],
                      control: Array, scale: Array, *, guess_mode: bool = False,
                      train: bool = False, key: Optional[Array] = None, **base_kwargs):
  """One ControlNet's residuals, multiplied by ``scale`` (``[B]`` or a scalar).

  ``base_kwargs`` are the base's other inputs (a text context, ...), which the trainable copy
  takes as the base does.

  Returns:
    ``(downs, mid)`` as :class:`~genjax.nets.controlnet.ControlNet` returns them, scaled.
  """
  kw = dict(train=True, rngs={"dropout": key}) if train else dict(train=False)
  downs, mid = net.apply({"params": params}, x, t, y, control=control, **kw, **base_kwargs)
  s = jnp.asarray(scale)
  s = jnp.reshape(s, (-1, 1, 1, 1)) if s.ndim else s
  w = guess_mode_weights(len(downs) + 1) if guess_mode else np.ones(len(downs) + 1)
  downs = [d * (s * float(wi)).astype(d.dtype) for d, wi in zip(downs, w[:-1])]
  mid = mid * (s * float(w[-1])).astype(mid.dtype)
  return downs, mid


def sum_residuals(residuals: Sequence[tuple[list, Array]]):
  """The sum of several ControlNets' ``(downs, mid)``."""
  downs, mid = residuals[0]
  for d, m in residuals[1:]:
    downs = [a + b for a, b in zip(downs, d)]
    mid = mid + m
  return downs, mid


def controlled_apply(unet: UNet, controlnets: Sequence[ControlNet], base_params,
                     control_params: Sequence[Any], x: Array, t: Array, cond: dict, *,
                     guess_mode: Sequence[bool] = (), train: bool = False,
                     key: Optional[Array] = None) -> Array:
  """The base U-Net's output with the summed residuals of every ControlNet.

  Args:
    unet: the base network; ``base_params`` its (frozen) parameters.
    controlnets, control_params: the K ControlNets and their parameters.
    x, t: the noisy input and time, as the base takes them.
    cond: ``{"control": K maps, "scale": [B, K], "label": [B] (labelled bases)}``, plus
      any of the base's other inputs (``"context"`` [B, L, D] for a text-conditioned base,
      ``"context_mask"``, ``"aug_level"``, ``"emb"``).
    guess_mode: per ControlNet, whether its residuals get guess mode's resolution weights.
    train: dropout in the ControlNets' trainable copies (``key`` then required); the frozen
      base never drops out.

  Returns:
    the base's output ``[B, H, W, C_out]``.
  """
  y = cond.get("label")
  extra = {k: cond[k] for k in BASE_INPUTS if k in cond}
  maps = cond["control"]
  scale = jnp.asarray(cond["scale"])
  if len(maps) != len(controlnets) or len(control_params) != len(controlnets):
    raise ValueError(f"controlled_apply: {len(controlnets)} ControlNets but {len(maps)} control "
                     f"maps and {len(control_params)} parameter sets.")
  keys = [None] * (len(controlnets) + 1)
  if train:
    keys = list(jax.random.split(key, len(controlnets) + 1))
  guess = tuple(guess_mode) or (False,) * len(controlnets)
  res = [control_residuals(net, p, x, t, y, c, scale[..., k], guess_mode=guess[k], train=train,
                           key=keys[k + 1], **extra)
         for k, (net, p, c) in enumerate(zip(controlnets, control_params, maps))]
  downs, mid = sum_residuals(res)
  # The locked base runs deterministically (no dropout) also while ControlNet trains, as
  # diffusers' train_controlnet.py keeps the frozen U-Net in eval mode.
  return unet.apply({"params": base_params}, x, t, y, down_residuals=downs, mid_residual=mid,
                    train=False, **extra)


def make_condition(maps: Sequence[Array], scales: Sequence[float] | Array,
                   label: Optional[Array] = None) -> dict:
  """The ``cond`` pytree of a controlled model: ``maps`` (one batch per ControlNet), their
  scales (K floats, or ``[B, K]``) and, for labelled bases, the labels."""
  b = maps[0].shape[0]
  s = jnp.asarray(scales, jnp.float32)
  if s.ndim == 1:
    s = jnp.broadcast_to(s, (b, s.shape[0]))
  cond = {"control": tuple(jnp.asarray(m) for m in maps), "scale": s}
  if label is not None:
    cond["label"] = jnp.asarray(label)
  return cond


def null_condition(null_label: Optional[int], guess_mode: bool, empty_text: Optional[Array] = None):
  """The null branch of classifier-free guidance for a controlled model: the null label (and,
  for text-conditioned bases, the empty caption's tokens ``empty_text`` [L] in place of
  ``cond["text"]``), and in guess mode a zero control scale (the control then enters only the
  conditional branch). Returns a callable ``cond -> null cond`` for
  :func:`genjax.sampling.guidance.classifier_free_guidance`."""

  def null(cond):
    out = dict(cond)
    if "label" in cond and null_label is not None:
      out["label"] = jnp.full_like(cond["label"], null_label)
    if "text" in cond and empty_text is not None:
      out["text"] = jnp.broadcast_to(jnp.asarray(empty_text, cond["text"].dtype),
                                     cond["text"].shape)
    if guess_mode:
      out["scale"] = jnp.zeros_like(cond["scale"])
    return out

  return null
