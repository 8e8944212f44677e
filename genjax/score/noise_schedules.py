"""Continuous-time VP noise schedules ``q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I)`` for DPM-Solver.

Lu et al. 2022 (DPM-Solver), Sec. 2 and Appendix (the official ``NoiseScheduleVP`` of
``dpm_solver_jax.py`` / ``dpm_solver_pytorch.py``): a VP schedule is ``log alpha_t`` on
``t in [0, T]`` with ``sigma_t = sqrt(1 - alpha_t^2)``; the half log-SNR
``lambda_t = log(alpha_t / sigma_t)`` is strictly decreasing and has an inverse.

Three kinds:
  * ``VPNoiseSchedule.discrete(sched)``: a discrete-time DDPM (``genjax.diffusion``) of N steps.
    Zero-based step ``n`` (the paper's step ``n+1``) sits at continuous time
    ``t_n = (n + 1) / N``, with ``log alpha_{t_n} = 0.5 log abar_n``; ``log alpha_t`` is
    piecewise linear in ``t`` between these knots (and linearly extrapolated beyond them, as
    the reference). Sampling runs from ``T = 1`` to ``t_end = 1 / N`` (step ``n = 0``).
  * ``VPNoiseSchedule.linear(beta_min=0.1, beta_max=20)``: the VP SDE of Song et al. 2021
    (``beta(t) = beta_min + t (beta_max - beta_min)``), ``log alpha_t =
    -t^2 (beta_max - beta_min) / 4 - t beta_min / 2``.
  * ``VPNoiseSchedule.cosine(s=0.008)``: the continuous cosine schedule of Nichol & Dhariwal
    2021 (eq. 17; seed eq. 34), ``log alpha_t = log cos((t + s)/(1 + s) pi/2) - log cos(s/(1 + s)
    pi/2)``, with ``T = 0.9946`` (the reference's choice, to avoid ``alpha_T -> 0``).

All methods are pure functions of ``t`` (any shape), jit/vmap/grad-able; the schedule is a
``flax.struct.dataclass`` (arrays are pytree leaves, the rest static), so it passes through
``jit``.

Example:
  >>> ns = VPNoiseSchedule.discrete(get_schedule("linear", 1000))
  >>> lam = ns.marginal_lambda(jnp.array([1e-3, 0.5, 1.0]))
  >>> ns.inverse_lambda(lam)   # ~ [1e-3, 0.5, 1.0]
"""

from __future__ import annotations

import math
from typing import Optional

import flax
import jax
import jax.numpy as jnp

__all__ = ["NOISE_SCHEDULE_KINDS", "VPNoiseSchedule", "interpolate"]

NOISE_SCHEDULE_KINDS = ("discrete", "linear", "cosine")


def interpolate(x: jax.Array, xp: jax.Array, fp: jax.Array) -> jax.Array:
  """Piecewise-linear ``f(x)`` through the knots ``(xp, fp)``, extrapolated linearly outside.

  The reference's ``interpolate_fn`` (``xp`` increasing): inside ``[xp[0], xp[-1]]`` it is the
  usual interpolation; beyond either end, the outermost segment is extended. Differentiable.

  Args:
    x: any shape.
    xp: ``[K]`` increasing knots, ``K >= 2``.
    fp: ``[K]`` values.

  Returns:
    ``f(x)``, the shape of ``x``.
  """
  k = xp.shape[0]
  i = jnp.clip(jnp.searchsorted(xp, x, side="right") - 1, 0, k - 2)
  x0, x1 = xp[i], xp[i + 1]
  f0, f1 = fp[i], fp[i + 1]
  return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


