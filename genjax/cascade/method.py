"""Cascaded diffusion (Ho et al. 2021) as a trainer :class:`~genjax.training.method.Method`.

A cascade is a chain of stages trained one after the other (seed 003 Sec. 2.6.1): a base
diffusion model at the lowest resolution, then super-resolution (SR) stages, each a diffusion
model of the images at its own resolution conditioned on the image of the stage below,
upsampled and concatenated to ``x_t`` as extra input channels (CDM Sec. 2-3; the U-Net takes
``2C`` input channels and gives ``C``). Every stage is the DDPM family's model: the same
``config.diffusion`` section, schedules, loss (:func:`genjax.diffusion.make_ddpm_loss`) and
the sampling core's samplers; the low-resolution condition travels in the core's ``cond``
pytree as ``{"low": [B, h, w, C], "aug": int [B]}``.

Noise-conditioning augmentation (CDM Sec. 3.2; :mod:`genjax.cascade.augment`): during training
the condition is corrupted by the forward process at a level ``s ~ U{0..max_aug_level}`` per
example, and ``s`` is the U-Net's second conditioning scalar (``UNet.aug_cond``); at sampling
the level is ``config.cascade.sample_aug_level``, fixed. ``augmentation="gaussian"`` corrupts
the finished sample of the stage below with fresh noise; ``"truncated"`` stops the stage
below's reverse chain at level ``s`` (DDIM with eta = 1, the strided ancestral chain, on a grid
that ends at ``s``) and conditions on that intermediate ``z_s``.

A stage names the workdir of the stage below (``cascade.lower_workdir``); that run's config
must be a cascade stage of the same dataset at ``cascade.low_size`` (checked before any work),
and sampling the last stage runs the whole chain (:mod:`genjax.cascade.chain` writes every
stage's grid side by side). An SR stage without a stage below is a plain super-resolution
model: its training grids super-resolve held-out images, and ``sample(..., inputs={"low":
images})`` super-resolves given ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.cascade import augment
from genjax.cascade import text as text_lib
from genjax.diffusion import losses
from genjax.nets.build import build_network
from genjax.sampling import guidance, registry, schedules
from genjax.sampling.ancestral import ddim_sample
from genjax.sampling.convert import denoiser
from genjax.sampling.posterior import LEARNED_VAR_TYPES
from genjax.training.method import Method, same_frozen_part
from genjax.typed_config import field, from_section, to_dict
from genjax.types import DataSpec

__all__ = ["CascadeConfig", "Stage", "build_cascade", "build_stage", "truncated_chain_grid"]

LOW_BANK = 256  # held-out low-resolution images a stage without a stage below super-resolves


@dataclasses.dataclass(frozen=True)
class CascadeConfig:
  """The ``config.cascade`` section.

  Attributes:
    low_size: side of the low-resolution condition; 0 for the base stage (no condition).
    lower_workdir: workdir of the trained stage below ("" : an SR stage of real low-resolution
      images, with no stage below).
    augmentation: noise-conditioning augmentation: none | gaussian | truncated (CDM Sec. 3.2).
    max_aug_level: training levels ``s ~ U{0..max_aug_level}`` (paper steps of the schedule;
      0 = clean).
    sample_aug_level: the fixed level ``s`` at sampling (truncated: ``1 <= s < T``, or 0 to
      run the stage below to the end).
    upsample: how the condition is upsampled to ``x_t``'s size: nearest | linear | cubic.
    text_encoder: text conditioning (Imagen, :mod:`genjax.cascade.text`): none | clip (the
      frozen text tower of a trained CLIP run) | weights (a frozen transformers
      ``CLIPTextModel`` folder) | joint (a fresh encoder trained with the stage,
      ``config.text_encoder``).
    text_encoder_path: the CLIP workdir (clip) or the weights folder (weights).
  """
  low_size: int = field(0, ge=0)
  lower_workdir: str = ""
  augmentation: str = field("gaussian", choices=augment.AUGMENTATIONS)
  max_aug_level: int = field(0, ge=0)
  sample_aug_level: int = field(0, ge=0)
  upsample: str = field("linear", choices=augment.UPSAMPLE_METHODS)
  text_encoder: str = field("none", choices=text_lib.TEXT_ENCODERS)
  text_encoder_path: str = ""


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of a cascade, with the chain below it (params included).

  Attributes:
    cfg: its cascade section.
    shape: one image's shape ``(H, W, C)``.
    sched: its noise process.
    model_of: ``model_of(params) -> registry.Model``.
    sample_stages: ``sample_stages(params, key, num, low=None, stop_level=0, aug_level=None,
      text=None, sampling=None) -> [images of every stage, lowest first]``; ``low`` replaces
      the chain below with given low-resolution images; ``stop_level > 0`` stops this stage's
      chain at that level (truncation); ``aug_level`` (a traced int is fine) replaces
      ``sample_aug_level`` of Gaussian augmentation; ``text`` (int ``[num, L]`` shapes tokens)
      conditions every text stage of the chain (default: held-out captions); ``sampling``
      replaces this stage's sampling config (not the stages below).
    lower: the stage below and its params, or None.
    text: the stage's text encoder (:class:`genjax.cascade.text.TextConditioner`), or None.
  """
  cfg: CascadeConfig
  shape: tuple
  sched: Any
  model_of: Callable[[Any], registry.Model]
  sample_stages: Callable[..., list]
  lower: Optional[tuple] = None
  text: Optional[text_lib.TextConditioner] = None

  @property
  def depth(self) -> int:
    return 1 + (self.lower[0].depth if self.lower is not None else 0)


