"""Ancestral DDPM sampling and DDIM, each one ``lax.scan`` over its steps.

Conventions (every sampler in :mod:`genjax.sampling`):
  * ``eps_fn(x [B, ...], t, cond)`` is a denoiser (:mod:`genjax.sampling.convert`); samplers
    call it with a scalar ``t`` shared by the batch and pass ``cond`` through untouched.
  * Discrete timesteps are zero-based: index ``t`` is the paper's step ``t+1``; sampling runs
    ``t = T-1, ..., 0``.
  * Everything is jit-able and vmap-able over ``key`` (``shape`` and step counts are static).
  * Keys: ``key`` is split into one key for ``x_T`` and one per step, so DDPM with
    ``"fixed_small"`` and DDIM with ``eta = 1`` on all T steps give the same samples for the
    same key.
  * ``trajectory_stride = k`` also returns ``[n, *shape]``: ``x_T``, the state after every
    ``k``-th step and the final sample (:func:`genjax.sampling.scan.trajectory_steps`).
  * ``t_start`` starts below the top of the chain (SDEdit, :mod:`genjax.sampling.conditional`)
    from ``x_T``, which must then be given; ``constraint(x, alpha, sigma, key)`` is applied
    to every state (replacement inpainting).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.convert import EpsFn, as_prediction, eps_of
from genjax.sampling.posterior import ClipRange, check_clip, check_var_type, p_mean_variance
from genjax.sampling.scan import initial_state, run_scan, step_draws
from genjax.sampling.schedules import DiffusionSchedule, respace, space_timesteps

__all__ = ["DDIM_SPACINGS", "ddim_step", "ddim_sample", "ddim_timesteps", "ddpm_sample",
           "ddpm_step_fn"]

Constraint = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]
DDIM_SPACINGS = ("uniform", "quadratic", "leading", "linspace", "trailing", "optimal")


def _split(key, constraint):
  """A step's key for its own noise and one for the constraint (only when there is one, so
  that unconstrained samples do not depend on whether constraints exist)."""
  if constraint is None:
    return key, None
  k, kc = jax.random.split(key)
  return k, kc


def _initial(process, key, shape, x_T, t_start, dtype, constraint, alpha, sigma):
  shape, x_T, key_init, key_steps = initial_state(process, key, shape, x_T, t_start, dtype)
  if constraint is not None:
    x_T = constraint(x_T, alpha, sigma, jax.random.fold_in(key_init, 1))
  return shape, x_T, key_steps


def _chain(sched: DiffusionSchedule, respacing, t_start):
  """The schedule an ancestral sampler runs on and the model time of each of its steps."""
  num_t = sched.num_timesteps
  keep = (np.arange(num_t) if respacing in (None, "")
          else space_timesteps(num_t, respacing))
  if t_start is not None:
    if isinstance(t_start, bool) or int(t_start) != t_start or not 0 <= t_start < num_t:
      raise ValueError(f"t_start must be a step in [0, {num_t - 1}], got {t_start!r}.")
    keep = keep[keep <= int(t_start)]
  if len(keep) == num_t:
    return sched, None
  spaced, timestep_map = respace(sched, keep)
  return spaced, jnp.asarray(timestep_map)


def ddpm_step_draws(key, shape, dtype, constraint):
  """One ancestral step's randomness: its noise ``z`` and the constraint's key (or None)."""
  k, kc = _split(key, constraint)
  return jax.random.normal(k, shape, dtype), kc


def ddpm_step_fn(eps_fn: EpsFn, sched: DiffusionSchedule, *, cond=None,
                 var_type: str = "fixed_large", clip: ClipRange = None, timestep_map=None,
                 constraint: Optional[Constraint] = None, draws_of=None):
  """One ancestral step ``(x_t, (t, key)) -> x_{t-1}`` on ``sched`` (the chain's own zero-based
  ``t``; the denoiser is called at ``timestep_map[t]`` for a respaced chain). Shared by
  :func:`ddpm_sample` and RePaint (:func:`genjax.sampling.conditional.repaint_sample`).

  ``draws_of``: with the ``draws_of`` of :func:`~genjax.sampling.scan.step_draws` the step's
  second input is what that gave for the step (its noise drawn ahead, or its key); by default
  it is the step's key."""

  def step(x, inp):
    t, r = inp
    z, kc = (draws_of(r) if draws_of is not None
             else ddpm_step_draws(r, x.shape, x.dtype, constraint))
    t_model = t if timestep_map is None else timestep_map[t]
    out = as_prediction(eps_fn(x, t_model, cond))
    p = p_mean_variance(sched, out.eps, x, t, var_type, clip, var_values=out.var_values)
    mean = p["mean"]
    if out.log_p_grad is not None:  # Dhariwal & Nichol 2021, Algorithm 1: mu + s Sigma grad
      mean = mean + p["var"] * out.log_p_grad
    noise_scale = jnp.where(t > 0, jnp.exp(0.5 * p["log_var"]), 0.0)
    x = (mean + noise_scale * z).astype(x.dtype)
    if constraint is not None:
      prev = jnp.maximum(t - 1, 0)
      a = jnp.where(t > 0, sched.marginal_alpha(prev), 1.0).astype(x.dtype)
      s = jnp.where(t > 0, sched.marginal_std(prev), 0.0).astype(x.dtype)
      x = constraint(x, a, s, kc)
    return x

  return step


