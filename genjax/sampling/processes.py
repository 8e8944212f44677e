"""Continuous-time Gaussian noise processes ``x_t = alpha_t x_0 + sigma_t eps`` behind one interface.

Every process here (and the discrete :class:`~genjax.sampling.schedules.DiffusionSchedule`) has
the methods of score_sde's ``SDE`` class (``sde_lib.py``; DESIGN.md item 3) and the marginal
coefficients that exponential-integrator samplers need (DPM-Solver's ``NoiseScheduleVP``):

  * ``marginal_log_mean_coeff(t)`` (``log alpha_t``), ``marginal_alpha(t)``, ``marginal_std(t)``
    (``sigma_t``), ``marginal_lambda(t)`` (the half log-SNR ``log(alpha_t / sigma_t)``, Lu et al.
    2022 Sec. 3.1) and its inverse ``inverse_lambda(lam)``;
  * ``marginal_prob(x0, t) -> (mean [B, ...], std [B])`` of ``p_0t(x_t | x_0)``;
  * ``sde(x, t) -> (drift [B, ...], diffusion g(t) [B])`` of ``dx = f dt + g dw``;
  * ``discretize(x, t) -> (f, G)`` with ``x_{i+1} = x_i + f + G z`` on the N-step chain;
  * ``reverse(score_fn, probability_flow) -> ReverseSDE``: ``dx = [f - g^2 s] dt + g dw_bar``,
    or the probability-flow ODE ``dx = [f - g^2 s / 2] dt`` (Song et al. 2021, eq. 6 and 13;
    seed 001 section III.C);
  * ``prior_sampling(key, shape)``, ``prior_logp(z) -> [B]``, ``T``, ``N`` and
    ``sampling_eps`` (the smallest time a sampler visits by default).

The processes:

  * :class:`VPSDE`: the variance-preserving SDE, DDPM's continuous limit (Song et al. eq. 11);
  * :class:`SubVPSDE`: the sub-VP SDE (eq. 12);
  * :class:`VESDE`: the variance-exploding SDE, SMLD / NCSN's limit (eq. 9);
  * :class:`CosineVPSDE`: Nichol & Dhariwal's cosine schedule in continuous time;
  * :class:`DiscreteVPSDE`: a discrete DDPM schedule in continuous time (``log alpha_t``
    piecewise linear between the steps), the view DPM-Solver takes of a discrete model;
  * :class:`EDMProcess`: Karras et al.'s ``x_sigma = x_0 + sigma n`` with time ``t = sigma``
    (EDM, NCSN's noise levels, consistency models).

All are frozen ``flax.struct.dataclass`` es: Python-number fields are static, arrays are pytree
leaves, so a process passes through ``jit`` as an argument or a closure. ``t`` is a float array
(``[B]`` or a scalar) and every method returns the dtype of ``t`` (float64 under
``jax_enable_x64``). Time runs over ``[0, T]``; samplers use ``[eps, T]``.

Example:
  >>> sde = VPSDE()                      # beta_min 0.1, beta_max 20, N 1000 (score_sde)
  >>> mean, std = sde.marginal_prob(x0, jnp.full((B,), 0.5))
  >>> xt = mean + bcast(std, x0) * jax.random.normal(key, x0.shape)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Union

import flax
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CosineVPSDE", "DiscreteVPSDE", "EDMProcess", "ReverseSDE", "SDE_NAMES", "SubVPSDE",
           "VESDE", "VPSDE", "bcast", "gaussian_logp", "get_sde", "interpolate"]

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]
SDE_NAMES = ("vpsde", "subvpsde", "vesde")


def bcast(v, x: jax.Array) -> jax.Array:
  """Reshapes a per-example ``v`` ``[B]`` (or a scalar) to broadcast against ``x`` ``[B, ...]``."""
  v = jnp.asarray(v)
  return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def gaussian_logp(z: jax.Array, std: Union[float, jax.Array] = 1.0) -> jax.Array:
  """``log N(z; 0, std^2 I)`` of each example, summed over its dimensions: ``[B, ...] -> [B]``."""
  d = math.prod(z.shape[1:])
  z = z.reshape(z.shape[0], -1)
  return -0.5 * d * jnp.log(2 * jnp.pi * std**2) - 0.5 * jnp.sum(z**2, axis=-1) / std**2


def interpolate(x: jax.Array, xp: jax.Array, fp: jax.Array) -> jax.Array:
  """Piecewise-linear ``f(x)`` through the knots ``(xp, fp)``, extrapolated linearly outside.

  DPM-Solver's ``interpolate_fn`` (``xp`` increasing): inside ``[xp[0], xp[-1]]`` the usual
  interpolation; beyond either end the outermost segment is extended. Differentiable.
  """
  k = xp.shape[0]
  i = jnp.clip(jnp.searchsorted(xp, x, side="right") - 1, 0, k - 2)
  x0, x1 = xp[i], xp[i + 1]
  f0, f1 = fp[i], fp[i + 1]
  return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


def _float(t) -> jax.Array:
  """``t`` as a float array (its own float dtype, or the default float for Python numbers)."""
  t = jnp.asarray(t)
  return t if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(jnp.result_type(float))


def _static(default):
  return flax.struct.field(pytree_node=False, default=default)


class _Process:
  """Methods every continuous process shares. Subclasses define ``marginal_log_mean_coeff``
  and ``marginal_std`` (and usually closed forms of ``sde`` and ``inverse_lambda``)."""

  T = 1.0

  # -- marginals --------------------------------------------------------------------------------

  def marginal_alpha(self, t):
    """``alpha_t``, the mean coefficient of ``p_0t``."""
    return jnp.exp(self.marginal_log_mean_coeff(t))

  def marginal_lambda(self, t):
    """The half log-SNR ``lambda_t = log alpha_t - log sigma_t`` (Lu et al. 2022, Sec. 3.1)."""
    return self.marginal_log_mean_coeff(t) - jnp.log(self.marginal_std(t))

  def marginal_prob(self, x, t):
    """Mean ``alpha_t x_0`` ``[B, ...]`` and std ``sigma_t`` (shape of ``t``) of ``p_0t``."""
    return bcast(self.marginal_alpha(t), x) * x, self.marginal_std(t)

  @property
  def prior_std(self):
    return 1.0

  def prior_sampling(self, key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """A draw from the prior ``p_T`` (``N(0, prior_std^2 I)``)."""
    return self.prior_std * jax.random.normal(key, tuple(shape), dtype)

  def prior_logp(self, z: jax.Array) -> jax.Array:
    """``log p_T(z)`` of each example: ``[B, ...] -> [B]``."""
    return gaussian_logp(z, self.prior_std)

  # -- dynamics ---------------------------------------------------------------------------------

  def sde(self, x, t):
    """``dx = f dt + g dw`` with the marginals of this process: ``f = (d log alpha/dt) x`` and
    ``g^2 = d sigma^2/dt - 2 (d log alpha/dt) sigma^2`` (Kingma et al. 2021, App. A; derived
    with ``jax.jvp`` where no closed form is given)."""
    t = _float(t)
    one = jnp.ones_like(t)
    dla = jax.jvp(self.marginal_log_mean_coeff, (t,), (one,))[1]
    s, ds = jax.jvp(self.marginal_std, (t,), (one,))
    g2 = 2.0 * s * ds - 2.0 * dla * s**2
    return bcast(dla, x) * x, jnp.sqrt(jnp.maximum(g2, 0.0))

  def timestep(self, t) -> jax.Array:
    """Zero-based index ``i = int(t (N - 1) / T)`` of the N-step chain ``t`` falls on
    (score_sde's convention; ``t = T`` is step ``N - 1``, ``t ~ 0`` is step 0)."""
    return (_float(t) * (self.N - 1) / self.T).astype(jnp.int32)

  def discretize(self, x, t):
    """The exact transition from ``s = max(t - T/N, 0)`` to ``t`` of this process:
    ``x_t = (alpha_t / alpha_s) x_s + sqrt(sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2) z``,
    so ``f = (alpha_t / alpha_s - 1) x`` and ``G = sqrt(...)``. VP, sub-VP and VE override it
    with score_sde's chains."""
    t = _float(t)
    s = jnp.maximum(t - self.T / self.N, 0.0)
    ratio = jnp.exp(self.marginal_log_mean_coeff(t) - self.marginal_log_mean_coeff(s))
    var = self.marginal_std(t) ** 2 - ratio**2 * self.marginal_std(s) ** 2
    return bcast(ratio - 1.0, x) * x, jnp.sqrt(jnp.maximum(var, 0.0))

  def with_steps(self, n: int):
    """The same process discretized with ``n`` steps (samplers set their step count this way)."""
    if isinstance(n, bool) or int(n) != n or n < 1:
      raise ValueError(f"The number of steps must be a positive integer, got {n!r}.")
    return self.replace(N=int(n))

  def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
    """The reverse-time SDE (or, with ``probability_flow``, the probability-flow ODE).

    Args:
      score_fn: ``score_fn(x [B, ...], t [B]) -> grad_x log p_t(x)`` ``[B, ...]``.
      probability_flow: build the ODE ``dx = [f - g^2 s / 2] dt`` (Song et al. eq. 13).
    """
    return ReverseSDE(self, score_fn, bool(probability_flow))


# ------------------------------------------------------------------------------------------------
# Variance-preserving processes.
# ------------------------------------------------------------------------------------------------


class _VP(_Process):
  """``sigma_t = sqrt(1 - alpha_t^2)``: everything follows from ``log alpha_t``."""

  def marginal_std(self, t):
    """``sigma_t = sqrt(1 - alpha_t^2)`` (``expm1`` keeps digits for small ``t``)."""
    return jnp.sqrt(-jnp.expm1(2.0 * self.marginal_log_mean_coeff(t)))

  def marginal_lambda(self, t):
    log_alpha = self.marginal_log_mean_coeff(t)
    return log_alpha - 0.5 * jnp.log(-jnp.expm1(2.0 * log_alpha))

  @staticmethod
  def _log_alpha_of_lambda(lam):
    """``log alpha = -0.5 log(1 + exp(-2 lambda))`` for a VP process."""
    lam = _float(lam)
    return -0.5 * jnp.logaddexp(jnp.zeros_like(lam), -2.0 * lam)


@flax.struct.dataclass
class VPSDE(_VP):
  """Variance-preserving SDE, the continuous limit of DDPM (Song et al. 2021, eq. 11).

  ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``, ``beta(t) = beta_min + t (beta_max - beta_min)``.
  Marginal: ``N(alpha(t) x0, (1 - alpha(t)^2) I)`` with
  ``log alpha(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2`` (eq. 29).
  The N-step chain has DDPM's betas ``beta_i = beta(i / (N - 1)) / N``, i.e.
  ``linspace(beta_min/N, beta_max/N, N)`` (1e-4..0.02 for the defaults: Ho et al.'s schedule),
  clipped at 0.999 for very short chains.

  Attributes:
    beta_min: beta(0), 0.1 in score_sde.
    beta_max: beta(1), 20 in score_sde.
    N: steps of the discretization (score_sde's ``num_scales``).
    sampling_eps: the samplers' default last time (score_sde: 1e-3).
  """
  kind = "vp"  # the catalog's name for this process
  beta_min: float = _static(0.1)
  beta_max: float = _static(20.0)
  N: int = _static(1000)
  sampling_eps: float = _static(1e-3)

  def beta(self, t):
    return self.beta_min + _float(t) * (self.beta_max - self.beta_min)

  def marginal_log_mean_coeff(self, t):
    """``log alpha(t) = -int_0^t beta / 2``."""
    t = _float(t)
    return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  log_mean_coeff = marginal_log_mean_coeff

  def inverse_lambda(self, lam):
    """``t`` with ``lambda_t = lam``: the positive root of the quadratic ``log alpha(t)``
    (DPM-Solver's closed form for the linear schedule)."""
    lam = _float(lam)
    tmp = 2.0 * (self.beta_max - self.beta_min) * jnp.logaddexp(-2.0 * lam, jnp.zeros_like(lam))
    delta = self.beta_min**2 + tmp
    return tmp / (jnp.sqrt(delta) + self.beta_min) / (self.beta_max - self.beta_min)

  def sde(self, x, t):
    beta_t = self.beta(t)
    return -0.5 * bcast(beta_t, x) * x, jnp.sqrt(beta_t)

  @property
  def discrete_betas(self) -> np.ndarray:
    """DDPM's ``beta_i``, float64 ``[N]``; zero-based ``i`` is the paper's step ``i + 1``."""
    return np.minimum(np.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N), 0.999)

  def _discrete_beta(self, t):
    """``beta_i = beta(i / (N - 1)) / N`` in ``t``'s dtype, clipped at 0.999: a chain of fewer
    than ``beta_max`` steps (20 for the defaults) would otherwise have ``beta_i >= 1``."""
    t = _float(t)
    i = self.timestep(t).astype(t.dtype)
    beta = (self.beta_min + i / max(self.N - 1, 1) * (self.beta_max - self.beta_min)) / self.N
    return jnp.minimum(beta, 0.999)

  def discrete_alpha(self, t):
    """``1 - beta_i`` of the chain step that ``t`` falls on (used by the Langevin corrector)."""
    return 1.0 - self._discrete_beta(t)

  def discretize(self, x, t):
    """DDPM's forward step ``x_{i+1} = sqrt(1 - beta_i) x_i + sqrt(beta_i) z`` (Ho et al. eq. 2):
    ``f = (sqrt(1 - beta_i) - 1) x``, ``G = sqrt(beta_i)``, ``i = timestep(t)``. ``sqrt(1 - b) - 1``
    is computed as ``-b / (1 + sqrt(1 - b))`` so that it keeps its digits for small ``b``."""
    beta = self._discrete_beta(t)
    return bcast(-beta / (1.0 + jnp.sqrt(1.0 - beta)), x) * x, jnp.sqrt(beta)

  def discrete_schedule(self):
    """The N-step DDPM chain of this SDE and the continuous time of each of its steps.

    Returns:
      ``(DiffusionSchedule of discrete_betas, times [N])``: ``times[i]`` is the ``t`` with
      ``alpha(t)^2 = abar_i`` (inverse of eq. 29), at which a network trained on this SDE is
      called for step ``i`` of the chain.
    """
    from genjax.sampling.schedules import make_schedule
    betas = self.discrete_betas
    log_abar = np.cumsum(np.log1p(-betas))
    b0, b1 = self.beta_min, self.beta_max
    times = (-b0 + np.sqrt(b0**2 - 2.0 * (b1 - b0) * log_abar)) / (b1 - b0)
    return make_schedule(betas), jnp.asarray(times, jnp.float32)


