"""ControlNet training and sampling on a frozen, trained base run (``config.method =
"controlnet"``).

The config names the base's workdir (``controlnet.base_workdir``, a trained ``ddpm`` run with a
U-Net); its config and EMA parameters are restored (:func:`genjax.training.run.load_trained`)
and frozen. The trainer's state then holds:

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
    base_workdir: the workdir of the trained base run (a ``ddpm`` run with a U-Net).
    condition: the control map (a name of :data:`genjax.controlnet.conditions.CONDITIONS`).
    condition_args: keyword arguments of the condition's function (e.g. ``{"sigma": 0.5}``
      for Canny edges).
    hint_channels: widths of the condition encoder's layers.
    hint_downsample: how much the condition encoder downsamples (1 for pixel bases).
    control_scale: the scale of the residuals when sampling (0: the base alone).
    guess_mode: guess mode when sampling: the control only in the conditional branch of
      classifier-free guidance, with resolution weights; on an unconditional base,
      ``sampling.guidance_scale`` then guides by the control itself.
    label_drop_prob: (class-conditional bases trained with a null label) the fraction of
      training labels replaced by the null label, so that ControlNet learns to recognise the
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
  hint_downsample: int = field(1, ge=1)
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
  if b_config.method != "ddpm":
    raise ValueError(f"controlnet.base_workdir must hold a ddpm run; {workdir} has "
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
  unet = build_network(b_config.model, b_spec, learned_variance=learned)
  if type(unet) is not UNet:
    raise ValueError(f"ControlNet copies a U-Net's encoder; the base in {workdir} is a "
                     f"{type(unet).__name__} (config.model.name={b_config.model.name!r}).")
  num_classes = unet.num_classes
  return Base(workdir=workdir, unet=unet, params=jax.device_get(b_state.ema_params),
              sched=schedules.get_schedule(dcfg.schedule, dcfg.num_timesteps),
              parameterization=dcfg.parameterization, var_type=dcfg.var_type,
              learned_variance=learned,
              clip=(-1.0, 1.0) if (dcfg.clip_x0 and b_spec.kind == "image") else None,
              num_classes=num_classes,
              null_label=num_classes if (num_classes and dcfg.cond_drop_prob > 0) else None,
              spec=b_spec, data=b_data)


def _control_maps(name: str, args: dict, images, key, extra: Optional[dict] = None):
  batch = {"x": jnp.asarray(images), **(extra or {})}
  return cond_lib.get_condition(name).compute(batch, key, **args)


def build_controlnet(config, spec: DataSpec):
  """Builds the ``controlnet`` method (a trainer :class:`~genjax.training.method.Method`)."""
  from genjax.diffusion import losses
  from genjax.sampling import guidance, registry
  from genjax.training.method import Method

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
  if cfg.label_drop_prob > 0 and base.null_label is None:
    raise ValueError("controlnet.label_drop_prob needs a class-conditional base trained with a "
                     "null label (diffusion.cond_drop_prob > 0).")
  unet = base.unet
  image_ch = int(spec.shape[-1])
  net = controlnet_like(unet, cfg.hint_channels, cfg.hint_downsample)
  map_ch = ctype.map_channels(image_ch)

  # Further ControlNets on the same base (sampling only).
  extras = [_load_extra(w, base) for w in cfg.also_workdirs]
  nets = [net] + [e["net"] for e in extras]
  guess = (cfg.guess_mode,) * len(nets)

  def control_fn(params_list, base_params):
    def fn(x, t, cond):
      return cm.controlled_apply(unet, nets[:len(params_list)], base_params, params_list, x, t,
                                 cond, guess_mode=guess[:len(params_list)])
    return fn

  null = None
  if base.null_label is not None or cfg.guess_mode:
    null = cm.null_condition(base.null_label, cfg.guess_mode)

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
    return cm.controlled_apply(unet, [net], params["base"], [params["control"]], x, t, cond,
                               train=True, key=key)

  terms_fn = losses.make_ddpm_loss_terms(model_fn, base.sched, base.parameterization, "simple")
  num_t = base.sched.num_timesteps

  def init(key, batch):
    x = batch["x"][:1]
    y = batch["label"][:1] if base.num_classes else None
    c = jnp.zeros(x.shape[:1] + (x.shape[1] * cfg.hint_downsample,
                                 x.shape[2] * cfg.hint_downsample, map_ch), x.dtype)
    k1, k2 = jax.random.split(key)
    fresh = net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,), jnp.int32), y,
                     control=c)["params"]
    base_params = jax.tree.map(jnp.asarray, base.params)
    return init_from_base(fresh, base_params), {"base": base_params}

  def train_step(state, batch, key):
    """One step on ControlNet's parameters; the base rides in model_state, untouched."""
    k_map, k_t, k_loss, k_drop = jax.random.split(key, 4)
    base_params = state.model_state["base"]
    x = batch["x"]
    control = ctype.compute(batch, k_map, **args)
    y = None
    if base.num_classes:
      y = batch["label"]
      if cfg.label_drop_prob > 0:
        y = guidance.drop_condition(k_drop, y, base.null_label, cfg.label_drop_prob)
    cond = cm.make_condition([control], jnp.ones((1,), jnp.float32), label=y)
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
    ``controlnet.control_scale``). Without inputs: the maps of the first test images."""
    inputs = dict(inputs or {})
    scale = jnp.asarray(inputs.pop("scale", cfg.control_scale), jnp.float32)
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
    scales = jnp.stack([scale] + [jnp.float32(s) for s in cfg.also_scales])
    label = registry.class_labels(num, base.num_classes, sampling.label)
    cond = cm.make_condition(maps, scales, label)
    model = model_of(params, [e["params"] for e in extras])
    return registry.run(model, sampling, k_s, (num, *spec.shape), cond=cond)

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
                modes=("sample",))


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
  return {"net": controlnet_like(base.unet, c.hint_channels, c.hint_downsample),
          "params": jax.device_get(state.ema_params), "condition": c.condition,
          "args": _condition_args(c)}


def evaluate_adherence(sample, ctype, args, params, dataset, key, num: int, name: str,
                       scales=(0.0, 1.0), batch: int = 256) -> dict:
  """Adherence of samples to the control maps of ``num`` test images, at each control scale.

  For each scale: the condition's adherence metric (edge F1, mask IoU, PSNR) between the map of
  the test image and the map recomputed from the sample, averaged; the FD of the samples in
  the digits classifier's space for 1-channel data; and the floors: the metric between the map
  of each test image and that of another, unrelated test image (chance), and 1 for the map
  against itself.
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
    out[f"scale_{s:g}"] = row
  return out
