"""The discrete-time noise process of DDPM and its descendants: beta schedules and respacing.

Timesteps are zero-based: index ``t in {0..T-1}`` is the paper's step ``t+1`` (the
improved-diffusion / diffusers convention). So ``betas[0]`` is Ho et al.'s ``beta_1`` and
``alphas_cumprod[t]`` is ``abar_{t+1}``.

A schedule is a :class:`DiffusionSchedule`: a frozen ``flax.struct.dataclass`` (a pytree, so it
passes through ``jit`` as an argument) that holds every derived array. All of them are computed
in float64 numpy and only then cast to the requested dtype, as improved-diffusion does. It has
the noise-process interface of :mod:`genjax.sampling.processes` in integer time (marginals,
prior, the chain's ``discretize``, ``reverse``), and :meth:`DiffusionSchedule.continuous` gives
its continuous-time view for the samplers that need one (DPM-Solver, PC, the ODE).

Example:
  >>> sched = get_schedule("cosine", 1000)
  >>> sched.num_timesteps
  1000
"""

from __future__ import annotations

import math
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling.processes import DiscreteVPSDE, ReverseSDE, gaussian_logp

__all__ = [
    "DiffusionSchedule",
    "SCHEDULE_NAMES",
    "betas_for_alpha_bar",
    "extract",
    "get_beta_schedule",
    "get_schedule",
    "make_schedule",
    "rescale_zero_terminal_snr",
    "respace",
    "space_timesteps",
]

SCHEDULE_NAMES = ("linear", "cosine", "quadratic", "sigmoid")


def betas_for_alpha_bar(
    num_timesteps: int, alpha_bar: Callable[[float], float], max_beta: float = 0.999
) -> np.ndarray:
  """Betas that discretize a continuous ``abar(s)``, ``s in [0, 1]``.

  ``beta_t = min(1 - abar((t+1)/T) / abar(t/T), max_beta)`` for zero-based ``t``
  (Nichol & Dhariwal 2021, eq. 17 and the text after it; seed eq. 34).

  Args:
    num_timesteps: T.
    alpha_bar: the cumulative product of ``1 - beta`` as a function of ``s in [0, 1]``.
    max_beta: upper clip, below 1 to avoid a singularity at the end of the chain.

  Returns:
    float64 array ``[T]``.
  """
  t = np.arange(num_timesteps, dtype=np.float64)
  a1 = np.array([alpha_bar(s) for s in t / num_timesteps], dtype=np.float64)
  a2 = np.array([alpha_bar(s) for s in (t + 1) / num_timesteps], dtype=np.float64)
  return np.minimum(1.0 - a2 / a1, max_beta)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
  """Lin et al. 2024 ("Common Diffusion Noise Schedules and Sample Steps are Flawed"),
  Algorithm 1: shift and scale ``sqrt(abar)`` so that the last step has zero SNR
  (``abar_T = 0``) while the first keeps its value, and return the betas of that ``abar``.

  The last beta becomes 1. float64 ``[T]``.
  """
  abar_sqrt = np.sqrt(np.cumprod(1.0 - np.asarray(betas, np.float64)))
  first, last = abar_sqrt[0], abar_sqrt[-1]
  abar_sqrt = (abar_sqrt - last) * first / (first - last)
  abar = abar_sqrt**2
  alphas = np.append(abar[0], abar[1:] / abar[:-1])
  return 1.0 - alphas


ZSNR_SUFFIX = "_zsnr"
ZSNR_FLOOR = 2.0**-24