@flax.struct.dataclass
class SubVPSDE(_Process):
  """The sub-VP SDE (Song et al. 2021, eq. 12), whose variance stays below the VP one.

  ``dx = -beta(t) x / 2 dt + sqrt(beta(t) (1 - exp(-2 int_0^t beta))) dw``. Marginal:
  ``N(alpha(t) x0, (1 - alpha(t)^2)^2 I)`` with VP's ``alpha(t)`` (eq. 30). Discretized by
  Euler-Maruyama (there is no classical chain it reduces to).
  """
  kind = "subvp"  # the catalog's name for this process
  beta_min: float = _static(0.1)
  beta_max: float = _static(20.0)
  N: int = _static(1000)
  sampling_eps: float = _static(1e-3)

  beta = VPSDE.beta
  marginal_log_mean_coeff = VPSDE.marginal_log_mean_coeff
  log_mean_coeff = VPSDE.marginal_log_mean_coeff
  _discrete_beta = VPSDE._discrete_beta
  discrete_alpha = VPSDE.discrete_alpha

  def marginal_std(self, t):
    """``1 - alpha(t)^2``."""
    return -jnp.expm1(2.0 * self.marginal_log_mean_coeff(t))

  def inverse_lambda(self, lam):
    """``alpha / (1 - alpha^2) = e^lam`` gives ``alpha = (sqrt(1 + 4 e^{2 lam}) - 1) / (2 e^lam)``
    (written as ``2 e^lam / (1 + sqrt(1 + 4 e^{2 lam}))`` to avoid cancellation), then VP's ``t``
    of ``log alpha``."""
    lam = _float(lam)
    e = jnp.exp(lam)
    log_alpha = jnp.log(2.0 * e) - jnp.log1p(jnp.sqrt(1.0 + 4.0 * e**2))
    # Invert log alpha(t) = -t^2 (b1 - b0)/4 - t b0/2.
    b0, b1 = self.beta_min, self.beta_max
    return (-b0 + jnp.sqrt(b0**2 - 4.0 * (b1 - b0) * log_alpha)) / (b1 - b0)

  def sde(self, x, t):
    beta_t = self.beta(t)
    discount = -jnp.expm1(4.0 * self.marginal_log_mean_coeff(t))  # 1 - exp(-2 int beta)
    return -0.5 * bcast(beta_t, x) * x, jnp.sqrt(beta_t * discount)

  def discretize(self, x, t):
    """Euler-Maruyama: ``f = f(x, t) / N``, ``G = g(t) / sqrt(N)`` (score_sde's default)."""
    dt = 1.0 / self.N
    drift, diffusion = self.sde(x, t)
    return drift * dt, diffusion * math.sqrt(dt)


