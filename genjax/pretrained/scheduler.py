"""A diffusers ``scheduler_config.json`` -> genjax's discrete noise process and sampling
defaults.

Every diffusers scheduler of a discrete-time model carries the same training chain: ``T =
num_train_timesteps`` betas from ``beta_schedule`` (or ``trained_betas``), what the network
predicts (``prediction_type``) and whether the predicted ``x0`` is clipped (``clip_sample``,
``clip_sample_range``). That chain becomes a :class:`~genjax.sampling.schedules.DiffusionSchedule`
exactly (float64, then float32); the scheduler's class and step options become the default
sampler of ``sample.py --pretrained`` (any genjax sampler can be chosen instead).

Beta schedules (diffusers' ``DDPMScheduler.__init__``), all without genjax's ``1000 / T``
rescaling, which diffusers does not do:

* ``linear``: ``linspace(beta_start, beta_end, T)`` (Ho et al. 2020, Sec. 4);
* ``scaled_linear``: ``linspace(sqrt(beta_start), sqrt(beta_end), T)^2`` (genjax's
  ``quadratic``; the latent-diffusion / Stable Diffusion chain);
* ``squaredcos_cap_v2``: Nichol & Dhariwal 2021, eq. 17 with ``max_beta = 0.999`` (genjax's
  ``cosine``);
* ``sigmoid``: ``sigmoid(linspace(-6, 6, T)) (beta_end - beta_start) + beta_start``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

import numpy as np

from genjax.pretrained.io import PretrainedError

__all__ = ["SchedulerInfo", "betas_from_config", "read_scheduler", "scheduler_config"]

_PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
_VARIANCES = {"fixed_small": "fixed_small", "fixed_small_log": "fixed_small",
              "fixed_large": "fixed_large", "fixed_large_log": "fixed_large",
              "learned_range": "learned_range"}
# diffusers scheduler class -> genjax's closest sampler (the default of sample.py --pretrained).
_SAMPLERS = {"DDPMScheduler": "ddpm", "DDIMScheduler": "ddim", "PNDMScheduler": "ddim",
             "DPMSolverMultistepScheduler": "dpm-solver-2", "EulerDiscreteScheduler": "ddim",
             "EulerAncestralDiscreteScheduler": "ddpm", "LMSDiscreteScheduler": "ddim",
             "DDIMInverseScheduler": "ddim"}


@dataclasses.dataclass(frozen=True)
class SchedulerInfo:
  """A scheduler config in genjax's terms.

  Attributes:
    betas: float64 ``[T]``; ``betas[t]`` is the paper's ``beta_{t+1}`` (zero-based ``t``).
    prediction: eps | v | x0.
    var_type: ancestral sampling's variance: fixed_small | fixed_large | learned_range.
    clip: ``(-r, r)`` when the scheduler clips the predicted ``x0``, else None.
    sampler: genjax's sampler closest to the scheduler's class.
    set_alpha_to_one: DDIM's last step lands on clean data.
    steps_offset: diffusers' offset added to every inference timestep (genjax's DDIM grid has
      none; noted, not applied).
    class_name: the diffusers class.
  """
  betas: np.ndarray
  prediction: str = "eps"
  var_type: str = "fixed_small"
  clip: Optional[tuple[float, float]] = None
  sampler: str = "ddpm"
  set_alpha_to_one: bool = True
  steps_offset: int = 0
  class_name: str = "DDPMScheduler"

  @property
  def learned_variance(self) -> bool:
    return self.var_type == "learned_range"

  def schedule(self, dtype=None):
    """The :class:`~genjax.sampling.schedules.DiffusionSchedule` of these betas."""
    import jax.numpy as jnp
    from genjax.sampling.schedules import make_schedule
    return make_schedule(self.betas, dtype or jnp.float32)


def betas_from_config(cfg: dict, where: str = "scheduler_config.json") -> np.ndarray:
  """The float64 betas ``[T]`` of a diffusers scheduler config."""
  from genjax.sampling.schedules import get_beta_schedule
  t = int(cfg.get("num_train_timesteps", 1000))
  trained = cfg.get("trained_betas")
  if trained is not None:
    betas = np.asarray(trained, np.float64)
    if betas.shape != (t,):
      raise PretrainedError(f"{where}: trained_betas has {betas.size} values, "
                            f"num_train_timesteps={t}.")
    return betas
  name = cfg.get("beta_schedule", "linear")
  start, end = float(cfg.get("beta_start", 1e-4)), float(cfg.get("beta_end", 0.02))
  if name == "linear":
    return get_beta_schedule("linear", t, beta_start=start, beta_end=end, rescale=False)
  if name == "scaled_linear":
    return get_beta_schedule("quadratic", t, beta_start=start, beta_end=end, rescale=False)
  if name == "squaredcos_cap_v2":
    return get_beta_schedule("cosine", t)
  if name == "sigmoid":
    return get_beta_schedule("sigmoid", t, beta_start=start, beta_end=end, rescale=False)
  raise PretrainedError(f"{where}: beta_schedule={name!r} is not supported (linear, "
                        "scaled_linear, squaredcos_cap_v2, sigmoid, or trained_betas).")


def scheduler_config(cfg: dict, where: str = "scheduler_config.json") -> SchedulerInfo:
  """A diffusers scheduler config dict -> :class:`SchedulerInfo`.

  Raises:
    PretrainedError: a field genjax cannot follow, named with its value.
  """
  name = cfg.get("_class_name", "DDPMScheduler")
  if name not in _SAMPLERS:
    raise PretrainedError(f"{where}: scheduler {name} is not supported (supported: "
                          f"{', '.join(sorted(_SAMPLERS))}).")
  pred = cfg.get("prediction_type", "epsilon")
  if pred not in _PREDICTIONS:
    raise PretrainedError(f"{where}: prediction_type={pred!r} is not supported "
                          f"({', '.join(_PREDICTIONS)}).")
  var = cfg.get("variance_type") or "fixed_small"
  if var not in _VARIANCES:
    raise PretrainedError(f"{where}: variance_type={var!r} is not supported "
                          f"({', '.join(_VARIANCES)}).")
  if cfg.get("thresholding"):
    raise PretrainedError(f"{where}: thresholding=True (Imagen's dynamic thresholding) is not "
                          "supported.")
  clip = None
  if cfg.get("clip_sample", name in ("DDPMScheduler", "DDIMScheduler")):
    r = float(cfg.get("clip_sample_range", 1.0))
    clip = (-r, r)
  return SchedulerInfo(
      betas=betas_from_config(cfg, where), prediction=_PREDICTIONS[pred],
      var_type=_VARIANCES[var], clip=clip, sampler=_SAMPLERS[name],
      set_alpha_to_one=bool(cfg.get("set_alpha_to_one", True)),
      steps_offset=int(cfg.get("steps_offset", 0)), class_name=name)


def read_scheduler(path: str) -> SchedulerInfo:
  """A scheduler folder (``scheduler_config.json``) or the JSON file itself."""
  f = os.path.join(path, "scheduler_config.json") if os.path.isdir(path) else path
  if not os.path.isfile(f):
    raise PretrainedError(f"{path}: no scheduler_config.json.")
  try:
    with open(f) as fh:
      cfg: dict[str, Any] = json.load(fh)
  except ValueError as e:
    raise PretrainedError(f"{f}: not valid JSON ({e}).") from None
  return scheduler_config(cfg, f)


def to_diffusers(info: SchedulerInfo) -> dict:
  """A ``DDPMScheduler`` config with ``trained_betas`` that reproduces ``info`` exactly."""
  inv = {v: k for k, v in _PREDICTIONS.items()}
  return {"_class_name": "DDPMScheduler", "_diffusers_version": "0.37.1",
          "num_train_timesteps": int(info.betas.size), "beta_schedule": "linear",
          "trained_betas": [float(b) for b in info.betas],
          "variance_type": info.var_type, "prediction_type": inv[info.prediction],
          "clip_sample": info.clip is not None,
          "clip_sample_range": float(info.clip[1]) if info.clip else 1.0}
