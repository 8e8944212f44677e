"""diffusers ``UNet2DModel`` <-> genjax's DDPM U-Net (:class:`genjax.nets.unet.UNet`).

``UNet2DModel`` is the layout of Ho et al.'s published DDPM checkpoints as diffusers ships them
(``google/ddpm-cifar10-32``, ``google/ddpm-celebahq-256``, ``google/ddpm-{church,bedroom,cat}-256``
and their EMA variants): the same network as the TF reference that genjax's U-Net follows, with
PyTorch names. The map is structural (every level, block and layer named explicitly below) and
driven by the checkpoint's ``config.json``:

* ``block_out_channels`` -> ``ch = block_out_channels[0]``, ``ch_mult``; ``layers_per_block`` ->
  ``num_res_blocks``; levels whose block type is ``AttnDownBlock2D`` (and whose mirrored up
  block is ``AttnUpBlock2D``) -> ``attn_resolutions`` at ``sample_size / 2^level``;
* numerics where diffusers differs from the reference become the U-Net's optional attributes:
  ``flip_sin_to_cos`` / ``freq_shift`` (time embedding), ``downsample_padding`` (1: symmetric),
  ``norm_num_groups`` / ``norm_eps``, ``attention_head_dim`` (multi-head attention). For Ho et
  al.'s checkpoints all of these equal the reference, and the converted model is genjax's
  default CIFAR-10 U-Net;
* ``num_class_embeds`` -> ``num_classes = num_class_embeds - 1`` (genjax's last label row is the
  null label).

Configurations genjax's U-Net cannot express (Fourier or learned time embeddings, scale-shift
time conditioning, ResNet resamplers, a mid block without attention, ...) are refused naming
the field. Layouts: convs ``OIHW -> HWIO``, linear layers transposed, the 1x1 ``conv_shortcut``
-> a Dense ``nin_shortcut``, GroupNorm ``weight`` -> ``scale``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from genjax.pretrained import convert as cv
from genjax.pretrained.io import PretrainedError, read_model_folder

__all__ = ["DEFAULTS", "diffusers_config", "export_unet2d", "load_unet2d", "rules",
           "unet_kwargs", "expected_params", "param_count"]

# UNet2DModel.__init__'s defaults (diffusers 0.37), for config.json files that omit a field.
DEFAULTS: dict[str, Any] = dict(
    sample_size=None, in_channels=3, out_channels=3, center_input_sample=False,
    time_embedding_type="positional", time_embedding_dim=None, freq_shift=0,
    flip_sin_to_cos=True,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    mid_block_type="UNetMidBlock2D",
    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(224, 448, 672, 896), layers_per_block=2, mid_block_scale_factor=1,
    downsample_padding=1, downsample_type="conv", upsample_type="conv", dropout=0.0,
    act_fn="silu", attention_head_dim=8, norm_num_groups=32, attn_norm_num_groups=None,
    norm_eps=1e-5, resnet_time_scale_shift="default", add_attention=True, class_embed_type=None,
    num_class_embeds=None, num_train_timesteps=None)

# Legacy attention names of checkpoints saved by diffusers < 0.14 (Ho et al.'s first uploads).
_LEGACY_ATTN = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _get(cfg: dict, name: str):
  return cfg.get(name, DEFAULTS[name])


def unet_kwargs(cfg: dict, where: str = "config.json") -> tuple[dict, tuple[int, int]]:
  """genjax ``UNet`` keyword arguments for a ``UNet2DModel`` config, and its sample size.

  Raises:
    PretrainedError: a field genjax's U-Net cannot express, named with its value.
  """
  if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
    raise PretrainedError(f"{where}: a {cfg['_class_name']}, not a UNet2DModel.")

  def refuse(field, value, need):
    raise PretrainedError(f"{where}: {field}={value!r} is not supported by genjax's U-Net "
                          f"(supported: {need}).")

  for field, need in (("time_embedding_type", "positional"), ("act_fn", "silu"),
                      ("center_input_sample", False), ("resnet_time_scale_shift", "default"),
                      ("mid_block_scale_factor", 1), ("add_attention", True),
                      ("downsample_type", "conv"), ("upsample_type", "conv"),
                      ("mid_block_type", "UNetMidBlock2D"), ("class_embed_type", None)):
    if _get(cfg, field) != need:
      refuse(field, _get(cfg, field), repr(need))
  boc = list(_get(cfg, "block_out_channels"))
  ch = boc[0]
  if any(b % ch for b in boc):
    refuse("block_out_channels", boc, "multiples of the first width")
  ted = _get(cfg, "time_embedding_dim")
  if ted not in (None, 4 * ch):
    refuse("time_embedding_dim", ted, f"None or 4 * block_out_channels[0] = {4 * ch}")
  down, up = list(_get(cfg, "down_block_types")), list(_get(cfg, "up_block_types"))
  if len(down) != len(boc) or len(up) != len(boc):
    raise PretrainedError(f"{where}: {len(boc)} block_out_channels but {len(down)} down and "
                          f"{len(up)} up block types.")
  ok_down, ok_up = {"DownBlock2D", "AttnDownBlock2D"}, {"UpBlock2D", "AttnUpBlock2D"}
  for t in down:
    if t not in ok_down:
      refuse("down_block_types", t, " | ".join(sorted(ok_down)))
  for t in up:
    if t not in ok_up:
      refuse("up_block_types", t, " | ".join(sorted(ok_up)))
  n = len(boc)
  attn_levels = [i for i, t in enumerate(down) if t == "AttnDownBlock2D"]
  up_levels = [n - 1 - j for j, t in enumerate(up) if t == "AttnUpBlock2D"]
  if sorted(attn_levels) != sorted(up_levels):
    raise PretrainedError(f"{where}: attention at down levels {attn_levels} but at up levels "
                          f"{sorted(up_levels)}; genjax's U-Net attends at the same resolutions "
                          "on both paths.")
  size = _get(cfg, "sample_size")
  if size is None:
    raise PretrainedError(f"{where}: no sample_size; genjax places attention by resolution and "
                          "needs the image size.")
  hw = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
  groups = _get(cfg, "norm_num_groups")
  attn_groups = _get(cfg, "attn_norm_num_groups")
  if attn_groups not in (None, groups):
    refuse("attn_norm_num_groups", attn_groups, f"None or norm_num_groups={groups}")
  pad = _get(cfg, "downsample_padding")
  if pad not in (0, 1):
    refuse("downsample_padding", pad, "0 or 1")
  from genjax.nets.layers import num_groups
  widths = set(boc)
  default_groups = all(num_groups(w) == groups for w in widths)
  head = _get(cfg, "attention_head_dim")
  for w in ([boc[i] for i in attn_levels] + [boc[-1]]) if head is not None else ():
    if w % head:
      refuse("attention_head_dim", head, f"a divisor of every attended width (here {w})")
  n_cls = _get(cfg, "num_class_embeds")
  kw = dict(ch=ch, ch_mult=tuple(b // ch for b in boc),
            num_res_blocks=int(_get(cfg, "layers_per_block")),
            attn_resolutions=tuple(hw[0] // 2 ** i for i in attn_levels),
            dropout=float(_get(cfg, "dropout")),
            num_classes=0 if n_cls is None else int(n_cls) - 1,
            out_channels=(None if _get(cfg, "out_channels") == _get(cfg, "in_channels")
                          else int(_get(cfg, "out_channels"))))
  # The optional attributes: only those that differ from genjax's reference behaviour.
  if not default_groups:
    kw["norm_groups"] = int(groups)
  if float(_get(cfg, "norm_eps")) != 1e-6:
    kw["norm_eps"] = float(_get(cfg, "norm_eps"))
  if pad == 1:
    kw["downsample_padding"] = "symmetric"
  if head is not None:
    kw["attn_head_dim"] = int(head)
  if _get(cfg, "flip_sin_to_cos"):
    kw["temb_flip_sin_to_cos"] = True
  if float(_get(cfg, "freq_shift")) != 1.0:
    kw["temb_freq_shift"] = float(_get(cfg, "freq_shift"))
  return kw, (hw[0], hw[1], int(_get(cfg, "in_channels")))


def diffusers_config(kw: dict, shape: tuple[int, int, int]) -> dict:
  """The ``UNet2DModel`` config.json of a genjax U-Net (the inverse of :func:`unet_kwargs`).

  Args:
    kw: the ``UNet`` keyword arguments.
    shape: ``(H, W, C)`` of its images.
  """
  from genjax.nets.layers import num_groups
  from genjax.nets.unet import UNet
  net = UNet(**kw)
  h, w, c = shape
  ch, mult = net.ch, tuple(net.ch_mult)
  boc = [ch * m for m in mult]
  n = len(mult)
  attn = [i for i in range(n) if h // 2 ** i in tuple(net.attn_resolutions)]
  groups = net.norm_groups
  if groups is None:
    gs = {num_groups(x) for x in boc}
    if len(gs) != 1:
      raise PretrainedError(f"this U-Net's GroupNorms have {sorted(gs)} groups at widths {boc}; "
                            "diffusers' UNet2DModel has one group count: build it with "
                            "norm_groups set.")
    groups = gs.pop()
  if not net.resamp_with_conv:
    raise PretrainedError("resamp_with_conv=False (pooling resamplers) has no UNet2DModel "
                          "layout.")
  return {
      "_class_name": "UNet2DModel", "_diffusers_version": "0.37.1",
      "sample_size": h if h == w else [h, w], "in_channels": c,
      "out_channels": net.out_channels or c, "center_input_sample": False,
      "time_embedding_type": "positional", "time_embedding_dim": None,
      "freq_shift": net.temb_freq_shift, "flip_sin_to_cos": net.temb_flip_sin_to_cos,
      "down_block_types": ["AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(n)],
      "mid_block_type": "UNetMidBlock2D",
      "up_block_types": ["AttnUpBlock2D" if n - 1 - j in attn else "UpBlock2D"
                         for j in range(n)],
      "block_out_channels": boc, "layers_per_block": net.num_res_blocks,
      "mid_block_scale_factor": 1, "downsample_padding": 1 if net.downsample_padding ==
      "symmetric" else 0, "downsample_type": "conv", "upsample_type": "conv",
      "dropout": net.dropout, "act_fn": "silu", "attention_head_dim": net.attn_head_dim,
      "norm_num_groups": groups, "attn_norm_num_groups": None, "norm_eps": net.norm_eps,
      "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
      "num_class_embeds": net.num_classes + 1 if net.num_classes else None,
      "num_train_timesteps": None,
  }


def _module(name: str, levels: int) -> tuple[str, str]:
  """genjax top-level module name -> (diffusers module prefix, kind)."""
  parts = name.split("_")
  if name == "temb_dense0":
    return "time_embedding.linear_1", "dense"
  if name == "temb_dense1":
    return "time_embedding.linear_2", "dense"
  if name == "label_emb":
    return "class_embedding", "embed"
  if name in ("conv_in", "conv_out"):
    return name, "conv"
  if name == "norm_out":
    return "conv_norm_out", "norm"
  if name.startswith("mid_"):
    kind, idx = parts[1], int(parts[2]) - 1
    return (f"mid_block.resnets.{idx}", "res") if kind == "block" else (
        f"mid_block.attentions.{idx}", "attn")
  path, i = parts[0], int(parts[1])
  block = f"down_blocks.{i}" if path == "down" else f"up_blocks.{levels - 1 - i}"
  if parts[2] == "block":
    return f"{block}.resnets.{int(parts[3])}", "res"
  if parts[2] == "attn":
    return f"{block}.attentions.{int(parts[3])}", "attn"
  return f"{block}.{'downsamplers' if path == 'down' else 'upsamplers'}.0.conv", "conv"


_RES = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj", "norm2": "norm2",
        "conv2": "conv2", "nin_shortcut": "conv_shortcut", "conv_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "embedding": "weight"}


def rules(expected, levels: int) -> list[cv.Rule]:
  """The rules for every parameter of a genjax U-Net (``expected``: its params tree or shapes)."""
  out = []
  for path, leaf in cv.flatten(expected).items():
    top, *mid, last = path.split("/")
    prefix, kind = _module(top, levels)
    if kind in ("res", "attn"):
      table = _RES if kind == "res" else _ATTN
      sub = mid[0]
      if sub == "conv" and kind == "res":  # never reached: ResBlock has no 'conv'
        raise AssertionError(path)
      key = f"{prefix}.{table[sub]}.{_LEAF[last]}"
    else:
      sub = mid[0] if mid else None
      key = f"{prefix}.{_LEAF[last]}"
    nd = len(leaf.shape)
    if last != "kernel":
      layout = cv.IDENTITY
    elif nd == 4:
      layout = cv.CONV
    elif kind == "res" and sub in ("nin_shortcut",):
      layout = cv.DENSE_FROM_CONV1X1
    else:
      layout = cv.LINEAR
    out.append(cv.rule(path, key, layout))
  return out


def _rename_legacy(sd: dict) -> dict:
  out = {}
  for k, v in sd.items():
    parts = k.split(".")
    if "attentions" in parts and len(parts) >= 2 and parts[-2] in _LEGACY_ATTN:
      k = ".".join(parts[:-2] + [_LEGACY_ATTN[parts[-2]], parts[-1]])
    out[k] = v
  return out


def expected_params(kw: dict, shape) -> Any:
  """``jax.eval_shape`` of the U-Net's params (no memory, no compute)."""
  import jax
  import jax.numpy as jnp
  from genjax.nets.unet import UNet
  net = UNet(**kw)
  x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.int32)
  y = jax.ShapeDtypeStruct((1,), jnp.int32) if kw.get("num_classes") else None
  return jax.eval_shape(lambda x, t, y: net.init(jax.random.key(0), x, t, y), x, t, y)["params"]