@flax.struct.dataclass
class CosineVPSDE(_VP):
  """The cosine schedule of Nichol & Dhariwal 2021 (eq. 17; seed eq. 34) in continuous time.

  ``log alpha_t = log cos((t + s)/(1 + s) pi/2) - log cos(s/(1 + s) pi/2)``, with ``T = 0.9946``
  (DPM-Solver's choice, to keep ``alpha_T`` away from 0).
  """
  kind = "cosine"  # the catalog's name for this process
  s: float = _static(0.008)
  N: int = _static(1000)
  sampling_eps: float = _static(1e-3)
  T: float = _static(0.9946)

  def marginal_log_mean_coeff(self, t):
    t = _float(t)
    s = self.s
    log_alpha_0 = math.log(math.cos(s / (1.0 + s) * math.pi / 2.0))
    return jnp.log(jnp.cos((t + s) / (1.0 + s) * math.pi / 2.0)) - log_alpha_0

  def inverse_lambda(self, lam):
    s = self.s
    log_alpha_0 = math.log(math.cos(s / (1.0 + s) * math.pi / 2.0))
    log_alpha = self._log_alpha_of_lambda(lam)
    return jnp.arccos(jnp.exp(log_alpha + log_alpha_0)) * 2.0 * (1.0 + s) / math.pi - s