def get_beta_schedule(name: str, num_timesteps: int, **kw) -> np.ndarray:
  """A named beta schedule, float64 ``[T]``; ``betas[t]`` is the paper's ``beta_{t+1}``.

  Schedules:
    * ``"linear"``: Ho et al. 2020 (Sec. 4): ``beta`` linear from ``1e-4`` to ``0.02`` at
      T = 1000, extended to any T as improved-diffusion does (``get_named_beta_schedule``):
      both ends are multiplied by ``scale = 1000 / T``.
    * ``"cosine"``: Nichol & Dhariwal 2021, eq. 17 (seed eq. 34):
      ``abar(s) = f(s)/f(0)``, ``f(s) = cos((s + s0)/(1 + s0) * pi/2)^2``, ``s0 = 0.008``,
      ``beta_t = min(1 - abar_t/abar_{t-1}, 0.999)`` (improved-diffusion's
      ``betas_for_alpha_bar``).
    * ``"quadratic"``: Ho et al.'s reference code ``diffusion_utils_2.get_beta_schedule('quad')``
      (also diffusers' ``"scaled_linear"``): ``linspace(sqrt(beta_start), sqrt(beta_end), T)**2``.
    * ``"<name>_zsnr"``: any of them rescaled to zero terminal SNR (Lin et al. 2024, Alg. 1;
      :func:`rescale_zero_terminal_snr`), the terminal ``abar`` floored at
      ``min(2^-24, abar_{T-1} / 2)``.
    * ``"sigmoid"``: the DDIM paper's official code (``ermongroup/ddim``,
      ``runners/diffusion.py``) and diffusers' ``DDPMScheduler(beta_schedule="sigmoid")``:
      ``sigmoid(linspace(-6, 6, T)) * (beta_end - beta_start) + beta_start``.

  For ``linear``, ``quadratic`` and ``sigmoid``, ``beta_start`` / ``beta_end`` are given for
  T = 1000 and both are multiplied by ``1000 / T`` (improved-diffusion's rule, applied to all
  three so that their total noise does not depend on T; at T = 1000 they equal the references
  exactly). Pass ``rescale=False`` to use ``beta_start`` / ``beta_end`` as given.

  Args:
    name: one of ``"linear"``, ``"cosine"``, ``"quadratic"``, ``"sigmoid"``.
    num_timesteps: T >= 1.
    **kw: ``beta_start`` (1e-4), ``beta_end`` (0.02), ``rescale`` (True) for the
      linear-family schedules; ``s`` (0.008) and ``max_beta`` (0.999) for ``"cosine"``.

  Returns:
    float64 numpy array ``[T]``.

  Raises:
    ValueError: unknown name, bad T or unknown keyword.
  """
  if name.endswith(ZSNR_SUFFIX) and name[:-len(ZSNR_SUFFIX)] in SCHEDULE_NAMES:
    betas = rescale_zero_terminal_snr(
        get_beta_schedule(name[:-len(ZSNR_SUFFIX)], num_timesteps, **kw))
    # abar_T = 0 exactly makes x0 = (x - sigma eps) / alpha undefined at the top, where every
    # sampler starts; as diffusers' solvers do (rescale_betas_zero_snr), the terminal abar is
    # floored, at 2^-24 or half the previous step's abar if that is smaller (the chain stays
    # monotone), an SNR below 1e-7: no signal leaks into x_T at any data scale.
    abar = np.cumprod(1.0 - betas)
    abar[-1] = min(ZSNR_FLOOR, 0.5 * abar[-2]) if len(abar) > 1 else ZSNR_FLOOR
    return 1.0 - abar / np.append(1.0, abar[:-1])
  if name not in SCHEDULE_NAMES:
    raise ValueError(
        f"Unknown beta schedule {name!r}; valid names are {', '.join(SCHEDULE_NAMES)} "
        f"(each also with the zero-terminal-SNR suffix {ZSNR_SUFFIX}, e.g. linear_zsnr).")
  if int(num_timesteps) != num_timesteps or num_timesteps < 1:
    raise ValueError(f"num_timesteps must be a positive integer, got {num_timesteps!r}.")
  num_timesteps = int(num_timesteps)
  allowed = {"s", "max_beta"} if name == "cosine" else {"beta_start", "beta_end", "rescale"}
  unknown = set(kw) - allowed
  if unknown:
    raise ValueError(
        f"Unknown keyword(s) {sorted(unknown)} for beta schedule {name!r}; "
        f"it accepts {sorted(allowed)}.")

  if name == "cosine":
    s = float(kw.get("s", 0.008))
    max_beta = float(kw.get("max_beta", 0.999))

    def f(u):
      return math.cos((u + s) / (1.0 + s) * math.pi / 2) ** 2

    return betas_for_alpha_bar(num_timesteps, lambda u: f(u) / f(0.0), max_beta)

  scale = 1000.0 / num_timesteps if kw.get("rescale", True) else 1.0
  beta_start = scale * float(kw.get("beta_start", 1e-4))
  beta_end = scale * float(kw.get("beta_end", 0.02))
  if name == "linear":
    betas = np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)
  elif name == "quadratic":
    betas = np.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=np.float64) ** 2
  else:  # sigmoid
    u = np.linspace(-6.0, 6.0, num_timesteps, dtype=np.float64)
    betas = 1.0 / (1.0 + np.exp(-u)) * (beta_end - beta_start) + beta_start
  return betas


