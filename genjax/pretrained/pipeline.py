"""A published model or pipeline folder -> a jitted genjax sampler (``sample.py --pretrained``).

Accepted layouts:

* a diffusers **pipeline folder** (``model_index.json``) with ``unet/`` (a ``UNet2DModel``) and
  ``scheduler/``: ``DDPMPipeline`` / ``DDIMPipeline`` folders such as ``google/ddpm-cifar10-32``;
* a diffusers **model folder** (``config.json`` of a ``UNet2DModel``), with the scheduler taken
  from ``scheduler_config.json`` beside it or in ``../scheduler``, else diffusers'
  ``DDPMScheduler`` defaults (said on stdout);
* a **DiT pipeline folder** (diffusers' ``DiTPipeline``, e.g. ``facebook/DiT-XL-2-256``:
  ``transformer/`` a ``DiTTransformer2DModel``, ``vae/`` an ``AutoencoderKL``, ``scheduler/``):
  class-conditional latent diffusion (Peebles & Xie 2023), sampled in the latent space and
  decoded by the VAE after dividing by its ``scaling_factor``; the null class is
  ``num_classes`` (1000 for ImageNet), and a network with ``2 C`` output channels carries
  improved DDPM's learned variance (``learned_range``), which ``ddpm`` uses and DDIM ignores;
* a **Stable Diffusion 1.x pipeline folder** (``unet/`` a ``UNet2DConditionModel``, ``vae/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``) with prompts: :func:`text_to_files`.

The network runs under any genjax sampler (``--sampler``, ``--steps``; the scheduler's class
picks the default: DDPM -> ``ddpm``, DDIM/PNDM -> ``ddim``, DPM-Solver -> ``dpm-solver-2``),
with the scheduler's prediction type, variance and ``x0`` clipping. A class-conditional U-Net
(``num_class_embeds``) takes ``--label``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

import numpy as np

from genjax.pretrained.io import PretrainedError, read_config
from genjax.pretrained.scheduler import SchedulerInfo, read_scheduler, scheduler_config

__all__ = ["Pretrained", "decode", "is_text_pipeline", "load", "sample", "sample_to_files",
           "text_to_files"]


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """A converted diffusion model ready to sample.

  Attributes:
    kind: "unet2d" or "dit".
    kwargs: the network's keyword arguments.
    params: its Flax params.
    shape: ``(H, W, C)`` of what the network denoises (the latent, for a latent model).
    scheduler: the training chain and sampling defaults.
    path: where it came from.
    first_stage: for a latent model, ``(kwargs, params, scaling_factor)`` of its
      :class:`~genjax.nets.first_stage.FirstStage` decoder; else None.
  """
  kind: str
  kwargs: dict
  params: Any
  shape: tuple
  scheduler: SchedulerInfo
  path: str
  first_stage: Optional[tuple] = None

  @property
  def learned_variance(self) -> bool:
    """Whether the network's output carries improved DDPM's variance channels."""
    if self.kind == "dit":
      return int(self.kwargs.get("out_channels") or self.shape[2]) == 2 * self.shape[2]
    return self.scheduler.learned_variance

  @property
  def num_classes(self) -> int:
    return int(self.kwargs.get("num_classes", 0))


def _scheduler_near(folder: str) -> Optional[str]:
  for p in (os.path.join(folder, "scheduler_config.json"),
            os.path.join(os.path.dirname(os.path.abspath(folder)), "scheduler",
                         "scheduler_config.json")):
    if os.path.isfile(p):
      return p
  return None


def load(path: str) -> Pretrained:
  """Reads a pipeline or model folder (see the module docstring).

  Raises:
    PretrainedError: a missing component, a bad file or an unsupported architecture, in one line.
  """
  from genjax.pretrained import unet2d
  if not os.path.exists(path):
    raise PretrainedError(f"{path}: no such file or folder.")
  if not os.path.isdir(path):
    raise PretrainedError(f"{path}: expected a diffusers pipeline folder (model_index.json, "
                          "unet/, scheduler/) or a UNet2DModel folder (config.json + weights).")
  index = os.path.join(path, "model_index.json")
  if os.path.isfile(index):
    with open(index) as f:
      parts = json.load(f)
    if "transformer" in parts:
      return _load_dit_pipeline(path)
    if "unet" not in parts:
      have = ", ".join(k for k in parts if not k.startswith("_"))
      raise PretrainedError(f"{path}: a {parts.get('_class_name', 'pipeline')} with {have}; "
                            "sample.py --pretrained runs pipelines with a UNet2DModel unet "
                            "(DDPMPipeline, DDIMPipeline) or a DiT transformer (DiTPipeline).")
    unet_dir = os.path.join(path, "unet")
    cls = read_config(unet_dir).get("_class_name")
    if cls != "UNet2DModel":
      raise PretrainedError(f"{unet_dir}: a {cls}; sample.py --pretrained runs UNet2DModel "
                            "pipelines.")
    sched = read_scheduler(os.path.join(path, "scheduler"))
  else:
    unet_dir = path
    cls = read_config(path).get("_class_name")
    if cls != "UNet2DModel":
      raise PretrainedError(f"{path}: holds a {cls or 'model of unknown class'}; sample.py "
                            "--pretrained runs a UNet2DModel folder or a pipeline folder with one.")
    near = _scheduler_near(path)
    if near:
      sched = read_scheduler(near)
    else:
      print(f"{path}: no scheduler_config.json beside it or in ../scheduler; using "
            "DDPMScheduler's defaults (linear betas 1e-4..0.02, T=1000, epsilon, clipped x0).")
      sched = scheduler_config({"_class_name": "DDPMScheduler"})
  kw, shape, params = unet2d.load_unet2d(unet_dir)
  if sched.learned_variance and kw.get("out_channels") != 2 * shape[2]:
    raise PretrainedError(f"{path}: the scheduler's variance_type=learned_range needs a U-Net "
                          f"with {2 * shape[2]} output channels.")
  return Pretrained("unet2d", kw, params, tuple(shape), sched, path)


def _load_dit_pipeline(path: str) -> Pretrained:
  """A ``DiTPipeline`` folder: ``transformer/``, ``vae/``, ``scheduler/``."""
  from genjax.pretrained import dit, vae
  for part in ("transformer", "vae", "scheduler"):
    if not os.path.isdir(os.path.join(path, part)):
      raise PretrainedError(f"{path}: no {part}/ (a DiT pipeline folder has transformer/, vae/ "
                            "and scheduler/).")
  kw, shape, params = dit.load_dit(os.path.join(path, "transformer"))
  vkw, _, scale, vparams = vae.load_vae(os.path.join(path, "vae"))
  if int(vkw.get("embed_dim", shape[2])) != shape[2]:
    raise PretrainedError(f"{path}: the VAE's latent has {vkw['embed_dim']} channels, the DiT "
                          f"denoises {shape[2]}.")
  sched = read_scheduler(os.path.join(path, "scheduler"))
  return Pretrained("dit", kw, params, tuple(shape), sched, path, (vkw, vparams, float(scale)))


def sampling_config(model: Pretrained, **overrides):
  """The :class:`~genjax.sampling.catalog.SamplingConfig` of ``model``: the scheduler's sampler
  and DDIM final step, then ``overrides`` (the command line's fields)."""
  from genjax.sampling.catalog import SamplingConfig
  base = dict(sampler=model.scheduler.sampler,
              set_alpha_to_one=model.scheduler.set_alpha_to_one)
  base.update({k: v for k, v in overrides.items() if v is not None})
  return SamplingConfig(**base)


def registry_model(model: Pretrained):
  """The sampling core's :class:`~genjax.sampling.registry.Model` of a converted U-Net."""
  import jax.numpy as jnp
  from genjax.sampling.registry import Model
  params = model.params
  null = None
  if model.num_classes:
    null = lambda y: jnp.full_like(y, model.num_classes)  # noqa: E731  (the null label)
  learned = model.learned_variance
  return Model(process=model.scheduler.schedule(),
               model_fn=lambda x, t, c: _apply(model, params, x, t, c),
               prediction=model.scheduler.prediction, learned_variance=learned,
               var_type="learned_range" if learned else model.scheduler.var_type,
               clip=model.scheduler.clip, null_cond=null)


def decode(model: Pretrained, first_stage_params, z):
  """A latent model's samples ``z`` -> images: the VAE decoder on ``z / scaling_factor``
  (Rombach et al. 2022, App. G); ``z`` itself for a pixel model."""
  if model.first_stage is None:
    return z
  from genjax.nets.first_stage import FirstStage
  kw, _, scale = model.first_stage
  return FirstStage(**kw).apply({"params": first_stage_params}, z / scale, method="decode")


def sample(model: Pretrained, cfg, key, num: int, batch: int = 64, labels=None,
           x_T=None) -> np.ndarray:
  """``num`` samples ``[num, H, W, C]`` in [-1, 1] (decoded, for a latent model), in jitted
  batches of ``batch``.

  Args:
    labels: class labels ``[num]`` of a class-conditional model (default: ``cfg.label``, -1
      cycling through the classes).
    x_T: the initial noise ``[num, *model.shape]`` instead of draws from ``key``.
  """
  import jax
  import jax.numpy as jnp
  from genjax.sampling import registry
  m = registry_model(model)
  registry.validate(cfg, m)
  # Params enter as an argument, not as constants folded into the program.
  def run(params, fs_params, key, labels, x_T):
    mm = dataclasses.replace(m, model_fn=lambda x, t, c: _apply(model, params, x, t, c))
    z = registry.run(mm, cfg, key, (labels.shape[0], *model.shape),
                     cond=labels if model.num_classes else None, x_T=x_T)
    return decode(model, fs_params, z)
  run = jax.jit(run)
  if labels is None:
    labels = registry.class_labels(num, model.num_classes, cfg.label)
  labels = jnp.zeros([num], jnp.int32) if labels is None else jnp.asarray(labels, jnp.int32)
  if labels.shape != (num,):
    raise ValueError(f"labels: expected shape ({num},), got {labels.shape}.")
  params = jax.tree.map(jnp.asarray, model.params)
  fs_params = None if model.first_stage is None else jax.tree.map(jnp.asarray,
                                                                  model.first_stage[1])
  out = []
  for i, start in enumerate(range(0, num, batch)):
    x0 = None if x_T is None else jnp.asarray(x_T[start:start + batch])
    out.append(np.asarray(run(params, fs_params, jax.random.fold_in(key, i),
                              labels[start:start + batch], x0)))
  return np.concatenate(out)[:num]


def _apply(model: Pretrained, params, x, t, c):
  if model.kind == "dit":
    from genjax.nets.dit import DiT
    return DiT(**model.kwargs).apply({"params": params}, x, t, c)
  from genjax.nets.unet import UNet
  return UNet(**model.kwargs).apply({"params": params}, x, t, c)


def is_text_pipeline(path: str) -> bool:
  """A diffusers pipeline folder whose ``unet/`` is a ``UNet2DConditionModel``."""
  unet = os.path.join(path, "unet", "config.json")
  if not (os.path.isfile(os.path.join(path, "model_index.json")) and os.path.isfile(unet)):
    return False
  return read_config(os.path.join(path, "unet")).get("_class_name") == "UNet2DConditionModel"


def text_to_files(path: str, out: str, prompts, *, num_per_prompt: int, batch: int, seed: int,
                  height: Optional[int] = None, width: Optional[int] = None,
                  **overrides) -> list[str]:
  """``sample.py --pretrained=<Stable Diffusion folder> --prompt=...``: classifier-free guidance
  with any genjax sampler (default DDIM, eta 0, on diffusers' grid with the scheduler's
  ``steps_offset``, 50 steps); ``guidance_scale`` is genjax's ``w`` (Ho & Salimans 2022, eq. 6),
  diffusers' ``s = 1 + w`` (diffusers' default 7.5 is ``--guidance_scale=6.5``, the default
  here). Writes a grid (one column per prompt) and an .npz with the prompts."""
  import jax
  from genjax import viz
  from genjax.pretrained import sd
  from genjax.sampling.catalog import tag
  if overrides.get("guidance_scale") is None:
    overrides["guidance_scale"] = 6.5
  model = sd.load_stable_diffusion(path)
  try:
    cfg = sd.sampling_config(model, **overrides)
  except (TypeError, ValueError) as e:
    raise PretrainedError(f"{path}: {e}") from None
  texts = [t for t in prompts for _ in range(num_per_prompt)]
  key = jax.random.key(seed)
  images = []
  for i, start in enumerate(range(0, len(texts), batch)):
    try:
      images.append(np.asarray(sd.text_to_image(
          model, texts[start:start + batch], jax.random.fold_in(key, i), height=height,
          width=width, cfg=cfg)))
    except ValueError as e:  # a sampler setting this model cannot take, before any work
      raise PretrainedError(f"{path}: {e}") from None
  x = np.clip(np.concatenate(images), -1.0, 1.0)
  # Column per prompt: reorder [prompt, repeat] -> [repeat, prompt].
  grid = x.reshape(len(prompts), num_per_prompt, *x.shape[1:]).swapaxes(0, 1).reshape(x.shape)
  os.makedirs(out, exist_ok=True)
  stem = "pretrained_" + tag(cfg)
  png = viz.save_image_grid(grid, os.path.join(out, f"{stem}.png"), nrow=len(prompts))
  npz = os.path.join(out, f"{stem}.npz")
  np.savez_compressed(npz, samples=x, prompts=np.asarray(texts))
  return [png, npz]


def sample_to_files(path: str, out: str, *, num: int, batch: int, seed: int,
                    **overrides) -> list[str]:
  """``sample.py --pretrained``: writes ``<tag>.png`` (a grid) and ``<tag>.npz`` into ``out``."""
  import jax
  from genjax import viz
  from genjax.sampling.catalog import tag
  if is_text_pipeline(path):
    raise PretrainedError(f"{path}: a text-to-image pipeline; give --prompt (or --prompts_file).")
  model = load(path)
  cfg = sampling_config(model, **overrides)
  x = sample(model, cfg, jax.random.key(seed), num, batch)
  os.makedirs(out, exist_ok=True)
  stem = "pretrained_" + tag(cfg, registry_model(model))
  png = viz.save_image_grid(x[:256], os.path.join(out, f"{stem}.png"))
  npz = os.path.join(out, f"{stem}.npz")
  np.savez_compressed(npz, samples=x)
  return [png, npz]
