"""DDPM and improved DDPM as a trainer :class:`~genjax.training.method.Method`.

Training minimises L_simple (Ho et al. 2020; seed 003 eq. 30, Algorithm 1) for the configured
parameterization (eps, x0 or v), or improved DDPM's L_hybrid = L_simple + 0.001 L_vlb with a
learned reverse variance (Nichol & Dhariwal 2021, eq. 15-16; seed eq. 35; the network then has
2C output channels), optionally with importance-sampled timesteps (their Sec. 3.3; the sampler's
loss history lives in ``TrainState.model_state``). Sampling is the sampling floor's
(:mod:`genjax.sampling.registry`): every sampler, classifier-free guidance (``diffusion.
cond_drop_prob > 0`` trains the null label), classifier guidance with a noisy classifier
(:mod:`genjax.diffusion.classifier`), and inpainting, colorization and SDEdit.
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
from genjax.diffusion import losses, nll, timestep_sampling
from genjax.nets.build import build_network
from genjax.sampling import guidance, registry, schedules
from genjax.sampling.convert import denoiser
from genjax.sampling.posterior import LEARNED_VAR_TYPES, VAR_TYPES
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec


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


def _check_configs(cfg: DDPMConfig) -> None:
  """Clear errors for bad config values, before any work."""
  if cfg.parameterization not in losses.PARAMETERIZATIONS:
    raise ValueError(f"diffusion.parameterization must be eps, x0 or v, got {cfg.parameterization!r}.")
  if cfg.var_type not in VAR_TYPES:
    raise ValueError(f"diffusion.var_type must be one of {', '.join(VAR_TYPES)}, got "
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
  if not 0.0 <= cfg.cond_drop_prob < 1.0:
    raise ValueError(f"diffusion.cond_drop_prob must be in [0, 1), got {cfg.cond_drop_prob}.")


def _check_conditioning(cfg: DDPMConfig, sampling: registry.SamplingConfig,
                        num_classes: int) -> None:
  """Guidance and label options need a class-conditional network (clear errors before work)."""
  if num_classes:
    return
  for name, bad in (("diffusion.cond_drop_prob", cfg.cond_drop_prob > 0),
                    ("sampling.guidance_scale", sampling.guidance_scale != 0),
                    ("sampling.label", sampling.label >= 0 and not sampling.classifier_workdir)):
    if bad:
      raise ValueError(f"{name} needs a class-conditional network: set "
                       "config.model.num_classes (-1 takes it from the data).")


def build_ddpm(config, spec: DataSpec) -> Method:
  """Builds the DDPM method from ``config.diffusion``, ``config.model`` and ``config.sampling``."""
  cfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  sampling = registry.from_config(config.get("sampling"), default="ddim")
  _check_configs(cfg)
  learned = cfg.var_type in LEARNED_VAR_TYPES
  net = build_network(config.model, spec, learned_variance=learned)
  sched = schedules.get_schedule(cfg.schedule, cfg.num_timesteps)
  num_t = sched.num_timesteps
  num_classes = getattr(net, "num_classes", 0)
  clip = (-1.0, 1.0) if (cfg.clip_x0 and spec.kind == "image") else None
  importance = cfg.timestep_sampler != "uniform"
  _check_conditioning(cfg, sampling, num_classes)
  classifier_grad = None
  label_classes = num_classes
  if sampling.classifier_workdir:
    from genjax.diffusion.classifier import load_guidance_classifier
    classifier_grad = load_guidance_classifier(sampling.classifier_workdir, cfg, spec)
    label_classes = num_classes or spec.num_classes
  null_cond = None
  if num_classes and cfg.cond_drop_prob > 0:
    null_cond = lambda y: jnp.full_like(y, num_classes)  # the null label (Ho & Salimans Alg. 1)

  def model_fn(params, x, t, y, key):
    return net.apply({"params": params}, x, t, y=y, train=True, rngs={"dropout": key})

  def model_of(params) -> registry.Model:
    """The network as the sampling floor sees it; ``cond`` is the labels (or None)."""
    fn = lambda x, t, y: net.apply({"params": params}, x, t, y=y if num_classes else None,
                                   train=False)
    return registry.Model(process=sched, model_fn=fn, prediction=cfg.parameterization,
                          learned_variance=learned, var_type=cfg.var_type, clip=clip,
                          null_cond=null_cond, classifier_grad=classifier_grad)

  def init(key, batch):
    x = batch["x"][:1]
    y = batch["label"][:1] if num_classes else None
    k1, k2 = jax.random.split(key)
    variables = net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,), jnp.int32), y=y)
    model_state = {}
    if importance:
      model_state = {"timestep_sampler": timestep_sampling.init_loss_history(num_t)}
    return variables["params"], model_state

  registry.class_labels(1, label_classes, sampling.label)  # a bad label fails here, before work
  sample = registry.make_sample_fn(
      sampling, model_of, spec.shape,
      (lambda num: registry.class_labels(num, label_classes, sampling.label))
      if label_classes else None)

  def drop_label(batch, key):
    """Unconditional models see no labels; with cond_drop_prob some become the null label.
    Returns ``(batch, key)``, the key split off when labels are dropped."""
    if not num_classes:
      return {k: v for k, v in batch.items() if k != "label"}, key
    if cfg.cond_drop_prob > 0:
      key, key_drop = jax.random.split(key)
      batch = dict(batch, label=guidance.drop_condition(key_drop, batch["label"], num_classes,
                                                        cfg.cond_drop_prob))
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
    def eps_fn_of(params):
      m = model_of(params)
      return denoiser(m.model_fn, sched, m.prediction, learned_variance=learned)

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
                plot_samples=plot, evaluators=evaluators,
                sample_tag=registry.tag(sampling, model_of(None)), modes=registry.MODES)


def _plot_points(samples, data, path, title=""):
  viz.scatter_2d(samples, data, path, title=title)