def truncated_chain_grid(num_timesteps: int, level: int, steps: int) -> np.ndarray:
  """The decreasing zero-based grid of a chain stopped at paper level ``level``: ``steps``
  (or fewer, deduplicated) times from ``T - 1`` down to ``level - 1``."""
  grid = np.unique(np.round(np.linspace(level - 1, num_timesteps - 1, max(int(steps), 2))))
  return grid[::-1].astype(np.int64)


def _check_settings(cfg: CascadeConfig, dcfg, spec: DataSpec, model_name: str,
                    num_classes: int, has_text: bool = False) -> None:
  if spec.kind != "image":
    raise ValueError("method 'cascade' needs image data; this dataset is 2-D points.")
  h, w, _ = spec.shape
  if h != w:
    raise ValueError(f"method 'cascade' needs square images, got {h}x{w}.")
  if num_classes:
    raise ValueError("config.model.num_classes: cascade stages are conditioned on text or "
                     "nothing, not on class labels; set it to 0.")
  if dcfg.cond_drop_prob and cfg.text_encoder == "none":
    raise ValueError("diffusion.cond_drop_prob drops captions: it needs a text-conditioned "
                     "stage (cascade.text_encoder), else set it to 0.")
  if not 0.0 <= dcfg.cond_drop_prob < 1.0:
    raise ValueError(f"diffusion.cond_drop_prob must be in [0, 1), got {dcfg.cond_drop_prob}.")
  if cfg.text_encoder != "none" and not has_text:
    raise ValueError(f"cascade.text_encoder={cfg.text_encoder!r} needs captioned data (the "
                     "shapes); this dataset has no captions.")
  if cfg.text_encoder != "none" and model_name != "unet":
    raise ValueError("a text-conditioned stage needs config.model.name='unet' (cross-attention "
                     f"to the text), got {model_name!r}.")
  if cfg.low_size == 0:
    for name, bad in (("cascade.lower_workdir", cfg.lower_workdir),
                      ("cascade.max_aug_level", cfg.max_aug_level),
                      ("cascade.sample_aug_level", cfg.sample_aug_level)):
      if bad:
        raise ValueError(f"{name} applies to a super-resolution stage; set cascade.low_size "
                         "(0 is the base stage).")
    return
  if model_name != "unet":
    raise ValueError(f"a super-resolution stage needs config.model.name='unet' (it takes the "
                     f"low-resolution image as extra channels), got {model_name!r}.")
  if cfg.low_size >= h:
    raise ValueError(f"cascade.low_size={cfg.low_size} must be below the data's size {h} "
                     "(set data.image_size to the stage's resolution).")
  num_t = dcfg.num_timesteps
  if cfg.augmentation == "none":
    for name, v in (("max_aug_level", cfg.max_aug_level),
                    ("sample_aug_level", cfg.sample_aug_level)):
      if v:
        raise ValueError(f"cascade.{name}={v} needs augmentation gaussian or truncated.")
  if cfg.max_aug_level > num_t or cfg.sample_aug_level > num_t:
    raise ValueError(f"cascade.max_aug_level / sample_aug_level are levels 0..T = "
                     f"0..{num_t}; got {cfg.max_aug_level} / {cfg.sample_aug_level}.")
  if cfg.augmentation == "truncated":
    if not cfg.lower_workdir:
      raise ValueError("cascade.augmentation='truncated' stops the stage below early: set "
                       "cascade.lower_workdir.")
    if cfg.sample_aug_level >= num_t:
      raise ValueError(f"cascade.sample_aug_level must be below T = {num_t} for truncation.")