@flax.struct.dataclass
class VPNoiseSchedule:
  """A VP noise schedule in continuous time ``t in [0, T]`` (Lu et al. 2022, ``NoiseScheduleVP``).

  Build it with :meth:`discrete`, :meth:`linear` or :meth:`cosine`.

  Attributes:
    t_array: ``[N]`` knots ``t_n = (n + 1) / N`` (discrete only, else None).
    log_alpha_array: ``[N]`` ``0.5 log abar_n`` at the knots (discrete only, else None).
    kind: ``"discrete"``, ``"linear"`` or ``"cosine"`` (static).
    total_N: N, the number of discrete steps (1000 for the continuous kinds; it sets the
      default ``t_end = 1 / N``).
    T: the end time of the forward process (1, or 0.9946 for cosine).
    beta_0, beta_1: the linear VP SDE's ``beta_min``, ``beta_max``.
    cosine_s: the cosine schedule's offset ``s``.
  """

  t_array: Optional[jax.Array]
  log_alpha_array: Optional[jax.Array]
  kind: str = flax.struct.field(pytree_node=False, default="discrete")
  total_N: int = flax.struct.field(pytree_node=False, default=1000)
  T: float = flax.struct.field(pytree_node=False, default=1.0)
  beta_0: float = flax.struct.field(pytree_node=False, default=0.1)
  beta_1: float = flax.struct.field(pytree_node=False, default=20.0)
  cosine_s: float = flax.struct.field(pytree_node=False, default=0.008)

  # -- constructors -----------------------------------------------------------------------------

  @classmethod
  def discrete(cls, sched) -> "VPNoiseSchedule":
    """From a discrete ``genjax.diffusion.DiffusionSchedule`` (or its ``alphas_cumprod [N]``).

    ``t_n = (n + 1) / N`` and ``log alpha_{t_n} = 0.5 log abar_n`` for zero-based ``n``
    (the reference's ``NoiseScheduleVP('discrete', alphas_cumprod=...)``). The arrays keep the
    schedule's dtype.
    """
    abar = getattr(sched, "alphas_cumprod", sched)
    abar = jnp.asarray(abar)
    if abar.ndim != 1 or abar.shape[0] < 2:
      raise ValueError(f"A discrete VP schedule needs alphas_cumprod of shape [N], N >= 2; got "
                       f"{abar.shape}.")
    n = abar.shape[0]
    t_array = (jnp.arange(1, n + 1, dtype=abar.dtype) / n).astype(abar.dtype)
    return cls(t_array=t_array, log_alpha_array=0.5 * jnp.log(abar), kind="discrete",
               total_N=int(n), T=1.0)

  @classmethod
  def linear(cls, beta_min: float = 0.1, beta_max: float = 20.0) -> "VPNoiseSchedule":
    """The VP SDE's linear ``beta(t)`` (Song et al. 2021; score_sde's VPSDE defaults)."""
    if not 0 <= beta_min < beta_max:
      raise ValueError(f"Need 0 <= beta_min < beta_max, got {beta_min}, {beta_max}.")
    return cls(t_array=None, log_alpha_array=None, kind="linear", total_N=1000, T=1.0,
               beta_0=float(beta_min), beta_1=float(beta_max))

  @classmethod
  def cosine(cls, s: float = 0.008) -> "VPNoiseSchedule":
    """The continuous cosine schedule (Nichol & Dhariwal 2021, eq. 17), ``T = 0.9946``."""
    return cls(t_array=None, log_alpha_array=None, kind="cosine", total_N=1000, T=0.9946,
               cosine_s=float(s))

  # -- marginals --------------------------------------------------------------------------------

  @property
  def eps(self) -> float:
    """The default end time of sampling, ``1 / N`` (discrete step ``n = 0``)."""
    return 1.0 / self.total_N

  def marginal_log_mean_coeff(self, t: jax.Array) -> jax.Array:
    """``log alpha_t`` (the log of the mean coefficient of ``q(x_t | x_0)``)."""
    t = jnp.asarray(t)
    if self.kind == "discrete":
      return interpolate(t, self.t_array, self.log_alpha_array)
    if self.kind == "linear":
      return -0.25 * t**2 * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0
    s = self.cosine_s
    log_alpha_0 = math.log(math.cos(s / (1.0 + s) * math.pi / 2.0))
    return jnp.log(jnp.cos((t + s) / (1.0 + s) * math.pi / 2.0)) - log_alpha_0

  def marginal_alpha(self, t: jax.Array) -> jax.Array:
    """``alpha_t``."""
    return jnp.exp(self.marginal_log_mean_coeff(t))

  def marginal_std(self, t: jax.Array) -> jax.Array:
    """``sigma_t = sqrt(1 - alpha_t^2)`` (computed with ``expm1`` for small ``t``)."""
    return jnp.sqrt(-jnp.expm1(2.0 * self.marginal_log_mean_coeff(t)))

  def marginal_lambda(self, t: jax.Array) -> jax.Array:
    """The half log-SNR ``lambda_t = log alpha_t - log sigma_t`` (Lu et al. 2022, Sec. 3.1)."""
    log_alpha = self.marginal_log_mean_coeff(t)
    return log_alpha - 0.5 * jnp.log(-jnp.expm1(2.0 * log_alpha))

  def inverse_lambda(self, lamb: jax.Array) -> jax.Array:
    """``t`` with ``lambda_t = lamb`` (``t_lambda``, Lu et al. 2022, Sec. 3.1), any shape.

    From ``log alpha = -0.5 log(1 + exp(-2 lambda))``: closed forms for ``linear`` and
    ``cosine``; for ``discrete``, the piecewise-linear inverse of ``log alpha_t``.
    """
    lamb = jnp.asarray(lamb)
    log_alpha = -0.5 * jnp.logaddexp(jnp.zeros_like(lamb), -2.0 * lamb)
    if self.kind == "linear":
      tmp = 2.0 * (self.beta_1 - self.beta_0) * jnp.logaddexp(-2.0 * lamb, jnp.zeros_like(lamb))
      delta = self.beta_0**2 + tmp
      return tmp / (jnp.sqrt(delta) + self.beta_0) / (self.beta_1 - self.beta_0)
    if self.kind == "discrete":
      return interpolate(log_alpha, jnp.flip(self.log_alpha_array), jnp.flip(self.t_array))
    s = self.cosine_s
    log_alpha_0 = math.log(math.cos(s / (1.0 + s) * math.pi / 2.0))
    return jnp.arccos(jnp.exp(log_alpha + log_alpha_0)) * 2.0 * (1.0 + s) / math.pi - s

  # -- discrete-model time input ----------------------------------------------------------------

  def discrete_time_input(self, t: jax.Array, scale: Optional[float] = None) -> jax.Array:
    """The time a discrete-time network expects at continuous ``t``: ``(t - 1/N) * scale``.

    With the default ``scale = N`` this is the zero-based step index ``n`` (``t_n -> n``, and
    fractional ``n`` between the knots), which is what genjax's DDPM networks were trained on.
    The reference (``model_wrapper``) uses ``scale = 1000``, i.e. improved-diffusion's
    ``rescale_timesteps``; the two agree at ``N = 1000``.
    """
    scale = float(self.total_N if scale is None else scale)
    return (jnp.asarray(t) - 1.0 / self.total_N) * scale
