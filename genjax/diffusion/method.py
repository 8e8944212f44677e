"""DDPM as a trainer :class:`~genjax.training.method.Method` (Ho et al. 2020).

Training minimises L_simple (seed 003 eq. 30, Algorithm 1) for the configured parameterization
(eps, x0 or v); sampling runs DDPM ancestral sampling (Algorithm 2) or DDIM (eq. 41-43), each
one ``lax.scan``. The network is any genjax net taking ``(x, t, y)``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp

from genjax import viz
from genjax.diffusion import gaussian, losses, samplers, schedules
from genjax.nets.build import build_network
from genjax.training.config import from_section
from genjax.training.method import DataSpec, Method


@dataclasses.dataclass(frozen=True)
class DDPMConfig:
  """The ``config.diffusion`` section.

  Attributes:
    schedule: beta schedule: linear | cosine | quadratic | sigmoid.
    num_timesteps: T; timesteps are zero-based ``0..T-1`` (DESIGN.md item 2).
    parameterization: what the network predicts: eps | x0 | v.
    loss_type: "simple" (L_simple, eq. 30).
    var_type: reverse variance for ancestral sampling: fixed_large (beta_t) or fixed_small
      (beta-tilde_t).
    clip_x0: clip the predicted x0 to [-1, 1] while sampling (images only).
  """
  schedule: str = "linear"
  num_timesteps: int = 1000
  parameterization: str = "eps"
  loss_type: str = "simple"
  var_type: str = "fixed_large"
  clip_x0: bool = True


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """The ``config.sampling`` section (also set by sample.py's flags).

  Attributes:
    sampler: ddpm (ancestral, all T steps) | ddim.
    steps: DDIM steps (a strided subsequence of the T timesteps).
    eta: DDIM stochasticity (0: deterministic; 1: ancestral with beta-tilde).
    spacing: DDIM timestep spacing: uniform | quadratic.
  """
  sampler: str = "ddim"
  steps: int = 50
  eta: float = 0.0
  spacing: str = "uniform"


def make_eps_fn(apply_fn, params, sched, parameterization: str, y=None):
  """Turns a network into ``eps_fn(x, t)`` for the samplers, converting its output once."""

  def eps_fn(x, t):
    out = apply_fn(params, x, t, y)
    return gaussian.model_output_to_eps_x0(sched, out, x, t, parameterization)[0]

  return eps_fn


def sample_images(eps_fn, sched, key, shape, sampling: SamplingConfig, clip_x0, var_type):
  """Dispatches to the configured sampler (one ``lax.scan`` each)."""
  if sampling.sampler == "ddpm":
    return samplers.ddpm_sample(eps_fn, sched, key, shape, var_type=var_type, clip_x0=clip_x0)
  if sampling.sampler == "ddim":
    return samplers.ddim_sample(eps_fn, sched, key, shape, num_steps=sampling.steps,
                                eta=sampling.eta, spacing=sampling.spacing, clip_x0=clip_x0)
  raise ValueError(f"Unknown sampling.sampler {sampling.sampler!r} for DDPM; use ddpm or ddim.")


def build_ddpm(config, spec: DataSpec) -> Method:
  """Builds the DDPM method from ``config.diffusion``, ``config.model`` and ``config.sampling``."""
  cfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  sampling = from_section(SamplingConfig, config.sampling, where="sampling")
  if cfg.parameterization not in ("eps", "x0", "v"):
    raise ValueError(f"diffusion.parameterization must be eps, x0 or v, got {cfg.parameterization!r}.")
  net = build_network(config.model, spec)
  sched = schedules.get_schedule(cfg.schedule, cfg.num_timesteps)
  num_classes = getattr(net, "num_classes", 0)
  clip = (-1.0, 1.0) if (cfg.clip_x0 and spec.kind == "image") else None

  def model_fn(params, x, t, y, key):
    return net.apply({"params": params}, x, t, y=y, train=True, rngs={"dropout": key})

  def apply_eval(params, x, t, y):
    return net.apply({"params": params}, x, t, y=y, train=False)

  def init(key, batch):
    x = batch["x"][:1]
    y = batch["label"][:1] if num_classes else None
    k1, k2 = jax.random.split(key)
    variables = net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,), jnp.int32), y=y)
    return variables["params"], {}

  def sample(params, key, num):
    y = (jnp.arange(num) % num_classes) if num_classes else None
    eps_fn = make_eps_fn(apply_eval, params, sched, cfg.parameterization, y)
    return sample_images(eps_fn, sched, key, (num, *spec.shape), sampling, clip, cfg.var_type)

  base_loss = losses.make_ddpm_loss(model_fn, sched, cfg.parameterization, cfg.loss_type)

  def loss(params, batch, key):
    if not num_classes:
      batch = {k: v for k, v in batch.items() if k != "label"}
    return base_loss(params, batch, key)

  plot = None
  if spec.kind == "points":
    plot = functools.partial(_plot_points, title=f"DDPM ({sampling.sampler})")

  return Method(name="ddpm", init=init, loss=loss, sample=sample, plot_samples=plot)


def _plot_points(samples, data, path, title=""):
  viz.scatter_2d(samples, data, path, title=title)