def _load_lower(cfg: CascadeConfig, config, spec: DataSpec):
  """Restores the stage below after checking, from its config record alone, that it fits
  (one clear line otherwise)."""
  import os
  from genjax.data import DataConfig, load_dataset
  from genjax.training import run as run_lib
  from genjax.training import workdir as workdir_lib
  from genjax.training.checkpoint import CheckpointError
  where = f"cascade.lower_workdir={cfg.lower_workdir!r}"
  record = workdir_lib.current_config_path(cfg.lower_workdir) if os.path.isdir(
      cfg.lower_workdir) else None
  if record is None:
    raise CheckpointError(f"{where} holds no trained run (no config.json); train the stage "
                          "below first.")
  lconfig = run_lib.load_config(record)
  if lconfig.get("method") != "cascade":
    raise ValueError(f"{where} holds a {lconfig.get('method')!r} run, not a cascade stage "
                     "(config.method='cascade').")
  mine, theirs = config.data.get("dataset"), lconfig.data.get("dataset")
  if mine != theirs:
    raise ValueError(f"{where} was trained on {theirs!r}, this stage on {mine!r}.")
  lspec = load_dataset(DataConfig.from_dict(to_dict(lconfig.data))).spec
  want = (cfg.low_size, cfg.low_size, spec.shape[-1])
  if tuple(lspec.shape) != want:
    raise ValueError(f"{where} makes {'x'.join(map(str, lspec.shape))} images, but this "
                     f"stage's cascade.low_size and channels need {'x'.join(map(str, want))}.")
  if cfg.augmentation == "truncated":
    a, b = to_dict(config.diffusion), to_dict(lconfig.diffusion)
    if (a.get("schedule"), a.get("num_timesteps")) != (b.get("schedule"), b.get("num_timesteps")):
      raise ValueError(f"truncated augmentation needs the stage below's noise schedule; {where} "
                       f"has {b.get('schedule')}/{b.get('num_timesteps')}, this stage "
                       f"{a.get('schedule')}/{a.get('num_timesteps')}.")
  _, lrun, lstate = run_lib.load_trained(cfg.lower_workdir, config_path=record)
  return build_stage(lconfig, lrun.dataset.spec), lstate.ema_params


def _test_examples(config, num: int) -> dict:
  """The first ``num`` held-out examples (images and, when captioned, their tokens)."""
  from genjax.data import DataConfig, load_dataset
  ds = load_dataset(DataConfig.from_dict(to_dict(config.data)))
  got = ds.test.get(np.arange(min(num, len(ds.test))))
  return {k: np.asarray(got[k]) for k in ("x", "text") if k in got}


def _low_bank(config, size: int) -> jax.Array:
  """Held-out images downsampled to ``size``: what a stage with no stage below conditions on."""
  x = np.asarray(_test_examples(config, LOW_BANK)["x"], np.float32)
  return augment.downsample(jnp.asarray(x), size)


def _has_captions(config) -> bool:
  return config.data.get("dataset") == "shapes"