@flax.struct.dataclass
class DiffusionSchedule:
  """Every array derived from ``betas``; each is ``[T]``, indexed by zero-based ``t``.

  With ``abar_t = alphas_cumprod[t]`` (Ho et al. 2020, eq. 4; seed eq. 16-17) and
  ``abar_{-1} = 1``:

  Attributes:
    betas: ``beta_t``.
    alphas: ``1 - beta_t``.
    alphas_cumprod: ``abar_t = prod_{s<=t} alpha_s``.
    alphas_cumprod_prev: ``abar_{t-1}`` (1 at t = 0).
    alphas_cumprod_next: ``abar_{t+1}`` (0 at t = T-1).
    sqrt_alphas_cumprod: ``sqrt(abar_t)``.
    sqrt_one_minus_alphas_cumprod: ``sqrt(1 - abar_t)``.
    log_one_minus_alphas_cumprod: ``log(1 - abar_t)``.
    sqrt_recip_alphas_cumprod: ``1 / sqrt(abar_t)``.
    sqrt_recipm1_alphas_cumprod: ``sqrt(1/abar_t - 1)``.
    posterior_variance: ``beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)`` (Ho et al. eq. 7;
      seed eq. 21); 0 at t = 0.
    posterior_log_variance_clipped: ``log beta~_t`` with ``beta~_0`` replaced by ``beta~_1``
      (improved-diffusion), so that it is finite.
    posterior_mean_coef1: coefficient of ``x_0`` in ``mu~_t``:
      ``beta_t sqrt(abar_{t-1}) / (1 - abar_t)`` (Ho et al. eq. 7; seed eq. 22).
    posterior_mean_coef2: coefficient of ``x_t`` in ``mu~_t``:
      ``sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t)``.
  """

  betas: jax.Array
  alphas: jax.Array
  alphas_cumprod: jax.Array
  alphas_cumprod_prev: jax.Array
  alphas_cumprod_next: jax.Array
  sqrt_alphas_cumprod: jax.Array
  sqrt_one_minus_alphas_cumprod: jax.Array
  log_one_minus_alphas_cumprod: jax.Array
  sqrt_recip_alphas_cumprod: jax.Array
  sqrt_recipm1_alphas_cumprod: jax.Array
  posterior_variance: jax.Array
  posterior_log_variance_clipped: jax.Array
  posterior_mean_coef1: jax.Array
  posterior_mean_coef2: jax.Array

  @property
  def num_timesteps(self) -> int:
    """T, the number of diffusion steps (static: it is an array shape)."""
    return int(self.betas.shape[0])

  # -- the noise-process interface, in zero-based integer time t in {0..T-1} -------------------

  @property
  def N(self) -> int:
    """The number of steps (the processes' name for ``num_timesteps``)."""
    return self.num_timesteps

  @property
  def T(self) -> int:
    """The last step, ``num_timesteps - 1``: where samplers start."""
    return self.num_timesteps - 1

  sampling_eps = 0  # the last step a sampler visits
  prior_std = 1.0
  kind = "discrete"  # the catalog's name for this process

  def marginal_alpha(self, t):
    """``sqrt(abar_t)``, gathered at zero-based ``t``."""
    return jnp.take(self.sqrt_alphas_cumprod, jnp.asarray(t), axis=0)

  def marginal_std(self, t):
    """``sqrt(1 - abar_t)``."""
    return jnp.take(self.sqrt_one_minus_alphas_cumprod, jnp.asarray(t), axis=0)

  def marginal_log_mean_coeff(self, t):
    """``0.5 log abar_t``."""
    return jnp.log(self.marginal_alpha(t))

  def marginal_lambda(self, t):
    """The half log-SNR ``log(sqrt(abar_t) / sqrt(1 - abar_t))``."""
    return jnp.log(self.marginal_alpha(t)) - jnp.log(self.marginal_std(t))

  def marginal_prob(self, x, t):
    """``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` (Ho et al. 2020, eq. 4): mean
    ``[B, ...]`` and std (shape of ``t``)."""
    a = self.marginal_alpha(t)
    return a.reshape(a.shape + (1,) * (x.ndim - a.ndim)) * x, self.marginal_std(t)

  def prior_sampling(self, key: jax.Array, shape, dtype=None) -> jax.Array:
    """``x_T ~ N(0, I)``, in the schedule's dtype by default."""
    return jax.random.normal(key, tuple(shape), dtype or self.betas.dtype)

  def prior_logp(self, z: jax.Array) -> jax.Array:
    """``log N(z; 0, I)`` of each example, ``[B]``."""
    return gaussian_logp(z)

  def discretize(self, x, t):
    """The chain's forward step to zero-based ``t``, ``x_t = sqrt(1 - beta_t) x_{t-1} +
    sqrt(beta_t) z`` (Ho et al. eq. 2): ``f = (sqrt(1 - beta_t) - 1) x`` (computed as
    ``-beta / (1 + sqrt(1 - beta))``), ``G = sqrt(beta_t)``."""
    beta = jnp.take(self.betas, jnp.asarray(t), axis=0)
    f = -beta / (1.0 + jnp.sqrt(1.0 - beta))
    return f.reshape(f.shape + (1,) * (x.ndim - f.ndim)) * x, jnp.sqrt(beta)

  def sde(self, x, t):
    raise ValueError("A discrete DiffusionSchedule has no SDE; use its continuous-time view "
                     "sched.continuous() (a DiscreteVPSDE).")

  def reverse(self, score_fn, probability_flow: bool = False) -> ReverseSDE:
    """The reverse of the chain (``ReverseSDE.discretize``: reverse diffusion on the chain)."""
    return ReverseSDE(self, score_fn, bool(probability_flow))

  def continuous(self) -> DiscreteVPSDE:
    """This schedule in continuous time: step ``n`` at ``t_n = (n + 1) / T_steps`` with
    ``log alpha = 0.5 log abar_n``, interpolated between steps (DPM-Solver's discrete
    ``NoiseScheduleVP``). The arrays keep the schedule's dtype."""
    n = self.num_timesteps
    if n < 2:
      raise ValueError("A continuous view needs a schedule of at least 2 steps.")
    abar = self.alphas_cumprod
    t_array = (jnp.arange(1, n + 1, dtype=abar.dtype) / n).astype(abar.dtype)
    return DiscreteVPSDE(t_array=t_array, log_alpha_array=0.5 * jnp.log(abar), N=n)


