"""ControlNet training and sampling on a frozen, trained base run (``config.method =
"controlnet"``).

The config names the base's workdir (``controlnet.base_workdir``: a trained ``ddpm`` run with a
U-Net, or a trained ``ldm`` run with a U-Net, e.g. the text-to-image latent model); its config
and EMA parameters are restored (:func:`genjax.training.run.load_trained`) and frozen. The
trainer's state then holds:

* ``params``: ControlNet's parameters only (the trainable copy initialised from the base, the
  condition encoder, the zero convolutions), so only they get gradients, optimizer state and an
  EMA; nothing of the base goes through the optimizer;
* ``model_state["base"]``: the base's parameters, carried through every step unchanged (never
  differentiated) and saved in each checkpoint, so that a ControlNet run records the exact base
  it was trained on.

Each step computes the control map of the batch on the device (:mod:`genjax.controlnet.
conditions`) and minimises the base's own DDPM loss (L_simple, Ho et al. 2020 eq. 14; seed 003
eq. 30) of ``base + ControlNet`` (Zhang et al. 2023, eq. 1-2 and their eq. 3 loss; seed eq.
50). Sampling is the sampling core's (every sampler, classifier-free guidance, guess mode)
through the condition pytree of :mod:`genjax.controlnet.model`.

On a latent base (Rombach et al. 2022) the diffusion runs on ``z = scale * E(x)`` of the base's
frozen first stage, as the base was trained: each step encodes the batch, the control map is
computed from the image at image resolution and the condition encoder brings it to the latent
resolution (``hint_downsample`` = the first stage's factor, as Stable Diffusion's ControlNet
maps 512 px to its 64x64 latents), and samples are decoded ``x = D(z / scale)``. On a
text-conditioned base the caption's context (the base's frozen text encoder ``tau_theta``) goes
to the base *and* to the trainable copy, whose cross-attention layers are copies of the base's
(the paper's Fig. 3: the copy takes the same prompt); classifier-free guidance's null branch is
the empty caption, as the base was trained.

    python train.py --config=configs/ddpm.py --workdir=runs/ddpm
    python train.py --config=configs/controlnet_digits_edges.py --workdir=runs/cn_edges \\
        --config.controlnet.base_workdir=runs/ddpm
    python sample.py --config=configs/controlnet_digits_edges.py --workdir=runs/cn_edges \\
        --control=edges --control_image=test --control_scale=1
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.controlnet import conditions as cond_lib
from genjax.controlnet import model as cm
from genjax.nets.controlnet import controlnet_like, init_from_base
from genjax.typed_config import field, from_section, to_dict
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class ControlNetConfig:
  """The ``config.controlnet`` section.

  Attributes:
    base_workdir: the workdir of the trained base run (a ``ddpm`` or ``ldm`` run with a U-Net).
    condition: the control map (a name of :data:`genjax.controlnet.conditions.CONDITIONS`).
    condition_args: keyword arguments of the condition's function (e.g. ``{"sigma": 0.5}``
      for Canny edges).
    hint_channels: widths of the condition encoder's layers.
    hint_downsample: how much the condition encoder downsamples (1 for pixel bases; the first
      stage's factor for latent bases, whose control maps have the image's size; 0 takes the
      base's: 1, or the first stage's factor).
    control_scale: the scale of the residuals when sampling (0: the base alone).
    guess_mode: guess mode when sampling: the control only in the conditional branch of
      classifier-free guidance, with resolution weights; on an unconditional base,
      ``sampling.guidance_scale`` then guides by the control itself.
    label_drop_prob: (class-conditional bases trained with a null label, or text-conditioned
      bases trained with caption dropout) the fraction of training labels replaced by the null
      label / captions replaced by the empty caption, so that ControlNet learns to recognise the
      content without them (the paper drops 50% of the prompts).
    also_workdirs: further trained ControlNet runs on the same base, combined when sampling
      (their residuals summed, each with its scale in ``also_scales``); each computes its own
      condition from the control images.
    also_scales: their control scales.
  """
  base_workdir: str = ""
  condition: str = field("edges", choices=tuple(cond_lib.condition_names()))
  condition_args: Any = None
  hint_channels: tuple[int, ...] = (16, 32)
  hint_downsample: int = field(1, ge=0)
  control_scale: float = 1.0
  guess_mode: bool = False
  label_drop_prob: float = field(0.0, ge=0.0, lt=1.0)
  also_workdirs: tuple[str, ...] = ()
  also_scales: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class Base:
  """A restored, frozen base: its network, process and sampling settings."""
  workdir: str
  unet: Any
  params: Any
  sched: Any
  parameterization: str
  var_type: str
  learned_variance: bool
  clip: Any
  num_classes: int
  null_label: Optional[int]
  spec: DataSpec
  data: dict
  latent: Any = None      # LatentStage of an ldm base (None: a pixel-space base)
  text: Any = None        # TextCondition of a text-conditioned base
  method: str = "ddpm"

  def unet_params(self, params):
    """The U-Net's parameters within the base's (an ldm run keeps them under ``"net"``)."""
    return params["net"] if self.method == "ldm" else params

  @property
  def sample_shape(self) -> tuple:
    """The shape the diffusion runs in: the latents' for a latent base, else the images'."""
    return tuple(self.latent.shape) if self.latent is not None else tuple(self.spec.shape)


@dataclasses.dataclass(frozen=True)
class LatentStage:
  """A latent base's frozen first stage: ``encode(x, key) = scale * E(x)`` (a posterior sample
  when ``key`` is given, as the base trained), ``decode(z) = clip(D(z / scale), -1, 1)``."""
  encode: Any
  decode: Any
  shape: tuple      # (h, w, c) of the latents
  factor: int       # the first stage's downsampling factor f
  sample_posterior: bool


@dataclasses.dataclass(frozen=True)
class TextCondition:
  """A text-conditioned base's frozen text encoder: ``context(text_params, tokens)`` gives the
  cross-attention inputs ``{"context": [B, L, D], "context_mask": [B, L]}``; ``empty`` is the
  empty caption's tokens (the null condition of guidance), ``max_len`` the token length."""
  encoder: Any
  empty: Any
  max_len: int

  def context(self, text_params, tokens):
    tokens = jnp.asarray(tokens, jnp.int32)
    ctx = self.encoder.apply({"params": text_params}, tokens)[0]
    return {"context": ctx, "context_mask": tokens != 0}


