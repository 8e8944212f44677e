"""Predictor-corrector and probability-flow ODE samplers (Song et al. 2021; score_sde).

Conventions (as every sampler in :mod:`genjax.sampling`):
  * The samplers take a denoiser ``eps_fn(x, t, cond)`` and a continuous process
    (:mod:`genjax.sampling.processes`); the score is ``-eps / sigma_t``
    (:func:`genjax.sampling.convert.score_fn_of`, classifier guidance applied). The predictors
    and correctors themselves take ``score_fn(x [B, ...], t [B])``, as score_sde's do.
  * Continuous time runs from ``T`` (or ``t_start``) down to ``eps`` (default the process's
    ``sampling_eps``: score_sde samples to 1e-3 for VP / sub-VP and 1e-5 for VE).
  * Every fixed-step sampler is one ``lax.scan`` over its steps, jit-able and vmap-able over
    ``key``; ``trajectory_stride = k`` also returns ``[n, *shape]`` (the start, the state after
    every k-th step and the final sample).
  * Keys: ``key`` splits into one key for the prior draw and one per step.
  * ``constraint(x, alpha, sigma, key)`` is applied to every state (replacement inpainting).

Predictors, correctors and the PC loop follow score_sde's ``sampling.py``: N steps on
``linspace(T, eps, N)``, corrector before predictor at each step, Euler-Maruyama with
``dt = -1/N``, reverse diffusion and ancestral sampling on the N-step chain of
``sde.discretize``, and the Langevin corrector's step ``2 alpha (snr ||z|| / ||s||)^2`` with the
norms averaged over the batch (score_sde's Algorithm 4/5; the batch is the whole global batch,
so under ``vmap`` over keys each vmapped batch uses its own norms).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from genjax.sampling.convert import EpsFn, score_fn_of
from genjax.sampling.ode import odeint_dopri5
from genjax.sampling.processes import VESDE, VPSDE, SubVPSDE, bcast
from genjax.sampling.scan import finish, initial_state, run_scan

__all__ = ["CORRECTORS", "ODE_METHODS", "PREDICTORS", "ancestral_sampling_predictor",
           "ald_corrector", "euler_maruyama_predictor", "langevin_corrector", "ode_sample",
           "ode_sample_adaptive", "pc_nfe", "pc_sample", "reverse_diffusion_predictor"]

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]


def _check_eps(eps, process):
  eps = process.sampling_eps if eps is None else eps
  if not 0 < eps < process.T:
    raise ValueError(f"eps (the smallest time) must lie in (0, T={process.T}), got {eps!r}.")
  return float(eps)


def _constrain(constraint, process, x, t, key):
  if constraint is None:
    return x
  return constraint(x, process.marginal_alpha(t).astype(x.dtype),
                    process.marginal_std(t).astype(x.dtype), key)


# ----------------------------------------------------------------------------------------------
# Predictors: ``predictor(key, x, t, sde, score_fn, probability_flow) -> (x, x_mean)``.
# ``sde`` carries the sampler's step count N.
# ----------------------------------------------------------------------------------------------


def euler_maruyama_predictor(key, x, t, sde, score_fn, probability_flow=False):
  """Euler-Maruyama on the reverse SDE with ``dt = -1/N`` (Song et al. 2021, App. D):
  ``x_mean = x - [f - g^2 s] / N``, ``x = x_mean + g sqrt(1/N) z``."""
  dt = -1.0 / sde.N
  drift, diffusion = sde.reverse(score_fn, probability_flow).sde(x, t)
  x_mean = x + drift * dt
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + bcast(diffusion, x) * jnp.sqrt(-dt) * z, x_mean


def reverse_diffusion_predictor(key, x, t, sde, score_fn, probability_flow=False):
  """Reverse diffusion (Song et al. 2021, eq. 47): ``x_i = x_{i+1} - f + G G^T s + G z`` on the
  N-step chain of ``sde.discretize``."""
  f, G = sde.reverse(score_fn, probability_flow).discretize(x, t)
  x_mean = x - f
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + bcast(G, x) * z, x_mean


def ancestral_sampling_predictor(key, x, t, sde, score_fn, probability_flow=False):
  """Ancestral sampling of the N-step chain (Song et al. 2021, eq. 45-46), VP and VE only.

  VP: ``x_mean = (x + beta_i s) / sqrt(1 - beta_i)``, noise ``sqrt(beta_i)`` (DDPM, Ho et al.
  eq. 11 with the score in place of eps). VE: ``x_mean = x + (sigma_i^2 - sigma_{i-1}^2) s``,
  noise ``sqrt(sigma_{i-1}^2 (sigma_i^2 - sigma_{i-1}^2) / sigma_i^2)`` (SMLD's posterior).
  """
  if probability_flow:
    raise ValueError("The ancestral predictor has no probability-flow form; use "
                     "reverse_diffusion or euler_maruyama with probability_flow=True.")
  z = jax.random.normal(key, x.shape, x.dtype)
  score = score_fn(x, t)
  if isinstance(sde, VPSDE):
    beta = sde._discrete_beta(t)
    x_mean = (x + bcast(beta, x) * score) / bcast(jnp.sqrt(1.0 - beta), x)
    return x_mean + bcast(jnp.sqrt(beta), x) * z, x_mean
  if isinstance(sde, VESDE):
    sigma, prev = sde.discrete_sigma_pair(t)
    x_mean = x + bcast(sigma**2 - prev**2, x) * score
    std = jnp.sqrt(prev**2 * (sigma**2 - prev**2) / sigma**2)
    return x_mean + bcast(std, x) * z, x_mean
  raise ValueError(f"The ancestral predictor supports VPSDE and VESDE, not "
                   f"{type(sde).__name__}; use reverse_diffusion or euler_maruyama.")


def _none_predictor(key, x, t, sde, score_fn, probability_flow=False):
  return x, x


PREDICTORS = {
    "euler_maruyama": euler_maruyama_predictor,
    "reverse_diffusion": reverse_diffusion_predictor,
    "ancestral_sampling": ancestral_sampling_predictor,
    "none": _none_predictor,
}


# ----------------------------------------------------------------------------------------------
# Correctors: ``corrector(key, x, t, sde, score_fn, snr, n_steps) -> (x, x_mean)``.
# ----------------------------------------------------------------------------------------------


def _alpha(sde, t):
  if isinstance(sde, (VPSDE, SubVPSDE)):
    return sde.discrete_alpha(t)
  return jnp.ones_like(jnp.asarray(t))


def langevin_corrector(key, x, t, sde, score_fn, snr, n_steps):
  """Langevin MCMC with a signal-to-noise step size (Song et al. 2021, Algorithm 4/5).

  ``eps = 2 alpha_i (snr ||z|| / ||s||)^2`` (norms per example, averaged over the batch;
  ``alpha_i = 1 - beta_i`` for VP / sub-VP, 1 for VE), then
  ``x_mean = x + eps s``, ``x = x_mean + sqrt(2 eps) z``, ``n_steps`` times.
  """
  alpha = _alpha(sde, t)

  def body(_, val):
    k, x, _ = val
    k, sub = jax.random.split(k)
    grad = score_fn(x, t)
    z = jax.random.normal(sub, x.shape, x.dtype)
    grad_norm = jnp.mean(jnp.linalg.norm(grad.reshape(grad.shape[0], -1), axis=-1))
    noise_norm = jnp.mean(jnp.linalg.norm(z.reshape(z.shape[0], -1), axis=-1))
    # A zero score (e.g. an untrained, zero-initialised network) gives no Langevin move.
    step = jnp.where(grad_norm > 0, (snr * noise_norm / jnp.maximum(grad_norm, 1e-30)) ** 2,
                     0.0) * 2 * alpha
    x_mean = x + bcast(step, x) * grad
    return k, x_mean + bcast(jnp.sqrt(2 * step), x) * z, x_mean

  _, x, x_mean = jax.lax.fori_loop(0, n_steps, body, (key, x, x))
  return x, x_mean


def ald_corrector(key, x, t, sde, score_fn, snr, n_steps):
  """Annealed Langevin dynamics as a corrector (NCSN's step ``2 alpha (snr * std_t)^2``)."""
  alpha = _alpha(sde, t)
  std = sde.marginal_std(t)

  def body(_, val):
    k, x, _ = val
    k, sub = jax.random.split(k)
    grad = score_fn(x, t)
    z = jax.random.normal(sub, x.shape, x.dtype)
    step = (snr * std) ** 2 * 2 * alpha
    x_mean = x + bcast(step, x) * grad
    return k, x_mean + bcast(jnp.sqrt(2 * step), x) * z, x_mean

  _, x, x_mean = jax.lax.fori_loop(0, n_steps, body, (key, x, x))
  return x, x_mean


def _none_corrector(key, x, t, sde, score_fn, snr, n_steps):
  return x, x


CORRECTORS = {"langevin": langevin_corrector, "ald": ald_corrector, "none": _none_corrector}


def _lookup(table, name, what):
  if name not in table:
    raise ValueError(f"Unknown {what} {name!r}; valid: {', '.join(table)}.")
  return table[name]


def pc_nfe(steps: int, predictor: str = "reverse_diffusion", corrector: str = "langevin",
           n_corrector_steps: int = 1) -> int:
  """Score evaluations of :func:`pc_sample` per sample."""
  per = (predictor != "none") + (corrector != "none") * n_corrector_steps
  return int(steps) * int(per)


def pc_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
              predictor: str = "reverse_diffusion", corrector: str = "langevin",
              snr: float = 0.16, n_corrector_steps: int = 1, probability_flow: bool = False,
              steps: Optional[int] = None, eps: Optional[float] = None, denoise: bool = True,
              t_start: Optional[float] = None, trajectory_stride: Optional[int] = None,
              x_T: Optional[jax.Array] = None, constraint=None):
  """The predictor-corrector sampler (Song et al. 2021, Algorithm 1; score_sde ``pc_sampler``).

  ``x ~ p_T``; for ``t_i`` in ``linspace(T, eps, N)``: ``n_corrector_steps`` corrector steps at
  ``t_i``, then one predictor step from ``t_i``. NFE = ``pc_nfe(N, ...)``. With
  ``predictor="none"`` it is Langevin dynamics annealed over the N levels.

  Args:
    eps_fn: the denoiser ``eps_fn(x, t scalar, cond)``.
    process: the forward process (:class:`VPSDE`, :class:`SubVPSDE`, :class:`VESDE`, or any
      continuous process of :mod:`genjax.sampling.processes`).
    key: PRNG key.
    shape: ``(B, ...)``, static.
    cond: the condition passed to ``eps_fn``.
    predictor: ``euler_maruyama`` | ``reverse_diffusion`` | ``ancestral_sampling`` | ``none``.
    corrector: ``langevin`` | ``ald`` | ``none``.
    snr: the corrector's signal-to-noise ratio (score_sde: 0.16 for VE, 0.01 for VP).
    n_corrector_steps: corrector steps per predictor step.
    probability_flow: run the predictor on the probability-flow ODE.
    steps: N; None uses ``process.N``. The chain of ``discretize`` is that of
      ``process.with_steps(N)``.
    eps: the last time (default ``process.sampling_eps``).
    denoise: return the last step's noise-free mean (score_sde's ``noise_removal``).
    t_start: start at this time from ``x_T`` instead of at ``T`` (SDEdit).
    trajectory_stride: None or a positive int (see the module docstring).
    x_T: optional starting state of ``shape``.
    constraint: ``constraint(x, alpha, sigma, key) -> x`` after every step.

  Returns:
    ``x`` ``[*shape]``, or ``(x, trajectory)`` with a trajectory stride.
  """
  pred = _lookup(PREDICTORS, predictor, "predictor")
  corr = _lookup(CORRECTORS, corrector, "corrector")
  eps = _check_eps(eps, process)
  sde_n = process if steps is None else process.with_steps(steps)
  n = sde_n.N
  shape, x_T, key_init, key_steps = initial_state(sde_n, key, shape, x_T, t_start)
  t_top = sde_n.T if t_start is None else t_start
  ts = jnp.linspace(t_top, eps, n, dtype=x_T.dtype)
  t_next = jnp.concatenate([ts[1:], ts[-1:]])
  score_fn = score_fn_of(eps_fn, process, cond)
  x_T = _constrain(constraint, process, x_T, ts[0], jax.random.fold_in(key_init, 1))

  def step(carry, inp):
    x, _ = carry
    t, tn, k = inp
    kc, kp, kk = jax.random.split(k, 3)
    x, x_mean = corr(kc, x, t, sde_n, score_fn, snr, n_corrector_steps)
    x, x_mean = pred(kp, x, t, sde_n, score_fn, probability_flow)
    return _constrain(constraint, process, x, tn, kk), x_mean

  out = run_scan(step, (x_T, x_T), (ts, t_next, jax.random.split(key_steps, n)),
                 stride=trajectory_stride, state_of=lambda c: c[0])
  return finish(out, trajectory_stride,
                lambda c: _clean(constraint, c[1] if denoise else c[0], key_init))


def _clean(constraint, x, key):
  """The final state with the constraint's known part exact (alpha = 1, sigma = 0)."""
  if constraint is None:
    return x
  one = jnp.ones((), x.dtype)
  return constraint(x, one, jnp.zeros((), x.dtype), jax.random.fold_in(key, 2))


ODE_METHODS = ("euler", "heun")


def _denoise_step(process, score_fn, x, eps):
  """score_sde's noise removal: the reverse-diffusion predictor's mean at ``t = eps``."""
  t = jnp.asarray(eps, x.dtype)
  return reverse_diffusion_predictor(jax.random.key(0), x, t, process, score_fn)[1]


def ode_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
               method: str = "heun", steps: int = 100, eps: Optional[float] = None,
               denoise: bool = False, t_start: Optional[float] = None,
               trajectory_stride: Optional[int] = None, x_T: Optional[jax.Array] = None,
               constraint=None):
  """Fixed-step solve of the probability-flow ODE ``dx/dt = f - g^2 s / 2`` (Song et al. eq. 13)
  from ``T`` (or ``t_start``) to ``eps`` on ``linspace(T, eps, steps + 1)``.

  Euler: ``x_{i+1} = x_i + h d(x_i, t_i)``; Heun (explicit trapezoid, Karras et al. 2022
  Algorithm 1): ``x' = x_i + h d_i``, ``x_{i+1} = x_i + h (d_i + d(x', t_{i+1})) / 2``, with
  ``h = t_{i+1} - t_i < 0``. NFE = ``steps`` (Euler) or ``2 steps`` (Heun), plus 1 if ``denoise``.

  Args:
    eps_fn: the denoiser ``eps_fn(x, t scalar, cond)``.
    process: a continuous process.
    key: PRNG key (only the prior draw is random).
    shape: ``(B, ...)``, static.
    cond: the condition passed to ``eps_fn``.
    method: ``"euler"`` or ``"heun"``.
    steps: number of steps.
    eps: the last time (default ``process.sampling_eps``).
    denoise: finish with score_sde's noise-removal step (one more evaluation).
    t_start: start at this time from ``x_T`` instead of at ``T`` (SDEdit).
    trajectory_stride: None or a positive int.
    x_T: optional starting state (e.g. to decode a latent from :func:`ode_likelihood`).
    constraint: ``constraint(x, alpha, sigma, key) -> x`` after every step.

  Returns:
    ``x`` ``[*shape]``, or ``(x, trajectory)`` with a trajectory stride.
  """
  if method not in ODE_METHODS:
    raise ValueError(f"Unknown ODE method {method!r}; valid: {', '.join(ODE_METHODS)}.")
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise ValueError(f"steps must be a positive integer, got {steps!r}.")
  eps = _check_eps(eps, process)
  shape, x_T, key_init, key_steps = initial_state(process, key, shape, x_T, t_start)
  score_fn = score_fn_of(eps_fn, process, cond)
  rsde = process.reverse(score_fn, probability_flow=True)
  t_top = process.T if t_start is None else t_start
  ts = jnp.linspace(t_top, eps, int(steps) + 1, dtype=x_T.dtype)
  x_T = _constrain(constraint, process, x_T, ts[0], jax.random.fold_in(key_init, 1))

  def drift(x, t):
    return rsde.sde(x, t)[0]

  def step(x, inp):
    t, t_next, k = inp
    h = t_next - t
    d = drift(x, t)
    if method == "euler":
      x = x + h * d
    else:
      x_pred = x + h * d
      x = x + 0.5 * h * (d + drift(x_pred, t_next))
    return _constrain(constraint, process, x, t_next, k)

  out = run_scan(step, x_T, (ts[:-1], ts[1:], jax.random.split(key_steps, int(steps))),
                 stride=trajectory_stride)

  def last(x):
    if denoise:
      x = _denoise_step(process, score_fn, x, eps)
    return _clean(constraint, x, key_init)

  return finish(out, trajectory_stride, last)


