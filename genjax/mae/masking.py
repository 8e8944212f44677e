"""The masking and the loss of the masked autoencoder (He et al. 2022, "Masked Autoencoders Are
Scalable Vision Learners"), as pure functions of arrays.

Sec. 3 of the paper:

* **Masking**: "we sample random patches without replacement, following a uniform
  distribution" -- every example keeps exactly ``N_vis = int(N (1 - r))`` of its ``N`` patches
  (:func:`random_masking`; the authors' ``random_masking``: argsort of uniform noise).
* **Reconstruction target**: the pixels of each masked patch, optionally normalised by the mean
  and standard deviation of that patch's own pixels (:func:`normalize_patch_targets`).
* **Loss**: "mean squared error between the reconstructed and original images in the pixel
  space ... computed only on masked patches" (:func:`masked_patch_loss`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def num_visible(num_patches: int, mask_ratio: float) -> int:
  """Visible patches per example: ``int(N (1 - r))`` as in the authors' code, at least 1."""
  if not 0.0 <= mask_ratio < 1.0:
    raise ValueError(f"mask_ratio must lie in [0, 1), got {mask_ratio}.")
  return max(1, int(num_patches * (1.0 - mask_ratio)))


def random_masking(key: Array, batch: int, num_patches: int, mask_ratio: float):
  """Per-example uniform random masking without replacement (He et al. 2022, Sec. 3).

  Each example draws i.i.d. uniform noise over its patches; the ``N_vis`` patches with the
  smallest noise stay visible, so exactly ``N - N_vis`` patches are masked in every example.

  Args:
    key: PRNG key.
    batch: B.
    num_patches: N.
    mask_ratio: r, the masked fraction (0.75 in the paper).

  Returns:
    ``(ids_keep [B, N_vis] int32, mask [B, N] float32 (1 = masked), ids_restore [B, N] int32)``;
    ``ids_restore`` un-shuffles ``concat(visible, masked)`` back to the patch order.
  """
  n_vis = num_visible(num_patches, mask_ratio)
  noise = jax.random.uniform(key, (batch, num_patches))
  ids_shuffle = jnp.argsort(noise, axis=1).astype(jnp.int32)
  ids_restore = jnp.argsort(ids_shuffle, axis=1).astype(jnp.int32)
  ids_keep = ids_shuffle[:, :n_vis]
  mask = jnp.ones((batch, num_patches), jnp.float32).at[:, :n_vis].set(0.0)
  mask = jnp.take_along_axis(mask, ids_restore, axis=1)
  return ids_keep, mask, ids_restore


def normalize_patch_targets(patches: Array, eps: float = 1e-6) -> Array:
  """Per-patch normalised pixel targets (He et al. 2022, Sec. 3, "Reconstruction target").

  ``(t - mean(t)) / sqrt(var(t) + eps)`` over the pixels of each patch, with the unbiased
  variance of the authors' code (``target.var(dim=-1)`` in ``models_mae.forward_loss``).

  Args:
    patches: [..., P] pixels of each patch (P >= 2).
    eps: added to the variance (1e-6 in the authors' code).

  Returns:
    [..., P] normalised targets, in the input's dtype.
  """
  p = patches.shape[-1]
  mean = jnp.mean(patches, axis=-1, keepdims=True)
  var = jnp.sum(jnp.square(patches - mean), axis=-1, keepdims=True) / (p - 1)
  return (patches - mean) / jnp.sqrt(var + jnp.asarray(eps, patches.dtype))


def masked_patch_loss(pred: Array, target: Array, mask: Array) -> Array:
  """The MAE loss: per-patch MSE averaged over the masked patches only (He et al. 2022, Sec. 3).

  ``L = sum_{b,n} m_bn mean_p (pred - target)^2 / sum_{b,n} m_bn``.

  Args:
    pred: [B, N, P] predicted pixels.
    target: [B, N, P] targets (normalised or raw pixels).
    mask: [B, N], 1 on masked patches, 0 on visible ones.

  Returns:
    scalar loss.
  """
  per_patch = jnp.mean(jnp.square(pred - target), axis=-1)
  return jnp.sum(per_patch * mask) / jnp.maximum(jnp.sum(mask), 1.0)
