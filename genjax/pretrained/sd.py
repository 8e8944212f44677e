"""diffusers ``UNet2DConditionModel`` in the Stable Diffusion 1.x layout -> genjax's U-Net with
cross-attention (:class:`genjax.nets.unet.UNet` with ``context_dim > 0``, whose attention is a
:class:`~genjax.nets.attention.SpatialTransformer`; Rombach et al. 2022, Sec. 3.3).

The resolution levels, ResBlocks, resamplers and time embedding map as for ``UNet2DModel``
(:mod:`genjax.pretrained.unet2d`, including the options ``flip_sin_to_cos``, ``freq_shift``,
``downsample_padding=1`` and ``norm_eps``); each ``CrossAttnDownBlock2D`` / ``CrossAttnUpBlock2D``
level's ``attentions.M`` (``Transformer2DModel``: ``norm``, ``proj_in`` 1x1 conv -> Dense,
``transformer_blocks.K.{norm1, attn1, norm2, attn2, norm3, ff.net.0.proj, ff.net.2}``,
``proj_out``) -> ``{down,up}_{i}_transformer_{j}``, and the mid block's -> ``mid_transformer_1``.
SD 1.x's ``attention_head_dim = 8`` is, in diffusers' legacy naming, the number of heads (8
heads of ``C / 8``): genjax's ``num_heads=8, head_dim=-1``.

Only what Stable Diffusion 1.x uses is accepted (``use_linear_projection=False``, one head
count, no class / addition embeddings, positional time embedding, ``UNetMidBlock2DCrossAttn``);
anything else is refused naming the field.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

from genjax.pretrained import convert as cv
from genjax.pretrained import unet2d
from genjax.pretrained.io import PretrainedError, read_model_folder

__all__ = ["SD1_UNET_CONFIG", "SD1_VAE_CONFIG", "StableDiffusion", "expected_params",
           "load_stable_diffusion", "load_unet2d_condition", "reference_counts", "rules",
           "text_to_image", "unet_kwargs"]

SD1_UNET_CONFIG = {  # runwayml/stable-diffusion-v1-5 unet/config.json
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
    "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"]}
SD1_VAE_CONFIG = {  # runwayml/stable-diffusion-v1-5 vae/config.json
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4, "scaling_factor": 0.18215}

# Fields that must keep Stable Diffusion 1.x's value (diffusers' defaults).
_FIXED = {"center_input_sample": False, "act_fn": "silu", "mid_block_type":
          "UNetMidBlock2DCrossAttn", "use_linear_projection": False, "only_cross_attention": False,
          "dual_cross_attention": False, "class_embed_type": None, "addition_embed_type": None,
          "num_class_embeds": None, "time_embedding_type": "positional",
          "time_embedding_dim": None, "time_cond_proj_dim": None, "resnet_time_scale_shift":
          "default", "mid_block_scale_factor": 1, "encoder_hid_dim": None,
          "conv_in_kernel": 3, "conv_out_kernel": 3, "attention_type": "default",
          "resnet_skip_time_act": False, "resnet_out_scale_factor": 1.0,
          "time_embedding_act_fn": None, "timestep_post_act": None,
          "class_embeddings_concat": False, "reverse_transformer_layers_per_block": None,
          "mid_block_only_cross_attention": None, "cross_attention_norm": None,
          "addition_time_embed_dim": None, "projection_class_embeddings_input_dim": None}


def unet_kwargs(cfg: dict, where: str = "config.json") -> tuple[dict, tuple]:
  """genjax ``UNet`` kwargs (with cross-attention) and the latent shape ``(H, W, C)``."""
  if cfg.get("_class_name") != "UNet2DConditionModel":
    raise PretrainedError(f"{where}: a {cfg.get('_class_name')}, not a UNet2DConditionModel.")
  for field, need in _FIXED.items():
    if cfg.get(field, need) != need:
      raise PretrainedError(f"{where}: {field}={cfg[field]!r} is not supported (Stable "
                            f"Diffusion 1.x layout: {need!r}).")
  heads = cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8)
  if isinstance(heads, (list, tuple)):
    if len(set(heads)) != 1:
      raise PretrainedError(f"{where}: per-level head counts {heads} (one count only).")
    heads = heads[0]
  depth = cfg.get("transformer_layers_per_block", 1)
  if isinstance(depth, (list, tuple)):
    if len(set(depth)) != 1:
      raise PretrainedError(f"{where}: per-level transformer depths {depth} (one only).")
    depth = depth[0]
  ctx = cfg.get("cross_attention_dim", 1280)
  if isinstance(ctx, (list, tuple)):
    ctx = ctx[0]
  down = [t.replace("CrossAttn", "Attn") for t in cfg.get("down_block_types", [])]
  up = [t.replace("CrossAttn", "Attn") for t in cfg.get("up_block_types", [])]
  base = {k: cfg[k] for k in ("sample_size", "in_channels", "out_channels", "block_out_channels",
                              "layers_per_block", "downsample_padding", "flip_sin_to_cos",
                              "freq_shift", "norm_num_groups", "norm_eps", "dropout")
          if k in cfg}
  base.update(_class_name="UNet2DModel", down_block_types=down, up_block_types=up,
              attention_head_dim=None)
  for k, v in (("downsample_padding", 1), ("flip_sin_to_cos", True), ("freq_shift", 0),
               ("norm_eps", 1e-5), ("in_channels", 4), ("out_channels", 4)):
    base.setdefault(k, v)
  kw, shape = unet2d.unet_kwargs(base, where)
  from genjax.nets.layers import num_groups
  groups = int(cfg.get("norm_num_groups", 32))
  if any(num_groups(b) != groups for b in cfg.get("block_out_channels", [320])):
    raise PretrainedError(f"{where}: widths {cfg.get('block_out_channels')} with "
                          f"norm_num_groups={groups}: genjax's SpatialTransformer norms use "
                          "32 groups (widths of at least 128, multiples of 32).")
  kw.update(context_dim=int(ctx), num_heads=int(heads), transformer_depth=int(depth))
  return kw, shape


def expected_params(kw: dict, shape) -> Any:
  import jax
  import jax.numpy as jnp
  from genjax.nets.unet import UNet
  net = UNet(**kw)
  x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.int32)
  c = jax.ShapeDtypeStruct((1, 7, kw["context_dim"]), jnp.float32)
  return jax.eval_shape(lambda x, t, c: net.init(jax.random.key(0), x, t, context=c), x, t,
                        c)["params"]


_TRANSFORMER = {"norm": "norm", "proj_in": "proj_in", "proj_out": "proj_out", "norm1": "norm1",
                "norm2": "norm2", "norm3": "norm3", "attn1": "attn1", "attn2": "attn2",
                "to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0",
                "ff": "ff", "net_0_proj": "net.0.proj", "net_2": "net.2"}
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias"}


def rules(expected, levels: int) -> list[cv.Rule]:
  """Every parameter: the ``UNet2DModel`` map for all but the transformers, then these."""
  flat = cv.flatten(expected)
  plain = {k: v for k, v in flat.items() if "_transformer_" not in k.split("/")[0]}
  out = unet2d.rules(cv.unflatten(plain), levels)
  for path, leaf in flat.items():
    top, *mid, last = path.split("/")
    if "_transformer_" not in top:
      continue
    prefix, _ = unet2d._module(top.replace("_transformer_", "_attn_"), levels)
    subs = [s.replace("transformer_blocks_", "transformer_blocks.") if
            s.startswith("transformer_blocks_") else _TRANSFORMER[s] for s in mid]
    key = ".".join([prefix, *subs, _LEAF[last]])
    if last != "kernel":
      layout = cv.IDENTITY
    elif mid[-1] in ("proj_in", "proj_out"):
      layout = cv.DENSE_FROM_CONV1X1
    else:
      layout = cv.LINEAR
    out.append(cv.rule(path, key, layout))
  return out


def load_unet2d_condition(folder: str) -> tuple[dict, tuple, dict]:
  """Reads a Stable Diffusion 1.x ``UNet2DConditionModel`` folder: ``(kwargs, shape, params)``;
  ``UNet(**kwargs).apply(..., x, t, context=text_hidden)`` is the denoiser."""
  cfg, sd = read_model_folder(folder, ("UNet2DConditionModel",))
  kw, shape = unet_kwargs(cfg, os.path.join(folder, "config.json"))
  expected = expected_params(kw, shape)
  return kw, shape, cv.to_params(rules(expected, len(kw["ch_mult"])), sd, expected, what=folder)


def reference_counts() -> dict[str, int]:
  """Parameter counts of Stable Diffusion 1.x's U-Net and VAE as genjax modules."""
  from genjax.pretrained import counts, vae
  kw, shape = unet_kwargs(SD1_UNET_CONFIG)
  vkw, vshape, _ = vae.first_stage_kwargs(SD1_VAE_CONFIG)
  return {"sd1_unet": counts.count(expected_params(kw, shape)),
          "sd1_vae": counts.count(vae.expected_params(vkw, vshape))}


