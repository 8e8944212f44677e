"""DDPM and improved DDPM as a trainer :class:`~genjax.training.method.Method`.

Training minimises L_simple (Ho et al. 2020; seed 003 eq. 30, Algorithm 1) for the configured
parameterization (eps, x0 or v), or improved DDPM's L_hybrid = L_simple + 0.001 L_vlb with a
learned reverse variance (Nichol & Dhariwal 2021, eq. 15-16; seed eq. 35; the network then has
2C output channels), optionally with importance-sampled timesteps (their Sec. 3.3; the sampler's
loss history lives in ``TrainState.model_state``). Sampling runs DDPM ancestral sampling
(Algorithm 2), DDIM (eq. 41-43) or DPM-Solver-1/2/3 (Lu et al. 2022), each one ``lax.scan``.
``sample.py --eval=nll`` gives the test-set NLL in bits/dim from the full L_vlb
(:mod:`genjax.diffusion.nll`). The network is any genjax net taking ``(x, t, y)``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import viz
from genjax.diffusion import (gaussian, guidance, losses, nll, samplers, schedules,
                              timestep_sampling)
from genjax.nets.build import build_network
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec


SAMPLERS = ("ddpm", "ddim", "dpm-solver-1", "dpm-solver-2", "dpm-solver-3")
NLL_BATCH = 128  # examples per jitted call of --eval=nll (each call runs T network evaluations)


@dataclasses.dataclass(frozen=True)
class DDPMConfig:
  """The ``config.diffusion`` section.

  Attributes:
    schedule: beta schedule: linear | cosine | quadratic | sigmoid.
    num_timesteps: T; timesteps are zero-based ``0..T-1`` (DESIGN.md item 2).
    parameterization: what the network predicts: eps | x0 | v.
    loss_type: "simple" (L_simple, eq. 30), "hybrid" (L_simple + vlb_weight * L_vlb, needs
      var_type=learned_range; Nichol & Dhariwal 2021 eq. 16) or "vlb" (L_vlb alone).
    var_type: reverse variance: fixed_large (beta_t), fixed_small (beta-tilde_t) or
      learned_range (exp(v log beta_t + (1 - v) log beta-tilde_t), eq. 15; the network gets
      2C output channels).
    clip_x0: clip the predicted x0 to [-1, 1] while sampling and in --eval=nll (images only).
    vlb_weight: lambda of L_hybrid (0.001).
    timestep_sampler: "uniform" or "loss-second-moment" (importance-sampled t with a history
      of 10 losses per t, Nichol & Dhariwal 2021 Sec. 3.3).
    decoder_bins: levels of the discretized decoder's data grid (L_0), in the L_vlb loss term
      and the headline --eval=nll ``bpd``: 256, the papers' 8-bit convention.
    nll_extra_bins: more decoder grids that --eval=nll reports as ``bpd_{k}bins`` (e.g. 17 for
      the digits' own 17 grey levels; see genjax.diffusion.nll).
    cond_drop_prob: p_uncond of classifier-free guidance (Ho & Salimans 2022, Algorithm 1): the
      fraction of training labels replaced by the null label, so that one network learns both
      eps(x_t, t, y) and eps(x_t, t). 0 (default) trains a plain conditional model.
  """
  schedule: str = "linear"
  num_timesteps: int = 1000
  parameterization: str = "eps"
  loss_type: str = "simple"
  var_type: str = "fixed_large"
  clip_x0: bool = True
  vlb_weight: float = 0.001
  timestep_sampler: str = "uniform"
  decoder_bins: int = 256
  nll_extra_bins: tuple = ()
  cond_drop_prob: float = 0.0


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """The ``config.sampling`` section (also set by sample.py's flags).

  Attributes:
    sampler: ddpm (ancestral; all T steps, or the respaced chain of ``respacing``) | ddim |
      dpm-solver-1 | dpm-solver-2 | dpm-solver-3.
    steps: DDIM steps (a strided subsequence of the T timesteps), or DPM-Solver's number of
      network evaluations (NFE).
    eta: DDIM stochasticity (0: deterministic; 1: ancestral with beta-tilde).
    spacing: DDIM timestep spacing: uniform | quadratic.
    dpm_method: DPM-Solver singlestep ("DPM-Solver-fast") | multistep.
    dpm_skip_type: DPM-Solver step spacing: time_uniform | logSNR | time_quadratic.
    dpm_denoise: end DPM-Solver with one x0-prediction step from t = 1/T (one more NFE).
    respacing: the ddpm sampler's kept steps, improved-diffusion's ``timestep_respacing``:
      "" (all T), "N", "n1,n2,..." (per section) or "ddimN" (Nichol & Dhariwal 2021 Sec. 4;
      the learned variance is reinterpreted on the respaced chain, see
      :func:`genjax.diffusion.schedules.respace`).
    guidance_scale: classifier-free guidance weight w (Ho & Salimans 2022 eq. 6; seed eq. 40):
      eps~ = (1 + w) eps(x, y) - w eps(x); 0 = the conditional model. Needs a class-conditional
      model trained with ``diffusion.cond_drop_prob > 0``. Used by every sampler.
    label: the class to sample (class-conditional or classifier-guided models); -1 cycles
      through the classes.
    classifier_workdir: classifier guidance (Dhariwal & Nichol 2021; seed eq. 38): a trained
      ``noisy_classifier`` run on the same forward process (``configs/noisy_classifier.py``);
      works with the ddpm and ddim samplers, for conditional and unconditional models.
    classifier_scale: its gradient scale s.
  """
  sampler: str = "ddim"
  steps: int = 50
  eta: float = 0.0
  spacing: str = "uniform"
  dpm_method: str = "singlestep"
  dpm_skip_type: str = "time_uniform"
  dpm_denoise: bool = False
  respacing: str = ""
  guidance_scale: float = 0.0
  label: int = -1
  classifier_workdir: str = ""
  classifier_scale: float = 1.0


def make_eps_fn(apply_fn, params, sched, parameterization: str, y=None, learned: bool = False):
  """Turns a network into ``eps_fn(x, t)`` for the samplers, converting its output once.

  With ``learned=True`` the network's 2C output channels are split (mean part, variance part)
  and ``eps_fn`` returns ``(eps, var_values)``.
  """

  def eps_fn(x, t):
    out = apply_fn(params, x, t, y)
    var_values = None
    if learned:
      out, var_values = gaussian.split_learned_output(out)
    eps = out if parameterization == "eps" else gaussian.model_output_to_eps_x0(
        sched, out, x, t, parameterization)[0]
    return eps if var_values is None else (eps, var_values)

  return eps_fn


def sample_images(eps_fn, sched, key, shape, sampling: SamplingConfig, clip_x0, var_type, *,
                  out_fn=None, parameterization: str = "eps"):
  """Dispatches to the configured sampler (one ``lax.scan`` each).

  DPM-Solver runs on ``VPNoiseSchedule.discrete(sched)`` with the network called at the
  (fractional) zero-based step ``(t - 1/T) T``; its output is clipped to ``clip_x0``. Give
  ``out_fn(x, t) -> network output in parameterization`` for x0 / v networks, whose output is
  then converted with the continuous ``alpha_t, sigma_t`` (``eps_fn`` would index the discrete
  schedule at fractional steps); for eps networks ``eps_fn`` is used.
  """
  if sampling.sampler == "ddpm":
    if sampling.respacing:
      sched, timestep_map = schedules.respace(
          sched, schedules.space_timesteps(sched.num_timesteps, sampling.respacing))
      eps_fn = _call_at(eps_fn, jnp.asarray(timestep_map))
    return samplers.ddpm_sample(eps_fn, sched, key, shape, var_type=var_type, clip_x0=clip_x0)
  if sampling.sampler == "ddim":
    return samplers.ddim_sample(eps_fn, sched, key, shape, num_steps=sampling.steps,
                                eta=sampling.eta, spacing=sampling.spacing, clip_x0=clip_x0)
  if sampling.sampler.startswith("dpm-solver-") and sampling.sampler in SAMPLERS:
    from genjax.score import dpm_solver
    from genjax.score.noise_schedules import VPNoiseSchedule
    ns = VPNoiseSchedule.discrete(sched)
    if out_fn is not None:
      eps_c = dpm_solver.eps_fn_from_model(out_fn, ns, model_type=parameterization,
                                           discrete_time=True)
    elif parameterization == "eps":
      eps_c = dpm_solver.discrete_eps_fn(eps_fn, ns)
    else:
      raise ValueError(f"DPM-Solver with a {parameterization!r} network needs out_fn (the raw "
                       "network output), converted with the continuous alpha_t, sigma_t.")
    x = dpm_solver.dpm_solver_sample(
        eps_c, ns, key, shape, steps=sampling.steps,
        order=int(sampling.sampler[-1]), method=sampling.dpm_method,
        skip_type=sampling.dpm_skip_type, denoise_to_zero=sampling.dpm_denoise)
    return x if clip_x0 is None else jnp.clip(x, clip_x0[0], clip_x0[1])
  raise ValueError(f"Unknown sampling.sampler {sampling.sampler!r} for DDPM; use one of "
                   f"{', '.join(SAMPLERS)}.")


def _call_at(eps_fn, timestep_map):
  """``eps_fn`` of a respaced chain: its step k is the trained model's step ``timestep_map[k]``."""
  return lambda x, t: eps_fn(x, timestep_map[t])


def _check_configs(cfg: DDPMConfig, sampling: SamplingConfig) -> None:
  """Clear errors for bad config values, before any work."""
  if cfg.parameterization not in gaussian.PARAMETERIZATIONS:
    raise ValueError(f"diffusion.parameterization must be eps, x0 or v, got {cfg.parameterization!r}.")
  if cfg.var_type not in gaussian.VAR_TYPES:
    raise ValueError(f"diffusion.var_type must be one of {', '.join(gaussian.VAR_TYPES)}, got "
                     f"{cfg.var_type!r}.")
  if cfg.loss_type not in losses.LOSS_TYPES:
    raise ValueError(f"diffusion.loss_type must be one of {', '.join(losses.LOSS_TYPES)}, got "
                     f"{cfg.loss_type!r}.")
  if cfg.timestep_sampler not in timestep_sampling.TIMESTEP_SAMPLERS:
    raise ValueError(f"diffusion.timestep_sampler must be one of "
                     f"{', '.join(timestep_sampling.TIMESTEP_SAMPLERS)}, got "
                     f"{cfg.timestep_sampler!r}.")
  bins = (cfg.decoder_bins,) + tuple(cfg.nll_extra_bins)
  if any(int(b) != b or b < 2 for b in bins):
    raise ValueError(f"diffusion.decoder_bins / nll_extra_bins must be integers >= 2, got {bins}.")
  if sampling.sampler not in SAMPLERS:
    raise ValueError(f"Unknown sampling.sampler {sampling.sampler!r} for DDPM; use one of "
                     f"{', '.join(SAMPLERS)}.")
  if sampling.dpm_method not in ("singlestep", "multistep"):
    raise ValueError(f"sampling.dpm_method must be singlestep or multistep, got "
                     f"{sampling.dpm_method!r}.")
  if sampling.respacing:
    schedules.space_timesteps(cfg.num_timesteps, sampling.respacing)  # raises on a bad spec
  if not 0.0 <= cfg.cond_drop_prob < 1.0:
    raise ValueError(f"diffusion.cond_drop_prob must be in [0, 1), got {cfg.cond_drop_prob}.")
  if sampling.dpm_skip_type not in ("time_uniform", "logSNR", "time_quadratic"):
    raise ValueError(f"sampling.dpm_skip_type must be time_uniform, logSNR or time_quadratic, "
                     f"got {sampling.dpm_skip_type!r}.")


def _check_conditioning(cfg: DDPMConfig, sampling: SamplingConfig, num_classes: int) -> None:
  """Guidance and label options need a class-conditional network (clear errors before work)."""
  if not num_classes:
    for name, bad in (("diffusion.cond_drop_prob", cfg.cond_drop_prob > 0),
                      ("sampling.guidance_scale", sampling.guidance_scale != 0),
                      ("sampling.label", sampling.label >= 0 and not sampling.classifier_workdir)):
      if bad:
        raise ValueError(f"{name} needs a class-conditional network: set "
                         "config.model.num_classes (-1 takes it from the data).")
    return
  if sampling.guidance_scale and cfg.cond_drop_prob <= 0:
    raise ValueError("sampling.guidance_scale needs a model that also learned eps(x_t, t) with the "
                     "null label: train with diffusion.cond_drop_prob > 0 (e.g. 0.1; "
                     "configs/ddpm_cfg.py), or sample with guidance_scale=0.")
  if sampling.label >= num_classes:
    raise ValueError(f"sampling.label={sampling.label} is not a class of this model "
                     f"(0..{num_classes - 1}, or -1 for all classes in turn).")


def _output_override(net, spec: DataSpec) -> dict:
  """The network field that doubles the output width for a learned variance."""
  c = int(spec.shape[-1])
  for field in ("out_channels", "out_dim"):
    if hasattr(net, field):
      return {field: 2 * c}
  raise ValueError(f"var_type=learned_range needs a network with an out_channels/out_dim field "
                   f"(2C outputs); {type(net).__name__} has neither.")


def build_ddpm(config, spec: DataSpec) -> Method:
  """Builds the DDPM method from ``config.diffusion``, ``config.model`` and ``config.sampling``."""
  cfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  sampling = from_section(SamplingConfig, config.sampling, where="sampling")
  _check_configs(cfg, sampling)
  learned = cfg.var_type in gaussian.LEARNED_VAR_TYPES
  net = build_network(config.model, spec)
  if learned:
    net = build_network(config.model, spec, **_output_override(net, spec))
  sched = schedules.get_schedule(cfg.schedule, cfg.num_timesteps)
  num_t = sched.num_timesteps
  num_classes = getattr(net, "num_classes", 0)
  clip = (-1.0, 1.0) if (cfg.clip_x0 and spec.kind == "image") else None
  importance = cfg.timestep_sampler != "uniform"
  _check_conditioning(cfg, sampling, num_classes)
  grad_fn = None
  label_classes = num_classes
  if sampling.classifier_workdir:
    if sampling.sampler not in ("ddpm", "ddim"):
      raise ValueError(f"Classifier guidance (sampling.classifier_workdir) works with the ddpm and "
                       f"ddim samplers, not {sampling.sampler!r}.")
    from genjax.diffusion.classifier import load_guidance_classifier
    grad_fn = load_guidance_classifier(sampling.classifier_workdir, cfg, spec)
    label_classes = num_classes or spec.num_classes
    if sampling.label >= label_classes:
      raise ValueError(f"sampling.label={sampling.label} is not a class of the data "
                       f"(0..{label_classes - 1}, or -1 for all classes in turn).")

  def model_fn(params, x, t, y, key):
    return net.apply({"params": params}, x, t, y=y, train=True, rngs={"dropout": key})

  def apply_eval(params, x, t, y):
    return net.apply({"params": params}, x, t, y=y, train=False)

  def init(key, batch):
    x = batch["x"][:1]
    y = batch["label"][:1] if num_classes else None
    k1, k2 = jax.random.split(key)
    variables = net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,), jnp.int32), y=y)
    model_state = {}
    if importance:
      model_state = {"timestep_sampler": timestep_sampling.init_loss_history(num_t)}
    return variables["params"], model_state

  def eps_fn_of(params, y):
    return make_eps_fn(apply_eval, params, sched, cfg.parameterization, y, learned)

  apply_sample = apply_eval
  if sampling.guidance_scale:
    apply_sample = guidance.classifier_free_apply(apply_eval, sampling.guidance_scale,
                                                  null_label=num_classes,
                                                  learned_variance=learned)

  def sample(params, key, num):
    labels = None
    if label_classes:
      labels = (jnp.arange(num) % label_classes if sampling.label < 0
                else jnp.full((num,), sampling.label))
    y = labels if num_classes else None

    def out_fn(x, t):  # the raw network output (mean part), any time input
      out = apply_sample(params, x, t, y)
      return gaussian.split_learned_output(out)[0] if learned else out

    eps_fn = make_eps_fn(apply_sample, params, sched, cfg.parameterization, y, learned)
    if grad_fn is not None:
      from genjax.diffusion.classifier import classifier_guided_eps_fn
      eps_fn = classifier_guided_eps_fn(eps_fn, grad_fn, sched, labels, sampling.classifier_scale)
    return sample_images(eps_fn, sched, key, (num, *spec.shape), sampling, clip,
                         cfg.var_type, out_fn=out_fn, parameterization=cfg.parameterization)

  def drop_label(batch, key):
    """Unconditional models see no labels; with cond_drop_prob some become the null label.
    Returns ``(batch, key)``, the key split off when labels are dropped."""
    if not num_classes:
      return {k: v for k, v in batch.items() if k != "label"}, key
    if cfg.cond_drop_prob > 0:
      key, key_drop = jax.random.split(key)
      batch = dict(batch, label=guidance.drop_labels(key_drop, batch["label"],
                                                     cfg.cond_drop_prob, num_classes))
    return batch, key

  loss_kw = dict(var_type=cfg.var_type, vlb_weight=cfg.vlb_weight, num_bins=cfg.decoder_bins)
  loss = train_step = None
  if not importance:
    base_loss = losses.make_ddpm_loss(model_fn, sched, cfg.parameterization, cfg.loss_type,
                                      **loss_kw)

    def loss(params, batch, key):
      return base_loss(params, *drop_label(batch, key))
  else:
    terms_fn = losses.make_ddpm_loss_terms(model_fn, sched, cfg.parameterization, cfg.loss_type,
                                           **loss_kw)

    def train_step(state, batch, key):
      """One Adam step on the importance-weighted loss; updates the loss history (Sec. 3.3)."""
      batch, key = drop_label(batch, key)
      key_t, key_loss = jax.random.split(key)
      history = state.model_state["timestep_sampler"]
      probs = timestep_sampling.loss_second_moment_probs(history)
      t, weights = timestep_sampling.sample_timesteps(key_t, probs, batch["x"].shape[0])

      def weighted(params):
        per_example, aux = terms_fn(params, batch, t, key_loss)
        return jnp.mean(per_example * weights), (per_example, aux)

      (value, (per_example, aux)), grads = jax.value_and_grad(weighted, has_aux=True)(
          state.params)
      history = timestep_sampling.update_loss_history(history, t, per_example)
      metrics = {"loss": value, "grad_norm": optax.global_norm(grads),
                 **losses.quarter_metrics(per_example, t, num_t),
                 **{k: jnp.mean(v) for k, v in aux.items()},
                 "sampler_warm": jnp.all(history["loss_counts"] == history["loss_history"].shape[1])}
      model_state = dict(state.model_state, timestep_sampler=history)
      return state.apply_gradients(grads, model_state=model_state), metrics

  evaluators = {}
  if spec.kind == "image":
    nll_fn = nll.make_nll_fn(eps_fn_of, sched, var_type=cfg.var_type, clip_x0=clip,
                             num_bins=cfg.decoder_bins, extra_bins=tuple(cfg.nll_extra_bins))

    def eval_nll(state, dataset, key, num):
      """Test-set NLL (bits/dim) from the full L_vlb with the EMA params; ``num`` caps examples."""
      n = min(len(dataset.test), int(num))
      data = dataset.test.get(np.arange(n))
      y = np.asarray(data["label"]) if num_classes else None
      res = nll.nll_bpd(nll_fn, state.ema_params, np.asarray(data["x"]), y, key,
                        batch_size=NLL_BATCH, desc="nll (full L_vlb)")
      res.update(num_timesteps=num_t, decoder_bins=cfg.decoder_bins, params="ema", split="test",
                 clip_x0=clip is not None,
                 convention=(f"bpd: full L_vlb = L_T + sum_t L_t + L_0 with the decoder L_0 on "
                             f"{cfg.decoder_bins} bins over [-1, 1]; bpd_<k>bins: L_0 on k bins; "
                             f"one x_t sample per term (improved-diffusion calc_bpd_loop)"))
      return res

    evaluators["nll"] = eval_nll

  plot = None
  if spec.kind == "points":
    plot = functools.partial(_plot_points, title=f"DDPM ({sampling.sampler})")

  return Method(name="ddpm", init=init, loss=loss, train_step=train_step, sample=sample,
                plot_samples=plot, evaluators=evaluators)


def _plot_points(samples, data, path, title=""):
  viz.scatter_2d(samples, data, path, title=title)