def make_schedule(betas, dtype=jnp.float32) -> DiffusionSchedule:
  """Builds a :class:`DiffusionSchedule` from ``betas``.

  Everything is computed in float64 numpy (as improved-diffusion's ``GaussianDiffusion``) and
  then cast to ``dtype``.

  Args:
    betas: ``[T]`` array-like with ``0 < beta <= 1`` (``betas[t]`` is the paper's
      ``beta_{t+1}``).
    dtype: dtype of the stored arrays (use ``jnp.float64`` under ``jax.enable_x64``).

  Returns:
    The schedule.

  Raises:
    ValueError: if ``betas`` is not 1-D, is empty, or has a value outside ``(0, 1]``.
  """
  betas = np.asarray(betas, dtype=np.float64)
  if betas.ndim != 1 or betas.shape[0] < 1:
    raise ValueError(f"betas must be a non-empty 1-D array, got shape {betas.shape}.")
  if not (np.all(betas > 0) and np.all(betas <= 1)):
    raise ValueError(
        "betas must lie in (0, 1]; got min "
        f"{betas.min():.3g}, max {betas.max():.3g}. Use get_beta_schedule(...) to build them.")

  alphas = 1.0 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.append(1.0, abar[:-1])
  abar_next = np.append(abar[1:], 0.0)
  with np.errstate(divide="ignore"):
    posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
    # beta~_0 = 0; improved-diffusion clips the log by using beta~_1 at t = 0.
    first = posterior_variance[1] if len(betas) > 1 else betas[0]
    posterior_log_variance_clipped = np.log(np.append(first, posterior_variance[1:]))
    arrays = dict(
        betas=betas,
        alphas=alphas,
        alphas_cumprod=abar,
        alphas_cumprod_prev=abar_prev,
        alphas_cumprod_next=abar_next,
        sqrt_alphas_cumprod=np.sqrt(abar),
        sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - abar),
        log_one_minus_alphas_cumprod=np.log(1.0 - abar),
        sqrt_recip_alphas_cumprod=np.sqrt(1.0 / abar),
        sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / abar - 1.0),
        posterior_variance=posterior_variance,
        posterior_log_variance_clipped=posterior_log_variance_clipped,
        posterior_mean_coef1=betas * np.sqrt(abar_prev) / (1.0 - abar),
        posterior_mean_coef2=(1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
    )
  return DiffusionSchedule(**{k: jnp.asarray(v, dtype=dtype) for k, v in arrays.items()})


