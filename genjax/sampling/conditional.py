"""Training-free conditional sampling through every sampler: inpainting, RePaint, colorization
and SDEdit.

Every sampler takes ``constraint(x, alpha, sigma, key) -> x``, applied to each state after a
step with the marginal coefficients ``(alpha, sigma)`` of the time that state is at (``(1, 0)``
for the final sample), and a start time ``t_start`` with the state there as ``x_T``:

  * **Inpainting by replacement** (score_sde's ``pc_inpainter``; Song et al. 2021 App. I.2,
    RePaint's "known region"): after every step the known pixels are replaced by a fresh draw of
    the forward process at the state's time, ``alpha_t y + sigma_t z``
    (:func:`replacement`). score_sde uses the step's starting time there; the state's own time
    is the one that makes the known and unknown parts consistent, and is used here.
  * **RePaint** (Lugmayr et al. 2022, Algorithm 1): the same replacement inside ancestral DDPM,
    and after a step the state is noised back ``jump_length`` steps and denoised again,
    ``jump_n_sample - 1`` extra times, on the official ``get_schedule_jump`` time table
    (:func:`repaint_schedule`, :func:`repaint_sample`). The resampling harmonizes the two parts:
    plain replacement is biased wherever the known and unknown pixels are correlated, and RePaint
    approaches the exact conditional as the resampling grows (measured on Gaussian data in the
    tests).
  * **Colorization** (score_sde's ``pc_colorizer``): replacement in an orthonormal colour basis
    whose first channel is the grey level, ``(R + G + B) / sqrt(3)`` (:func:`colorization`).
  * **SDEdit** (Meng et al. 2022): start from the input noised to ``t_0``,
    ``x_{t_0} = alpha_{t_0} y + sigma_{t_0} z`` (:func:`noised_start`), and run any sampler from
    ``t_start = t_0`` (:func:`start_time` maps a strength in ``(0, 1]`` to ``t_0``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.ancestral import ddpm_step_draws, ddpm_step_fn
from genjax.sampling.convert import EpsFn
from genjax.sampling.posterior import ClipRange, check_clip, check_var_type
from genjax.sampling.processes import bcast
from genjax.sampling.scan import check_shape, run_scan, step_draws
from genjax.sampling.schedules import DiffusionSchedule

__all__ = ["COLOR_BASIS", "MASKS", "colorization", "make_mask", "noised_start", "repaint_sample",
           "repaint_schedule", "replacement", "start_time"]

MASKS = ("left", "right", "top", "bottom", "center", "random")

Constraint = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]

# Columns: an orthonormal basis of RGB whose first vector is the grey direction (1, 1, 1)/sqrt(3)
# (score_sde's ``M`` in get_pc_colorizer, exactly: its float32 entries are these to 1e-7).
COLOR_BASIS = np.array([[1 / math.sqrt(3), -2 / math.sqrt(6), 0.0],
                        [1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)],
                        [1 / math.sqrt(3), 1 / math.sqrt(6), -1 / math.sqrt(2)]])


def replacement(known: jax.Array, mask: jax.Array, basis: Optional[jax.Array] = None) -> Constraint:
  """The constraint of replacement inpainting: ``x <- m (alpha y + sigma z) + (1 - m) x``.

  Args:
    known: ``y``, the known values ``[B, ...]`` (anything where ``mask`` is 0).
    mask: 1 where ``y`` is known, 0 where it is to be generated; broadcastable to ``y``.
    basis: optional orthonormal ``[C, C]`` matrix; the replacement then happens on the
      channels of ``x @ basis`` (colorization), and ``known`` and ``mask`` live in that basis.

  Returns:
    ``constraint(x, alpha, sigma, key) -> x``.
  """
  known = jnp.asarray(known)
  mask = jnp.asarray(mask, known.dtype)

  def constraint(x, alpha, sigma, key):
    z = jax.random.normal(key, x.shape, x.dtype)
    b = None if basis is None else jnp.asarray(basis, x.dtype)
    if b is not None:
      x = x @ b
    noised = bcast(alpha, x) * known.astype(x.dtype) + bcast(sigma, x) * z
    x = mask * noised + (1 - mask) * x
    return x if b is None else x @ b.T

  return constraint


def make_mask(name: str, shape, seed: int = 0) -> np.ndarray:
  """A known-pixel mask (1 = known, 0 = to be generated) for images of ``shape``
  ``[B, H, W, C]``, by the region to fill in: the ``left`` / ``right`` / ``top`` / ``bottom``
  half, the ``center`` square of half the side, or ``random`` half of the pixels (seeded).

  Returns:
    float32 ``[B, H, W, 1]``.
  """
  b, h, w = int(shape[0]), int(shape[1]), int(shape[2])
  fill = np.zeros((h, w), bool)
  if name == "left":
    fill[:, : w // 2] = True
  elif name == "right":
    fill[:, w // 2:] = True
  elif name == "top":
    fill[: h // 2] = True
  elif name == "bottom":
    fill[h // 2:] = True
  elif name == "center":
    fill[h // 4: h - h // 4, w // 4: w - w // 4] = True
  elif name == "random":
    fill = np.random.default_rng(seed).random((h, w)) < 0.5
  else:
    raise ValueError(f"Unknown mask {name!r}; valid: {', '.join(MASKS)}, or a mask image.")
  return np.broadcast_to((~fill).astype(np.float32)[None, :, :, None], (b, h, w, 1)).copy()


def colorization(gray: jax.Array) -> Constraint:
  """The constraint of colorization (score_sde's ``pc_colorizer``): the grey level of each
  pixel is known, the two chroma directions are generated.

  Args:
    gray: ``[B, H, W, 1]`` grey levels (or ``[B, H, W, 3]`` colour images, reduced to their
      mean); the output images have 3 channels.

  Returns:
    ``constraint(x [B, H, W, 3], alpha, sigma, key) -> x``.
  """
  gray = jnp.asarray(gray)
  g = jnp.mean(gray, axis=-1, keepdims=True)
  known = jnp.concatenate([math.sqrt(3.0) * g, jnp.zeros_like(g), jnp.zeros_like(g)], axis=-1)
  mask = jnp.asarray([1.0, 0.0, 0.0], gray.dtype)
  return replacement(known, mask, basis=COLOR_BASIS)


def noised_start(process, y: jax.Array, t, key: jax.Array) -> jax.Array:
  """SDEdit's start (Meng et al. 2022): ``x_t = alpha_t y + sigma_t z`` at the process's time
  ``t`` (a zero-based step of a discrete schedule)."""
  z = jax.random.normal(key, y.shape, y.dtype)
  t = jnp.asarray(t)
  return (bcast(process.marginal_alpha(t), y) * y + bcast(process.marginal_std(t), y) * z).astype(
      y.dtype)


def start_time(process, strength: float):
  """The time SDEdit starts from for a strength in ``(0, 1]``: 1 starts at the top (pure
  generation), small values stay close to the input. On a discrete schedule the step
  ``round(strength (T - 1))``; on a continuous process ``eps + strength (T - eps)``."""
  if not 0 < strength <= 1:
    raise ValueError(f"The img2img strength must lie in (0, 1], got {strength!r}.")
  if isinstance(process, DiffusionSchedule):
    return int(round(strength * (process.num_timesteps - 1)))
  eps = float(process.sampling_eps)
  return eps + float(strength) * (float(process.T) - eps)


def repaint_schedule(num_timesteps: int, jump_length: int = 10,
                     jump_n_sample: int = 10) -> np.ndarray:
  """The time table of RePaint (Lugmayr et al. 2022; the official ``get_schedule_jump`` with
  its defaults for the second and third jump levels, which are off).

  Starting at ``T - 1``, the chain steps down one level at a time; at every multiple of
  ``jump_length`` below ``T - jump_length`` it jumps back up ``jump_length`` levels,
  ``jump_n_sample - 1`` times in all. Levels are zero-based, ``-1`` is the clean data.

  Returns:
    int64 ``[M]``: consecutive pairs ``(t_last, t_cur)`` are a denoising step when ``t_cur <
    t_last`` and a forward noising step when ``t_cur > t_last``.
  """
  for name, v in (("jump_length", jump_length), ("jump_n_sample", jump_n_sample)):
    if isinstance(v, bool) or int(v) != v or v < 1:
      raise ValueError(f"RePaint's {name} must be a positive integer, got {v!r}.")
  jumps = {j: jump_n_sample - 1 for j in range(0, num_timesteps - jump_length, jump_length)}
  t, ts = num_timesteps, []
  while t >= 1:
    t -= 1
    ts.append(t)
    if jumps.get(t, 0) > 0:
      jumps[t] -= 1
      for _ in range(jump_length):
        t += 1
        ts.append(t)
  ts.append(-1)
  return np.asarray(ts, np.int64)


def repaint_sample(eps_fn: EpsFn, sched: DiffusionSchedule, key: jax.Array, shape, *,
                   constraint: Constraint, cond=None, jump_length: int = 10,
                   jump_n_sample: int = 10, var_type: str = "fixed_large",
                   clip_x0: ClipRange = None, trajectory_stride: Optional[int] = None,
                   x_T: Optional[jax.Array] = None):
  """RePaint (Lugmayr et al. 2022, Algorithm 1) in one ``lax.scan`` over its time table.

  A denoising step is the ancestral DDPM step (:func:`~genjax.sampling.ancestral.ddpm_sample`)
  followed by the constraint at the new level; a forward step from level ``l`` to ``l + 1`` is
  ``x <- sqrt(1 - beta_{l+1}) x + sqrt(beta_{l+1}) z`` (Ho et al. eq. 2).
  ``jump_n_sample = 1`` is plain replacement.

  Args:
    eps_fn: the denoiser ``eps_fn(x, t, cond)``.
    sched: the discrete schedule (all its steps; RePaint does not respace).
    key: PRNG key.
    shape: ``(B, ...)``.
    constraint: the known part, e.g. :func:`replacement` or :func:`colorization`.
    cond: the condition passed to ``eps_fn``.
    jump_length: levels per jump back (the paper: 10).
    jump_n_sample: resamplings per jump point (the paper: 10).
    var_type, clip_x0: as in :func:`~genjax.sampling.ancestral.ddpm_sample`.
    trajectory_stride: None or a positive int (over all steps, forward ones included).
    x_T: optional start at level ``T - 1``.

  Returns:
    ``x_0`` ``[*shape]`` (or ``(x_0, trajectory)``).
  """
  check_var_type(var_type)
  check_clip(clip_x0)
  shape = check_shape(shape, x_T)
  num_t = sched.num_timesteps
  table = repaint_schedule(num_t, jump_length, jump_n_sample)
  k_init, k_steps = jax.random.split(key)
  dtype = sched.betas.dtype
  if x_T is None:
    x_T = sched.prior_sampling(k_init, shape, dtype)
  top = jnp.asarray(num_t - 1, jnp.int32)
  x_T = constraint(x_T, sched.marginal_alpha(top).astype(dtype),
                   sched.marginal_std(top).astype(dtype), jax.random.fold_in(k_init, 1))
  n = len(table) - 1
  # Each step either denoises (the ancestral step's draws) or re-noises (one normal draw).
  draws, draws_of = step_draws(
      lambda k: (ddpm_step_draws(k, shape, x_T.dtype, constraint),
                 jax.random.normal(k, shape, x_T.dtype)), jax.random.split(k_steps, n))
  denoise = ddpm_step_fn(eps_fn, sched, cond=cond, var_type=var_type, clip=clip_x0,
                         constraint=constraint, draws_of=lambda d: d)

  def step(x, inp):
    t_last, t_cur, r = inp
    d_denoise, z = draws_of(r)

    def forward(x):
      beta = sched.betas[t_cur]
      return (jnp.sqrt(1.0 - beta) * x + jnp.sqrt(beta) * z).astype(x.dtype)

    return jax.lax.cond(t_cur < t_last, lambda x: denoise(x, (t_last, d_denoise)), forward, x)

  xs = (jnp.asarray(table[:-1], jnp.int32), jnp.asarray(table[1:], jnp.int32), draws)
  return run_scan(step, x_T, xs, stride=trajectory_stride)
