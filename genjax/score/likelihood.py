"""Exact log-likelihoods through the probability-flow ODE (Song et al. 2021, Sec. 4.3, App. D.2).

The probability-flow ODE ``dx/dt = f~(x, t) = f(x, t) - g(t)^2 s(x, t) / 2`` is a continuous
normalizing flow, so by the instantaneous change of variables (Chen et al. 2018, eq. 4)

    log p_eps(x(eps)) = log p_T(x(T)) + int_eps^T div f~(x(t), t) dt.

We integrate ``(x, int div f~)`` from ``eps`` to ``T`` jointly on the device, with the
Dormand-Prince solver of :mod:`genjax.sampling.ode` (score_sde uses scipy's RK45 at
rtol = atol = 1e-5, eps = 1e-5) or a fixed-step Euler / Heun / RK4 scan. The divergence is
exact (``sum_i e_i^T J e_i`` by D Jacobian-vector products; for small D such as 2-D data) or the
Hutchinson-Skilling estimate ``E_v[v^T J v]`` with one Rademacher or Gaussian ``v`` per example,
held fixed along the trajectory (FFJORD; score_sde ``get_div_fn``). ``J v`` is one forward-mode
``jax.jvp``.

For images, :func:`bits_per_dim` uniformly dequantizes the discrete pixels and adds the
log-volume of a quantization bin (see :mod:`genjax.metrics.likelihood` for the derivation).
genjax's pixels are "centered" levels ``lo + (hi - lo) k / (L - 1)`` (``L = 256`` for 8-bit
images, 17 for the sklearn digits), so each owns the bin ``[x - Delta/2, x + Delta/2)`` with
``Delta = (hi - lo) / (L - 1)``, and ``y = x + Delta (u - 1/2)``, ``u ~ U[0, 1)^D`` gives the
upper bound ``bpd = (E_u[-log p(y)] / D + log(1 / Delta)) / ln 2`` on the discrete NLL.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from genjax.metrics.likelihood import dequantization_offset, nats_to_bpd
from genjax.sampling.ode import odeint_dopri5

__all__ = ["HUTCHINSON_TYPES", "LIKELIHOOD_METHODS", "LikelihoodResult", "bits_per_dim",
           "divergence", "ode_likelihood", "uniform_dequantize"]

HUTCHINSON_TYPES = ("rademacher", "gaussian", "exact")
LIKELIHOOD_METHODS = ("dopri5", "euler", "heun", "rk4")


class LikelihoodResult(NamedTuple):
  """Output of :func:`ode_likelihood`.

  Attributes:
    logp: ``log p_eps(x)`` of each example in nats, ``[B]``.
    z: the latent ``x(T)``, ``[B, ...]``.
    prior_logp: ``log p_T(z)``, ``[B]``.
    delta_logp: ``int_eps^T div f~ dt``, ``[B]``.
    nfe: evaluations of the drift (each with its divergence), int32 scalar.
  """
  logp: jax.Array
  z: jax.Array
  prior_logp: jax.Array
  delta_logp: jax.Array
  nfe: jax.Array


def divergence(fn: Callable[[jax.Array], jax.Array], x: jax.Array, kind: str = "rademacher",
               v: jax.Array | None = None):
  """``(fn(x), div fn(x))`` per example, for an ``fn`` that acts on each example separately.

  Args:
    fn: ``[B, ...] -> [B, ...]``, example-wise (a score network in eval mode is).
    x: ``[B, ...]``.
    kind: ``"exact"`` (D jvps: the trace of the Jacobian) or ``"rademacher"`` / ``"gaussian"``
      (Hutchinson: ``v^T J v`` with the given probe).
    v: the Hutchinson probe ``[B, ...]`` (ignored for ``"exact"``).

  Returns:
    ``(fn(x) [B, ...], div [B])``.
  """
  b = x.shape[0]
  if kind == "exact":
    d = math.prod(x.shape[1:])
    basis = jnp.eye(d, dtype=x.dtype).reshape((d, 1) + x.shape[1:])

    def jvp_i(e):
      return jax.jvp(fn, (x,), (jnp.broadcast_to(e, x.shape),))

    outs, tangents = jax.vmap(jvp_i)(basis)  # [d, B, ...]
    diag = jnp.einsum("dbk,dk->b", tangents.reshape(d, b, d), jnp.eye(d, dtype=x.dtype))
    return outs[0], diag
  out, jv = jax.jvp(fn, (x,), (v,))
  return out, jnp.sum((jv * v).reshape(b, -1), axis=-1)


def _probe(key, shape, dtype, kind):
  if kind == "rademacher":
    return jax.random.rademacher(key, shape, dtype)
  if kind == "gaussian":
    return jax.random.normal(key, shape, dtype)
  return None


def _fixed_step(fn, y0, t0, t1, steps, method):
  ts = jnp.linspace(t0, t1, steps + 1)
  add = lambda y, h, k: jax.tree.map(lambda a, b: a + h * b, y, k)

  def step(y, inp):
    t, tn = inp
    h = tn - t
    k1 = fn(t, y)
    if method == "euler":
      return add(y, h, k1), None
    if method == "heun":
      k2 = fn(tn, add(y, h, k1))
      return jax.tree.map(lambda a, b, c: a + 0.5 * h * (b + c), y, k1, k2), None
    k2 = fn(t + h / 2, add(y, h / 2, k1))
    k3 = fn(t + h / 2, add(y, h / 2, k2))
    k4 = fn(tn, add(y, h, k3))
    return jax.tree.map(lambda a, b, c, d, e: a + h / 6 * (b + 2 * c + 2 * d + e),
                        y, k1, k2, k3, k4), None

  y, _ = jax.lax.scan(step, y0, (ts[:-1], ts[1:]))
  return y, {"euler": 1, "heun": 2, "rk4": 4}[method] * steps


def ode_likelihood(sde, score_fn: Callable, x: jax.Array, key: jax.Array, *,
                   hutchinson: str = "rademacher", method: str = "dopri5",
                   rtol: float = 1e-5, atol: float = 1e-5, steps: int = 100,
                   eps: float = 1e-5, max_steps: int = 10_000) -> LikelihoodResult:
  """``log p(x)`` of each example under the probability-flow ODE of ``sde`` and ``score_fn``.

  Args:
    sde: the forward SDE.
    score_fn: ``score_fn(x [B, ...], t [B]) -> [B, ...]``, acting on each example separately.
    x: data ``[B, ...]`` (already dequantized, if discrete).
    key: PRNG key for the Hutchinson probe.
    hutchinson: ``"rademacher"``, ``"gaussian"`` or ``"exact"``.
    method: ``"dopri5"`` (adaptive, rtol / atol) or fixed-step ``"euler"``, ``"heun"``, ``"rk4"``.
    rtol: relative tolerance (dopri5).
    atol: absolute tolerance (dopri5).
    steps: steps of a fixed-step method.
    eps: the starting time (score_sde: 1e-5).
    max_steps: dopri5 step cap.

  Returns:
    :class:`LikelihoodResult` (``logp`` in nats per example; divide by D for nats/dim).
  """
  if hutchinson not in HUTCHINSON_TYPES:
    raise ValueError(f"Unknown hutchinson {hutchinson!r}; valid: {', '.join(HUTCHINSON_TYPES)}.")
  if method not in LIKELIHOOD_METHODS:
    raise ValueError(f"Unknown likelihood method {method!r}; valid: "
                     f"{', '.join(LIKELIHOOD_METHODS)}.")
  b = x.shape[0]
  v = _probe(key, x.shape, x.dtype, hutchinson)
  rsde = sde.reverse(score_fn, probability_flow=True)

  def fn(t, state):
    y, _ = state
    tv = jnp.full((b,), t, y.dtype)
    drift, div = divergence(lambda z: rsde.sde(z, tv)[0], y, hutchinson, v)
    return drift, div

  state0 = (x, jnp.zeros((b,), x.dtype))
  if method == "dopri5":
    res = odeint_dopri5(fn, state0, eps, sde.T, rtol=rtol, atol=atol, max_steps=max_steps)
    (z, delta), nfe = res.y, res.nfe
  else:
    (z, delta), nfe = _fixed_step(fn, state0, eps, sde.T, int(steps), method)
    nfe = jnp.asarray(nfe, jnp.int32)
  prior = sde.prior_logp(z)
  return LikelihoodResult(logp=prior + delta, z=z, prior_logp=prior, delta_logp=delta, nfe=nfe)


def uniform_dequantize(key: jax.Array, x: jax.Array, num_levels: int = 256,
                       data_range: tuple[float, float] = (-1.0, 1.0)) -> jax.Array:
  """``y = x + Delta (u - 1/2)``, ``u ~ U[0, 1)``, ``Delta = (hi - lo) / (num_levels - 1)``:
  a uniform draw from the bin of each "centered" level (module docstring)."""
  lo, hi = data_range
  delta = (hi - lo) / (num_levels - 1)
  return x + delta * (jax.random.uniform(key, x.shape, x.dtype) - 0.5)


def bits_per_dim(sde, score_fn: Callable, x: jax.Array, key: jax.Array, *,
                 num_levels: int | None = 256, data_range: tuple[float, float] = (-1.0, 1.0),
                 **kwargs):
  """Bits/dim of each example: uniform dequantization + :func:`ode_likelihood` + bin volume.

  Args:
    sde: the forward SDE.
    score_fn: the score.
    x: data ``[B, ...]`` on its discrete levels (images), or continuous data.
    key: PRNG key (dequantization and the Hutchinson probe).
    num_levels: L levels per dimension (256 for 8-bit images, 17 for the digits); None for
      continuous data (no dequantization, no offset: the continuous density's bits/dim).
    data_range: ``(lo, hi)`` of the levels.
    **kwargs: passed to :func:`ode_likelihood`.

  Returns:
    ``(bpd [B], LikelihoodResult)``.
  """
  k_deq, k_ode = jax.random.split(key)
  d = math.prod(x.shape[1:])
  if num_levels is None:
    res = ode_likelihood(sde, score_fn, x, k_ode, **kwargs)
    return nats_to_bpd(-res.logp, d), res
  if num_levels < 2:
    raise ValueError(f"num_levels must be at least 2, got {num_levels}.")
  y = uniform_dequantize(k_deq, x, num_levels, data_range)
  res = ode_likelihood(sde, score_fn, y, k_ode, **kwargs)
  offset = dequantization_offset(data_range, convention="centered", num_levels=num_levels)
  return nats_to_bpd(-res.logp + d * offset, d), res