def _condition_args(cfg: ControlNetConfig) -> dict:
  return dict(to_dict(cfg.condition_args)) if cfg.condition_args else {}


def load_base(workdir: str, spec: Optional[DataSpec] = None, data_section=None) -> Base:
  """Restores and checks the base run named by ``controlnet.base_workdir``.

  Raises:
    ValueError: one line naming what does not match (no workdir, another method or network,
      another data set or shape).
  """
  if not workdir:
    raise ValueError("controlnet.base_workdir is required: the workdir of a trained ddpm run "
                     "(python train.py --config=configs/ddpm.py --workdir=runs/ddpm; then "
                     "--config.controlnet.base_workdir=runs/ddpm).")
  if not os.path.isdir(workdir):
    raise ValueError(f"controlnet.base_workdir={workdir} does not exist; train the base first "
                     "(python train.py --config=configs/ddpm.py --workdir=...).")
  from genjax.diffusion.method import DDPMConfig
  from genjax.nets.build import build_network
  from genjax.nets.unet import UNet
  from genjax.sampling import schedules
  from genjax.sampling.posterior import LEARNED_VAR_TYPES
  from genjax.training import run as run_lib
  b_config, b_run, b_state = run_lib.load_trained(workdir)
  if b_config.method not in ("ddpm", "ldm"):
    raise ValueError(f"controlnet.base_workdir must hold a ddpm or ldm run; {workdir} has "
                     f"method={b_config.method!r}.")
  b_spec = b_run.dataset.spec
  if spec is not None and tuple(b_spec.shape) != tuple(spec.shape):
    raise ValueError(f"The base in {workdir} was trained on shape {tuple(b_spec.shape)}, this "
                     f"run's data has {tuple(spec.shape)}; use the base's config.data.")
  b_data = dict(to_dict(b_config.data))
  if data_section is not None:
    mine = dict(to_dict(data_section))
    for k in ("dataset", "image_size", "crop_size"):
      if mine.get(k) != b_data.get(k):
        raise ValueError(f"config.data.{k}={mine.get(k)!r} differs from the base's "
                         f"{b_data.get(k)!r} ({workdir}); train ControlNet on the base's data.")
  dcfg = from_section(DDPMConfig, b_config.diffusion, where="diffusion")
  learned = dcfg.var_type in LEARNED_VAR_TYPES
  params = jax.device_get(b_state.ema_params)
  latent = text = None
  if b_config.method == "ldm":
    unet, latent, text = _latent_base(b_config, b_spec, learned, workdir)
  else:
    unet = build_network(b_config.model, b_spec, learned_variance=learned)
  if type(unet) is not UNet:
    raise ValueError(f"ControlNet copies a U-Net's encoder; the base in {workdir} is a "
                     f"{type(unet).__name__} (config.model.name={b_config.model.name!r}).")
  num_classes = unet.num_classes
  clip = (-1.0, 1.0) if (dcfg.clip_x0 and b_spec.kind == "image" and latent is None) else None
  null_label = num_classes if (num_classes and dcfg.cond_drop_prob > 0) else None
  if text is not None and dcfg.cond_drop_prob <= 0:
    text = dataclasses.replace(text, empty=None)  # no null caption: trained without dropout
  return Base(workdir=workdir, unet=unet, params=params,
              sched=schedules.get_schedule(dcfg.schedule, dcfg.num_timesteps),
              parameterization=dcfg.parameterization, var_type=dcfg.var_type,
              learned_variance=learned, clip=clip, num_classes=num_classes,
              null_label=null_label, spec=b_spec, data=b_data, latent=latent, text=text,
              method=b_config.method)


