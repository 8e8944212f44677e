"""The one registry of samplers: it runs the entries of :mod:`genjax.sampling.catalog`.

A family hands the sampling core a :class:`Model` (its noise process, its network as a function
of ``(x, t, cond)``, what the network predicts) and the config's
:class:`~genjax.sampling.catalog.SamplingConfig`; :func:`run` builds the denoiser for the view
of the process the chosen sampler needs (a discrete DDPM model is sampled by DPM-Solver in
continuous time, a VP SDE by ancestral DDPM on its discrete chain), applies classifier-free and
classifier guidance, sets up inpainting, colorization or SDEdit, and calls the sampler. A
sampler is added with its catalog entry and its runner in :data:`_RUNNERS` below.

Example:
  >>> model = Model(process=sched, model_fn=lambda x, t, c: net(x, t), prediction="v")
  >>> cfg = SamplingConfig(sampler="dpm-solver-2", steps=20)
  >>> x = run(model, cfg, jax.random.key(0), (16, 8, 8, 1))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.sampling import (ancestral, conditional, consistency, dpm_solver, edm, langevin,
                             pndm, sde as sde_lib, thresholding)
from genjax.sampling.catalog import (MODES, SAMPLERS, SamplingConfig, on_discrete_grid,
                                     resolve_steps, sampler_names, tag, validate_config)
from genjax.sampling.convert import denoiser
from genjax.sampling.guidance import classifier_free_guidance, classifier_guidance
from genjax.sampling.posterior import ClipRange
from genjax.sampling.processes import VESDE, VPSDE
from genjax.sampling.schedules import DiffusionSchedule, space_timesteps
from genjax.typed_config import from_section

__all__ = ["MODES", "Model", "SAMPLERS", "SamplingConfig", "class_labels", "from_config",
           "make_sample_fn", "resolve_steps", "run", "tag", "validate"]


@dataclasses.dataclass(frozen=True)
class Model:
  """What a family hands the sampling core.

  Attributes:
    process: the noise process the network was trained on (a
      :class:`~genjax.sampling.schedules.DiffusionSchedule` or a continuous process).
    model_fn: ``model_fn(x, t, cond) -> out`` in the process's own time (the raw network
      output in ``prediction``; 2C channels with a learned variance).
    prediction: eps | x0 | v | score.
    learned_variance: the output carries improved DDPM's variance channels.
    kind: "denoiser" (any sampler), "consistency" (a consistency function: consistency
      sampling only) or "student" (a progressive-distillation student: DDIM on its grid).
    var_type: the ancestral sampler's reverse variance (fixed_large | fixed_small |
      learned_range).
    clip: clip the predicted x0 (images: (-1, 1)); samplers without an x0 step clip the output.
    null_cond: the null condition of classifier-free guidance (a pytree like ``cond`` or a
      callable ``cond -> null``); None if the model has none.
    classifier_grad: ``grad_fn(x, t, cond) -> grad_x log p(y | x_t)`` in the process's time,
      for classifier guidance; None without a classifier.
    levels: NCSN's noise levels (annealed Langevin runs on them), or None.
    student_steps: a distilled student's number of steps.
  """
  process: Any
  model_fn: Callable[..., Any]
  prediction: str = "eps"
  learned_variance: bool = False
  kind: str = "denoiser"
  var_type: str = "fixed_large"
  clip: ClipRange = None
  null_cond: Any = None
  classifier_grad: Optional[Callable[..., jax.Array]] = None
  levels: Optional[np.ndarray] = None
  student_steps: int = 0


# ------------------------------------------------------------------------------------------------
# Views: the process a sampler runs on, and the model time of its times.
# ------------------------------------------------------------------------------------------------


def _view(model: Model, need: str):
  """``(process, time_map)`` for a sampler that needs a ``"discrete"`` chain, a
  ``"continuous"`` process, or the model's ``"native"`` one."""
  p = model.process
  if need == "discrete":
    if isinstance(p, DiffusionSchedule):
      return p, None
    if isinstance(p, VPSDE):
      sched, times = p.discrete_schedule()
      return sched, lambda t: times[t]
    raise ValueError(f"needs a discrete VP chain; {type(p).__name__} has none.")
  if need == "continuous" and isinstance(p, DiffusionSchedule):
    view = p.continuous()
    return view, view.discrete_time_input
  return p, None


