"""DiT checkpoints -> genjax's Diffusion Transformer (:class:`genjax.nets.dit.DiT`).

Two layouts of Peebles & Xie's model (2023, "Scalable Diffusion Models with Transformers"):

* **the authors' checkpoints** (``DiT-XL-2-256x256.pt``, ``DiT-XL-2-512x512.pt``; names of
  ``facebookresearch/DiT/models.py``): ``x_embedder.proj`` (the patch conv),
  ``t_embedder.mlp.{0,2}``, ``y_embedder.embedding_table``, ``blocks.N.attn.qkv`` (fused, as
  genjax's), ``blocks.N.attn.proj``, ``blocks.N.mlp.fc{1,2}``, ``blocks.N.adaLN_modulation.1``,
  ``final_layer.{adaLN_modulation.1,linear}`` and the fixed ``pos_embed`` buffer (checked
  against genjax's sine-cosine table, not loaded). A ``.pt`` file has no config: the
  architecture is read from the tensors' shapes, except the head count, which comes from the
  paper's Table 1 by width (S 6, B 12, L 16, XL 16) or ``num_heads``;
* **diffusers' ``DiTTransformer2DModel``** (``facebook/DiT-XL-2-256``'s ``transformer``
  folder): separate ``to_q/to_k/to_v`` fused into genjax's ``qkv``; a time/label embedder in
  every block's ``norm1.emb`` (diffusers' conversion copies the authors' one into each; they
  must be equal, since genjax's DiT has one); a time embedding with frequency shift 1 and an
  MLP LayerNorm with ``norm_eps`` (1e-5), which become the DiT's ``temb_freq_shift`` and
  ``mlp_norm_eps`` options.

Layouts: the patch conv ``[D, C, p, p]`` -> a Dense on genjax's flattened patches
``(row, column, channel)``: ``w.transpose(2, 3, 1, 0).reshape(p * p * C, D)``; linear layers
transposed.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

import numpy as np

from genjax.pretrained import convert as cv
from genjax.pretrained.io import PretrainedError, load_state_dict, read_model_folder

__all__ = ["HEADS_BY_WIDTH", "dit_kwargs_from_diffusers", "dit_kwargs_from_original",
           "expected_params", "load_dit", "original_rules", "diffusers_rules"]

# Peebles & Xie 2023, Table 1: hidden size -> heads (S, B, L, XL).
HEADS_BY_WIDTH = {384: 6, 768: 12, 1024: 16, 1152: 16}


def _patch_layout(p: int, c: int) -> cv.Layout:
  """The patch-embedding conv ``[D, C, p, p]`` <-> genjax's Dense kernel ``[p*p*C, D]``."""
  return cv.Layout(
      "patch conv [D,C,p,p]->[p*p*C,D]",
      lambda a: a[0].transpose(2, 3, 1, 0).reshape(p * p * a[0].shape[1], a[0].shape[0]),
      lambda w: [w.reshape(p, p, c, w.shape[-1]).transpose(3, 2, 0, 1)])


def expected_params(kw: dict, shape) -> Any:
  """``jax.eval_shape`` of the DiT's params (no memory)."""
  import jax
  import jax.numpy as jnp
  from genjax.nets.dit import DiT
  x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.int32)
  y = jax.ShapeDtypeStruct((1,), jnp.int32) if kw.get("num_classes") else None
  net = DiT(**kw)
  return jax.eval_shape(lambda x, t, y: net.init(jax.random.key(0), x, t, y), x, t, y)["params"]


def _linear(target: str, src: str) -> list[cv.Rule]:
  return [cv.rule(f"{target}/kernel", f"{src}.weight", cv.LINEAR),
          cv.rule(f"{target}/bias", f"{src}.bias")]


# -- the authors' layout ----------------------------------------------------------------------


