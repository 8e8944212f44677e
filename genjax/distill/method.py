"""Consistency distillation and consistency training as trainer methods (Song et al. 2023).

Both train ``f_theta(x, sigma)`` (:func:`genjax.distill.consistency.make_consistency_fn` around
any genjax network, with the EDM noise input of :meth:`genjax.sampling.EDMProcess.noise_label`)
against a target network ``theta-`` that lives in ``TrainState.model_state["target"]`` and is
updated after every optimizer step as ``theta- <- mu theta- + (1 - mu) theta`` (so it is
checkpointed and a resumed run continues exactly). The trainer's own EMA (``ema_decay``) is the
separate evaluation average of the paper's code, and is what sampling uses.

* ``consistency_distill`` (Algorithm 2): the teacher is a trained ``edm`` run named by
  ``config.consistency.teacher_workdir`` (restored with ``genjax.training.run.load_trained``);
  the student starts from the teacher's weights when the networks match (as the official code).
* ``consistency_training`` (Algorithm 3): no teacher; ``N(k)`` and ``mu(k)`` follow Sec. 5.

    python train.py --config=configs/edm.py --workdir=runs/edm
    python train.py --config=configs/consistency_distill.py --workdir=runs/cd \\
        --config.consistency.teacher_workdir=runs/edm
    python sample.py --config=configs/consistency_distill.py --workdir=runs/cd --steps=1
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from genjax.distill import consistency as cm
from genjax.nets.build import build_network
from genjax.sampling import registry
from genjax.sampling.processes import EDMProcess
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class ConsistencyConfig:
  """The ``config.consistency`` section.

  Attributes:
    teacher_workdir: (distillation) workdir of a trained ``edm`` run.
    init_from_teacher: (distillation) start the student from the teacher's EMA weights.
    num_scales: (distillation) N, the number of noise levels (CIFAR-10: 18).
    solver: (distillation) the teacher's ODE step: heun | euler.
    target_decay: (distillation) mu of the target network (CIFAR-10: 0.95).
    s0, s1, mu0: (training) the N(k) / mu(k) schedule (CIFAR-10: 2, 150, 0.9).
    sigma_min, sigma_max, sigma_data, rho: eps, T, sd and the Karras rho.
  """
  teacher_workdir: str = ""
  init_from_teacher: bool = True
  num_scales: int = 18
  solver: str = "heun"
  target_decay: float = 0.95
  s0: int = 2
  s1: int = 150
  mu0: float = 0.9
  sigma_min: float = 0.002
  sigma_max: float = 80.0
  sigma_data: float = 0.5
  rho: float = 7.0


def _student(config, spec: DataSpec, cfg: ConsistencyConfig):
  net = build_network(config.model, spec)
  num_classes = getattr(net, "num_classes", 0)
  label = EDMProcess(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max).noise_label

  def consistency_fn(params, y=None, key=None):
    kw = dict(train=False) if key is None else dict(train=True, rngs={"dropout": key})
    f = lambda x_in, sigma: net.apply({"params": params}, x_in, label(sigma), y=y, **kw)
    return cm.make_consistency_fn(f, cfg.sigma_data, cfg.sigma_min)

  def init(key, batch):
    x = batch["x"][:1]
    y = batch["label"][:1] if num_classes else None
    k1, k2 = jax.random.split(key)
    return net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,)), y=y)["params"]

  return net, num_classes, consistency_fn, init


def _build(config, spec: DataSpec, distill: bool) -> Method:
  cfg = from_section(ConsistencyConfig, config.consistency, where="consistency")
  sampling = registry.from_config(config.get("sampling"), default="consistency")
  if cfg.solver not in ("heun", "euler"):
    raise ValueError(f"consistency.solver must be heun or euler, got {cfg.solver!r}.")
  if cfg.num_scales < 2 or cfg.s0 < 2 or cfg.s1 < cfg.s0:
    raise ValueError("consistency.num_scales and s0 must be >= 2, and s1 >= s0.")
  net, num_classes, consistency_fn, net_init = _student(config, spec, cfg)
  process = EDMProcess(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
  levels = dict(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, rho=cfg.rho)
  total_steps = int(config.training.num_steps)  # K of consistency training's N(k)

  teacher_params = teacher_denoise = None
  if distill:
    teacher_params, teacher_denoise = _load_teacher(cfg, spec)

  def init(key, batch):
    params = net_init(key, batch)
    if distill and cfg.init_from_teacher:
      same = jax.tree.structure(params) == jax.tree.structure(teacher_params) and all(
          a.shape == b.shape for a, b in zip(jax.tree.leaves(params),
                                             jax.tree.leaves(teacher_params)))
      if not same:
        raise ValueError("consistency.init_from_teacher: the student's config.model differs from "
                         "the teacher's; use the teacher's model section, or set "
                         "init_from_teacher=False.")
      params = jax.tree.map(jnp.asarray, teacher_params)
    return params, {"target": params}

  def train_step(state, batch, key):
    x0 = batch["x"]
    y = batch["label"] if num_classes else None
    k_drop, k_loss = jax.random.split(key)
    target = state.model_state["target"]
    if distill:
      n, mu = cfg.num_scales, jnp.float32(cfg.target_decay)
    else:
      n = cm.ct_num_scales(state.step, total_steps, cfg.s0, cfg.s1)
      mu = cm.ct_target_decay(n, cfg.s0, cfg.mu0)

    def loss_fn(params):
      # The online and target networks share the dropout mask (as the official code).
      f_on = consistency_fn(params, y, k_drop)
      f_tg = consistency_fn(target, y, k_drop)
      if distill:
        denoise = lambda x, s: teacher_denoise(teacher_params, x, s, y)
        return cm.cd_loss(f_on, f_tg, denoise, x0, k_loss, n, solver=cfg.solver, **levels)
      return cm.ct_loss(f_on, f_tg, x0, k_loss, n, **levels)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new = state.apply_gradients(grads)
    target = jax.tree.map(lambda t, p: mu * t + (1 - mu) * jax.lax.stop_gradient(p), target,
                          new.params)
    metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads),
                   num_scales=jnp.asarray(n, jnp.float32), target_decay=mu)
    return new.replace(model_state={"target": target}), metrics

  def model_of(params) -> registry.Model:
    fn = lambda x, sigma, y: consistency_fn(params, y)(x, sigma)
    return registry.Model(process=process, model_fn=fn, prediction="x0", kind="consistency")

  registry.class_labels(1, num_classes, sampling.label)  # a bad label fails here, before work
  cond_of = (lambda num: registry.class_labels(num, num_classes, sampling.label)) if num_classes \
      else None
  sample = registry.make_sample_fn(sampling, model_of, spec.shape, cond_of)
  name = "consistency_distill" if distill else "consistency_training"
  plot = None
  if spec.kind == "points":
    from genjax import viz
    steps = registry.resolve_steps(sampling, model_of(None))
    plot = lambda s, d, p: viz.scatter_2d(s, d, p, title=f"{name} ({steps} step)")
  return Method(name=name, init=init, train_step=train_step, sample=sample, plot_samples=plot,
                sample_tag=registry.tag(sampling, model_of(None)), modes=registry.MODES)


def _load_teacher(cfg: ConsistencyConfig, spec: DataSpec):
  """The teacher EDM's EMA params and its denoiser ``D(params, x, sigma, y)``."""
  if not cfg.teacher_workdir:
    raise ValueError("consistency.teacher_workdir is required: the workdir of a trained edm run "
                     "(python train.py --config=configs/edm.py --workdir=runs/edm; then "
                     "--config.consistency.teacher_workdir=runs/edm).")
  from genjax.score.method import edm_denoiser
  from genjax.training import run as run_lib
  t_config, t_run, t_state = run_lib.load_trained(cfg.teacher_workdir)
  if t_config.method != "edm":
    raise ValueError(f"consistency.teacher_workdir must hold an edm run; {cfg.teacher_workdir} "
                     f"has method={t_config.method!r}.")
  if tuple(t_run.dataset.spec.shape) != tuple(spec.shape):
    raise ValueError(f"The teacher was trained on shape {t_run.dataset.spec.shape}, this run "
                     f"has {spec.shape}; use the same config.data.")
  for k in ("sigma_data",):
    if float(t_config.edm[k]) != float(getattr(cfg, k)):
      raise ValueError(f"consistency.{k}={getattr(cfg, k)} differs from the teacher's "
                       f"edm.{k}={t_config.edm[k]}.")
  _, _, denoise = edm_denoiser(t_config, t_run.dataset.spec)
  return jax.device_get(t_state.ema_params), denoise


