"""Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of
Diffusion Models"; seed 003 section 2.4.2), pure functions.

A student learns to do in one DDIM step what its teacher does in two, so each round halves the
number of sampling steps (the student of one round is the teacher of the next). Time is
continuous, ``t in [0, 1]``, with ``z_t = alpha_t x + sigma_t eps``; a discrete DDPM (T steps)
enters through its continuous view :class:`genjax.sampling.processes.DiscreteVPSDE` and is
called at the (fractional) zero-based step ``(t - 1/T) T``, as DPM-Solver does. The N-step grid
is ``t_i = i / N``; ``t_0 = 0`` is the data itself (``alpha = 1, sigma = 0``).

* DDIM in x-prediction form (Song et al. 2021; Salimans & Ho eq. 5):
  ``z_s = alpha_s x^ + sigma_s (z_t - alpha_t x^) / sigma_t``
  (:func:`genjax.sampling.ddim_step`, the step every DDIM sampler takes).
* The distillation target (Algorithm 2): two teacher DDIM steps ``t -> t' = t - 1/(2N) ->
  t'' = t - 1/N`` give ``z_t''``; the x that makes *one* DDIM step from ``z_t`` land there is
  ``x~ = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t)``.
* The loss ``w(lambda_t) || x~ - x^_student(z_t) ||^2`` with the "truncated SNR" weighting
  ``max(alpha_t^2 / sigma_t^2, 1)`` (Sec. 4) or "SNR + 1".
* A student samples with deterministic DDIM on its grid: :func:`genjax.sampling.ddim_sample`
  on the ``DiscreteVPSDE`` with ``num_steps = N`` (the uniform grid from 1 to ``1/N``, then the
  step to clean data).

The paper notes that eps-prediction cannot work at few steps (``x^ = (z - sigma eps^)/alpha``
explodes where ``alpha_t -> 0``); distil x- or v-prediction models (``diffusion.parameterization
= v``).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from genjax.sampling.ancestral import ddim_step
from genjax.sampling.convert import eps_from_x0, prediction_to_eps_x0
from genjax.sampling.processes import DiscreteVPSDE, bcast

Array = jax.Array
X0Fn = Callable[[Array, Array], Array]  # x^(z [B, ...], t [B] continuous) -> [B, ...]

WEIGHTINGS = ("truncated_snr", "snr_plus_one")
__all__ = ["WEIGHTINGS", "distillation_target", "make_x0_fn", "pd_loss"]


def make_x0_fn(model_fn: Callable[[Array, Array], Array], ns: DiscreteVPSDE, prediction: str,
               clip: Optional[tuple[float, float]] = None) -> X0Fn:
  """``x^(z, t)`` of a discrete-time network ``model_fn(z, step)`` predicting eps, x0 or v,
  converted with the continuous ``alpha_t``, ``sigma_t`` (:func:`genjax.sampling.convert.
  prediction_to_eps_x0`: ``x0 = (z - sigma eps) / alpha`` or ``alpha z - sigma v``)."""
  if prediction not in ("eps", "x0", "v"):
    raise ValueError(f"prediction must be eps, x0 or v, got {prediction!r}.")

  def x0_fn(z, t):
    a, s = ns.alpha_sigma_with_data(t)
    out = model_fn(z, ns.discrete_time_input(jnp.maximum(t, ns.sampling_eps)))
    x = prediction_to_eps_x0(out, z, a, s, prediction)[1]
    return x if clip is None else jnp.clip(x, clip[0], clip[1])

  return x0_fn


def _ddim_to(x_hat, z_t, a_t, s_t, a_s, s_s):
  """One deterministic DDIM step from ``t`` to ``s`` given ``x^``."""
  return ddim_step(x_hat, eps_from_x0(z_t, x_hat, a_t, s_t), bcast(a_s, z_t), bcast(s_s, z_t))


def distillation_target(teacher_x0: X0Fn, ns: DiscreteVPSDE, z_t: Array, t: Array,
                        num_student_steps) -> Array:
  """Salimans & Ho 2022, Algorithm 2: ``x~`` from two teacher DDIM steps (``t`` is on the
  student's grid ``i / N``, ``i >= 1``)."""
  n = jnp.asarray(num_student_steps, jnp.float32)
  t1, t2 = t - 0.5 / n, t - 1.0 / n
  (a, s), (a1, s1), (a2, s2) = (ns.alpha_sigma_with_data(tt) for tt in (t, t1, t2))
  z1 = _ddim_to(teacher_x0(z_t, t), z_t, a, s, a1, s1)
  z2 = _ddim_to(teacher_x0(z1, t1), z1, a1, s1, a2, s2)
  ratio = bcast(s2 / s, z_t)
  return (z2 - ratio * z_t) / (bcast(a2, z_t) - ratio * bcast(a, z_t))


def pd_loss(student_x0: X0Fn, teacher_x0: X0Fn, ns: DiscreteVPSDE, x: Array, key: Array,
            num_student_steps: int, weighting: str = "truncated_snr") -> tuple[Array, dict]:
  """The distillation loss ``E_t,eps w(lambda_t) || x~ - x^_student(z_t) ||^2`` (mean over
  pixels), ``t`` uniform on the student's grid ``{1/N, ..., 1}``."""
  if weighting not in WEIGHTINGS:
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
  k_t, k_e = jax.random.split(key)
  b = x.shape[0]
  i = jax.random.randint(k_t, (b,), 1, num_student_steps + 1)
  t = i.astype(jnp.float32) / num_student_steps
  a, s = ns.alpha_sigma_with_data(t)
  z_t = bcast(a, x) * x + bcast(s, x) * jax.random.normal(k_e, x.shape, x.dtype)
  target = jax.lax.stop_gradient(distillation_target(teacher_x0, ns, z_t, t, num_student_steps))
  snr = a ** 2 / s ** 2
  w = jnp.maximum(snr, 1.0) if weighting == "truncated_snr" else snr + 1.0
  err = jnp.mean((student_x0(z_t, t) - target) ** 2, axis=tuple(range(1, x.ndim)))
  loss = jnp.mean(w * err)
  return loss, {"loss": loss, "x_mse": jnp.mean(err)}