def dit_kwargs_from_original(sd: dict, where: str, num_heads: Optional[int] = None
                             ) -> tuple[dict, tuple[int, int, int]]:
  """DiT keyword arguments and the image shape ``(H, W, C)`` from an original state dict."""
  need = ("x_embedder.proj.weight", "y_embedder.embedding_table.weight",
          "final_layer.linear.weight", "blocks.0.mlp.fc1.weight")
  for k in need:
    if k not in sd:
      raise PretrainedError(f"{where}: missing key {k!r}: not a DiT checkpoint in the layout of "
                            "facebookresearch/DiT (x_embedder, t_embedder, y_embedder, blocks, "
                            "final_layer).")
  d, c, p, _ = sd["x_embedder.proj.weight"].shape
  depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
  heads = num_heads or HEADS_BY_WIDTH.get(int(d))
  if heads is None:
    raise PretrainedError(f"{where}: hidden size {d} is none of the paper's (384, 768, 1024, "
                          "1152); pass num_heads.")
  n_tok = sd["pos_embed"].shape[1] if "pos_embed" in sd else None
  if n_tok is None:
    raise PretrainedError(f"{where}: missing key 'pos_embed', which gives the image size.")
  grid = int(round(n_tok ** 0.5))
  if grid * grid != n_tok:
    raise PretrainedError(f"{where}: pos_embed has {n_tok} tokens, not a square grid.")
  out = sd["final_layer.linear.weight"].shape[0] // (p * p)
  kw = dict(patch_size=int(p), hidden_size=int(d), depth=depth, num_heads=int(heads),
            mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / d,
            num_classes=int(sd["y_embedder.embedding_table.weight"].shape[0]) - 1,
            out_channels=None if out == c else int(out))
  return kw, (grid * p, grid * p, int(c))