@flax.struct.dataclass
class DiscreteVPSDE(_VP):
  """A discrete DDPM schedule of N steps in continuous time (DPM-Solver's ``NoiseScheduleVP(
  'discrete')``): zero-based step ``n`` (the paper's step ``n+1``) sits at ``t_n = (n + 1)/N``
  with ``log alpha_{t_n} = 0.5 log abar_n``; ``log alpha_t`` is piecewise linear in ``t``
  between the knots, reaches the clean data (``log alpha = 0``) at ``t = 0`` and is extended
  linearly beyond ``t = 1``. Build it with
  :meth:`genjax.sampling.schedules.DiffusionSchedule.continuous`.

  A network trained on the discrete steps is called at the (fractional) step
  :meth:`discrete_time_input` ``(t - 1/N) N``; samplers stop at the first step, ``t = 1/N``.

  Attributes:
    t_array: ``[T_steps]`` knots ``(n + 1) / T_steps``.
    log_alpha_array: ``[T_steps]`` ``0.5 log abar_n``.
    N: the steps of a sampler's discretization (``with_steps``); the chain's own number of
      steps is :attr:`num_timesteps`.
  """
  kind = "discrete_view"  # the catalog's name for this process
  t_array: jax.Array
  log_alpha_array: jax.Array
  N: int = _static(1000)

  @property
  def num_timesteps(self) -> int:
    """The discrete chain's number of steps (static: an array shape)."""
    return int(self.t_array.shape[0])

  @property
  def sampling_eps(self) -> float:
    """``1 / T_steps``: step 0 of the chain."""
    return 1.0 / self.num_timesteps

  def _knots(self):
    """The knots with the clean data prepended: ``log alpha = 0`` at ``t = 0``, so that the
    exact transition of :meth:`discretize` from the first step reaches clean data."""
    zero = jnp.zeros((1,), self.t_array.dtype)
    return (jnp.concatenate([zero, self.t_array]),
            jnp.concatenate([zero.astype(self.log_alpha_array.dtype), self.log_alpha_array]))

  def marginal_log_mean_coeff(self, t):
    ts, las = self._knots()
    return interpolate(_float(t), ts, las)

  def inverse_lambda(self, lam):
    """The piecewise-linear inverse of ``log alpha_t`` at ``log alpha = -0.5 log(1 + e^{-2 lam})``."""
    log_alpha = self._log_alpha_of_lambda(lam)
    ts, las = self._knots()
    return interpolate(log_alpha, jnp.flip(las), jnp.flip(ts))

  def discrete_time_input(self, t, scale=None):
    """The time a discrete-time network expects at continuous ``t``: ``(t - 1/T_steps) scale``.

    With the default ``scale = T_steps`` this is the zero-based step index ``n`` (``t_n -> n``, and
    fractional ``n`` between the knots), what genjax's DDPM networks are trained on. DPM-Solver's
    reference (``model_wrapper``) uses ``scale = 1000`` (improved-diffusion's
    ``rescale_timesteps``); the two agree at ``N = 1000``.
    """
    n = self.num_timesteps
    scale = float(n if scale is None else scale)
    return (_float(t) - 1.0 / n) * scale

  def alpha_sigma_with_data(self, t):
    """``(alpha_t, sigma_t)`` with ``t <= 0`` the clean data ``(1, 0)`` (a sampler's last step
    and progressive distillation's grid ``i / N`` end there)."""
    t = _float(t)
    safe = jnp.maximum(t, self.sampling_eps)
    clean = t <= 0
    return (jnp.where(clean, 1.0, self.marginal_alpha(safe)).astype(t.dtype),
            jnp.where(clean, 0.0, self.marginal_std(safe)).astype(t.dtype))