def _latent_base(b_config, b_spec: DataSpec, learned: bool, workdir: str):
  """The denoiser, frozen first stage and text encoder of an ``ldm`` base, by
  :func:`genjax.latent.ldm.latent_parts`, as the ldm method builds them."""
  from genjax.latent.ldm import LDMConfig, latent_parts
  lcfg = from_section(LDMConfig, b_config.get("ldm"), where="ldm")
  if lcfg.condition not in ("none", "class", "text"):
    raise ValueError(f"ControlNet on a latent base takes ldm.condition none, class or text; the "
                     f"base in {workdir} has {lcfg.condition!r}.")
  parts = latent_parts(b_config, b_spec, lcfg, learned)
  fs, net, encode, decode = parts.first_stage, parts.net, parts.encode, parts.decode
  lh, lw, lc = fs.latent_shape
  text = None
  if parts.text_encoder is not None:
    text = TextCondition(encoder=parts.text_encoder, empty=np.asarray(parts.empty_tokens),
                         max_len=parts.max_len)
  stage = LatentStage(encode=encode, decode=decode, shape=(lh, lw, lc), factor=int(fs.factor),
                      sample_posterior=bool(lcfg.sample_posterior and fs.regularizer == "kl"))
  return net, stage, text


def _control_maps(name: str, args: dict, images, key, extra: Optional[dict] = None):
  batch = {"x": jnp.asarray(images), **(extra or {})}
  return cond_lib.get_condition(name).compute(batch, key, **args)