def build_consistency_distill(config, spec: DataSpec) -> Method:
  return _build(config, spec, distill=True)


def build_consistency_training(config, spec: DataSpec) -> Method:
  return _build(config, spec, distill=False)


# -- Progressive distillation (Salimans & Ho 2022) ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProgressiveConfig:
  """The ``config.distill`` section.

  Attributes:
    teacher_workdir: a trained ``ddpm`` run (round 1) or the previous round's
      ``progressive_distill`` run.
    student_steps: N; the teacher takes 2N DDIM steps (a distilled teacher must have been
      trained for exactly 2N).
    weighting: truncated_snr (max(SNR, 1), the paper's choice) | snr_plus_one.
    clip_teacher: clip the teacher's x^ to [-1, 1] inside its DDIM steps (images).
  """
  teacher_workdir: str = ""
  student_steps: int = 8
  weighting: str = "truncated_snr"
  clip_teacher: bool = True


def x0_network(config, spec: DataSpec, clip=None):
  """``(net, x0_fn_of, ns, dcfg, raw_of)`` for a DDPM-style config (its model and diffusion
  sections): ``x0_fn_of(params, y=None, key=None)`` is the network's ``x^(z, t)`` on the
  continuous view ``ns`` of its schedule, ``raw_of(params, y)`` its raw output ``(z, t) ->
  out`` at continuous ``t`` (what the sampling floor converts)."""
  from genjax.diffusion.method import DDPMConfig
  from genjax.distill import progressive as pd
  from genjax.sampling.posterior import LEARNED_VAR_TYPES
  from genjax.sampling.schedules import get_schedule
  from genjax.sampling.convert import split_learned_output
  dcfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  learned = dcfg.var_type in LEARNED_VAR_TYPES
  net = build_network(config.model, spec, learned_variance=learned)
  ns = get_schedule(dcfg.schedule, dcfg.num_timesteps).continuous()

  def step_fn(params, y=None, key=None):
    kw = dict(train=False) if key is None else dict(train=True, rngs={"dropout": key})

    def model_fn(z, step):
      out = net.apply({"params": params}, z, step, y=y, **kw)
      return split_learned_output(out)[0] if learned else out

    return model_fn

  def x0_fn_of(params, y=None, key=None):
    return pd.make_x0_fn(step_fn(params, y, key), ns, dcfg.parameterization, clip)

  def raw_of(params, y=None):
    f = step_fn(params, y)
    return lambda z, t: f(z, ns.discrete_time_input(jnp.maximum(t, ns.sampling_eps)))

  return net, x0_fn_of, ns, dcfg, raw_of