def load_unet2d(folder: str) -> tuple[dict, tuple[int, int, int], dict]:
  """Reads a diffusers ``UNet2DModel`` folder.

  Returns:
    ``(kwargs, shape, params)``: ``UNet(**kwargs)`` is the network, ``shape = (H, W, C)`` its
    images (``sample_size``), ``params`` its Flax params (float32 numpy).

  Raises:
    PretrainedError: a bad file, another architecture, or a config that does not describe the
      weights (the unknown / missing key or mismatched shape is named).
  """
  cfg, sd = read_model_folder(folder, ("UNet2DModel",))
  kw, shape = unet_kwargs(cfg, os.path.join(folder, "config.json"))
  expected = expected_params(kw, shape)
  params = cv.to_params(rules(expected, len(kw["ch_mult"])), _rename_legacy(sd), expected,
                        what=folder)
  return kw, shape, params


def export_unet2d(folder: str, kw: dict, shape, params, *, safe: bool = True) -> str:
  """Writes a genjax U-Net as a diffusers ``UNet2DModel`` folder (``config.json`` +
  ``diffusion_pytorch_model.safetensors``) that ``UNet2DModel.from_pretrained`` opens.

  Returns: the folder.
  """
  from safetensors.numpy import save_file
  cfg = diffusers_config(kw, tuple(shape))
  expected = expected_params(kw, tuple(shape))
  sd = cv.to_state_dict(rules(expected, len(kw["ch_mult"])), params)
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
  save_file(sd, os.path.join(folder, "diffusion_pytorch_model.safetensors"),
            metadata={"format": "pt"})
  return folder


def param_count(kw: dict, shape) -> int:
  """Number of parameters of ``UNet(**kw)`` on ``shape`` images, from shapes only."""
  return int(sum(np.prod(v.shape) for v in cv.flatten(expected_params(kw, shape)).values()))