# ------------------------------------------------------------------------------------------------
# Variance-exploding processes.
# ------------------------------------------------------------------------------------------------


@flax.struct.dataclass
class VESDE(_Process):
  """Variance-exploding SDE, the continuous limit of SMLD / NCSN (Song et al. 2021, eq. 9).

  ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``,
  ``dx = sigma(t) sqrt(2 log(sigma_max / sigma_min)) dw``. Marginal ``N(x0, sigma(t)^2 I)``
  (score_sde drops the ``sigma_min^2`` that an exact integration from ``t = 0`` subtracts,
  as the paper does). The N-step chain has SMLD's geometric ``sigma_i`` from ``sigma_min`` to
  ``sigma_max`` and ``x_{i+1} = x_i + sqrt(sigma_{i+1}^2 - sigma_i^2) z``.

  Attributes:
    sigma_min: 0.01 in score_sde.
    sigma_max: 50 in score_sde (CIFAR-10; Song & Ermon 2020 pick the largest pairwise
      distance of the data).
    N: steps of the discretization.
    sampling_eps: the samplers' default last time (score_sde: 1e-5).
  """
  kind = "ve"  # the catalog's name for this process
  sigma_min: float = _static(0.01)
  sigma_max: float = _static(50.0)
  N: int = _static(1000)
  sampling_eps: float = _static(1e-5)

  @property
  def prior_std(self):
    return self.sigma_max

  def sigma(self, t):
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** _float(t)

  def t_of_sigma(self, sigma):
    """Inverse of :meth:`sigma`: ``t = log(sigma / sigma_min) / log(sigma_max / sigma_min)``."""
    return jnp.log(_float(sigma) / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)

  def marginal_log_mean_coeff(self, t):
    return jnp.zeros_like(_float(t))

  def marginal_std(self, t):
    return self.sigma(t)

  def marginal_prob(self, x, t):
    return x, self.sigma(t)

  def inverse_lambda(self, lam):
    """``lambda = -log sigma(t)``, so ``t = t_of_sigma(exp(-lam))``."""
    return self.t_of_sigma(jnp.exp(-_float(lam)))

  def sde(self, x, t):
    g = self.sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))
    return jnp.zeros_like(x), g

  @property
  def discrete_sigmas(self) -> np.ndarray:
    """SMLD's ``sigma_i``, increasing, float64 ``[N]``."""
    return np.exp(np.linspace(np.log(self.sigma_min), np.log(self.sigma_max), self.N))

  def discrete_sigma_pair(self, t):
    """``(sigma_i, sigma_{i-1})`` of the chain step ``i = timestep(t)``; ``sigma_{-1} = 0``."""
    t = _float(t)
    i = self.timestep(t).astype(t.dtype)
    log_ratio = math.log(self.sigma_max / self.sigma_min) / max(self.N - 1, 1)
    sigma = self.sigma_min * jnp.exp(i * log_ratio)
    prev = jnp.where(i == 0, 0.0, self.sigma_min * jnp.exp((i - 1) * log_ratio))
    return sigma, prev.astype(t.dtype)

  def discretize(self, x, t):
    """SMLD's step: ``f = 0``, ``G = sqrt(sigma_i^2 - sigma_{i-1}^2)``, ``i = timestep(t)``."""
    sigma, prev = self.discrete_sigma_pair(t)
    return jnp.zeros_like(x), jnp.sqrt(sigma**2 - prev**2)


