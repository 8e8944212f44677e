"""CLIP's contrastive objective: the symmetric InfoNCE loss with a learned, clipped temperature.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision",
Sec. 2.3 and Figure 3 (the numpy-like pseudocode): for a batch of ``N`` (image, text) pairs
with L2-normalised embeddings ``I_e``, ``T_e``

    ``logits = exp(t) * I_e @ T_e^T``                          ([N, N])
    ``loss = (CE(logits, arange(N), axis=0) + CE(logits, arange(N), axis=1)) / 2``

where ``t`` is the learned log inverse temperature, "initialized to the equivalent of 0.07 and
clipped to prevent scaling the logits by more than 100" (Sec. 2.5): ``exp(t) <= 100``. As in
the reference implementations (OpenAI's ``model.logit_scale``, open_clip's
``logit_scale.clamp_(0, ln 100)`` after each step), the parameter itself is clamped after the
optimizer update (:func:`clamp_logit_scale`) and the forward pass also uses the clamped value.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["INIT_LOGIT_SCALE", "MAX_LOGIT_SCALE", "clamp_logit_scale", "clip_logits",
           "infonce_loss", "l2_normalize"]

INIT_LOGIT_SCALE = math.log(1.0 / 0.07)  # Radford et al. 2021, Sec. 2.5
MAX_LOGIT_SCALE = math.log(100.0)        # exp(t) <= 100


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """``x / max(||x||, eps)`` along ``axis``, in x's dtype."""
  x = jnp.asarray(x)
  n = jnp.linalg.norm(x, axis=axis, keepdims=True)
  return x / jnp.maximum(n, jnp.asarray(eps, x.dtype))


def clamp_logit_scale(t: jax.Array) -> jax.Array:
  """The log inverse temperature clipped to ``[0, ln 100]`` (open_clip's clamp; Radford et al.
  2021, Sec. 2.5)."""
  return jnp.clip(t, 0.0, MAX_LOGIT_SCALE)


def clip_logits(image_embeds: jax.Array, text_embeds: jax.Array, logit_scale: jax.Array):
  """``exp(clamp(t)) * normalize(I) @ normalize(T)^T``: image-to-text logits ``[N, M]``
  (Radford et al. 2021, Figure 3)."""
  i = l2_normalize(image_embeds)
  t = l2_normalize(text_embeds)
  return jnp.exp(clamp_logit_scale(logit_scale)).astype(i.dtype) * (i @ t.T)


def infonce_loss(logits: jax.Array) -> tuple[jax.Array, dict]:
  """Symmetric InfoNCE of a square ``[N, N]`` logit matrix whose diagonal holds the pairs.

  ``(CE over texts for each image + CE over images for each text) / 2`` (Radford et al. 2021,
  Figure 3; van den Oord et al. 2018, eq. 4).

  Returns:
    ``(loss scalar, {"loss_i2t", "loss_t2i", "acc_i2t", "acc_t2i"})``.
  """
  logits = jnp.asarray(logits)
  n = logits.shape[0]
  if logits.ndim != 2 or logits.shape[1] != n:
    raise ValueError(f"infonce_loss needs a square [N, N] logit matrix, got {logits.shape}.")
  idx = jnp.arange(n)
  i2t = -jnp.mean(jax.nn.log_softmax(logits, axis=1)[idx, idx])
  t2i = -jnp.mean(jax.nn.log_softmax(logits, axis=0)[idx, idx])
  metrics = {"loss_i2t": i2t, "loss_t2i": t2i,
             "acc_i2t": jnp.mean(jnp.argmax(logits, axis=1) == idx),
             "acc_t2i": jnp.mean(jnp.argmax(logits, axis=0) == idx)}
  return (i2t + t2i) / 2, metrics