def build_controlnet(config, spec: DataSpec):
  """Builds the ``controlnet`` method (a trainer :class:`~genjax.training.method.Method`)."""
  from genjax.diffusion import losses
  from genjax.sampling import guidance, registry
  from genjax.training.method import Method, same_frozen_part

  cfg = from_section(ControlNetConfig, config.controlnet, where="controlnet")
  if len(cfg.also_workdirs) != len(cfg.also_scales):
    raise ValueError(f"controlnet.also_scales needs one scale per also_workdirs entry "
                     f"({len(cfg.also_workdirs)}), got {len(cfg.also_scales)}.")
  if len(cfg.hint_channels) < 1:
    raise ValueError("controlnet.hint_channels needs at least one width.")
  sampling = registry.from_config(config.get("sampling"), default="ddim")
  ctype = cond_lib.get_condition(cfg.condition)
  args = _condition_args(cfg)
  _check_condition_args(ctype, args, spec)
  base = load_base(cfg.base_workdir, spec, config.get("data"))
  text = base.text
  if cfg.label_drop_prob > 0 and base.null_label is None and (text is None or text.empty is None):
    raise ValueError("controlnet.label_drop_prob needs a class-conditional base trained with a "
                     "null label, or a text-conditioned base trained with caption dropout "
                     "(diffusion.cond_drop_prob > 0).")
  factor = base.latent.factor if base.latent is not None else 1
  hint_down = cfg.hint_downsample or factor
  if hint_down != factor:
    raise ValueError(f"controlnet.hint_downsample={cfg.hint_downsample}: the control maps have "
                     f"the image's size and the base's {'latents are' if factor > 1 else 'input is'}"
                     f" {factor}x smaller; set it to {factor} (or 0: the base's).")
  cfg = dataclasses.replace(cfg, hint_downsample=hint_down)
  unet = base.unet
  image_ch = int(spec.shape[-1])
  net = controlnet_like(unet, cfg.hint_channels, cfg.hint_downsample)
  map_ch = ctype.map_channels(image_ch)
  sample_shape = base.sample_shape

  def with_text(base_params, cond):
    """The caption's cross-attention context from the frozen text encoder, for the base and the
    trainable copy alike (text-conditioned bases; others: ``cond`` as it is)."""
    if text is None:
      return cond
    return dict(cond, **text.context(base_params["text"], cond["text"]))

  # Further ControlNets on the same base (sampling only).
  extras = [_load_extra(w, base) for w in cfg.also_workdirs]
  nets = [net] + [e["net"] for e in extras]
  guess = (cfg.guess_mode,) * len(nets)

  def control_fn(params_list, base_params):
    def fn(x, t, cond):
      return cm.controlled_apply(unet, nets[:len(params_list)], base.unet_params(base_params),
                                 params_list, x, t, with_text(base_params, cond),
                                 guess_mode=guess[:len(params_list)])
    return fn

  null = None
  empty_caption = None if text is None else text.empty
  if base.null_label is not None or cfg.guess_mode or empty_caption is not None:
    null = cm.null_condition(base.null_label, cfg.guess_mode, empty_caption)

  def model_of(params, extra_params=()) -> registry.Model:
    plist = [params] + list(extra_params) if params is not None else [None]
    return registry.Model(process=base.sched, model_fn=control_fn(plist, base.params),
                          prediction=base.parameterization,
                          learned_variance=base.learned_variance, var_type=base.var_type,
                          clip=base.clip, null_cond=null)

  registry.validate(sampling, model_of(None))
  registry.class_labels(1, base.num_classes, sampling.label)  # a bad label fails here

  # 1. Training.
  def model_fn(params, x, t, cond, key):
    return cm.controlled_apply(unet, [net], base.unet_params(params["base"]),
                               [params["control"]], x, t, with_text(params["base"], cond),
                               train=True, key=key)

  terms_fn = losses.make_ddpm_loss_terms(model_fn, base.sched, base.parameterization, "simple")
  num_t = base.sched.num_timesteps

  def init(key, batch):
    x = jnp.zeros((1, *sample_shape), batch["x"].dtype)
    y = batch["label"][:1] if base.num_classes else None
    c = jnp.zeros(x.shape[:1] + (x.shape[1] * cfg.hint_downsample,
                                 x.shape[2] * cfg.hint_downsample, map_ch), x.dtype)
    k1, k2 = jax.random.split(key)
    base_params = jax.tree.map(jnp.asarray, base.params)
    kw = {}
    if text is not None:
      kw = text.context(base_params["text"], jnp.asarray(batch["text"][:1], jnp.int32))
    fresh = net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,), jnp.int32), y,
                     control=c, **kw)["params"]
    return init_from_base(fresh, base.unet_params(base_params)), {"base": base_params}

  def train_step(state, batch, key):
    """One step on ControlNet's parameters; the base rides in model_state, untouched."""
    k_map, k_t, k_loss, k_drop, k_enc = jax.random.split(key, 5)
    base_params = state.model_state["base"]
    x = batch["x"]
    control = ctype.compute(batch, k_map, **args)  # at the image's resolution
    if base.latent is not None:  # the base's latents, as it trained on them
      x = base.latent.encode(x, k_enc if base.latent.sample_posterior else None)
    y = None
    if base.num_classes:
      y = batch["label"]
      if cfg.label_drop_prob > 0:
        y = guidance.drop_condition(k_drop, y, base.null_label, cfg.label_drop_prob)
    cond = cm.make_condition([control], jnp.ones((1,), jnp.float32), label=y)
    if text is not None:
      tokens = jnp.asarray(batch["text"], jnp.int32)
      if cfg.label_drop_prob > 0:
        tokens = guidance.drop_condition(k_drop, tokens, text.empty, cfg.label_drop_prob)
      cond["text"] = tokens
    t = jax.random.randint(k_t, (x.shape[0],), 0, num_t)

    def loss_fn(p):
      per, aux = terms_fn({"base": base_params, "control": p}, {"x": x, "label": cond}, t,
                          k_loss)
      return jnp.mean(per), per

    (value, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {"loss": value, "grad_norm": optax.global_norm(grads),
               **losses.quarter_metrics(per, t, num_t)}
    return state.apply_gradients(grads), metrics

  # 2. Sampling.
  grid_cache = {}

  def grid_source(num):
    """Control source images for the trainer's grids: the first test images (fixed)."""
    if num not in grid_cache:
      imgs, extra = _test_images(config, num)
      grid_cache[num] = (imgs, extra)
    return grid_cache[num]

  def maps_of(images, extra, key):
    maps = [_control_maps(cfg.condition, args, images, key, extra)]
    for e in extras:
      maps.append(_control_maps(e["condition"], e["args"], images, key, extra))
    return maps

  def sample(params, key, num, inputs=None):
    """``inputs``: ``{"images": [num, H, W, C]}`` (each ControlNet's map computed from them;
    dataset fields such as ``"mask"`` beside them), or ``{"control": [num, H, W, C_c]}`` (this
    ControlNet's map as given), and optionally ``"scale"`` (this ControlNet's scale; default
    ``controlnet.control_scale``). Without inputs: the maps of the first test images.

    Text-conditioned bases: ``"text"`` int32 ``[num, L]`` caption tokens (``sample.py
    --prompt``); without them the images' own captions when they come with them (a dataset
    split), else the empty caption. Latent bases: the latents are sampled and decoded."""
    inputs = dict(inputs or {})
    scale = jnp.asarray(inputs.pop("scale", cfg.control_scale), jnp.float32)
    tokens = inputs.pop("text", None)
    k_map, k_s = jax.random.fold_in(key, 1), key  # the base's noise: same key, same draws
    if "control" in inputs:
      if extras:
        raise ValueError("Combined ControlNets compute their maps from images: pass "
                         "inputs={'images': ...}.")
      maps = [jnp.asarray(inputs["control"])]
    else:
      if "images" in inputs:
        imgs = jnp.asarray(inputs.pop("images"))
        extra = {k: jnp.asarray(v) for k, v in inputs.items()}
      else:
        imgs, extra = grid_source(num)
      maps = maps_of(imgs, extra, k_map)
      if tokens is None and "text" in extra:
        tokens = extra["text"]
    scales = jnp.stack([scale] + [jnp.float32(s) for s in cfg.also_scales])
    label = registry.class_labels(num, base.num_classes, sampling.label)
    cond = cm.make_condition(maps, scales, label)
    if text is not None:
      if tokens is None:
        tokens = jnp.broadcast_to(jnp.asarray(tokenize_empty(), jnp.int32), (num, text.max_len))
      cond["text"] = jnp.asarray(tokens, jnp.int32)
    model = model_of(params, [e["params"] for e in extras])
    out = registry.run(model, sampling, k_s, (num, *sample_shape), cond=cond)
    return base.latent.decode(out) if base.latent is not None else out

  def tokenize_empty():
    from genjax.text import tokenize
    return np.asarray(tokenize([""], text.max_len)[0], np.int32)

  def plot(samples, data, path):
    imgs, extra = grid_source(len(samples))
    maps = _control_maps(cfg.condition, args, imgs, jax.random.key(0), extra)
    from genjax.controlnet.figures import save_pairs
    save_pairs(np.asarray(maps), np.asarray(samples), path)

  jit_sample = jax.jit(sample, static_argnums=(2,))
  evaluators = {"adherence": lambda state, dataset, key, num: evaluate_adherence(
      jit_sample, ctype, args, state.ema_params, dataset, key, num, cfg.condition,
      scales=(0.0, 0.5, 1.0, 2.0))}

  return Method(name="controlnet", init=init, train_step=train_step, sample=sample,
                plot_samples=plot if spec.kind == "image" else None, evaluators=evaluators,
                sample_tag=f"controlnet_{cfg.condition}_" + registry.tag(sampling, model_of(None)),
                modes=("sample",) + (("text",) if text is not None else ()),
                check_restored=same_frozen_part("base", base.params, base.workdir, "base run"))


def _check_condition_args(ctype, args: dict, spec: DataSpec) -> None:
  """The condition runs with ``args`` (on a blank batch; shapes only), else one clear error."""
  import inspect
  fn = ctype.recompute if ctype.recompute is not None and ctype.name != "mask" else None
  if fn is None or not args:
    return
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return
  if any(p.kind == p.VAR_KEYWORD for p in params.values()):
    return
  unknown = sorted(set(args) - set(params))
  if unknown:
    valid = [k for k in params if k not in ("images", "key")]
    raise ValueError(f"controlnet.condition_args {unknown} are not arguments of condition "
                     f"{ctype.name!r}; valid: {valid}.")


def _test_images(config, num: int):
  """The first ``num`` test images of the run's data (cycled), and their extra fields."""
  from genjax.data import DataConfig, load_dataset
  ds = load_dataset(DataConfig.from_dict(to_dict(config.data)))
  n = len(ds.test)
  data = ds.test.get(np.arange(num) % n)
  extra = {k: np.asarray(v) for k, v in data.items() if k not in ("x", "label")}
  return np.asarray(data["x"]), extra  # numpy: cached across traces


def _load_extra(workdir: str, base: Base) -> dict:
  """A further trained ControlNet run on the same base, for combined sampling."""
  from genjax.training import run as run_lib
  c_config, _, state = run_lib.load_trained(workdir)
  if c_config.method != "controlnet":
    raise ValueError(f"controlnet.also_workdirs: {workdir} holds a {c_config.method!r} run, not "
                     "a controlnet run.")
  c = from_section(ControlNetConfig, c_config.controlnet, where="controlnet")
  if os.path.abspath(c.base_workdir) != os.path.abspath(base.workdir):
    raise ValueError(f"controlnet.also_workdirs: {workdir} was trained on the base "
                     f"{c.base_workdir}, not {base.workdir}; combined ControlNets share one base.")
  factor = base.latent.factor if base.latent is not None else 1
  return {"net": controlnet_like(base.unet, c.hint_channels, c.hint_downsample or factor),
          "params": jax.device_get(state.ema_params), "condition": c.condition,
          "args": _condition_args(c)}


def evaluate_adherence(sample, ctype, args, params, dataset, key, num: int, name: str,
                       scales=(0.0, 1.0), batch: int = 256) -> dict:
  """Adherence of samples to the control maps of ``num`` test images, at each control scale.

  For each scale: the condition's adherence metric (edge F1, mask IoU, PSNR) between the map of
  the test image and the map recomputed from the sample, averaged; the FD of the samples in
  the digits classifier's space for 1-channel data, or on the captioned shapes the FD in the
  shapes classifier's space (``fd_shapes``) and the caption adherence of each sample to its
  test image's caption (:func:`genjax.metrics.adherence.caption_adherence`); and the floors:
  the metric between the map of each test image and that of another, unrelated test image
  (chance), and between the map and the one recomputed from the real test image (``real``).
  """
  n = min(int(num), len(dataset.test))
  data = dataset.test.get(np.arange(n))
  images = jnp.asarray(data["x"])
  extra = {k: jnp.asarray(v) for k, v in data.items() if k not in ("x", "label")}
  recompute = ctype.recompute
  out = {"condition": name, "metric": ctype.adherence_name, "num": n}
  ref_maps = ctype.compute({"x": images, **extra}, jax.random.key(1), **args)
  if recompute is None:
    raise ValueError(f"condition {name!r} cannot be recomputed from images.")
  rargs = {} if name == "mask" else args  # the dataset's masks vs the foreground of images
  shuffled = jnp.roll(ref_maps, 1, axis=0)
  out["chance"] = float(jnp.mean(ctype.adherence(shuffled, ref_maps)))
  real = recompute(images, **rargs)
  out["real"] = float(jnp.mean(ctype.adherence(ref_maps, real)))
  for s in scales:
    parts = []
    for i in range(0, n, batch):
      parts.append(np.asarray(sample(params, jax.random.fold_in(key, i), min(batch, n - i),
                                     inputs={"images": images[i:i + batch], "scale": s,
                                             **{k: v[i:i + batch] for k, v in extra.items()}})))
    samples = np.concatenate(parts)
    gen = recompute(jnp.asarray(samples), **rargs)
    row = {"adherence": float(jnp.mean(ctype.adherence(ref_maps, gen)))}
    if samples.shape[-1] == 1:
      from genjax.metrics import sample_quality
      row["fd_digits"] = float(sample_quality(samples, baseline=False)["fd_digits"])
    elif "text" in data and "colour" in data:  # the captioned shapes
      from genjax.metrics.adherence import caption_adherence
      from genjax.metrics.evaluate import evaluate
      row["fd_shapes"] = float(evaluate(np.clip(samples, -1, 1), ("fd",), "shapes")["fd_shapes"])
      row["caption_adherence"] = float(caption_adherence(np.clip(samples, -1, 1),
                                                         data)["adherence"])
    out[f"scale_{s:g}"] = row
  return out