def ddpm_sample(eps_fn: EpsFn, sched: DiffusionSchedule, key: jax.Array, shape, *, cond=None,
                var_type: str = "fixed_large", clip_x0: ClipRange = None, respacing=None,
                t_start: Optional[int] = None, trajectory_stride: Optional[int] = None,
                x_T: Optional[jax.Array] = None, constraint: Optional[Constraint] = None):
  """Ancestral sampling, Ho et al. 2020 Algorithm 2 (seed Algorithm 2, eq. 28).

  ``x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps(x_t, t)) + sigma_t z`` for
  ``t = T-1, ..., 0`` (zero-based), with ``z ~ N(0, I)`` except at ``t = 0`` (no noise). The mean
  is computed as the posterior mean at the predicted ``x_0`` (:func:`p_mean_variance`), which
  is the same thing and allows ``clip_x0``.

  * ``var_type="learned_range"``: ``sigma_t^2`` is the network's
    ``exp(v log beta_t + (1 - v) log beta~_t)`` (Nichol & Dhariwal 2021, eq. 15; seed eq. 35).
  * ``respacing``: the chain that visits only the kept steps (Nichol & Dhariwal 2021, Sec. 4;
    :func:`~genjax.sampling.schedules.respace`), the denoiser called at the original steps.
  * Classifier guidance (a :class:`~genjax.sampling.convert.Prediction` with ``log_p_grad``)
    shifts the mean by ``Sigma s grad log p(y | x_t)``: Dhariwal & Nichol 2021, Algorithm 1.

  Args:
    eps_fn: ``eps_fn(x [B, ...], t int32 scalar, cond)``.
    sched: the schedule.
    key: a PRNG key.
    shape: ``(B, ...)``, static.
    cond: the condition passed to ``eps_fn``.
    var_type: ``"fixed_large"`` (``sigma_t^2 = beta_t``) or ``"fixed_small"``
      (``sigma_t^2 = beta~_t``), Ho et al. 2020 Sec. 3.2; or ``"learned_range"``.
    clip_x0: ``None`` or ``(lo, hi)``: clip the predicted ``x_0`` (and recompute ``eps``).
    respacing: None (all T steps), or improved-diffusion's ``timestep_respacing`` (``"50"``,
      ``"10,15,20"``, ``"ddim25"`` or a sequence of steps; :func:`space_timesteps`).
    t_start: start at this zero-based step from ``x_T`` instead of at ``T - 1``.
    trajectory_stride: ``None`` or a positive int; see the module docstring.
    x_T: optional starting state of ``shape`` (default: drawn from ``key``).
    constraint: ``constraint(x, alpha, sigma, key) -> x`` after every step.

  Returns:
    ``x_0`` ``[*shape]``, or ``(x_0, trajectory [n, *shape])`` with a trajectory stride.
  """
  check_var_type(var_type)
  check_clip(clip_x0)
  spaced, tmap = _chain(sched, respacing, t_start)
  n = spaced.num_timesteps
  top = jnp.asarray(n - 1, jnp.int32)
  dtype = sched.betas.dtype
  shape, x_T, key_steps = _initial(spaced, key, shape, x_T, t_start, dtype, constraint,
                                   spaced.marginal_alpha(top), spaced.marginal_std(top))
  draws, draws_of = step_draws(lambda k: ddpm_step_draws(k, x_T.shape, x_T.dtype, constraint),
                               jax.random.split(key_steps, n))
  step = ddpm_step_fn(eps_fn, spaced, cond=cond, var_type=var_type, clip=clip_x0,
                      timestep_map=tmap, constraint=constraint, draws_of=draws_of)
  xs = (jnp.arange(n - 1, -1, -1, dtype=jnp.int32), draws)
  return run_scan(step, x_T, xs, stride=trajectory_stride)