def build_stage(config, spec: DataSpec) -> Stage:
  """Builds one stage from its config (restoring the chain below it)."""
  return _build(config, spec)[0]


def _build(config, spec: DataSpec):
  """``(stage, net, diffusion config, apply, split)``: ``apply(net_params, x, t, cond)`` with
  the text already encoded in ``cond``; ``split(params) -> (net params, encoder params)``."""
  from genjax.diffusion.method import DDPMConfig
  from genjax.latent.prompts import text_max_len
  cfg = from_section(CascadeConfig, config.get("cascade", {}), where="cascade")
  dcfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  sampling = registry.from_config(config.get("sampling"), default="ddim")
  model_d = to_dict(config.model)
  _check_settings(cfg, dcfg, spec, model_d.get("name"), int(model_d.get("num_classes", 0)),
                  has_text=_has_captions(config))
  if sampling.guidance_scale and not (cfg.text_encoder != "none" and dcfg.cond_drop_prob > 0):
    raise ValueError("sampling.guidance_scale needs a text-conditioned stage trained with "
                     "diffusion.cond_drop_prob > 0 (caption dropout to the empty caption).")
  learned = dcfg.var_type in LEARNED_VAR_TYPES
  sr = cfg.low_size > 0
  aug = sr and cfg.augmentation != "none"
  h, _, c = spec.shape
  # The text encoder first: a wrong source is one line before anything heavy is restored.
  max_len = text_max_len(config)
  tc = text_lib.build_text_conditioner(cfg.text_encoder, cfg.text_encoder_path, config, max_len)
  overrides = {}
  if sr:
    overrides["out_channels"] = (2 if learned else 1) * c
    overrides["aug_cond"] = aug
  if tc is not None:
    overrides["context_dim"] = tc.width
    overrides["emb_dim"] = tc.width
  net = build_network(config.model, spec, learned_variance=learned, **overrides)
  sched = schedules.get_schedule(dcfg.schedule, dcfg.num_timesteps)
  clip = (-1.0, 1.0) if dcfg.clip_x0 else None
  lower = _load_lower(cfg, config, spec) if (sr and cfg.lower_workdir) else None
  bank = _low_bank(config, cfg.low_size) if (sr and lower is None) else None
  captions = None
  if tc is not None:
    captions = jnp.asarray(_test_examples(config, LOW_BANK)["text"][:, :max_len], jnp.int32)
  joint = tc is not None and not tc.frozen

  def split(params):
    """(net params, encoder params) of a stage's trained params."""
    if joint:
      return params["net"], params["text"]
    return params, (tc.frozen_params if tc is not None else None)

  def apply(params, x, t, cond, train=False, key=None):
    """The U-Net on ``x_t`` with the stage's condition (net params only)."""
    kw = {}
    if tc is not None:
      kw = dict(context=cond["context"], context_mask=cond["context_mask"], emb=cond["pooled"])
    rngs = {"dropout": key} if train else None
    if not sr:
      return net.apply({"params": params}, x, t, train=train, rngs=rngs, **kw)
    up = augment.upsample(cond["low"], h, cfg.upsample).astype(x.dtype)
    if aug:
      kw["aug_level"] = cond["aug"]
    return net.apply({"params": params}, jnp.concatenate([x, up], axis=-1), t, train=train,
                     rngs=rngs, **kw)

  text_keys = ("context", "context_mask", "pooled")

  def null_of(enc_params):
    """Guidance's null condition: the empty caption's encoding in place of the caption's."""
    def null(cond):
      e = tc.encode(enc_params, tc.empty_tokens[None])
      return dict(cond, **{k: jnp.broadcast_to(e[k], cond[k].shape).astype(cond[k].dtype)
                           for k in text_keys})
    return null

  guided = tc is not None and dcfg.cond_drop_prob > 0

  def model_of(params) -> registry.Model:
    net_p, enc_p = split(params) if params is not None else (None, None)
    return registry.Model(process=sched, model_fn=lambda x, t, c: apply(net_p, x, t, c),
                          prediction=dcfg.parameterization, learned_variance=learned,
                          var_type=dcfg.var_type, clip=clip,
                          null_cond=null_of(enc_p) if guided else None)

  registry.validate(sampling, model_of(None))

  def run_chain(params, key, shape, cond, stop_level, smp):
    """This stage's reverse chain, to the end or (truncation) stopped at ``stop_level``."""
    if not stop_level:
      return registry.run(model_of(params), smp, key, shape, cond=cond)
    m = model_of(params)
    eps_fn = denoiser(m.model_fn, sched, m.prediction, learned_variance=learned)
    if smp.guidance_scale:
      eps_fn = guidance.classifier_free_guidance(eps_fn, smp.guidance_scale, m.null_cond)
    grid = truncated_chain_grid(sched.num_timesteps, stop_level, smp.steps or 50)
    _, traj = ddim_sample(eps_fn, sched, key, shape, cond=cond, timesteps=grid, eta=1.0,
                          clip_x0=clip, trajectory_stride=len(grid) - 1)
    return traj[1]  # the state after len(grid) - 1 steps: z at grid[-1] = paper level s

  def sample_stages(params, key, num, low=None, stop_level=0, aug_level=None, text=None,
                    sampling=None):
    smp = dataclasses.replace(sampling if sampling is not None else
                              registry.from_config(config.get("sampling"), default="ddim"),
                              mode="sample")
    shape = (num,) + tuple(spec.shape)
    if text is None and tc is not None:
      text = captions[jnp.arange(num) % captions.shape[0]]
    cond = {}
    if tc is not None:
      cond.update(tc.encode(split(params)[1], jnp.asarray(text, jnp.int32)[:, :max_len]))
    if not sr:
      return [run_chain(params, key, shape, cond or None, stop_level, smp)]
    k_low, k_aug, k_run = jax.random.split(key, 3)
    s = cfg.sample_aug_level
    truncated = cfg.augmentation == "truncated" and s > 0 and low is None
    if aug_level is not None and not truncated:  # Gaussian: the level may be a traced scalar
      s = aug_level
    if low is not None:
      below = [jnp.asarray(low)]
    elif lower is not None:
      lstage, lparams = lower
      below = lstage.sample_stages(lparams, k_low, num, stop_level=s if truncated else 0,
                                   text=text if lstage.text is not None else None)
    else:
      below = [bank[jnp.arange(num) % bank.shape[0]]]
    z = below[-1]
    if aug and not truncated:  # level 0 leaves z unchanged
      z = augment.augment_condition(sched, k_aug, z, jnp.full((num,), s, jnp.int32))
    cond.update(low=z, aug=jnp.full((num,), s, jnp.int32))
    return below + [run_chain(params, k_run, shape, cond, stop_level, smp)]

  stage = Stage(cfg=cfg, shape=tuple(spec.shape), sched=sched, model_of=model_of,
                sample_stages=sample_stages, lower=lower, text=tc)
  return stage, net, dcfg, apply, split