def get_schedule(name: str, num_timesteps: int, dtype=jnp.float32, **kw) -> DiffusionSchedule:
  """``make_schedule(get_beta_schedule(name, num_timesteps, **kw), dtype)``."""
  return make_schedule(get_beta_schedule(name, num_timesteps, **kw), dtype=dtype)


def space_timesteps(num_timesteps: int, section_counts) -> np.ndarray:
  """The timesteps kept by a respaced sampler (Nichol & Dhariwal 2021, Sec. 4).

  improved-diffusion's ``respace.space_timesteps``, on the same inputs: the T steps are cut into
  ``len(section_counts)`` equal sections and ``section_counts[i]`` evenly spaced steps (rounded)
  are taken from section i, so ``"250"`` keeps 250 steps spread over all T, and ``"10,15,20"``
  keeps 10 from the first third, 15 from the second and 20 from the last. ``"ddimN"`` keeps
  ``range(0, T, stride)`` for the stride that gives exactly N steps (the DDIM paper's spacing).

  Args:
    num_timesteps: T of the trained model.
    section_counts: ``"N"``, ``"n1,n2,..."``, ``"ddimN"`` or a sequence of ints.

  Returns:
    The kept zero-based timesteps, int64, increasing.

  Raises:
    ValueError: a section asks for more steps than it has, or no stride gives ``ddimN``.
  """
  if isinstance(section_counts, str):
    text = section_counts.strip()
    if text.startswith("ddim"):
      desired = int(text[len("ddim"):])
      for stride in range(1, num_timesteps):
        if len(range(0, num_timesteps, stride)) == desired:
          return np.arange(0, num_timesteps, stride, dtype=np.int64)
      raise ValueError(f"Respacing {text!r}: no integer stride gives exactly {desired} of "
                       f"T={num_timesteps} steps; use a plain count such as '{desired}'.")
    try:
      section_counts = [int(c) for c in text.split(",")]
    except ValueError:
      raise ValueError(f"Respacing {section_counts!r} is not 'N', 'n1,n2,...' or 'ddimN'.") from None
  counts = [int(c) for c in section_counts]
  if not counts or min(counts) < 1:
    raise ValueError(f"Respacing section counts must be positive integers, got {counts}.")
  size_per, extra = divmod(num_timesteps, len(counts))
  start, kept = 0, []
  for i, count in enumerate(counts):
    size = size_per + (1 if i < extra else 0)
    if size < count:
      raise ValueError(f"Respacing: section {i} has {size} of T={num_timesteps} steps, cannot "
                       f"take {count} from it.")
    frac_stride = 1 if count <= 1 else (size - 1) / (count - 1)
    kept += [start + round(j * frac_stride) for j in range(count)]
    start += size
  return np.unique(np.asarray(kept, dtype=np.int64))