@flax.struct.dataclass
class EDMProcess(_Process):
  """Karras et al. 2022's ``x_sigma = x_0 + sigma n`` with the noise level as time, ``t = sigma``.

  ``alpha = 1``, ``sigma_t = t``, ``dx = sqrt(2 t) dw`` (``d sigma^2 / dt = 2 t``); the
  probability-flow ODE is ``dx/dsigma = -sigma score = (x - D(x, sigma)) / sigma`` (eq. 3-4).
  EDM, NCSN's noise levels and consistency models live on it. The chain of ``discretize`` is the
  exact transition between N uniform levels.

  Attributes:
    sigma_min: the smallest level (EDM: 0.002), the default last time of a sampler.
    sigma_max: the largest level (EDM: 80), ``T``.
    N: steps of the discretization.
  """
  kind = "edm"  # the catalog's name for this process
  sigma_min: float = _static(0.002)
  sigma_max: float = _static(80.0)
  N: int = _static(1000)

  @property
  def T(self) -> float:
    return self.sigma_max

  @property
  def sampling_eps(self) -> float:
    return self.sigma_min

  @property
  def prior_std(self):
    return self.sigma_max

  def marginal_log_mean_coeff(self, t):
    return jnp.zeros_like(_float(t))

  def marginal_std(self, t):
    return _float(t)

  def marginal_prob(self, x, t):
    return x, _float(t)

  def marginal_lambda(self, t):
    return -jnp.log(_float(t))

  def inverse_lambda(self, lam):
    return jnp.exp(-_float(lam))

  def sde(self, x, t):
    return jnp.zeros_like(x), jnp.sqrt(2.0 * _float(t))

  def noise_label(self, sigma):
    """The noise input genjax's networks see for a level: ``999 (ln sigma - ln sigma_min) /
    ln(sigma_max / sigma_min)``, affine in ``ln sigma`` (EDM's ``c_noise = ln(sigma) / 4`` up to
    an affine map) and on DDPM's ``0..999`` range, which a sinusoidal embedding resolves."""
    return 999.0 * (jnp.log(_float(sigma)) - math.log(self.sigma_min)) / math.log(
        self.sigma_max / self.sigma_min)