def build_cascade(config, spec: DataSpec) -> Method:
  """Builds one cascade stage from ``config.cascade``, ``config.diffusion``, ``config.model``,
  ``config.sampling`` (and ``config.text_encoder`` for a jointly trained text encoder)."""
  stage, net, dcfg, apply, split = _build(config, spec)
  cfg, tc = stage.cfg, stage.text
  sr = cfg.low_size > 0
  aug = sr and cfg.augmentation != "none"
  guided = tc is not None and dcfg.cond_drop_prob > 0
  sched = stage.sched
  h = spec.shape[0]
  base_loss = losses.make_ddpm_loss(
      lambda p, x, t, cond, k: apply(p, x, t, cond, train=True, key=k), sched,
      dcfg.parameterization, dcfg.loss_type, var_type=dcfg.var_type,
      vlb_weight=dcfg.vlb_weight, num_bins=dcfg.decoder_bins)

  def low_condition(x, key):
    """The training condition: the batch downsampled, corrupted at random levels."""
    low = augment.downsample(x, cfg.low_size)
    b = x.shape[0]
    if not aug:
      return {"low": low, "aug": jnp.zeros((b,), jnp.int32)}
    k_s, k_eps = jax.random.split(key)
    s = augment.sample_aug_levels(k_s, b, cfg.max_aug_level)
    return {"low": augment.augment_condition(sched, k_eps, low, s), "aug": s}

  def text_condition(enc_params, tokens, key):
    """The caption's encoding, dropped to the empty caption's for guidance."""
    tokens = jnp.asarray(tokens, jnp.int32)[:, :tc.max_len]
    if guided:
      tokens = guidance.drop_condition(key, tokens, tc.empty_tokens, dcfg.cond_drop_prob)
    return tc.encode(enc_params, tokens)

  def stage_loss(net_params, enc_params, batch, key):
    x = batch["x"]
    if tc is None:  # the unconditional stages' key streams, as before text conditioning
      if not sr:
        return base_loss(net_params, {"x": x}, key)
      k_cond, k_loss = jax.random.split(key)
      return base_loss(net_params, {"x": x, "label": low_condition(x, k_cond)}, k_loss)
    k_cond, k_text, k_loss = jax.random.split(key, 3)
    cond = text_condition(enc_params, batch["text"], k_text)
    if sr:
      cond.update(low_condition(x, k_cond))
    return base_loss(net_params, {"x": x, "label": cond}, k_loss)

  def loss(params, batch, key):
    net_params, enc_params = split(params)
    return stage_loss(net_params, enc_params, batch, key)

  def frozen_step(state, batch, key):
    """One step on the U-Net alone: the frozen encoder rides in ``model_state["text"]``
    (no gradient, no optimizer state, no EMA), as ControlNet's frozen base does."""
    enc = jax.lax.stop_gradient(state.model_state["text"])
    (value, metrics), grads = jax.value_and_grad(
        lambda p: stage_loss(p, enc, batch, key), has_aux=True)(state.params)
    metrics = dict(metrics, loss=value, grad_norm=optax.global_norm(grads))
    return state.apply_gradients(grads), metrics

  def init(key, batch):
    x = batch["x"][:1]
    k1, k2, k3 = jax.random.split(key, 3)
    cond, kw = None, {}
    enc_params = None
    if tc is not None:
      tokens = jnp.asarray(batch["text"][:1], jnp.int32)[:, :tc.max_len]
      enc_params = tc.frozen_params if tc.frozen else tc.init(k3, tokens)
      e = tc.encode(enc_params, tokens)
      kw = dict(context=e["context"], context_mask=e["context_mask"], emb=e["pooled"])
    if sr:
      cond = {"low": augment.downsample(x, cfg.low_size), "aug": jnp.zeros((1,), jnp.int32)}
    x_in = x if not sr else jnp.concatenate(
        [x, augment.upsample(cond["low"], h, cfg.upsample)], axis=-1)
    if aug:
      kw["aug_level"] = cond["aug"]
    net_params = net.init({"params": k1, "dropout": k2}, x_in, jnp.zeros((1,), jnp.int32),
                          **kw)["params"]
    if tc is None:
      return net_params, {}
    if tc.frozen:
      return net_params, {"text": enc_params}
    return {"net": net_params, "text": enc_params}, {}

  def sample(params, key, num, inputs=None):
    inputs = inputs or {}
    return stage.sample_stages(params, key, num, low=inputs.get("low"),
                               text=inputs.get("text"))[-1]

  sampling = registry.from_config(config.get("sampling"), default="ddim")
  tag = registry.tag(sampling, stage.model_of(None))
  if sr:
    tag += f"_{cfg.augmentation}{cfg.sample_aug_level}" if aug else "_noaug"
  frozen = tc is not None and tc.frozen
  modes = ("sample", "text") if tc is not None else ("sample",)
  check = (same_frozen_part("text", tc.frozen_params, tc.source, "frozen text encoder")
           if frozen else None)
  return Method(name="cascade", init=init, loss=None if frozen else loss,
                train_step=frozen_step if frozen else None, sample=sample, sample_tag=tag,
                modes=modes, check_restored=check)
