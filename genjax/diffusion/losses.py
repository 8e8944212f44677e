"""DDPM training losses as factories returning pure ``loss_fn(params, batch, key)`` closures.

Timesteps are zero-based: ``t ~ Uniform{0..T-1}``, index t being the paper's step t+1.

Loss types (``loss_type``):
  * ``"simple"``: ``L_simple`` (Ho et al. 2020, eq. 14; seed eq. 30), fixed variance only.
  * ``"hybrid"``: ``L_hybrid = L_simple + lambda L_vlb`` with ``lambda = vlb_weight = 0.001``
    (Nichol & Dhariwal 2021, Sec. 3.1, eq. 16); needs a learned variance. The ``L_vlb`` term
    sees the mean through a stop-gradient, so it trains only the variance.
  * ``"vlb"``: ``L_vlb`` alone (Nichol & Dhariwal 2021, Sec. 3.3), through mean and variance.

``L_vlb`` is estimated from one term per example as ``T * L_t`` in bits/dim (``L_t`` from
:func:`~genjax.diffusion.vlb.vlb_terms_bpd`, the decoder NLL at ``t = 0``; the constant
``L_T`` is left out), so ``lambda * L_vlb = (T / 1000) * L_t``: improved-diffusion's
``RESCALED_MSE`` / ``RESCALED_KL`` (``terms["vb"] *= num_timesteps / 1000``), which at
``T = 1000`` is its plain ``MSE`` + ``vb``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from genjax.diffusion.vlb import mean_flat, vlb_terms_bpd
from genjax.sampling.convert import predict_v, prediction_to_eps_x0, split_learned_output
from genjax.sampling.posterior import (LEARNED_VAR_TYPES, check_var_type, p_mean_variance,
                                       q_sample)
from genjax.sampling.schedules import DiffusionSchedule

__all__ = ["LOSS_TYPES", "PARAMETERIZATIONS", "make_ddpm_loss", "make_ddpm_loss_terms",
           "quarter_metrics", "vb_term_bpd"]

LOSS_TYPES = ("simple", "hybrid", "vlb")
PARAMETERIZATIONS = ("eps", "x0", "v")  # what a DDPM network predicts

ModelFn = Callable[[Any, jax.Array, jax.Array, Any, jax.Array], jax.Array]


def vb_term_bpd(sched: DiffusionSchedule, out: jax.Array, var_values, x0: jax.Array,
                xt: jax.Array, t: jax.Array, *, parameterization: str = "eps",
                var_type: str = "learned_range", stop_grad_mean: bool = True,
                num_bins: int = 256) -> jax.Array:
  """The ``L_vlb`` term ``L_t`` of one timestep from a network output, bits/dim ``[B]``.

  ``L_t = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))`` for zero-based ``t > 0`` and the
  decoder NLL at ``t = 0`` (Ho et al. 2020, eq. 5, 13; seed eq. 25-26), with
  ``p(x_{t-1} | x_t) = N(mu(out), Sigma(var_values))`` (Nichol & Dhariwal 2021, eq. 15; seed
  eq. 35). With ``stop_grad_mean=True`` the mean part is ``stop_gradient(out)`` ("we apply a
  stop-gradient to the mu_theta(x_t, t) output for the L_vlb term", Nichol & Dhariwal 2021,
  Sec. 3.1; improved-diffusion's ``frozen_out``), so the term trains only the variance. No
  ``x_0`` clipping, as in training.

  Args:
    sched: the schedule.
    out: the network's mean part ``[B, ...]`` in ``parameterization``.
    var_values: the network's variance part ``[B, ...]`` (None for a fixed ``var_type``).
    x0: data ``[B, ...]``.
    xt: ``[B, ...]``.
    t: int ``[B]``, zero-based.
    parameterization: ``"eps"``, ``"x0"`` or ``"v"``.
    var_type: see :func:`~genjax.sampling.posterior.model_variance`.
    stop_grad_mean: block gradients through the mean.
    num_bins: levels of the decoder's data grid.

  Returns:
    ``[B]`` bits/dim.
  """
  if stop_grad_mean:
    out = jax.lax.stop_gradient(out)
  eps, _ = prediction_to_eps_x0(out, xt, sched.marginal_alpha(t), sched.marginal_std(t),
                                parameterization)
  p = p_mean_variance(sched, eps, xt, t, var_type, None, var_values=var_values)
  return vlb_terms_bpd(sched, p["mean"], p["log_var"], x0, xt, t, num_bins=num_bins)


def _check(parameterization, loss_type, var_type):
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(
        f"Unknown parameterization {parameterization!r}; valid ones are "
        f"{', '.join(PARAMETERIZATIONS)}.")
  if loss_type not in LOSS_TYPES:
    raise ValueError(f"Unknown loss_type {loss_type!r}; valid ones are {', '.join(LOSS_TYPES)}.")
  check_var_type(var_type)
  learned = var_type in LEARNED_VAR_TYPES
  if learned and loss_type == "simple":
    raise ValueError(
        f"var_type={var_type!r} is learned, but L_simple does not train a variance; use "
        "loss_type='hybrid' (L_simple + 0.001 L_vlb, Nichol & Dhariwal 2021) or 'vlb'.")
  if loss_type == "hybrid" and not learned:
    raise ValueError(
        f"loss_type='hybrid' needs a learned variance (its L_vlb term only trains the variance); "
        f"var_type is {var_type!r}. Use var_type='learned_range', or loss_type='simple'.")


def _build_terms(model_fn, sched, parameterization, loss_type, var_type, vlb_weight, num_bins):
  """``terms(params, x0, y, t, key_noise, key_model) -> (loss [B], aux)``; see below."""
  _check(parameterization, loss_type, var_type)
  learned = var_type in LEARNED_VAR_TYPES
  num_t = sched.num_timesteps

  def terms(params, x0, y, t, key_noise, key_model):
    # 1. eps ~ N(0, I), x_t ~ q(x_t | x_0) (seed eq. 17).
    noise = jax.random.normal(key_noise, x0.shape, x0.dtype)
    xt = q_sample(sched, x0, t, noise)

    # 2. Network prediction (mean part and, if learned, the variance part).
    out = model_fn(params, xt, t, y, key_model)
    expected = x0.shape[:-1] + (2 * x0.shape[-1],) if learned else x0.shape
    if out.shape != expected:
      raise ValueError(
          f"model_fn returned shape {out.shape}, expected {expected}"
          + (" (2C channels: mean part and variance part; build the network with "
             "out_channels=2*C)." if learned else " (the data shape)."))
    var_values = None
    if learned:
      out, var_values = split_learned_output(out)
    out = out.astype(x0.dtype)

    # 3. L_simple: squared error against the parameterization's target (seed eq. 30).
    if parameterization == "eps":
      target = noise
    elif parameterization == "x0":
      target = x0
    else:
      target = predict_v(sched, x0, t, noise)
    mse = mean_flat((target - out) ** 2)  # [B]
    if loss_type == "simple":
      return mse, {"mse": mse}

    # 4. L_vlb term (stop-gradient on the mean for the hybrid loss), rescaled to T * L_t.
    vb = vb_term_bpd(sched, out, var_values, x0, xt, t, parameterization=parameterization,
                     var_type=var_type, stop_grad_mean=(loss_type == "hybrid"),
                     num_bins=num_bins)
    if loss_type == "hybrid":
      loss = mse + vlb_weight * num_t * vb
    else:
      loss = num_t * vb
    return loss, {"mse": mse, "vb": vb}

  return terms


def make_ddpm_loss_terms(model_fn: ModelFn, sched: DiffusionSchedule,
                         parameterization: str = "eps", loss_type: str = "simple", *,
                         var_type: str = "fixed_large", vlb_weight: float = 0.001,
                         num_bins: int = 256):
  """Per-example DDPM losses at given timesteps (for importance-sampled ``t``).

  The same losses as :func:`make_ddpm_loss` (same arguments), but ``t`` comes in and nothing is
  averaged, so that the caller can weight the examples (Nichol & Dhariwal 2021, Sec. 3.3).

  Returns:
    ``terms_fn(params, batch, t int32 [B], key) -> (loss [B], aux)``, where ``aux`` holds
    per-example ``[B]`` arrays: ``"mse"`` (``L_simple``'s squared error) and, for ``"hybrid"``
    and ``"vlb"``, ``"vb"`` (the ``L_t`` term in bits/dim). ``key`` draws the noise and the
    dropout.
  """
  terms = _build_terms(model_fn, sched, parameterization, loss_type, var_type, vlb_weight,
                       num_bins)

  def terms_fn(params, batch, t, key):
    if "x" not in batch:
      raise ValueError(f"The batch needs an 'x' entry; it has keys {sorted(batch)}.")
    key_noise, key_model = jax.random.split(key)
    return terms(params, batch["x"], batch.get("label"), t, key_noise, key_model)

  return terms_fn


def quarter_metrics(per_example: jax.Array, t: jax.Array, num_timesteps: int,
                    prefix: str = "loss") -> dict:
  """Mean of ``per_example`` over the examples whose ``t`` falls in each quarter of ``0..T-1``.

  ``q = 4t // T``, as improved-diffusion logs them; an empty quarter reports 0.
  """
  out = {}
  quarter = (4 * t) // num_timesteps
  for q in range(4):
    mask = (quarter == q).astype(per_example.dtype)
    out[f"{prefix}_q{q}"] = jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)
  return out


def make_ddpm_loss(model_fn: ModelFn, sched: DiffusionSchedule, parameterization: str = "eps",
                   loss_type: str = "simple", *, var_type: str = "fixed_large",
                   vlb_weight: float = 0.001, num_bins: int = 256):
  """Builds the DDPM training loss: ``L_simple``, ``L_hybrid`` or ``L_vlb``.

  ``L_simple = E_{t, x_0, eps} || target - net(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2``
  with ``t ~ Uniform{0..T-1}`` (zero-based; Ho et al. 2020, eq. 14 and Algorithm 1; seed eq. 30).
  The target is ``eps`` (Ho et al.), ``x_0``, or ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0``
  (Salimans & Ho 2022), following ``parameterization``. The squared error is averaged over all
  dimensions and the batch.

  ``L_hybrid = L_simple + vlb_weight * L_vlb`` (Nichol & Dhariwal 2021, eq. 16, lambda = 0.001)
  with a learned variance (``var_type="learned_range"``, eq. 15; seed eq. 35): the network
  outputs ``2C`` channels, mean part then variance part, and the ``L_vlb`` term sees the mean
  through a stop-gradient. ``L_vlb`` is estimated as ``T * L_t`` in bits/dim (see the module
  docstring). ``loss_type="vlb"`` trains on ``T * L_t`` alone.

  Args:
    model_fn: ``model_fn(params, x_t [B, ...], t int32 [B], y [B] or None, key) -> [B, ...]``
      (``[B, ..., 2C]`` for a learned variance); ``key`` is for dropout,
      ``y = batch.get("label")``.
    sched: the schedule.
    parameterization: ``"eps"``, ``"x0"`` or ``"v"``: what the network predicts.
    loss_type: ``"simple"``, ``"hybrid"`` or ``"vlb"``.
    var_type: the reverse variance (``"learned_range"`` for ``"hybrid"``).
    vlb_weight: lambda of ``L_hybrid``.
    num_bins: levels of the decoder's data grid in the ``L_0`` term (256: 8-bit images).

  Returns:
    ``loss_fn(params, batch, key) -> (loss, metrics)`` where ``batch = {"x": [B, ...],
    "label": [B] (optional)}`` and ``metrics`` has ``"loss"`` and ``"loss_q0"`` .. ``"loss_q3"``:
    the mean loss of the examples whose ``t`` falls in each quarter of ``{0..T-1}``
    (``q = 4t // T``, as improved-diffusion logs them). A quarter with no example in the batch
    reports 0. ``"hybrid"`` and ``"vlb"`` add ``"mse"`` and ``"vb"`` (the batch mean of
    ``L_t`` in bits/dim).

  Raises:
    ValueError: unknown parameterization, loss type or var type, or a loss type that does not
      fit the variance (``"simple"`` with a learned variance, ``"hybrid"`` with a fixed one).

  Example:
    >>> loss_fn = make_ddpm_loss(lambda p, x, t, y, k: p * x, get_schedule("linear", 100))
    >>> loss, metrics = jax.jit(loss_fn)(1.0, {"x": jnp.zeros((4, 2))}, jax.random.key(0))
  """
  terms = _build_terms(model_fn, sched, parameterization, loss_type, var_type, vlb_weight,
                       num_bins)
  num_t = sched.num_timesteps

  def loss_fn(params, batch, key):
    if "x" not in batch:
      raise ValueError(f"The batch needs an 'x' entry; it has keys {sorted(batch)}.")
    x0 = batch["x"]
    b = x0.shape[0]
    key_t, key_noise, key_model = jax.random.split(key, 3)
    t = jax.random.randint(key_t, (b,), 0, num_t, dtype=jnp.int32)  # t ~ Uniform{0..T-1}
    per_example, aux = terms(params, x0, batch.get("label"), t, key_noise, key_model)
    loss = jnp.mean(per_example)
    metrics = {"loss": loss, **quarter_metrics(per_example, t, num_t)}
    if loss_type != "simple":
      metrics.update(mse=jnp.mean(aux["mse"]), vb=jnp.mean(aux["vb"]))
    return loss, metrics

  return loss_fn
