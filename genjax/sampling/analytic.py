"""Analytic-DPM's optimal reverse variance (Bao et al. 2022) and the optimal sub-trajectories of
Watson et al. 2021, from two moments of a trained denoiser estimated once on training data.

For the DDIM family of reverse steps from level ``t`` to ``s < t`` (Song et al. 2021 eq. 12;
Bao et al. 2022 eq. 2-3), with ``bbar = 1 - abar``, noise ``lambda^2`` (0: DDIM; ``beta~``:
DDPM) and mean ``mu(x_t, x0^)``, the variance that maximises the likelihood is (Bao et al.
2022, Theorem 1, eq. 7 in noise-prediction form)

  ``sigma*^2 = lambda^2 + (sqrt(bbar_t abar_s / abar_t) - sqrt(bbar_s - lambda^2))^2 (1 - Gamma_t)``,
  ``Gamma_t = E_{q(x_0) q(x_t | x_0)} ||eps_theta(x_t, t)||^2 / d``,

and Theorem 2 bounds it between ``lambda^2`` and ``lambda^2 + (...)^2``: the estimate of
``1 - Gamma_t`` is clipped to ``[0, 1]`` (the paper's clipping of the variance to its bounds).

Watson et al. 2021 ("Learning to Efficiently Sample from Diffusion Models", Sec. 3) choose the K
steps of a sampler by dynamic programming: every jump ``t -> s`` has a cost ``L(t, s)``, the
``L_vlb`` term of that jump, and the best path from the top to step 0 minimises their sum
(their eq. 5 and Algorithm 1). With the DDPM posterior ``q(x_s | x_t, x_0)`` and the model's
``p(x_s | x_t) = q(x_s | x_t, x0^)`` (same variance) the term is

  ``L(t, s) = c_{s,t}^2 E||x_0 - x0^_t||^2 / (2 v_{s,t})``,  ``c_{s,t} = sqrt(abar_s) (1 - abar_t/abar_s) / (1 - abar_t)``,
  ``v_{s,t} = (1 - abar_s) (1 - abar_t / abar_s) / (1 - abar_t)``

(Ho et al. 2020 eq. 7 and the Gaussian KL), so one statistic per ``t``,
``E||x_0 - x0^_t||^2 = (bbar_t / abar_t) E||eps - eps_theta(x_t, t)||^2``, fills the table.

Both moments (``eps_sq``: ``Gamma_t``; ``eps_mse``: ``E||eps - eps_theta||^2 / d``) are written
by ``python -m benchmarks.analytic_moments --config=... --workdir=W`` to
``W/analytic_moments.npz`` and read by ``sampling.analytic_moments=W/analytic_moments.npz``.
"""

from __future__ import annotations

from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["analytic_variance", "estimate_moments", "load_moments", "optimal_timesteps",
           "save_moments", "vlb_cost_table"]


def analytic_variance(gamma, abar_t, abar_s, lam2=0.0):
  """Bao et al. 2022, Theorem 1 (eq. 7), with Theorem 2's clipping (module docstring).

  Args:
    gamma: ``Gamma_t = E||eps_theta(x_t, t)||^2 / d`` (scalar or array).
    abar_t, abar_s: ``abar`` at the current level and the next (``s < t``).
    lam2: the family's ``lambda^2`` (0: Analytic-DDIM; ``beta~_{s|t}``: Analytic-DDPM).

  Returns:
    ``sigma*^2``, broadcast over the inputs.
  """
  bt, bs = 1.0 - abar_t, 1.0 - abar_s
  gap = (jnp.sqrt(bt * abar_s / abar_t) - jnp.sqrt(jnp.maximum(bs - lam2, 0.0))) ** 2
  return lam2 + gap * jnp.clip(1.0 - gamma, 0.0, 1.0)


def estimate_moments(eps_fn: Callable, sched, batches: Iterable[jax.Array], key: jax.Array,
                     timesteps=None) -> dict:
  """Monte-Carlo estimates of ``Gamma_t = E||eps_theta(x_t, t)||^2 / d`` and
  ``E||eps - eps_theta(x_t, t)||^2 / d`` on training data, for every zero-based step.

  Args:
    eps_fn: ``eps_fn(x [B, ...], t [B] int32) -> eps`` on the discrete chain.
    sched: the schedule.
    batches: training batches ``x_0 [B, ...]`` (reused for every step).
    key: PRNG key (a fresh noise per step and batch).
    timesteps: the steps to estimate (default all ``T``).

  Returns:
    ``{"eps_sq": [T], "eps_mse": [T], "timesteps": [T]}`` float64 numpy.
  """
  n_t = sched.num_timesteps
  ts = np.arange(n_t) if timesteps is None else np.asarray(timesteps)
  batches = [jnp.asarray(b) for b in batches]

  @jax.jit
  def moments(t, k):
    sq, mse = 0.0, 0.0
    for i, x0 in enumerate(batches):
      eps = jax.random.normal(jax.random.fold_in(k, i), x0.shape, x0.dtype)
      tt = jnp.full((x0.shape[0],), t, jnp.int32)
      a = sched.marginal_alpha(tt).reshape((-1,) + (1,) * (x0.ndim - 1))
      s = sched.marginal_std(tt).reshape((-1,) + (1,) * (x0.ndim - 1))
      pred = eps_fn(a * x0 + s * eps, tt)
      sq = sq + jnp.mean(pred.astype(jnp.float32) ** 2)
      mse = mse + jnp.mean((pred - eps).astype(jnp.float32) ** 2)
    return sq / len(batches), mse / len(batches)

  out = np.array([moments(int(t), jax.random.fold_in(key, int(t))) for t in ts], np.float64)
  return {"eps_sq": out[:, 0], "eps_mse": out[:, 1], "timesteps": ts.astype(np.int64)}