def _eps_fn(model: Model, view, time_map, cfg: SamplingConfig):
  """The denoiser of ``model`` on ``view``, with the configured guidance."""
  fn = model.model_fn if time_map is None else (lambda x, t, c: model.model_fn(x, time_map(t), c))
  eps_fn = denoiser(fn, view, model.prediction, learned_variance=model.learned_variance)
  if cfg.guidance_scale:
    eps_fn = classifier_free_guidance(eps_fn, cfg.guidance_scale, model.null_cond)
  if model.classifier_grad is not None:
    grad = model.classifier_grad
    if time_map is not None:
      grad = lambda x, t, c, g=model.classifier_grad: g(x, time_map(t), c)
    eps_fn = classifier_guidance(eps_fn, grad, cfg.classifier_scale)
  fn = thresholding.x0_processor(
      cfg.thresholding, percentile=cfg.threshold_percentile,
      max_value=cfg.threshold_max or None, clip=model.clip)
  return thresholding.threshold_denoiser(eps_fn, view, fn)


def _x0_clip(cfg: SamplingConfig, model: Model):
  """The clip range a sampler applies to x0 itself: the model's (``thresholding=model``), or
  None (static / dynamic thresholding is a transform of the denoiser; none is none)."""
  return model.clip if cfg.thresholding == "model" else None


def _out_clip(cfg: SamplingConfig, model: Model):
  """The clip of a sampler's output (every mode but ``thresholding=none``)."""
  return None if cfg.thresholding == "none" else model.clip


def _clip_out(x, clip):
  return x if clip is None else jnp.clip(x, clip[0], clip[1])


def _moments(cfg: SamplingConfig, process):
  """The Analytic-DPM moments of ``cfg.analytic_moments`` for a discrete chain, or None."""
  if not cfg.analytic_moments:
    return None
  from genjax.sampling import analytic
  return analytic.load_moments(cfg.analytic_moments, process.num_timesteps)


def _costs(cfg: SamplingConfig, process):
  """Watson et al.'s cost table when ``spacing=optimal`` (from the stored moments)."""
  if cfg.spacing != "optimal" or not isinstance(process, DiffusionSchedule):
    return None
  from genjax.sampling import analytic
  m = _moments(cfg, process)
  return analytic.vlb_cost_table(np.asarray(process.alphas_cumprod, np.float64), m["eps_mse"])


# ------------------------------------------------------------------------------------------------
# The samplers.
# ------------------------------------------------------------------------------------------------


def _call_ddpm(eps_fn, process, key, shape, cond, cfg, model, extra):
  if cfg.repaint_resample > 1 or cfg.repaint_jump > 1:  # validate_config: inpaint / colorize
    return conditional.repaint_sample(
        eps_fn, process, key, shape, constraint=extra["constraint"], cond=cond,
        jump_length=cfg.repaint_jump, jump_n_sample=cfg.repaint_resample,
        var_type=model.var_type, clip_x0=_x0_clip(cfg, model), x_T=extra.get("x_T"))
  return ancestral.ddpm_sample(eps_fn, process, key, shape, cond=cond, var_type=model.var_type,
                               clip_x0=_x0_clip(cfg, model), respacing=cfg.respacing or None,
                               **extra)


def _call_ddim(eps_fn, process, key, shape, cond, cfg, model, extra):
  steps = resolve_steps(cfg, model)
  discrete = isinstance(process, DiffusionSchedule)
  moments = _moments(cfg, process) if discrete else None
  return ancestral.ddim_sample(eps_fn, process, key, shape, cond=cond, num_steps=steps,
                               eta=cfg.eta, spacing=cfg.spacing,
                               set_alpha_to_one=cfg.set_alpha_to_one,
                               clip_x0=_x0_clip(cfg, model), costs=_costs(cfg, process),
                               gamma=None if moments is None else moments["eps_sq"],
                               steps_offset=cfg.steps_offset, **extra)