def respace(sched: DiffusionSchedule, use_timesteps) -> tuple[DiffusionSchedule, np.ndarray]:
  """The schedule of the Markov chain that visits only ``use_timesteps`` (Nichol & Dhariwal 2021,
  Sec. 4, "Improving sampling speed").

  Keeping ``abar`` at the kept steps S_1 < ... < S_K fixes the new betas:
  ``beta_{S_k} = 1 - abar_{S_k} / abar_{S_{k-1}}`` (``abar_{S_0} = 1``), and with them every
  posterior coefficient, ``beta~`` and the learned-variance range ``[beta~, beta]`` of eq. 15, so
  a model trained with T steps samples in K (improved-diffusion's ``SpacedDiffusion``). The
  network must be called at the original timestep ``timestep_map[k]`` for the new index k.

  Args:
    sched: the trained model's schedule (T steps).
    use_timesteps: the kept zero-based timesteps, e.g. from :func:`space_timesteps`.

  Returns:
    ``(spaced schedule with K steps, timestep_map int32 [K])``.
  """
  keep = np.unique(np.asarray(use_timesteps, dtype=np.int64))
  if keep.size == 0 or keep[0] < 0 or keep[-1] >= sched.num_timesteps:
    raise ValueError(f"use_timesteps must be non-empty and inside [0, {sched.num_timesteps}), got "
                     f"{keep[:3]}...{keep[-3:]}.")
  # 1 - abar_{S_k} / abar_{S_{k-1}} = 1 - prod_{S_{k-1} < i <= S_k} (1 - beta_i), in float64 from
  # the betas (a ratio of stored float32 abar would lose digits where abar is small).
  log_abar = np.cumsum(np.log1p(-np.asarray(sched.betas, dtype=np.float64)))[keep]
  betas = -np.expm1(np.diff(log_abar, prepend=0.0))
  return make_schedule(betas, dtype=sched.betas.dtype), keep.astype(np.int32)


def extract(arr: jax.Array, t: jax.Array, x_shape) -> jax.Array:
  """Gathers ``arr[t]`` and reshapes it to broadcast against ``x``.

  Args:
    arr: ``[T]`` schedule array.
    t: int ``[B]`` zero-based timesteps (or a scalar, which gives a scalar-like ``[1, 1, ...]``).
    x_shape: shape ``(B, ...)`` of the array it multiplies.

  Returns:
    ``[B, 1, ..., 1]`` with ``len(x_shape)`` dimensions.
  """
  t = jnp.asarray(t)
  out = jnp.take(arr, t, axis=0)
  return out.reshape(out.shape + (1,) * (len(x_shape) - out.ndim))
