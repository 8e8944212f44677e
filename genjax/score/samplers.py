"""Samplers for score SDEs: predictor-corrector and the probability-flow ODE (Song et al. 2021).

Conventions (as genjax.diffusion.samplers):
  * ``score_fn(x [B, ...], t float [B]) -> grad_x log p_t(x)`` is any callable: a network
    wrapped with :func:`genjax.score.convert.score_fn_from_eps_fn`, or an analytic score.
  * Continuous time runs from ``T = 1`` down to ``eps`` (score_sde samples to ``eps = 1e-3``
    for VP / sub-VP and ``1e-5`` for VE).
  * Every fixed-step sampler is one ``lax.scan`` over its steps, jit-able and vmap-able over
    ``key`` (``shape`` and the step counts are static). With ``trajectory_stride = k`` it also
    returns ``[n, *shape]``: the prior draw, the state after every k-th step and the final
    sample (:func:`genjax.diffusion.trajectory_steps`).
  * Keys: ``key`` splits into one key for the prior draw and one per step.

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
import numpy as np

from genjax.diffusion.samplers import trajectory_steps
from genjax.score.ode import odeint_dopri5
from genjax.score.sde import VESDE, VPSDE, SubVPSDE, bcast

__all__ = ["CORRECTORS", "ODE_METHODS", "PREDICTORS", "ancestral_sampling_predictor",
           "ald_corrector", "euler_maruyama_predictor", "langevin_corrector", "ode_sample",
           "ode_sample_adaptive", "pc_nfe", "pc_sample", "reverse_diffusion_predictor",
           "run_scan"]

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]


# ----------------------------------------------------------------------------------------------
# The scan driver shared by every sampler in genjax.score.
# ----------------------------------------------------------------------------------------------


def run_scan(step, carry, xs, num_steps: int, trajectory_stride: Optional[int],
             state_of=lambda c: c):
  """Runs ``carry <- step(carry, xs_i)`` in one ``lax.scan``; optionally records a trajectory.

  Args:
    step: ``step(carry, inp) -> carry``.
    carry: initial carry (any pytree).
    xs: per-step inputs with leading axis ``num_steps``.
    num_steps: static step count.
    trajectory_stride: None, or record ``state_of(carry)`` at the initial carry, every k-th
      step and the end (into a preallocated ``[n, ...]`` buffer).
    state_of: the array of the carry that a trajectory records.

  Returns:
    The final carry, or ``(carry, trajectory [n, ...])``.
  """
  if trajectory_stride is None:
    carry, _ = jax.lax.scan(lambda c, inp: (step(c, inp), None), carry, xs)
    return carry
  recorded = trajectory_steps(num_steps, trajectory_stride)
  slot_of = np.full(num_steps + 1, -1, dtype=np.int32)
  slot_of[recorded] = np.arange(len(recorded), dtype=np.int32)
  slots = jnp.asarray(slot_of[1:])
  x0 = state_of(carry)
  traj = jnp.zeros((len(recorded),) + x0.shape, x0.dtype).at[0].set(x0)

  def body(c, inp):
    c, traj = c
    step_inp, slot = inp
    c = step(c, step_inp)
    idx = jnp.maximum(slot, 0)
    traj = traj.at[idx].set(jnp.where(slot >= 0, state_of(c), traj[idx]))
    return (c, traj), None

  (carry, traj), _ = jax.lax.scan(body, (carry, traj), (xs, slots))
  return carry, traj


def _check_shape(shape, x_T):
  shape = tuple(int(s) for s in shape)
  if len(shape) < 1:
    raise ValueError(f"shape must be (B, ...) with a batch axis, got {shape}.")
  if x_T is not None and tuple(x_T.shape) != shape:
    raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape is {shape}; make them agree.")
  return shape


def _check_eps(eps):
  if not 0 < eps < 1:
    raise ValueError(f"eps (the smallest time) must lie in (0, 1), got {eps!r}.")


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
  return jnp.ones_like(jnp.asarray(t, jnp.float32))


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


def pc_sample(sde, score_fn: ScoreFn, key: jax.Array, shape, *,
              predictor: str = "reverse_diffusion", corrector: str = "langevin",
              snr: float = 0.16, n_corrector_steps: int = 1, probability_flow: bool = False,
              steps: Optional[int] = None, eps: float = 1e-3, denoise: bool = True,
              trajectory_stride: Optional[int] = None, x_T: Optional[jax.Array] = None):
  """The predictor-corrector sampler (Song et al. 2021, Algorithm 1; score_sde ``pc_sampler``).

  ``x ~ p_T``; for ``t_i`` in ``linspace(T, eps, N)``: ``n_corrector_steps`` corrector steps at
  ``t_i``, then one predictor step from ``t_i``. NFE = ``pc_nfe(N, ...)``.

  Args:
    sde: the forward SDE (:class:`VPSDE`, :class:`SubVPSDE`, :class:`VESDE`).
    score_fn: ``score_fn(x [B, ...], t [B]) -> [B, ...]``.
    key: PRNG key.
    shape: ``(B, ...)``, static.
    predictor: ``euler_maruyama`` | ``reverse_diffusion`` | ``ancestral_sampling`` | ``none``.
    corrector: ``langevin`` | ``ald`` | ``none``.
    snr: the corrector's signal-to-noise ratio (score_sde: 0.16 for VE, 0.01 for VP).
    n_corrector_steps: corrector steps per predictor step.
    probability_flow: run the predictor on the probability-flow ODE.
    steps: N; None uses ``sde.N``. The chain of ``discretize`` is that of ``sde.with_steps(N)``.
    eps: the last time.
    denoise: return the last step's noise-free mean (score_sde's ``noise_removal``).
    trajectory_stride: None or a positive int (see the module docstring).
    x_T: optional prior draw of ``shape``.

  Returns:
    ``x`` ``[*shape]``, or ``(x, trajectory)`` with a trajectory stride.
  """
  pred = _lookup(PREDICTORS, predictor, "predictor")
  corr = _lookup(CORRECTORS, corrector, "corrector")
  _check_eps(eps)
  shape = _check_shape(shape, x_T)
  sde_n = sde if steps is None else sde.with_steps(steps)
  n = sde_n.N
  key_init, key_steps = jax.random.split(key)
  if x_T is None:
    x_T = sde_n.prior_sampling(key_init, shape)
  ts = jnp.linspace(sde_n.T, eps, n, dtype=x_T.dtype)

  def step(carry, inp):
    x, _ = carry
    t_scalar, k = inp
    t = jnp.full((shape[0],), t_scalar, x.dtype)
    kc, kp = jax.random.split(k)
    x, x_mean = corr(kc, x, t, sde_n, score_fn, snr, n_corrector_steps)
    x, x_mean = pred(kp, x, t, sde_n, score_fn, probability_flow)
    return x, x_mean

  out = run_scan(step, (x_T, x_T), (ts, jax.random.split(key_steps, n)), n, trajectory_stride,
                 state_of=lambda c: c[0])
  if trajectory_stride is None:
    return out[1] if denoise else out[0]
  (x, x_mean), traj = out
  final = x_mean if denoise else x
  return final, traj.at[-1].set(final)


ODE_METHODS = ("euler", "heun")


def _denoise_step(sde, score_fn, x, eps):
  """score_sde's noise removal: the reverse-diffusion predictor's mean at ``t = eps``."""
  t = jnp.full((x.shape[0],), eps, x.dtype)
  return reverse_diffusion_predictor(jax.random.key(0), x, t, sde, score_fn)[1]


def ode_sample(sde, score_fn: ScoreFn, key: jax.Array, shape, *, method: str = "heun",
               steps: int = 100, eps: float = 1e-3, denoise: bool = False,
               trajectory_stride: Optional[int] = None, x_T: Optional[jax.Array] = None):
  """Fixed-step solve of the probability-flow ODE ``dx/dt = f - g^2 s / 2`` (Song et al. eq. 13)
  from ``T`` to ``eps`` on ``linspace(T, eps, steps + 1)``.

  Euler: ``x_{i+1} = x_i + h d(x_i, t_i)``; Heun (explicit trapezoid, Karras et al. 2022
  Algorithm 1): ``x' = x_i + h d_i``, ``x_{i+1} = x_i + h (d_i + d(x', t_{i+1})) / 2``, with
  ``h = t_{i+1} - t_i < 0``. NFE = ``steps`` (Euler) or ``2 steps`` (Heun), plus 1 if ``denoise``.

  Args:
    sde: the forward SDE.
    score_fn: ``score_fn(x [B, ...], t [B]) -> [B, ...]``.
    key: PRNG key (only the prior draw is random).
    shape: ``(B, ...)``, static.
    method: ``"euler"`` or ``"heun"``.
    steps: number of steps.
    eps: the last time.
    denoise: finish with score_sde's noise-removal step (one more score evaluation).
    trajectory_stride: None or a positive int.
    x_T: optional prior draw (e.g. to decode a latent from :func:`ode_likelihood`).

  Returns:
    ``x`` ``[*shape]``, or ``(x, trajectory)`` with a trajectory stride.
  """
  if method not in ODE_METHODS:
    raise ValueError(f"Unknown ODE method {method!r}; valid: {', '.join(ODE_METHODS)}.")
  if int(steps) != steps or steps < 1:
    raise ValueError(f"steps must be a positive integer, got {steps!r}.")
  _check_eps(eps)
  shape = _check_shape(shape, x_T)
  if x_T is None:
    x_T = sde.prior_sampling(jax.random.split(key)[0], shape)
  rsde = sde.reverse(score_fn, probability_flow=True)
  ts = jnp.linspace(sde.T, eps, int(steps) + 1, dtype=x_T.dtype)

  def drift(x, t_scalar):
    return rsde.sde(x, jnp.full((shape[0],), t_scalar, x.dtype))[0]

  def step(x, inp):
    t, t_next = inp
    h = t_next - t
    d = drift(x, t)
    if method == "euler":
      return x + h * d
    x_pred = x + h * d
    return x + 0.5 * h * (d + drift(x_pred, t_next))

  out = run_scan(step, x_T, (ts[:-1], ts[1:]), int(steps), trajectory_stride)
  if not denoise:
    return out
  if trajectory_stride is None:
    return _denoise_step(sde, score_fn, out, eps)
  x, traj = out
  x = _denoise_step(sde, score_fn, x, eps)
  return x, traj.at[-1].set(x)


def ode_sample_adaptive(sde, score_fn: ScoreFn, key: jax.Array, shape, *, rtol: float = 1e-5,
                        atol: float = 1e-5, eps: float = 1e-3, denoise: bool = False,
                        max_steps: int = 10_000, x_T: Optional[jax.Array] = None):
  """The probability-flow ODE with adaptive Dormand-Prince 5(4) steps (score_sde's
  ``get_ode_sampler``, RK45 at rtol = atol = 1e-5), in one ``lax.while_loop`` on the device.

  The whole batch is one ODE system (one step size, as score_sde's flattened scipy call).

  Returns:
    ``(x [*shape], nfe int32 scalar)`` (NFE includes the denoising step).
  """
  _check_eps(eps)
  shape = _check_shape(shape, x_T)
  if x_T is None:
    x_T = sde.prior_sampling(jax.random.split(key)[0], shape)
  rsde = sde.reverse(score_fn, probability_flow=True)

  def fn(t, x):
    return rsde.sde(x, jnp.full((shape[0],), t, x.dtype))[0]

  res = odeint_dopri5(fn, x_T, sde.T, eps, rtol=rtol, atol=atol, max_steps=max_steps)
  x, nfe = res.y, res.nfe
  if denoise:
    x, nfe = _denoise_step(sde, score_fn, x, eps), nfe + 1
  return x, nfe