def _call_pc(eps_fn, process, key, shape, cond, cfg, model, extra):
  steps = resolve_steps(cfg, model)
  x = sde_lib.pc_sample(eps_fn, process, key, shape, cond=cond, predictor=cfg.predictor,
                        corrector=cfg.corrector, snr=cfg.snr,
                        n_corrector_steps=cfg.n_corrector_steps,
                        probability_flow=cfg.probability_flow, steps=steps,
                        denoise=cfg.denoise, **extra)
  return _clip_out(x, _out_clip(cfg, model))


def _call_langevin(eps_fn, process, key, shape, cond, cfg, model, extra):
  steps = resolve_steps(cfg, model)
  if model.levels is not None:  # NCSN: Song & Ermon's annealed Langevin on the trained levels
    lim = (-1.0, 1.0) if len(shape) > 2 else (-4.0, 4.0)  # images in [-1, 1]; 2-D points
    return langevin.annealed_langevin_sample(
        eps_fn, process, key, shape, sigmas=model.levels, cond=cond, n_steps_each=steps,
        step_lr=cfg.step_lr, denoise=cfg.denoise, init_range=lim, **extra)
  x = sde_lib.pc_sample(eps_fn, process, key, shape, cond=cond, predictor="none",
                        corrector=cfg.corrector if cfg.corrector != "none" else "langevin",
                        snr=cfg.snr, n_corrector_steps=cfg.n_corrector_steps, steps=steps,
                        denoise=cfg.denoise, **extra)
  return _clip_out(x, _out_clip(cfg, model))


def _call_ode(method):
  def call(eps_fn, process, key, shape, cond, cfg, model, extra):
    x = sde_lib.ode_sample(eps_fn, process, key, shape, cond=cond, method=method,
                           steps=resolve_steps(cfg, model), denoise=cfg.denoise, **extra)
    return _clip_out(x, _out_clip(cfg, model))
  return call


def _call_ode_adaptive(eps_fn, process, key, shape, cond, cfg, model, extra):
  x, _ = sde_lib.ode_sample_adaptive(eps_fn, process, key, shape, cond=cond, rtol=cfg.rtol,
                                     atol=cfg.atol, denoise=cfg.denoise,
                                     **{k: v for k, v in extra.items() if k != "constraint"})
  return _clip_out(x, _out_clip(cfg, model))