def build_progressive_distill(config, spec: DataSpec) -> Method:
  """Progressive distillation (Salimans & Ho 2022, Algorithm 2), one halving round per run.

      python train.py --config=configs/ddpm.py --workdir=runs/ddpm_v \\
          --config.diffusion.parameterization=v
      python train.py --config=configs/progressive_distill.py --workdir=runs/pd_16 \\
          --config.distill.teacher_workdir=runs/ddpm_v --config.distill.student_steps=16
      python train.py --config=configs/progressive_distill.py --workdir=runs/pd_8 \\
          --config.distill.teacher_workdir=runs/pd_16 --config.distill.student_steps=8

  The student has the teacher's network, schedule and parameterization and starts from its EMA
  weights.
  """
  from genjax.distill import progressive as pd
  from genjax.training import run as run_lib
  from genjax.typed_config import to_dict
  cfg = from_section(ProgressiveConfig, config.distill, where="distill")
  sampling = registry.from_config(config.get("sampling"), default="ddim")
  if cfg.weighting not in pd.WEIGHTINGS:
    raise ValueError(f"distill.weighting must be one of {pd.WEIGHTINGS}, got {cfg.weighting!r}.")
  if cfg.student_steps < 1:
    raise ValueError(f"distill.student_steps must be >= 1, got {cfg.student_steps}.")
  if not cfg.teacher_workdir:
    raise ValueError("distill.teacher_workdir is required: a trained ddpm run (ideally "
                     "--config.diffusion.parameterization=v) or the previous round's run.")
  t_config, t_run, t_state = run_lib.load_trained(cfg.teacher_workdir)
  if t_config.method not in ("ddpm", "progressive_distill"):
    raise ValueError(f"distill.teacher_workdir must hold a ddpm or progressive_distill run; "
                     f"{cfg.teacher_workdir} has method={t_config.method!r}.")
  if t_config.method == "progressive_distill" and (
      int(t_config.distill.student_steps) != 2 * cfg.student_steps):
    raise ValueError(f"The teacher {cfg.teacher_workdir} was distilled for "
                     f"{t_config.distill.student_steps} steps; this round's teacher must take "
                     f"2 x student_steps = {2 * cfg.student_steps}. Set "
                     f"--config.distill.student_steps={int(t_config.distill.student_steps) // 2}.")
  tuples = lambda d: {k: tuple(v) if isinstance(v, list) else v for k, v in to_dict(d).items()}
  for section in ("model", "diffusion"):  # config.json stores tuples as lists
    if tuples(t_config[section]) != tuples(config[section]):
      raise ValueError(f"config.{section} must equal the teacher's (the student starts from its "
                       f"weights): teacher {to_dict(t_config[section])}, student "
                       f"{to_dict(config[section])}.")
  clip = (-1.0, 1.0) if (cfg.clip_teacher and spec.kind == "image") else None
  net, x0_fn_of, ns, dcfg, raw_of = x0_network(config, spec)
  teacher_x0_of = x0_network(t_config, spec, clip)[1]
  if 2 * cfg.student_steps > dcfg.num_timesteps:
    raise ValueError(f"2 x student_steps = {2 * cfg.student_steps} exceeds the model's "
                     f"T = {dcfg.num_timesteps} steps.")
  if dcfg.parameterization == "eps":
    import warnings
    warnings.warn("Progressive distillation of an eps-prediction model: x^ = (z - sigma eps)/alpha "
                  "explodes near t = 1 (Salimans & Ho Sec. 4); prefer parameterization v.")
  teacher_params = jax.device_get(t_state.ema_params)
  num_classes = getattr(net, "num_classes", 0)
  n = cfg.student_steps

  def init(key, batch):
    del key, batch
    return jax.tree.map(jnp.asarray, teacher_params), {}

  def loss(params, batch, key):
    y = batch["label"] if num_classes else None
    k_drop, k_loss = jax.random.split(key)
    return pd.pd_loss(x0_fn_of(params, y, k_drop), teacher_x0_of(teacher_params, y), ns,
                      batch["x"], k_loss, n, cfg.weighting)

  def model_of(params) -> registry.Model:
    fn = lambda z, t, y: raw_of(params, y if num_classes else None)(z, t)
    return registry.Model(process=ns, model_fn=fn, prediction=dcfg.parameterization,
                          kind="student", student_steps=n,
                          clip=(-1.0, 1.0) if spec.kind == "image" else None)

  registry.class_labels(1, num_classes, sampling.label)  # a bad label fails here, before work
  cond_of = (lambda num: registry.class_labels(num, num_classes, sampling.label)) if num_classes \
      else None
  return Method(name="progressive_distill", init=init, loss=loss,
                sample=registry.make_sample_fn(sampling, model_of, spec.shape, cond_of),
                sample_tag=registry.tag(sampling, model_of(None)), modes=registry.MODES)