@dataclasses.dataclass(frozen=True)
class ReverseSDE:
  """The reverse-time SDE of ``forward`` for a score function (score_sde's ``RSDE``).

  ``sde(x, t)`` gives the drift ``f - g^2 s`` (``f - g^2 s / 2`` for the probability-flow
  ODE) and the diffusion ``g`` (0 for the ODE); time runs backwards, so a solver steps with
  ``dt < 0``. ``discretize`` gives the reverse of the N-step chain, ``x_i = x_{i+1} - f + G z``
  with ``f = f_fwd - G^2 s`` (Song et al. eq. 47, "reverse diffusion").

  Attributes:
    forward: the forward process.
    score_fn: ``score_fn(x [B, ...], t [B]) -> [B, ...]``.
    probability_flow: whether this is the probability-flow ODE.
  """
  forward: object
  score_fn: ScoreFn
  probability_flow: bool = False

  @property
  def N(self):
    return self.forward.N

  @property
  def T(self):
    return self.forward.T

  def sde(self, x, t):
    drift, diffusion = self.forward.sde(x, t)
    w = 0.5 if self.probability_flow else 1.0
    drift = drift - bcast(diffusion**2, x) * self.score_fn(x, t) * w
    return drift, (jnp.zeros_like(diffusion) if self.probability_flow else diffusion)

  def discretize(self, x, t):
    f, G = self.forward.discretize(x, t)
    w = 0.5 if self.probability_flow else 1.0
    rev_f = f - bcast(G**2, x) * self.score_fn(x, t) * w
    return rev_f, (jnp.zeros_like(G) if self.probability_flow else G)


