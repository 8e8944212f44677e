"""Forward noising SDEs of Song et al. 2021 ("Score-Based Generative Modeling through SDEs").

``dx = f(x, t) dt + g(t) dw`` on continuous time ``t in [0, T]`` (T = 1; samplers and losses
use ``[eps, 1]``), with the interface of score_sde's ``sde_lib.py`` (DESIGN.md item 3):

  * ``sde(x, t) -> (drift [B, ...], diffusion g(t) [B])``
  * ``marginal_prob(x0, t) -> (mean [B, ...], std [B])`` of ``p_0t(x(t) | x(0))``
  * ``prior_sampling(key, shape)``, ``prior_logp(z) -> [B]``
  * ``discretize(x, t) -> (f [B, ...], G [B])`` with ``x_{i+1} = x_i + f_i(x_i) + G_i z_i``
    on the N-step chain: DDPM's for VP, SMLD's (NCSN) for VE, Euler-Maruyama otherwise
  * ``reverse(score_fn, probability_flow) -> ReverseSDE``: the reverse-time SDE
    ``dx = [f - g^2 score] dt + g dw_bar`` or the probability-flow ODE
    ``dx = [f - g^2 score / 2] dt`` (seed 001 section III.C; Song et al. eq. 6 and 13).

The SDEs are frozen ``flax.struct.dataclass`` es whose fields are all static (hashable
Python numbers), so they pass through ``jit`` as arguments or closures. ``t`` is a float
array ``[B]`` (or a scalar), ``x`` is ``[B, ...]`` (any trailing shape, e.g. NHWC).

Example:
  >>> sde = VPSDE()                      # beta_min 0.1, beta_max 20, N 1000 (score_sde)
  >>> mean, std = sde.marginal_prob(x0, jnp.full((B,), 0.5))
  >>> xt = mean + std[:, None, None, None] * jax.random.normal(key, x0.shape)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Union

import flax
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["SDE_NAMES", "ReverseSDE", "VESDE", "VPSDE", "SubVPSDE", "bcast", "get_sde",
           "gaussian_logp"]

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]
SDE_NAMES = ("vpsde", "subvpsde", "vesde")


def bcast(v: jax.Array, x: jax.Array) -> jax.Array:
  """Reshapes a per-example ``v`` ``[B]`` (or scalar) to broadcast against ``x`` ``[B, ...]``."""
  v = jnp.asarray(v)
  return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def gaussian_logp(z: jax.Array, std: Union[float, jax.Array] = 1.0) -> jax.Array:
  """``log N(z; 0, std^2 I)`` of each example, summed over its dimensions: ``[B, ...] -> [B]``."""
  d = math.prod(z.shape[1:])
  z = z.reshape(z.shape[0], -1)
  return -0.5 * d * jnp.log(2 * jnp.pi * std**2) - 0.5 * jnp.sum(z**2, axis=-1) / std**2


def _static(default):
  return flax.struct.field(pytree_node=False, default=default)


class _SDEBase:
  """Shared methods. Subclasses define ``sde``, ``marginal_prob``, ``prior_*``, ``N``."""

  T = 1.0

  def marginal_std(self, t: jax.Array) -> jax.Array:
    """Standard deviation of ``p_0t(x(t) | x(0))`` (the same for every ``x(0)``), shape of t."""
    t = jnp.asarray(t)
    return self.marginal_prob(jnp.zeros(t.shape + (1,)), t)[1]

  def timestep(self, t: jax.Array) -> jax.Array:
    """Zero-based index ``i = int(t (N - 1) / T)`` of the N-step chain that ``t`` falls on
    (score_sde's convention; ``t = T`` is step ``N - 1``, ``t ~ 0`` is step 0)."""
    return (jnp.asarray(t) * (self.N - 1) / self.T).astype(jnp.int32)

  def discretize(self, x: jax.Array, t: jax.Array):
    """Euler-Maruyama: ``f = f(x, t) / N``, ``G = g(t) / sqrt(N)`` (score_sde's default)."""
    dt = 1.0 / self.N
    drift, diffusion = self.sde(x, t)
    return drift * dt, diffusion * jnp.sqrt(dt)

  def with_steps(self, n: int):
    """The same SDE discretized with ``n`` steps (samplers set their step count this way)."""
    if int(n) != n or n < 1:
      raise ValueError(f"The number of steps must be a positive integer, got {n!r}.")
    return self.replace(N=int(n))

  def prior_sampling(self, key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """A draw from the prior ``p_T`` (``N(0, I)``; ``N(0, sigma_max^2 I)`` for VE)."""
    return self.prior_std * jax.random.normal(key, tuple(shape), dtype)

  def prior_logp(self, z: jax.Array) -> jax.Array:
    """``log p_T(z)`` of each example: ``[B, ...] -> [B]``."""
    return gaussian_logp(z, self.prior_std)

  def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
    """The reverse-time SDE (or, with ``probability_flow``, the probability-flow ODE).

    Args:
      score_fn: ``score_fn(x [B, ...], t [B]) -> grad_x log p_t(x)`` ``[B, ...]``.
      probability_flow: build the ODE ``dx = [f - g^2 s / 2] dt`` (Song et al. eq. 13).

    Returns:
      A :class:`ReverseSDE`.
    """
    return ReverseSDE(self, score_fn, bool(probability_flow))


@flax.struct.dataclass
class VPSDE(_SDEBase):
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
  """
  beta_min: float = _static(0.1)
  beta_max: float = _static(20.0)
  N: int = _static(1000)

  prior_std = 1.0

  def beta(self, t):
    return self.beta_min + jnp.asarray(t) * (self.beta_max - self.beta_min)

  def log_mean_coeff(self, t):
    """``log alpha(t) = -int_0^t beta / 2``."""
    t = jnp.asarray(t)
    return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  def sde(self, x, t):
    beta_t = self.beta(t)
    return -0.5 * bcast(beta_t, x) * x, jnp.sqrt(beta_t)

  def marginal_prob(self, x, t):
    lmc = self.log_mean_coeff(t)
    return bcast(jnp.exp(lmc), x) * x, jnp.sqrt(-jnp.expm1(2.0 * lmc))

  @property
  def discrete_betas(self) -> np.ndarray:
    """DDPM's ``beta_i``, float64 ``[N]``; zero-based ``i`` is the paper's step ``i + 1``."""
    return np.minimum(np.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N), 0.999)

  def _discrete_beta(self, t):
    """``beta_i = beta(i / (N - 1)) / N``, clipped at 0.999: a chain of fewer than
    ``beta_max`` steps (20 for the defaults) would otherwise have ``beta_i >= 1``."""
    i = self.timestep(t)
    beta = (self.beta_min + i / max(self.N - 1, 1) * (self.beta_max - self.beta_min)) / self.N
    return jnp.minimum(beta, 0.999)

  def discrete_alpha(self, t):
    """``1 - beta_i`` of the chain step that ``t`` falls on (used by the Langevin corrector)."""
    return 1.0 - self._discrete_beta(t)

  def discretize(self, x, t):
    """DDPM's forward step ``x_{i+1} = sqrt(1 - beta_i) x_i + sqrt(beta_i) z`` (Ho et al. eq. 2):
    ``f = (sqrt(1 - beta_i) - 1) x``, ``G = sqrt(beta_i)``, ``i = timestep(t)``."""
    beta = self._discrete_beta(t)
    return (bcast(jnp.sqrt(1.0 - beta), x) - 1.0) * x, jnp.sqrt(beta)


@flax.struct.dataclass
class SubVPSDE(_SDEBase):
  """The sub-VP SDE (Song et al. 2021, eq. 12), whose variance stays below the VP one.

  ``dx = -beta(t) x / 2 dt + sqrt(beta(t) (1 - exp(-2 int_0^t beta))) dw``. Marginal:
  ``N(alpha(t) x0, (1 - alpha(t)^2)^2 I)`` with VP's ``alpha(t)`` (eq. 30). Discretized by
  Euler-Maruyama (there is no classical chain it reduces to).
  """
  beta_min: float = _static(0.1)
  beta_max: float = _static(20.0)
  N: int = _static(1000)

  prior_std = 1.0
  beta = VPSDE.beta
  log_mean_coeff = VPSDE.log_mean_coeff
  _discrete_beta = VPSDE._discrete_beta
  discrete_alpha = VPSDE.discrete_alpha

  def sde(self, x, t):
    beta_t = self.beta(t)
    discount = -jnp.expm1(4.0 * self.log_mean_coeff(t))  # 1 - exp(-2 int beta)
    return -0.5 * bcast(beta_t, x) * x, jnp.sqrt(beta_t * discount)

  def marginal_prob(self, x, t):
    lmc = self.log_mean_coeff(t)
    return bcast(jnp.exp(lmc), x) * x, -jnp.expm1(2.0 * lmc)


@flax.struct.dataclass
class VESDE(_SDEBase):
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
  """
  sigma_min: float = _static(0.01)
  sigma_max: float = _static(50.0)
  N: int = _static(1000)

  @property
  def prior_std(self):
    return self.sigma_max

  def sigma(self, t):
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** jnp.asarray(t)

  def t_of_sigma(self, sigma):
    """Inverse of :meth:`sigma`: ``t = log(sigma / sigma_min) / log(sigma_max / sigma_min)``."""
    return jnp.log(jnp.asarray(sigma) / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)

  def sde(self, x, t):
    g = self.sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))
    return jnp.zeros_like(x), g

  def marginal_prob(self, x, t):
    return x, self.sigma(t)

  @property
  def discrete_sigmas(self) -> np.ndarray:
    """SMLD's ``sigma_i``, increasing, float64 ``[N]``."""
    return np.exp(np.linspace(np.log(self.sigma_min), np.log(self.sigma_max), self.N))

  def discrete_sigma_pair(self, t):
    """``(sigma_i, sigma_{i-1})`` of the chain step ``i = timestep(t)``; ``sigma_{-1} = 0``."""
    i = self.timestep(t)
    log_ratio = math.log(self.sigma_max / self.sigma_min) / max(self.N - 1, 1)
    sigma = self.sigma_min * jnp.exp(i * log_ratio)
    prev = jnp.where(i == 0, 0.0, self.sigma_min * jnp.exp((i - 1) * log_ratio))
    return sigma, prev

  def discretize(self, x, t):
    """SMLD's step: ``f = 0``, ``G = sqrt(sigma_i^2 - sigma_{i-1}^2)``, ``i = timestep(t)``."""
    sigma, prev = self.discrete_sigma_pair(t)
    return jnp.zeros_like(x), jnp.sqrt(sigma**2 - prev**2)


