"""Noise-conditioning augmentation of a cascade's low-resolution condition, and resizing.

Cascaded diffusion (Ho et al. 2021, "Cascaded Diffusion Models for High Fidelity Image
Generation", Sec. 3.2; seed 003 Sec. 2.6.1) trains each super-resolution stage on a corrupted
copy of its low-resolution condition, so that at sampling time it tolerates the artefacts of
the stage below. The corruption is the forward process itself: at an augmentation level ``s``

    ``z_s = sqrt(abar_s) x_low + sqrt(1 - abar_s) eps``,  ``eps ~ N(0, I)``

and the level is given to the network as a second conditioning scalar. During training ``s``
is drawn per example; at sampling it is a fixed level chosen by the user.

* Gaussian augmentation: the stage below runs to the end and its sample is corrupted to level
  ``s`` with fresh noise, exactly as in training.
* Truncated augmentation (CDM Sec. 3.2, "truncated conditioning augmentation"): the stage
  below stops its reverse chain at level ``s`` and its intermediate ``z_s`` is the condition,
  so it must share this stage's noise schedule. Training is the same corruption.

Levels count the paper's steps: ``s = 0`` is the clean image and ``s = k >= 1`` the paper's
``z_k``, i.e. zero-based schedule index ``k - 1`` (DESIGN.md item 2), so ``s in {0..T}``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax.sampling.schedules import DiffusionSchedule

__all__ = ["AUGMENTATIONS", "augment_condition", "augmentation_coeffs", "downsample",
           "sample_aug_levels", "upsample"]

AUGMENTATIONS = ("none", "gaussian", "truncated")
UPSAMPLE_METHODS = ("nearest", "linear", "cubic")


def augmentation_coeffs(sched: DiffusionSchedule, s: jax.Array, dtype=jnp.float32):
  """``(sqrt(abar_s), sqrt(1 - abar_s))`` at augmentation levels ``s`` (``abar_0 = 1``).

  Ho et al. 2020, eq. 4 (seed eq. 17) at the paper's step ``s``; level 0 gives ``(1, 0)``.

  Args:
    sched: the forward process.
    s: int ``[B]`` levels in ``{0..T}``.
    dtype: dtype of the coefficients.

  Returns:
    ``(alpha [B], sigma [B])``.
  """
  s = jnp.asarray(s, jnp.int32)
  idx = jnp.clip(s - 1, 0, sched.num_timesteps - 1)
  abar = jnp.asarray(sched.alphas_cumprod, dtype)[idx]
  clean = s == 0
  alpha = jnp.where(clean, jnp.ones((), dtype), jnp.sqrt(abar))
  sigma = jnp.where(clean, jnp.zeros((), dtype), jnp.sqrt(1.0 - abar))
  return alpha, sigma


def augment_condition(sched: DiffusionSchedule, key: jax.Array, x_low: jax.Array,
                      s: jax.Array) -> jax.Array:
  """Gaussian noise-conditioning augmentation: ``z_s ~ q(z_s | x_low)``.

  ``z_s = sqrt(abar_s) x_low + sqrt(1 - abar_s) eps`` (Ho et al. 2021, Sec. 3.2, with the
  forward process of Ho et al. 2020, eq. 4); examples at level 0 are returned unchanged
  (bitwise). Keeps ``x_low``'s dtype.

  Args:
    sched: the forward process.
    key: PRNG key of ``eps``.
    x_low: ``[B, ...]`` low-resolution images.
    s: int ``[B]`` (or scalar) levels in ``{0..T}``.

  Returns:
    ``[B, ...]`` corrupted images.
  """
  x_low = jnp.asarray(x_low)
  s = jnp.broadcast_to(jnp.asarray(s, jnp.int32), x_low.shape[:1])
  alpha, sigma = augmentation_coeffs(sched, s, x_low.dtype)
  bshape = (-1,) + (1,) * (x_low.ndim - 1)
  eps = jax.random.normal(key, x_low.shape, x_low.dtype)
  z = alpha.reshape(bshape) * x_low + sigma.reshape(bshape) * eps
  return jnp.where((s == 0).reshape(bshape), x_low, z)


def sample_aug_levels(key: jax.Array, batch: int, max_level: int) -> jax.Array:
  """Training levels ``s ~ Uniform{0..max_level}``, int32 ``[batch]`` (Ho et al. 2021,
  Sec. 3.2: the level is drawn at random per example)."""
  return jax.random.randint(key, (batch,), 0, int(max_level) + 1, dtype=jnp.int32)


def downsample(x: jax.Array, size: int) -> jax.Array:
  """``[B, H, W, C] -> [B, size, size, C]`` with antialiased bilinear interpolation (the data
  pipeline's ``resize_images``), how a stage's low-resolution condition is made from its
  training images."""
  b, _, _, c = x.shape
  return jax.image.resize(x, (b, size, size, c), "linear", antialias=True).astype(x.dtype)


def upsample(x: jax.Array, size: int, method: str = "linear") -> jax.Array:
  """``[B, h, w, C] -> [B, size, size, C]`` (nearest, bilinear or bicubic): the condition as
  concatenated to ``x_t``."""
  if method not in UPSAMPLE_METHODS:
    raise ValueError(f"upsample method must be one of {', '.join(UPSAMPLE_METHODS)}, got "
                     f"{method!r}.")
  b, _, _, c = x.shape
  return jax.image.resize(x, (b, size, size, c), method).astype(x.dtype)