def save_moments(path: str, moments: dict) -> None:
  """Writes the moments as a plain ``.npz`` (no pickle)."""
  np.savez(path, **{k: np.asarray(v) for k, v in moments.items()})


def load_moments(path: str, num_timesteps: int) -> dict:
  """Reads :func:`save_moments`'s file (``allow_pickle=False``).

  Raises:
    ValueError: a missing file, or moments of another number of steps.
  """
  import os
  if not os.path.exists(path):
    raise ValueError(f"sampling.analytic_moments={path!r} does not exist; write it with "
                     "python -m benchmarks.analytic_moments --config=... --workdir=...")
  with np.load(path, allow_pickle=False) as f:
    out = {k: np.asarray(f[k]) for k in f.files}
  if out.get("eps_sq") is None or len(out["eps_sq"]) != num_timesteps:
    raise ValueError(f"{path} holds moments of {len(out.get('eps_sq', []))} steps; the model "
                     f"has {num_timesteps}. Re-estimate them for this model.")
  return out


def vlb_cost_table(abar: np.ndarray, eps_mse: np.ndarray) -> np.ndarray:
  """``L[s, t]`` of every jump ``t -> s`` (``s < t``; +inf elsewhere), per dimension (module
  docstring; Watson et al. 2021 Sec. 3 with the DDPM posterior's KL).

  Args:
    abar: ``[T]`` ``alphas_cumprod``.
    eps_mse: ``[T]`` ``E||eps - eps_theta(x_t, t)||^2 / d``.

  Returns:
    float64 ``[T, T]``.
  """
  abar = np.asarray(abar, np.float64)
  mse_x0 = np.asarray(eps_mse, np.float64) * (1.0 - abar) / abar  # E||x0 - x0^||^2 / d
  a_s, a_t = abar[:, None], abar[None, :]
  with np.errstate(divide="ignore", invalid="ignore"):
    beta = 1.0 - a_t / a_s
    c = np.sqrt(a_s) * beta / (1.0 - a_t)
    v = (1.0 - a_s) * beta / (1.0 - a_t)
    cost = c**2 * mse_x0[None, :] / (2.0 * v)
  s_idx, t_idx = np.indices(cost.shape)
  return np.where(s_idx < t_idx, cost, np.inf)


def optimal_timesteps(costs: np.ndarray, num_steps: int) -> np.ndarray:
  """The ``num_steps`` decreasing steps from ``T - 1`` to 0 minimising the summed jump costs
  (Watson et al. 2021, Algorithm 1: dynamic programming over ``K`` jumps, ``O(K T^2)``).

  Args:
    costs: ``[T, T]`` ``costs[s, t]`` of the jump ``t -> s`` (only ``s < t`` is used).
    num_steps: K >= 2 visited steps (K - 1 jumps; ``T - 1`` and 0 are always visited).

  Returns:
    int64 ``[K]`` strictly decreasing, from ``T - 1`` to 0.
  """
  costs = np.asarray(costs, np.float64)
  n = costs.shape[0]
  if not 2 <= num_steps <= n:
    raise ValueError(f"optimal spacing needs 2 <= steps <= T = {n}, got {num_steps}.")
  s_idx, t_idx = np.indices(costs.shape)
  c = np.where(s_idx < t_idx, costs, np.inf)
  # best[j, t]: the cheapest path of j jumps from t down to 0.
  best = np.full((num_steps, n), np.inf)
  best[0, 0] = 0.0
  arg = np.zeros((num_steps, n), np.int64)
  for j in range(1, num_steps):
    tot = best[j - 1][:, None] + c                 # [s, t]
    arg[j] = np.argmin(tot, axis=0)
    best[j] = tot[arg[j], np.arange(n)]
  path, t = [n - 1], n - 1
  for j in range(num_steps - 1, 0, -1):
    t = int(arg[j, t])
    path.append(t)
  return np.asarray(path, np.int64)