# ------------------------------------------------------------------------------------------------
# DDIM.
# ------------------------------------------------------------------------------------------------


def ddim_timesteps(num_timesteps: int, num_steps: int, spacing: str = "uniform",
                   costs=None, steps_offset: int = 0) -> np.ndarray:
  """The decreasing, zero-based timesteps a DDIM sampler visits on a discrete chain.

  Follows the DDIM paper's official code (``ermongroup/ddim``, ``runners/diffusion.py``,
  ``skip_type``):

  * ``"uniform"``: ``range(0, T, T // S)``; this may give slightly more than S steps when S
    does not divide T (as the reference does).
  * ``"quadratic"``: ``int(linspace(0, sqrt(0.8 T), S)**2)``, which tops out at ``0.8 T``
    (as the reference, used there for CIFAR-10). Repeated values (for large S) are dropped,
    since a step from t to t is the identity; so fewer than S steps may be returned.
    Sampling then starts from ``N(0, I)`` at ``t = 0.8 T``: fine for the linear schedule
    (``abar`` ~ 2e-3 there) but markedly biased for the cosine one (``abar`` ~ 0.1); prefer
    ``"uniform"`` with cosine.
  * ``"leading"``: diffusers' ``timestep_spacing="leading"``: exactly S steps
    ``0, r, ..., (S-1) r`` with ``r = T // S``, each plus ``steps_offset`` (diffusers'
    scheduler field of that name; Stable Diffusion 1.x uses 1). Only this spacing takes an
    offset, as in diffusers.
  * ``"linspace"``: diffusers' ``"linspace"``: ``round(linspace(0, T - 1, S))``.
  * ``"trailing"``: diffusers' ``"trailing"``: ``round(arange(T, 0, -T/S)) - 1``, which starts at
    the last step ``T - 1`` (Lin et al. 2024, Sec. 3.3: with a zero-terminal-SNR schedule the
    sampler must start where the model saw pure noise).
  * ``"optimal"``: Watson et al. 2021's dynamic-programming path on ``costs``
    (:func:`genjax.sampling.analytic.optimal_timesteps`; ``costs`` from
    :func:`~genjax.sampling.analytic.vlb_cost_table`).

  Returns:
    int64 numpy array, strictly decreasing, ending in 0.
  """
  if spacing not in DDIM_SPACINGS:
    raise ValueError(f"Unknown spacing {spacing!r}; valid ones are {', '.join(DDIM_SPACINGS)}.")
  if isinstance(num_steps, bool) or int(num_steps) != num_steps or not 1 <= num_steps <= num_timesteps:
    raise ValueError(
        f"num_steps must be an integer in [1, num_timesteps={num_timesteps}], got {num_steps!r}.")
  n, s = int(num_timesteps), int(num_steps)
  if steps_offset and spacing != "leading":
    raise ValueError(f"steps_offset={steps_offset} applies to spacing='leading' only (as in "
                     f"diffusers), not {spacing!r}.")
  if not 0 <= steps_offset < n // s:
    raise ValueError(f"steps_offset must be in [0, T // S = {n // s}), got {steps_offset}.")
  if spacing == "uniform":
    seq = np.arange(0, n, n // s)
  elif spacing == "quadratic":
    seq = (np.linspace(0, np.sqrt(n * 0.8), s) ** 2).astype(np.int64)
  elif spacing == "leading":
    seq = np.arange(0, s) * (n // s) + steps_offset
  elif spacing == "linspace":
    seq = np.linspace(0, n - 1, s).round()
  elif spacing == "trailing":
    seq = np.round(np.arange(n, 0, -n / s)) - 1
  else:
    if costs is None:
      raise ValueError("spacing='optimal' needs the cost table (costs=...; sample.py: "
                       "--analytic_moments=W/analytic_moments.npz).")
    from genjax.sampling.analytic import optimal_timesteps
    seq = optimal_timesteps(costs, max(s, 2))
  return np.unique(seq.astype(np.int64))[::-1].astype(np.int64)


def _continuous_timesteps(process, num_steps: int, spacing: str, t_start) -> np.ndarray:
  """``num_steps`` decreasing times from ``t_start`` (default ``T``) to ``sampling_eps``,
  uniform in ``t`` or in ``sqrt(t)``."""
  if spacing not in ("uniform", "quadratic"):
    raise ValueError(f"spacing {spacing!r} is a discrete chain's; on a continuous process use "
                     "uniform or quadratic.")
  if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
    raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}.")
  hi = float(process.T if t_start is None else t_start)
  lo = float(process.sampling_eps)
  if num_steps == 1:
    return np.array([hi])
  if spacing == "uniform":
    return np.linspace(hi, lo, int(num_steps))
  return np.linspace(hi**0.5, lo**0.5, int(num_steps)) ** 2


def _check_timesteps(timesteps, process) -> np.ndarray:
  ts = np.asarray(timesteps)
  discrete = isinstance(process, DiffusionSchedule)
  ok = ts.ndim == 1 and len(ts) >= 1 and np.all(np.diff(ts) < 0)
  if discrete:
    ok = ok and np.issubdtype(ts.dtype, np.integer) and ts.min() >= 0 and ts.max() < process.N
    where = f"integers in [0, {process.N - 1}] (zero-based)"
  else:
    ok = ok and ts.min() > 0 and ts.max() <= process.T
    where = f"times in (0, {process.T}]"
  if not ok:
    raise ValueError(f"timesteps must be a 1-D array of strictly decreasing {where}; "
                     f"got {timesteps!r}.")
  return ts


def ddim_step(x0: jax.Array, eps: jax.Array, alpha_s, sigma_s, noise_std=0.0, noise=None):
  """The DDIM update to level ``s`` given ``x0`` and ``eps`` at ``x_t`` (Song et al. 2021, eq. 12;
  seed eq. 41-43): ``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z`` with
  ``c = noise_std``. With ``c = 0`` it is the deterministic DDIM step (Salimans & Ho 2022,
  eq. 5, in x-prediction form). ``sigma_s^2 - c^2`` is clipped at 0."""
  dir_coef = jnp.sqrt(jnp.maximum(sigma_s**2 - noise_std**2, 0.0))
  out = alpha_s * x0 + dir_coef * eps
  return out if noise is None else out + noise_std * noise


def ddim_sample(eps_fn: EpsFn, process, key: jax.Array, shape, *, cond=None,
                num_steps: int = 50, eta: float = 0.0, spacing: str = "uniform", timesteps=None,
                set_alpha_to_one: bool = True, clip_x0: ClipRange = None, t_start=None,
                trajectory_stride: Optional[int] = None, x_T: Optional[jax.Array] = None,
                constraint: Optional[Constraint] = None, costs=None, gamma=None,
                steps_offset: int = 0):
  """DDIM sampling (Song et al. 2021, eq. 12 and 16; seed eq. 41-43) on any Gaussian process.

  For consecutive times ``t > s`` of a decreasing grid, with ``alpha``, ``sigma`` the process's
  marginal coefficients and ``lambda = log(alpha / sigma)``:

    ``x0 = (x_t - sigma_t eps) / alpha_t``
    ``c = eta sigma_s sqrt(1 - exp(2 (lambda_t - lambda_s)))``
    ``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z``.

  On a VP chain ``c = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)``: the DDIM
  paper's eq. 16, ``sigma^2 = eta^2 beta~``. (Seed 003 writes ``sigma^2 = eta beta~``; the
  paper's ``eta^2`` is right: ``eta = 1`` must give the posterior variance ``beta~``, and
  ``eta`` scales a standard deviation.) ``eta = 0`` is the deterministic DDIM; ``eta = 1`` on
  all T steps is ancestral sampling with ``beta~`` (the same samples as
  ``ddpm_sample(var_type="fixed_small")`` for the same key).

  After the last grid time the final step lands on clean data (``alpha = 1, sigma = 0``: the
  predicted ``x0``), or with ``set_alpha_to_one=False`` on the process's first level
  (``abar_0`` of a discrete chain: diffusers' ``DDIMScheduler(set_alpha_to_one=False)``).

  Grids: on a :class:`~genjax.sampling.schedules.DiffusionSchedule`, the zero-based steps of
  :func:`ddim_timesteps` (the sampler starts from ``x_T ~ N(0, I)`` at the largest, as the
  reference code); on a continuous process, ``num_steps`` times from ``T`` to
  ``sampling_eps``, uniform in ``t`` or in ``sqrt(t)`` (progressive distillation's student
  grid ``i / N`` is the uniform grid of a :class:`~genjax.sampling.processes.DiscreteVPSDE`).

  Args:
    eps_fn: ``eps_fn(x [B, ...], t scalar, cond)``; a learned variance is ignored, classifier
      guidance is applied in eps form.
    process: a discrete schedule or a continuous process.
    key: a PRNG key.
    shape: ``(B, ...)``, static.
    cond: the condition passed to ``eps_fn``.
    num_steps: S, used with ``spacing`` when ``timesteps`` is None.
    eta: stochasticity, ``>= 0`` (a float or a traced scalar).
    spacing: the discrete grid (:func:`ddim_timesteps`) or ``"uniform"``/``"quadratic"`` on a
      continuous process.
    steps_offset: added to every step of the ``"leading"`` discrete grid (diffusers').
    timesteps: optional strictly decreasing grid (zero-based ints on a discrete chain, times in
      ``(0, T]`` otherwise), overriding ``num_steps`` and ``spacing``.
    set_alpha_to_one: the last step lands on clean data (True) or on the first level.
    clip_x0: ``None`` or ``(lo, hi)``: clip ``x0`` and recompute ``eps`` from it.
    t_start: start at this time (a discrete step) from ``x_T``; the grid keeps its times
      at or below it.
    trajectory_stride: ``None`` or a positive int; see the module docstring.
    x_T: optional starting state of ``shape``.
    constraint: ``constraint(x, alpha, sigma, key) -> x`` after every step.
    costs: ``spacing="optimal"``'s cost table (:func:`genjax.sampling.analytic.vlb_cost_table`).
    gamma: Analytic-DPM (discrete chain only): ``[T]`` ``Gamma_t = E||eps_theta||^2 / d``; the
      step's noise is then ``sigma*`` of Bao et al. 2022 Thm. 1 with ``lambda = c`` (eta = 0:
      Analytic-DDIM; eta = 1: Analytic-DDPM), and none on the last step to clean data.

  Returns:
    ``x_0`` ``[*shape]``, or ``(x_0, trajectory [n, *shape])`` with a trajectory stride.
  """
  check_clip(clip_x0)
  discrete = isinstance(process, DiffusionSchedule)
  if gamma is not None and not discrete:
    raise ValueError("Analytic-DPM's variance (gamma) needs a discrete chain.")
  if timesteps is not None:
    ts = _check_timesteps(timesteps, process)
  elif discrete:
    ts = ddim_timesteps(process.N, num_steps, spacing, costs=costs, steps_offset=steps_offset)
  else:
    ts = _continuous_timesteps(process, num_steps, spacing, t_start)
  if t_start is not None:
    ts = ts[ts <= t_start]
    if not len(ts):
      raise ValueError(f"t_start={t_start!r} is below every time of the grid.")
  dtype = process.betas.dtype if discrete else (x_T.dtype if x_T is not None else jnp.float32)
  ts = jnp.asarray(ts, jnp.int32 if discrete else dtype)
  n = int(ts.shape[0])
  a_t, s_t = process.marginal_alpha(ts).astype(dtype), process.marginal_std(ts).astype(dtype)
  if set_alpha_to_one:
    last = (jnp.ones((1,), dtype), jnp.zeros((1,), dtype))
  else:
    first = jnp.asarray([process.sampling_eps], ts.dtype)
    last = (process.marginal_alpha(first).astype(dtype), process.marginal_std(first).astype(dtype))
  a_s = jnp.concatenate([a_t[1:], last[0]])
  s_s = jnp.concatenate([s_t[1:], last[1]])
  # exp(2 (lambda_t - lambda_s)) = (alpha_t sigma_s / (sigma_t alpha_s))^2, 0 at clean data.
  ratio2 = (a_t * s_s / (s_t * a_s)) ** 2
  shape, x_T, key_steps = _initial(process, key, shape, x_T, t_start, dtype, constraint,
                                   a_t[0], s_t[0])

  gam = None if gamma is None else jnp.asarray(gamma, dtype)
  # eta = 0 (a Python number) without Analytic-DPM's variance adds no noise: none is drawn.
  noiseless = gam is None and isinstance(eta, (int, float)) and eta == 0

  def draw(k):
    if noiseless:
      return None, _split(k, constraint)[1]
    return ddpm_step_draws(k, x_T.shape, x_T.dtype, constraint)

  draws, draws_of = step_draws(draw, jax.random.split(key_steps, n))

  def step(x, inp):
    t, at, st, as_, ss, r2, r = inp
    z, kc = draws_of(r)
    eps = eps_of(eps_fn(x, t, cond), st).astype(x.dtype)
    x0 = (x - st * eps) / at
    if clip_x0 is not None:
      x0 = jnp.clip(x0, clip_x0[0], clip_x0[1])
      eps = (x - at * x0) / st
    c = eta * ss * jnp.sqrt(jnp.maximum(1.0 - r2, 0.0))
    x = ddim_step(x0, eps, as_, ss, c, z).astype(x.dtype)
    if gam is not None:  # Analytic-DPM: the same mean, the optimal variance
      from genjax.sampling.analytic import analytic_variance
      var = analytic_variance(gam[t], at**2, as_**2, c**2)
      x = (x + (jnp.where(ss > 0, jnp.sqrt(var), 0.0) - c) * z).astype(x.dtype)
    if constraint is not None:
      x = constraint(x, as_, ss, kc)
    return x

  xs = (ts, a_t, s_t, a_s, s_s, ratio2, draws)
  return run_scan(step, x_T, xs, stride=trajectory_stride)