@dataclasses.dataclass(frozen=True)
class ReverseSDE:
  """The reverse-time SDE of ``forward`` for a score function (score_sde's ``RSDE``).

  ``sde(x, t)`` gives the drift ``f - g^2 s`` (``f - g^2 s / 2`` for the probability-flow
  ODE) and the diffusion ``g`` (0 for the ODE); time runs backwards, so a solver steps with
  ``dt < 0``. ``discretize`` gives the reverse of the N-step chain, ``x_i = x_{i+1} - f + G z``
  with ``f = f_fwd - G^2 s`` (Song et al. eq. 47, "reverse diffusion").

  Attributes:
    forward: the forward SDE.
    score_fn: ``score_fn(x [B, ...], t [B]) -> [B, ...]``.
    probability_flow: whether this is the probability-flow ODE.
  """
  forward: _SDEBase
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
            sigma_min: float = 0.01, sigma_max: float = 50.0, num_scales: int = 1000):
  """Builds ``"vpsde"``, ``"subvpsde"`` or ``"vesde"`` with score_sde's defaults."""
  key = name.lower().replace("_", "").replace("-", "")
  if key == "vpsde":
    return VPSDE(beta_min=float(beta_min), beta_max=float(beta_max), N=int(num_scales))
  if key == "subvpsde":
    return SubVPSDE(beta_min=float(beta_min), beta_max=float(beta_max), N=int(num_scales))
  if key == "vesde":
    if not 0 < sigma_min < sigma_max:
      raise ValueError(f"VESDE needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}.")
    return VESDE(sigma_min=float(sigma_min), sigma_max=float(sigma_max), N=int(num_scales))
  raise ValueError(f"Unknown SDE {name!r}; valid: {', '.join(SDE_NAMES)}.")