def _pos_embed_check(kw: dict, shape) -> cv.Check:
  from genjax.nets.dit import sincos_pos_embed_2d
  p = kw["patch_size"]
  table = sincos_pos_embed_2d(kw["hidden_size"], shape[0] // p, shape[1] // p)[None]

  def test(a, sd):
    if a.shape != table.shape:
      return f"has shape {list(a.shape)}, the model expects {list(table.shape)}."
    err = float(np.abs(a - table).max())
    return None if err < 1e-5 else (f"is not DiT's fixed 2-D sine-cosine embedding (max diff "
                                    f"{err:.3g}); genjax computes it and cannot load another.")
  return cv.Check("pos_embed", test, lambda out: table)


def original_rules(kw: dict, c_in: int) -> list[cv.Rule]:
  """Every genjax DiT parameter from the authors' names."""
  patch = _patch_layout(kw["patch_size"], c_in)
  r = [cv.rule("x_embedder/kernel", "x_embedder.proj.weight", patch),
       cv.rule("x_embedder/bias", "x_embedder.proj.bias")]
  r += _linear("t_embedder_0", "t_embedder.mlp.0") + _linear("t_embedder_2", "t_embedder.mlp.2")
  if kw.get("num_classes"):
    r.append(cv.rule("y_embedder/embedding", "y_embedder.embedding_table.weight"))
  for i in range(kw["depth"]):
    b = f"blocks.{i}"
    r += _linear(f"block_{i}/adaLN_modulation", f"{b}.adaLN_modulation.1")
    r += _linear(f"block_{i}/attn/qkv", f"{b}.attn.qkv")
    r += _linear(f"block_{i}/attn/proj", f"{b}.attn.proj")
    r += _linear(f"block_{i}/mlp_fc1", f"{b}.mlp.fc1")
    r += _linear(f"block_{i}/mlp_fc2", f"{b}.mlp.fc2")
  r += _linear("final_adaLN", "final_layer.adaLN_modulation.1")
  r += _linear("final_linear", "final_layer.linear")
  return r


# -- diffusers' layout ------------------------------------------------------------------------


def dit_kwargs_from_diffusers(cfg: dict, where: str = "config.json"
                              ) -> tuple[dict, tuple[int, int, int]]:
  """DiT keyword arguments and the image shape from a ``DiTTransformer2DModel`` config."""
  name = cfg.get("_class_name")
  if name not in ("DiTTransformer2DModel", "Transformer2DModel"):
    raise PretrainedError(f"{where}: a {name}, not a DiTTransformer2DModel.")
  checks = (("norm_type", "ada_norm_zero"), ("activation_fn", "gelu-approximate"),
            ("attention_bias", True), ("norm_elementwise_affine", False))
  for field, need in checks:
    if cfg.get(field, need) != need:
      raise PretrainedError(f"{where}: {field}={cfg[field]!r} is not DiT's ({need!r}).")
  if cfg.get("patch_size") is None or cfg.get("num_embeds_ada_norm") is None:
    raise PretrainedError(f"{where}: not a DiT (no patch_size / num_embeds_ada_norm).")
  heads, hd = int(cfg.get("num_attention_heads", 16)), int(cfg.get("attention_head_dim", 72))
  c = int(cfg.get("in_channels", 4))
  out = cfg.get("out_channels") or c
  size = int(cfg.get("sample_size", 32))
  kw = dict(patch_size=int(cfg["patch_size"]), hidden_size=heads * hd,
            depth=int(cfg.get("num_layers", 28)), num_heads=heads, mlp_ratio=4.0,
            num_classes=int(cfg["num_embeds_ada_norm"]),
            out_channels=None if out == c else int(out), temb_freq_shift=1.0,
            mlp_norm_eps=float(cfg.get("norm_eps", 1e-5)))
  return kw, (size, size, c)


def diffusers_rules(kw: dict, c_in: int) -> tuple[list[cv.Rule], list[cv.Check]]:
  """Rules (and the per-block embedder copies, as checks) for ``DiTTransformer2DModel``."""
  patch = _patch_layout(kw["patch_size"], c_in)
  r = [cv.rule("x_embedder/kernel", "pos_embed.proj.weight", patch),
       cv.rule("x_embedder/bias", "pos_embed.proj.bias")]
  emb = "transformer_blocks.{}.norm1.emb."
  shared = {"t_embedder_0": "timestep_embedder.linear_1",
            "t_embedder_2": "timestep_embedder.linear_2"}
  for tgt, src in shared.items():
    r += _linear(tgt, emb.format(0) + src)
  r.append(cv.rule("y_embedder/embedding", emb.format(0) + "class_embedder.embedding_table.weight"))
  fused = cv.fuse(cv.LINEAR, 3)
  fused_b = cv.fuse(cv.IDENTITY, 3)
  checks = []
  for i in range(kw["depth"]):
    b = f"transformer_blocks.{i}"
    r += _linear(f"block_{i}/adaLN_modulation", f"{b}.norm1.linear")
    r.append(cv.rule(f"block_{i}/attn/qkv/kernel",
                     [f"{b}.attn1.to_{n}.weight" for n in "qkv"], fused))
    r.append(cv.rule(f"block_{i}/attn/qkv/bias", [f"{b}.attn1.to_{n}.bias" for n in "qkv"],
                     fused_b))
    r += _linear(f"block_{i}/attn/proj", f"{b}.attn1.to_out.0")
    r += _linear(f"block_{i}/mlp_fc1", f"{b}.ff.net.0.proj") + _linear(f"block_{i}/mlp_fc2",
                                                                      f"{b}.ff.net.2")
    if i:
      for src in ("timestep_embedder.linear_1.weight", "timestep_embedder.linear_1.bias",
                  "timestep_embedder.linear_2.weight", "timestep_embedder.linear_2.bias",
                  "class_embedder.embedding_table.weight"):
        first = emb.format(0) + src

        def test(a, sd, first=first):
          same = a.shape == sd[first].shape and np.array_equal(a, sd[first])
          return None if same else (f"differs from {first!r}: genjax's DiT has one time/label "
                                    "embedder, as the authors' (diffusers' conversion copies it "
                                    "into every block).")
        checks.append(cv.Check(emb.format(i) + src, test, lambda out, first=first: out[first]))
  r += _linear("final_adaLN", "proj_out_1") + _linear("final_linear", "proj_out_2")
  return r, checks


def load_dit(path: str, num_heads: Optional[int] = None) -> tuple[dict, tuple, dict]:
  """Reads a DiT checkpoint: the authors' ``.pt`` (or a ``.safetensors`` of its state dict) or a
  diffusers ``DiTTransformer2DModel`` folder (or a pipeline folder's ``transformer``).

  Returns:
    ``(kwargs, shape, params)``: ``DiT(**kwargs)``, its input shape ``(H, W, C)``, its params.
  """
  if os.path.isdir(path):
    if os.path.isdir(os.path.join(path, "transformer")):
      path = os.path.join(path, "transformer")
    cfg, sd = read_model_folder(path, ("DiTTransformer2DModel", "Transformer2DModel"))
    kw, shape = dit_kwargs_from_diffusers(cfg, os.path.join(path, "config.json"))
    rules, checks = diffusers_rules(kw, shape[2])
  else:
    sd = load_state_dict(path)
    kw, shape = dit_kwargs_from_original(sd, path, num_heads)
    rules, checks = original_rules(kw, shape[2]), [_pos_embed_check(kw, shape)]
  expected = expected_params(kw, shape)
  return kw, shape, cv.to_params(rules, sd, expected, what=path, checks=checks)


def export_original(path: str, kw: dict, shape, params) -> str:
  """Writes genjax DiT params in the authors' layout (``.pt`` with torch, else
  ``.safetensors``), ``pos_embed`` included."""
  sd = cv.to_state_dict(original_rules(kw, shape[2]), params, [_pos_embed_check(kw, shape)])
  if path.endswith(".safetensors"):
    from safetensors.numpy import save_file
    save_file(sd, path)
  else:
    import torch
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
  return path