def get_sde(name: str, *, beta_min: float = 0.1, beta_max: float = 20.0,
            sigma_min: float = 0.01, sigma_max: float = 50.0, num_scales: int = 1000,
            sampling_eps=None):
  """Builds ``"vpsde"``, ``"subvpsde"`` or ``"vesde"`` with score_sde's defaults.

  ``sampling_eps`` (the samplers' last time) defaults to 1e-3 for VP / sub-VP and 1e-5 for VE.
  """
  key = name.lower().replace("_", "").replace("-", "")
  extra = {} if sampling_eps is None else {"sampling_eps": float(sampling_eps)}
  if key == "vpsde":
    return VPSDE(beta_min=float(beta_min), beta_max=float(beta_max), N=int(num_scales), **extra)
  if key == "subvpsde":
    return SubVPSDE(beta_min=float(beta_min), beta_max=float(beta_max), N=int(num_scales),
                    **extra)
  if key == "vesde":
    if not 0 < sigma_min < sigma_max:
      raise ValueError(f"VESDE needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}.")
    return VESDE(sigma_min=float(sigma_min), sigma_max=float(sigma_max), N=int(num_scales),
                 **extra)
  raise ValueError(f"Unknown SDE {name!r}; valid: {', '.join(SDE_NAMES)}.")