def _call_pc_ode(eps_fn, process, key, shape, cond, cfg, model, extra):
  """Half the batch from PC, half from the ODE (Heun, half the steps): the 2-D scatter."""
  h = shape[0] // 2
  k1, k2 = jax.random.split(key)
  first = lambda c: None if c is None else jax.tree.map(lambda a: a[:h], c)
  second = lambda c: None if c is None else jax.tree.map(lambda a: a[h:], c)
  steps = resolve_steps(cfg, model)
  a = _call_pc(eps_fn, process, k1, (h,) + tuple(shape[1:]), first(cond), cfg, model, {})
  b = sde_lib.ode_sample(eps_fn, process, k2, (shape[0] - h,) + tuple(shape[1:]),
                         cond=second(cond), method="heun", steps=max(steps // 2, 1),
                         denoise=cfg.denoise)
  return jnp.concatenate([a, _clip_out(b, _out_clip(cfg, model))])


def _call_dpm(order, algorithm="dpmsolver", method=None):
  def call(eps_fn, process, key, shape, cond, cfg, model, extra):
    steps = resolve_steps(cfg, model)
    kw = dict(steps=steps, skip_type=cfg.dpm_skip_type, denoise_to_zero=cfg.dpm_denoise)
    if cfg.dpm_skip_type == "discrete":
      # The discrete chain's `spacing` steps (diffusers' grids), then one x0 step: `steps` NFE.
      if not hasattr(process, "discrete_time_input"):
        raise ValueError("sampling.dpm_skip_type=discrete needs a discrete DDPM model.")
      n_t = process.num_timesteps
      grid = ancestral.ddim_timesteps(n_t, max(steps, 2), cfg.spacing,
                                      costs=_costs(cfg, _discrete_of(model)),
                                      steps_offset=cfg.steps_offset)
      if extra.get("t_start") is not None:
        grid = grid[dpm_solver.timesteps_from_discrete(grid, n_t) <= extra["t_start"] + 1e-9]
      kw = dict(timesteps=dpm_solver.timesteps_from_discrete(grid, n_t), denoise_to_zero=True)
    if algorithm != "dpmsolver":
      kw.update(algorithm=algorithm, lower_order_final=cfg.lower_order_final,
                unic=cfg.unic and algorithm in ("dpmsolver++", "deis"),
                variant={"unipc": cfg.unipc_variant, "deis": cfg.deis_basis}.get(algorithm))
    if "timesteps" in kw:
      extra = {k: v for k, v in extra.items() if k != "t_start"}
    x = dpm_solver.dpm_solver_sample(eps_fn, process, key, shape, cond=cond, order=order,
                                     method=method or cfg.dpm_method, rho=cfg.rho, **kw, **extra)
    return _clip_out(x, _out_clip(cfg, model))
  return call


def _discrete_of(model):
  return model.process if isinstance(model.process, DiffusionSchedule) else None


def _call_edm(solver):
  def call(eps_fn, process, key, shape, cond, cfg, model, extra):
    x = edm.edm_heun_sample(eps_fn, process, key, shape, cond=cond,
                            steps=resolve_steps(cfg, model), rho=cfg.rho, s_churn=cfg.s_churn,
                            s_noise=cfg.s_noise, s_tmin=cfg.s_tmin,
                            s_tmax=cfg.s_tmax if cfg.s_tmax > 0 else float("inf"),
                            solver=solver, **extra)
    return _clip_out(x, _out_clip(cfg, model))
  return call


def _call_euler_ancestral(eps_fn, process, key, shape, cond, cfg, model, extra):
  if extra.get("t_start") is not None:
    raise ValueError("euler-ancestral has no start time for img2img.")
  x = edm.euler_ancestral_sample(eps_fn, process, key, shape, cond=cond,
                                 steps=resolve_steps(cfg, model), rho=cfg.rho, eta=cfg.eta or 1.0,
                                 s_noise=cfg.s_noise, **extra)
  return _clip_out(x, _out_clip(cfg, model))


def _call_pndm(eps_fn, process, key, shape, cond, cfg, model, extra):
  extra = {k: v for k, v in extra.items() if k in ("trajectory_stride", "x_T")}
  x = pndm.pndm_sample(eps_fn, process, key, shape, cond=cond,
                       num_steps=resolve_steps(cfg, model),
                       spacing="leading" if cfg.spacing == "uniform" else cfg.spacing,
                       set_alpha_to_one=cfg.set_alpha_to_one, steps_offset=cfg.steps_offset,
                       **extra)
  return x if isinstance(x, tuple) else _clip_out(x, _out_clip(cfg, model))


def _call_consistency(eps_fn, process, key, shape, cond, cfg, model, extra):
  steps = resolve_steps(cfg, model)
  taus = (np.asarray(cfg.taus, np.float64) if cfg.taus
          else consistency.default_taus(steps, process.sigma_min, process.sigma_max,
                                        cfg.rho))
  if len(taus) != steps - 1:
    raise ValueError(f"sampling.taus must hold steps - 1 = {steps - 1} levels, got {len(taus)}.")
  x = consistency.consistency_sample(eps_fn, process, key, shape, cond=cond, taus=taus, **extra)
  return _clip_out(x, _out_clip(cfg, model))


_RUNNERS = {
    "ddpm": _call_ddpm, "ddim": _call_ddim, "pc": _call_pc, "langevin": _call_langevin,
    "ode-euler": _call_ode("euler"), "ode-heun": _call_ode("heun"),
    "ode-adaptive": _call_ode_adaptive, "pc+ode": _call_pc_ode,
    "dpm-solver-1": _call_dpm(1), "dpm-solver-2": _call_dpm(2), "dpm-solver-3": _call_dpm(3),
    "dpm-solver++-2s": _call_dpm(2, "dpmsolver++", "singlestep"),
    "dpm-solver++-2m": _call_dpm(2, "dpmsolver++", "multistep"),
    "dpm-solver++-3m": _call_dpm(3, "dpmsolver++", "multistep"),
    **{f"unipc-{k}": _call_dpm(k, "unipc", "multistep") for k in (1, 2, 3)},
    **{f"deis-{k}": _call_dpm(k, "deis", "multistep") for k in (1, 2, 3)},
    "pndm": _call_pndm, "edm-heun": _call_edm("heun"), "edm-euler": _call_edm("euler"),
    "euler-ancestral": _call_euler_ancestral, "consistency": _call_consistency,
}
assert set(_RUNNERS) == set(SAMPLERS), "every catalog entry needs its runner"


def takes_steps_offset(cfg: SamplingConfig) -> bool:
  """Whether ``cfg``'s sampler runs on a discrete grid that ``steps_offset`` shifts (ddim,
  pndm, the DPM-Solver family with ``dpm_skip_type=discrete``)."""
  return on_discrete_grid(cfg)


def validate(cfg: SamplingConfig, model: Optional[Model] = None) -> None:
  """Clear errors for a sampling config before any work: the model-free checks of
  :func:`~genjax.sampling.catalog.validate_config`, then whether the sampler can sample this
  model, and the guidance the model can do.

  Raises:
    ValueError: naming the field and what it accepts.
  """
  validate_config(cfg)
  if model is None:
    return
  s = SAMPLERS[cfg.sampler]
  if cfg.respacing and isinstance(model.process, DiffusionSchedule):
    space_timesteps(model.process.num_timesteps, cfg.respacing)  # raises on a bad spec
  if model.kind not in s.kinds:
    valid = [n for n, e in SAMPLERS.items() if model.kind in e.kinds]
    raise ValueError(f"sampling.sampler={cfg.sampler!r} cannot sample a {model.kind} model; "
                     f"valid: {', '.join(valid)}.")
  kind = model.process.kind
  if kind not in s.processes:
    need = ("a discrete VP chain (a DDPM schedule or a VP SDE)" if s.view == "discrete"
            else " | ".join(s.processes))
    raise ValueError(f"sampling.sampler={cfg.sampler!r} runs on {need}, not "
                     f"{type(model.process).__name__}; valid here: "
                     f"{', '.join(sampler_names(kind, model.kind))}.")
  if cfg.predictor == "ancestral_sampling" and cfg.sampler in ("pc", "pc+ode") and not isinstance(
      model.process, (VPSDE, VESDE)):
    raise ValueError("sampling.predictor=ancestral_sampling needs a VP or VE SDE; use "
                     "reverse_diffusion or euler_maruyama.")
  if cfg.steps_offset and not takes_steps_offset(cfg):
    raise ValueError("sampling.steps_offset shifts the discrete grid of ddim, pndm and the "
                     "DPM-Solver family with dpm_skip_type=discrete; not of "
                     f"{cfg.sampler!r}.")
  if cfg.steps_offset and cfg.spacing != "leading" and not (
      cfg.sampler == "pndm" and cfg.spacing == "uniform"):
    raise ValueError(f"sampling.steps_offset applies to spacing=leading (as in diffusers), not "
                     f"{cfg.spacing!r}.")
  if cfg.guidance_scale and model.null_cond is None:
    raise ValueError("sampling.guidance_scale needs a model that also learned the null "
                     "condition: train a conditional model with diffusion.cond_drop_prob > 0 "
                     "(e.g. configs/ddpm_cfg.py), or sample with guidance_scale=0.")


def class_labels(num: int, num_classes: int, label: int) -> Optional[jax.Array]:
  """The labels of ``num`` samples: every class in turn (``label = -1``) or one class; None for
  an unlabelled model.

  Raises:
    ValueError: ``label`` is not a class.
  """
  if not num_classes:
    return None
  if label >= num_classes:
    raise ValueError(f"sampling.label={label} is not a class of this model "
                     f"(0..{num_classes - 1}, or -1 for all classes in turn).")
  return jnp.arange(num) % num_classes if label < 0 else jnp.full((num,), label)


def run(model: Model, cfg: SamplingConfig, key: jax.Array, shape, *, cond=None,
        inputs: Optional[dict] = None, trajectory_stride: Optional[int] = None,
        x_T: Optional[jax.Array] = None):
  """Samples ``model`` with the configured sampler, guidance and mode.

  Args:
    model: the family's :class:`Model`.
    cfg: the sampling config (``validate`` it once before jitting).
    key: PRNG key.
    shape: ``(B, ...)``.
    cond: the condition passed to the denoiser (labels, embeddings, ...).
    inputs: for ``mode`` inpaint / colorize / img2img: ``{"known": [B, ...]}`` plus, for
      inpainting, ``"mask"`` (1 = known), broadcastable to ``known``.
    trajectory_stride: also return the trajectory (samplers that record one).
    x_T: the initial noise ``[B, ...]`` instead of a draw from ``key`` (to reproduce another
      implementation's run from the same start; ``mode="sample"`` only).

  Returns:
    ``[B, ...]`` samples (or ``(x, trajectory)``).
  """
  s = SAMPLERS[cfg.sampler]
  view, time_map = _view(model, s.view)
  eps_fn = _eps_fn(model, view, time_map, cfg)
  extra = {}
  if trajectory_stride is not None:
    extra["trajectory_stride"] = trajectory_stride
  if x_T is not None:
    if cfg.mode != "sample" or cfg.sampler in ("consistency", "langevin"):
      raise ValueError(f"x_T: a given initial noise needs mode=sample and a sampler that starts "
                       f"from noise at the first grid time, not {cfg.sampler}/{cfg.mode}.")
    extra["x_T"] = x_T
  if cfg.mode != "sample":
    if inputs is None or "known" not in inputs:
      raise ValueError(f"mode={cfg.mode} needs inputs={{'known': images}} (sample.py --input).")
    known = jnp.asarray(inputs["known"])
    k_mode, key = jax.random.split(key)
    if cfg.mode == "inpaint":
      if "mask" not in inputs:
        raise ValueError("mode=inpaint needs inputs['mask'] (1 where the input is known).")
      extra["constraint"] = conditional.replacement(known, inputs["mask"])
    elif cfg.mode == "colorize":
      if shape[-1] != 3:
        raise ValueError(f"mode=colorize needs RGB images (3 channels), got shape {shape}.")
      extra["constraint"] = conditional.colorization(known)
    else:
      t0 = conditional.start_time(view, cfg.strength)
      extra["t_start"] = t0
      extra["x_T"] = conditional.noised_start(view, known, t0, k_mode)
  return _RUNNERS[cfg.sampler](eps_fn, view, key, shape, cond, cfg, model, extra)


def from_config(section, default: str) -> SamplingConfig:
  """The typed ``config.sampling`` section with ``sampler = default`` when it names none,
  checked (:func:`validate` without a model)."""
  cfg = from_section(SamplingConfig, section if section is not None else {}, where="sampling")
  if not cfg.sampler:
    cfg = dataclasses.replace(cfg, sampler=default)
  validate(cfg)
  return cfg


def make_sample_fn(cfg: SamplingConfig, model_of: Callable[[Any], Model], shape,
                   cond_of: Optional[Callable[[int], Any]] = None):
  """A family's ``sample(params, key, num, inputs=None) -> [num, *shape]``.

  Args:
    cfg: the sampling config.
    model_of: ``model_of(params) -> Model``; ``model_of(None)`` must build (it is validated
      against ``cfg`` here, before any work).
    shape: one example's shape.
    cond_of: ``cond_of(num) -> cond`` (e.g. :func:`class_labels`), or None.

  Without ``inputs`` (the trainer's sample grids) it samples plainly whatever ``cfg.mode``
  says; with them it inpaints, colorizes or edits.
  """
  validate(cfg, model_of(None))
  plain = dataclasses.replace(cfg, mode="sample")  # the trainer's grids give no inputs

  def sample(params, key, num, inputs=None):
    cond = None if cond_of is None else cond_of(num)
    return run(model_of(params), cfg if inputs is not None else plain, key,
               (num, *tuple(shape)), cond=cond, inputs=inputs)

  return sample