def ode_sample_adaptive(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
                        rtol: float = 1e-5, atol: float = 1e-5, eps: Optional[float] = None,
                        denoise: bool = False, t_start: Optional[float] = None,
                        max_steps: int = 10_000, x_T: Optional[jax.Array] = None):
  """The probability-flow ODE with adaptive Dormand-Prince 5(4) steps (score_sde's
  ``get_ode_sampler``, RK45 at rtol = atol = 1e-5), in one ``lax.while_loop`` on the device.

  The whole batch is one ODE system (one step size, as score_sde's flattened scipy call).

  Returns:
    ``(x [*shape], nfe int32 scalar)`` (NFE includes the denoising step).
  """
  eps = _check_eps(eps, process)
  shape, x_T, _, _ = initial_state(process, key, shape, x_T, t_start)
  score_fn = score_fn_of(eps_fn, process, cond)
  rsde = process.reverse(score_fn, probability_flow=True)

  def fn(t, x):
    return rsde.sde(x, t)[0]

  t_top = process.T if t_start is None else t_start
  res = odeint_dopri5(fn, x_T, t_top, eps, rtol=rtol, atol=atol, max_steps=max_steps)
  x, nfe = res.y, res.nfe
  if denoise:
    x, nfe = _denoise_step(process, score_fn, x, eps), nfe + 1
  return x, nfe
