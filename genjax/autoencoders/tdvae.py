"""Temporal-difference VAE (Gregor et al. 2019, ICLR) as pure functions, and its data.

Seed 003 Sec. 1.3.3. TD-VAE learns four distributions over a latent state z_t:

* the belief ``p_B(z_t | b_t)``, where the belief state ``b_t`` summarises ``x_1..x_t``
  (an LSTM over the frames);
* the transition ``p_T(z_t2 | z_t1)`` (here optionally told the jump ``t2 - t1``, so one
  network makes jumps of every length);
* the smoothing posterior ``q_S(z_t1 | z_t2, b_t1, b_t2)`` (the seed's ``p_S``);
* the decoder ``p_D(x_t | z_t)``.

The jump objective for ``t1 < t2`` (seed eq. 14; Gregor et al. 2019, eq. 8), maximised::

  J = E[ log p_D(x_t2|z_t2) + log p_B(z_t1|b_t1) + log p_T(z_t2|z_t1)
         - log p_B(z_t2|b_t2) - log q_S(z_t1|z_t2, b_t1, b_t2) ]

  with  z_t2 ~ p_B(. | b_t2),  z_t1 ~ q_S(. | z_t2, b_t1, b_t2)  (both reparameterized).

It is an ELBO of ``log p(x_t2 | x_<=t1)`` in which the belief at t2 plays the filtering
posterior and the belief at t1 the prior (their Sec. 3). Each term is returned separately
so that the two KL-like pairs can be watched during training.

The sequences (their Sec. 5.1 uses MNIST digits moving one pixel per step, left or right
with wrap-around) are generated here from the embedded 8x8 digits: :func:`make_sequences`.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from genjax.autoencoders import vae as vae_lib

Array = jax.Array
GaussianFn = Callable[..., tuple[Array, Array]]

SEQUENCE_MODES = ("move", "rotate")


def _rotate(img: Array, angle: Array, fill: float) -> Array:
  """Rotates one [H, W, C] image by ``angle`` radians about its centre (bilinear)."""
  h, w = img.shape[0], img.shape[1]
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=img.dtype), jnp.arange(w, dtype=img.dtype),
                        indexing="ij")
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  # Inverse map: the output pixel (y, x) reads the input at R(-angle) (y, x).
  sy = cy + cos * (yy - cy) - sin * (xx - cx)
  sx = cx + sin * (yy - cy) + cos * (xx - cx)

  def one_channel(c):
    return jax.scipy.ndimage.map_coordinates(img[..., c], [sy, sx], order=1, mode="constant",
                                             cval=fill)

  return jnp.stack([one_channel(c) for c in range(img.shape[-1])], axis=-1)


def make_sequences(key: Array, x: Array, length: int, mode: str = "move",
                   rotation_deg: float = 30.0, fill: float = -1.0) -> Array:
  """Sequences of moving or rotating digits, generated from single images.

  * ``"move"``: the image shifts one pixel per frame to the left or to the right (drawn per
    sequence), with wrap-around (Gregor et al. 2019, Sec. 5.1);
  * ``"rotate"``: the image turns by ``rotation_deg`` per frame, clockwise or
    anticlockwise (drawn per sequence), bilinear, background ``fill``.

  Frame 0 is the image itself. The dynamics are deterministic given the direction, which
  the model must infer from the frames it has seen.

  Args:
    key: PRNG key (the directions).
    x: [B, H, W, C] images in [-1, 1].
    length: T, frames per sequence.
    mode: "move" or "rotate".
    rotation_deg: degrees per frame for "rotate".
    fill: background value for "rotate".

  Returns:
    [B, T, H, W, C] sequences.
  """
  if mode not in SEQUENCE_MODES:
    raise ValueError(f"Unknown sequence mode {mode!r}; valid: {SEQUENCE_MODES}.")
  direction = jnp.where(jax.random.bernoulli(key, 0.5, (x.shape[0],)), 1, -1)
  steps = jnp.arange(length)
  if mode == "move":
    def one(img, d):
      return jax.vmap(lambda t: jnp.roll(img, d * t, axis=1))(steps)
  else:
    step_rad = math.radians(rotation_deg)

    def one(img, d):
      return jax.vmap(lambda t: _rotate(img, d * t * step_rad, fill))(steps)
  return jax.vmap(one)(x, direction)


class JumpTerms(NamedTuple):
  """Per-sequence terms of the TD-VAE jump objective (seed 003 eq. 14), each [B].

  Attributes:
    objective: J, the sum below (to maximise).
    log_px: log p_D(x_t2 | z_t2).
    log_pb_t1: log p_B(z_t1 | b_t1).
    log_pt: log p_T(z_t2 | z_t1).
    log_pb_t2: log p_B(z_t2 | b_t2).
    log_qs: log q_S(z_t1 | z_t2, b_t1, b_t2).
    t1, t2: the sampled time indices (zero-based frame indices, int32).
  """
  objective: Array
  log_px: Array
  log_pb_t1: Array
  log_pt: Array
  log_pb_t2: Array
  log_qs: Array
  t1: Array
  t2: Array


def sample_jump_times(key: Array, batch: int, length: int, max_jump: int) -> tuple[Array, Array]:
  """``t1 ~ U{0..T-2}``, ``t2 = t1 + d``, ``d ~ U{1..min(max_jump, T-1-t1)}`` (zero-based)."""
  k1, k2 = jax.random.split(key)
  t1 = jax.random.randint(k1, (batch,), 0, length - 1)
  hi = jnp.minimum(max_jump, length - 1 - t1)
  u = jax.random.uniform(k2, (batch,))
  d = 1 + jnp.floor(u * hi).astype(jnp.int32)
  return t1.astype(jnp.int32), (t1 + d).astype(jnp.int32)


def jump_objective(key: Array, x: Array, beliefs: Array, belief_fn: GaussianFn,
                   smoothing_fn: GaussianFn, transition_fn: GaussianFn,
                   log_likelihood_fn: Callable[[Array, Array], Array],
                   max_jump: int = 4) -> JumpTerms:
  """The TD-VAE jump objective J_{t1,t2} of seed 003 eq. 14 (Gregor et al. 2019, eq. 8).

  One (t1, t2) pair is sampled per sequence; z_t2 is drawn from the belief at t2 and z_t1
  from the smoothing posterior, both reparameterized, and the five log-densities are
  evaluated at those samples.

  Args:
    key: PRNG key.
    x: [B, T, *event] sequences.
    beliefs: [B, T, H_b] belief states b_t (b_t has seen frames 0..t).
    belief_fn: ``b [B, H_b] -> (mean, logvar) [B, D]`` of p_B(z | b).
    smoothing_fn: ``(z_t2, b_t1, b_t2) -> (mean, logvar)`` of q_S(z_t1 | z_t2, b_t1, b_t2).
    transition_fn: ``(z_t1, dt [B] float) -> (mean, logvar)`` of p_T(z_t2 | z_t1).
    log_likelihood_fn: ``(x_t2 [B, *event], z_t2 [B, D]) -> log p_D(x_t2 | z_t2) [B]``.
    max_jump: largest ``t2 - t1``.

  Returns:
    :class:`JumpTerms`; the loss is ``-objective.mean()``.
  """
  b, length = x.shape[0], x.shape[1]
  if length < 2:
    raise ValueError(f"jump_objective: sequences need at least 2 frames, got T={length}.")
  k_t, k2, k1 = jax.random.split(key, 3)
  t1, t2 = sample_jump_times(k_t, b, length, max_jump)
  rows = jnp.arange(b)
  b_t1, b_t2 = beliefs[rows, t1], beliefs[rows, t2]
  x_t2 = x[rows, t2]

  # 1. z_t2 from the belief at t2 (the filtering posterior).
  m_b2, lv_b2 = belief_fn(b_t2)
  z2 = vae_lib.reparameterize(k2, m_b2, lv_b2)
  # 2. z_t1 from the smoothing posterior, given z_t2 and both beliefs.
  m_s, lv_s = smoothing_fn(z2, b_t1, b_t2)
  z1 = vae_lib.reparameterize(k1, m_s, lv_s)
  # 3. The five terms of eq. 14.
  m_b1, lv_b1 = belief_fn(b_t1)
  m_t, lv_t = transition_fn(z1, (t2 - t1).astype(x.dtype))
  log_px = log_likelihood_fn(x_t2, z2)
  log_pb_t1 = vae_lib.diag_gaussian_log_prob(z1, m_b1, lv_b1)
  log_pt = vae_lib.diag_gaussian_log_prob(z2, m_t, lv_t)
  log_pb_t2 = vae_lib.diag_gaussian_log_prob(z2, m_b2, lv_b2)
  log_qs = vae_lib.diag_gaussian_log_prob(z1, m_s, lv_s)
  objective = log_px + log_pb_t1 + log_pt - log_pb_t2 - log_qs
  return JumpTerms(objective, log_px, log_pb_t1, log_pt, log_pb_t2, log_qs, t1, t2)


def rollout(key: Array, belief: Array, belief_fn: GaussianFn, transition_fn: GaussianFn,
            num_steps: int, jump: int = 1, sample: bool = True) -> Array:
  """Imagined future latents: ``z ~ p_B(. | b_t)``, then ``num_steps`` transitions.

  One ``lax.scan``; each step jumps ``jump`` frames (``p_T(z_{t+jump} | z_t)``), Gregor et al.
  2019, Sec. 5 ("jumpy" rollouts). With ``sample=False`` the means are used.

  Args:
    key: PRNG key.
    belief: [B, H_b] belief after the observed frames.
    belief_fn: ``b -> (mean, logvar)`` of p_B.
    transition_fn: ``(z, dt) -> (mean, logvar)`` of p_T.
    num_steps: transitions to take.
    jump: frames per transition.
    sample: sample (True) or follow the means.

  Returns:
    [num_steps, B, D] latents z_{t+jump}, ..., z_{t+num_steps*jump}.
  """
  k0, key = jax.random.split(key)
  m, lv = belief_fn(belief)
  z = vae_lib.reparameterize(k0, m, lv) if sample else m
  dt = jnp.full(belief.shape[:1], float(jump), z.dtype)

  def body(z, k):
    m, lv = transition_fn(z, dt)
    z = vae_lib.reparameterize(k, m, lv) if sample else m
    return z, z

  _, zs = jax.lax.scan(body, z, jax.random.split(key, num_steps))
  return zs