# -- the text-to-image pipeline ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StableDiffusion:
  """A converted Stable Diffusion 1.x pipeline folder (``unet/``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``, ``scheduler/``)."""
  unet_kw: dict
  unet_params: Any
  latent_shape: tuple
  vae_kw: dict
  vae_params: Any
  scaling_factor: float
  text_kw: dict
  text_params: Any
  tokenizer: Any
  scheduler: Any
  steps_offset: int
  set_alpha_to_one: bool


def load_stable_diffusion(folder: str) -> StableDiffusion:
  """Reads a diffusers ``StableDiffusionPipeline`` folder (SD 1.x layout)."""
  import json
  from genjax.pretrained import clip_text, vae
  from genjax.pretrained.scheduler import read_scheduler
  for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
    if not os.path.isdir(os.path.join(folder, part)):
      raise PretrainedError(f"{folder}: no {part}/ (a Stable Diffusion pipeline folder has unet/, "
                            "vae/, text_encoder/, tokenizer/ and scheduler/).")
  ukw, ushape, uparams = load_unet2d_condition(os.path.join(folder, "unet"))
  vkw, _, scale, vparams = vae.load_vae(os.path.join(folder, "vae"))
  tkw, tparams = clip_text.load_clip_text(os.path.join(folder, "text_encoder"))
  if tkw["width"] != ukw["context_dim"]:
    raise PretrainedError(f"{folder}: the text encoder's width {tkw['width']} is not the U-Net's "
                          f"cross_attention_dim {ukw['context_dim']}.")
  sched_path = os.path.join(folder, "scheduler", "scheduler_config.json")
  with open(sched_path) as f:
    raw = json.load(f)
  if raw.get("timestep_spacing", "leading") != "leading":
    raise PretrainedError(f"{sched_path}: timestep_spacing={raw['timestep_spacing']!r} "
                          "(leading only).")
  info = read_scheduler(os.path.join(folder, "scheduler"))
  return StableDiffusion(ukw, uparams, ushape, vkw, vparams, scale, tkw, tparams,
                         clip_text.load_tokenizer(os.path.join(folder, "tokenizer")), info,
                         info.steps_offset, info.set_alpha_to_one)


