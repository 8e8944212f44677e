"""diffusers ``AutoencoderKL`` / ``VQModel`` <-> genjax's first stage
(:class:`genjax.nets.first_stage.FirstStage`, Rombach et al. 2022, Sec. 3.1).

Both are taming-transformers' / latent-diffusion's ``Encoder``/``Decoder`` with diffusers' names:
``{encoder,decoder}.{down,up}_blocks.N.resnets.M`` (``norm1, conv1, norm2, conv2,
conv_shortcut``), ``{down,up}samplers.0.conv``, ``mid_block.{resnets.0, attentions.0, resnets.1}``
(single-head attention ``group_norm, to_q, to_k, to_v, to_out.0``), ``conv_norm_out``,
``conv_out``; ``quant_conv`` / ``post_quant_conv`` (1x1 convs -> Dense) and, for ``VQModel``,
``quantize.embedding``. diffusers' ``up_blocks[k]`` is genjax's level ``L - 1 - k``. The
encoder's stride-2 conv pads like TF's 'SAME' in both (diffusers' ``padding=0`` + one pixel
bottom/right), GroupNorm is 32 groups with eps 1e-6 in both, so no option is needed.

Configurations genjax's first stage cannot express (attention inside the levels, another
activation, another group count, no quant convs, spatial norm) are refused naming the field.
The config's ``scaling_factor`` (0.18215 for Stable Diffusion 1.x) is returned with the params:
it is LDM's latent scale ``1 / std(z)``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from genjax.pretrained import convert as cv
from genjax.pretrained.io import PretrainedError, read_model_folder

__all__ = ["diffusers_config", "expected_params", "export_vae", "first_stage_kwargs", "load_vae",
           "rules"]

_RES = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
        "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "embedding": "weight"}


def first_stage_kwargs(cfg: dict, where: str = "config.json") -> tuple[dict, tuple, float]:
  """``FirstStage`` kwargs, the image shape ``(H, W, C)`` and the latent scaling factor."""
  name = cfg.get("_class_name")
  if name not in ("AutoencoderKL", "VQModel"):
    raise PretrainedError(f"{where}: a {name}, not an AutoencoderKL or VQModel.")

  def need(field, value, default):
    if cfg.get(field, default) != value:
      raise PretrainedError(f"{where}: {field}={cfg.get(field)!r} is not supported by genjax's "
                            f"first stage (supported: {value!r}).")
  need("act_fn", "silu", "silu")
  need("norm_num_groups", 32, 32)
  need("use_quant_conv", True, True)
  need("use_post_quant_conv", True, True)
  need("mid_block_add_attention", True, True)
  need("norm_type", "group", "group")
  for t in cfg.get("down_block_types", ["DownEncoderBlock2D"]):
    if t != "DownEncoderBlock2D":
      raise PretrainedError(f"{where}: down_block_types has {t}; genjax's first stage has no "
                            "attention inside the levels (DownEncoderBlock2D only).")
  for t in cfg.get("up_block_types", ["UpDecoderBlock2D"]):
    if t != "UpDecoderBlock2D":
      raise PretrainedError(f"{where}: up_block_types has {t} (UpDecoderBlock2D only).")
  boc = list(cfg.get("block_out_channels", [64]))
  ch = boc[0]
  if any(b % ch for b in boc):
    raise PretrainedError(f"{where}: block_out_channels {boc} are not multiples of the first.")
  from genjax.nets.layers import num_groups
  if any(num_groups(b) != 32 for b in boc):
    raise PretrainedError(f"{where}: widths {boc} would get fewer than 32 GroupNorm groups in "
                          "genjax's first stage (widths of at least 128, multiples of 32).")
  latent = int(cfg.get("latent_channels", 4))
  kl = name == "AutoencoderKL"
  kw = dict(ch=ch, ch_mult=tuple(b // ch for b in boc),
            num_res_blocks=int(cfg.get("layers_per_block", 1)), attn_resolutions=(),
            z_channels=latent, embed_dim=latent if kl else int(cfg.get("vq_embed_dim") or latent),
            out_channels=int(cfg.get("out_channels", 3)), regularizer="kl" if kl else "vq",
            num_codes=int(cfg.get("num_vq_embeddings", 256)))
  if int(cfg.get("in_channels", 3)) != kw["out_channels"]:
    raise PretrainedError(f"{where}: in_channels != out_channels is not supported.")
  size = cfg.get("sample_size", 32)
  size = size[0] if isinstance(size, (list, tuple)) else size
  return kw, (int(size), int(size), kw["out_channels"]), float(cfg.get("scaling_factor", 1.0))


def expected_params(kw: dict, shape) -> Any:
  import jax
  import jax.numpy as jnp
  from genjax.nets.first_stage import FirstStage
  f = 2 ** (len(kw["ch_mult"]) - 1)
  x = jax.ShapeDtypeStruct((1, 2 * f, 2 * f, shape[2]), jnp.float32)
  net = FirstStage(**kw)
  return jax.eval_shape(lambda x: net.init(jax.random.key(0), x), x)["params"]


def _key(path: str, levels: int) -> tuple[str, cv.Layout]:
  parts = path.split("/")
  if parts[0] in ("quant_conv", "post_quant_conv"):
    return (f"{parts[0]}.{_LEAF[parts[1]]}",
            cv.DENSE_FROM_CONV1X1 if parts[1] == "kernel" else cv.IDENTITY)
  if parts[0] == "quantize":
    return "quantize.embedding.weight", cv.IDENTITY
  side, top, *rest = parts
  leaf = rest[-1]
  if top in ("conv_in", "conv_out"):
    mod, sub = top, None
  elif top == "norm_out":
    mod, sub = "conv_norm_out", None
  elif top.startswith("mid_"):
    kind, idx = top.split("_")[1], int(top.split("_")[2]) - 1
    mod = f"mid_block.{'resnets' if kind == 'block' else 'attentions'}.{idx}"
    sub = (_RES if kind == "block" else _ATTN)[rest[0]]
  else:
    d, i, what = top.split("_")[0], int(top.split("_")[1]), top.split("_")[2]
    blk = f"down_blocks.{i}" if d == "down" else f"up_blocks.{levels - 1 - i}"
    if what == "block":
      mod, sub = f"{blk}.resnets.{int(top.split('_')[3])}", _RES[rest[0]]
    elif what == "attn":
      raise AssertionError(path)
    else:
      mod, sub = f"{blk}.{'downsamplers' if d == 'down' else 'upsamplers'}.0.conv", None
  key = ".".join(x for x in (side, mod, sub, _LEAF[leaf]) if x)
  if leaf != "kernel":
    return key, cv.IDENTITY
  if len(rest) and rest[0] == "nin_shortcut":
    return key, cv.DENSE_FROM_CONV1X1
  return key, (cv.CONV if sub is None or sub in ("conv1", "conv2") else cv.LINEAR)


def rules(expected, levels: int) -> list[cv.Rule]:
  """Every first-stage parameter from diffusers' names."""
  out = []
  for path in cv.flatten(expected):
    key, layout = _key(path, levels)
    out.append(cv.rule(path, key, layout))
  return out


def load_vae(folder: str) -> tuple[dict, tuple, float, dict]:
  """Reads an ``AutoencoderKL`` / ``VQModel`` folder: ``(kwargs, shape, scaling_factor,
  params)``; ``FirstStage(**kwargs)`` is the network."""
  cfg, sd = read_model_folder(folder, ("AutoencoderKL", "VQModel"))
  kw, shape, scale = first_stage_kwargs(cfg, os.path.join(folder, "config.json"))
  expected = expected_params(kw, shape)
  return kw, shape, scale, cv.to_params(rules(expected, len(kw["ch_mult"])), sd, expected,
                                        what=folder)


def diffusers_config(kw: dict, shape, scaling_factor: float = 1.0) -> dict:
  """The ``AutoencoderKL`` / ``VQModel`` config of a genjax first stage."""
  from genjax.nets.first_stage import FirstStage
  net = FirstStage(**kw)
  if tuple(net.attn_resolutions):
    raise PretrainedError("a first stage with attention inside the levels has no diffusers "
                          "AutoencoderKL/VQModel layout.")
  boc = [net.ch * m for m in net.ch_mult]
  n = len(boc)
  cfg = {"in_channels": shape[2], "out_channels": net.out_channels,
         "down_block_types": ["DownEncoderBlock2D"] * n,
         "up_block_types": ["UpDecoderBlock2D"] * n, "block_out_channels": boc,
         "layers_per_block": net.num_res_blocks, "act_fn": "silu",
         "latent_channels": net.z_channels, "norm_num_groups": 32, "sample_size": shape[0],
         "scaling_factor": scaling_factor}
  if net.regularizer == "kl":
    cfg.update(_class_name="AutoencoderKL")
  else:
    cfg.update(_class_name="VQModel", num_vq_embeddings=net.num_codes,
               vq_embed_dim=net.embed_dim)
  return cfg


def export_vae(folder: str, kw: dict, shape, params, scaling_factor: float = 1.0) -> str:
  """Writes a genjax first stage as a diffusers folder that ``from_pretrained`` opens."""
  from safetensors.numpy import save_file
  expected = expected_params(kw, shape)
  sd = cv.to_state_dict(rules(expected, len(kw["ch_mult"])), params)
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(diffusers_config(kw, shape, scaling_factor), f, indent=2)
  save_file(sd, os.path.join(folder, "diffusion_pytorch_model.safetensors"),
            metadata={"format": "pt"})
  return folder