def sampling_config(model: StableDiffusion, **overrides):
  """The :class:`~genjax.sampling.catalog.SamplingConfig` of a Stable Diffusion folder: DDIM
  (eta 0) on diffusers' ``leading`` grid with the scheduler's ``steps_offset`` and final step,
  then ``overrides`` (genjax's ``guidance_scale`` is ``w = s - 1``). The offset is kept only for
  the samplers whose discrete grid takes one."""
  from genjax.sampling import registry
  from genjax.sampling.catalog import SamplingConfig
  base = dict(sampler="ddim", steps=50, spacing="leading",
              set_alpha_to_one=model.set_alpha_to_one)
  base.update({k: v for k, v in overrides.items() if v is not None})
  cfg = SamplingConfig(**base)
  if (registry.takes_steps_offset(cfg) and cfg.spacing == "leading"
      and "steps_offset" not in overrides):
    cfg = dataclasses.replace(cfg, steps_offset=model.steps_offset)
  return cfg


def text_to_image(model: StableDiffusion, prompts, key, *, steps: int = 50,
                  guidance_scale: float = 7.5, height: Optional[int] = None,
                  width: Optional[int] = None, negative_prompt: str = "",
                  x_T=None, cfg=None):
  """Stable Diffusion 1.x text-to-image with classifier-free guidance through genjax's sampling
  core: by default DDIM (eta = 0) on diffusers' timestep grid (``leading`` spacing plus
  ``steps_offset``), or any sampler of ``cfg`` (:func:`sampling_config`).

  ``guidance_scale`` is diffusers' ``s`` (``eps_u + s (eps_c - eps_u)``), which is Ho &
  Salimans' (2022, eq. 6) ``w = s - 1``; a given ``cfg`` carries its own ``w`` and steps. The
  latents are decoded by the VAE after dividing by its ``scaling_factor`` (Rombach et al.
  2022, App. G).

  Returns: images ``[B, height, width, 3]`` in [-1, 1] (unclipped).
  """
  import jax.numpy as jnp
  from genjax.nets.first_stage import FirstStage
  from genjax.nets.text import TextEncoder
  from genjax.nets.unet import UNet
  from genjax.sampling import registry
  f = 2 ** (len(model.vae_kw["ch_mult"]) - 1)
  h = (height or model.latent_shape[0] * f) // f
  w = (width or model.latent_shape[1] * f) // f
  if cfg is None:
    cfg = sampling_config(model, steps=steps, guidance_scale=guidance_scale - 1.0)
  ids = model.tokenizer(list(prompts))
  null_ids = model.tokenizer([negative_prompt])
  enc = TextEncoder(**model.text_kw)
  cond = enc.apply({"params": model.text_params}, jnp.asarray(ids))[0]
  null = enc.apply({"params": model.text_params}, jnp.asarray(null_ids))[0]
  unet = UNet(**model.unet_kw)
  m = registry.Model(
      process=model.scheduler.schedule(),
      model_fn=lambda x, t, c: unet.apply({"params": model.unet_params}, x, t, context=c),
      prediction=model.scheduler.prediction, var_type=model.scheduler.var_type,
      clip=model.scheduler.clip, null_cond=null)
  registry.validate(cfg, m)
  shape = (len(prompts), h, w, model.latent_shape[2])
  z = registry.run(m, cfg, key, shape, cond=cond, x_T=x_T)
  vae = FirstStage(**model.vae_kw)
  return vae.apply({"params": model.vae_params}, z / model.scaling_factor, method="decode")
