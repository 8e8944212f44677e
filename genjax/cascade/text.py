"""Text conditioning of a cascade stage (Imagen, Saharia et al. 2022): a text encoder that is
frozen or trained jointly, and how its output reaches the U-Net.

Imagen's central finding (Saharia et al. 2022, Sec. 2.1 and 4.4) is that a large language
model trained on text alone and kept **frozen** conditions a text-to-image cascade well, and
scales better than growing the diffusion model. No pretrained T5 can be obtained here, so the
frozen encoder is a CLIP text tower (:class:`genjax.nets.text.TextEncoder`, the layout of
transformers' ``CLIPTextModel``), from one of two sources:

* ``cascade.text_encoder = "clip"``: the text tower of a trained genjax CLIP run
  (``cascade.text_encoder_path`` is its workdir, ``configs/clip_shapes.py``);
* ``cascade.text_encoder = "weights"``: a transformers ``CLIPTextModel`` folder
  (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``) read by
  :func:`genjax.pretrained.clip_text.load_clip_text`. If the folder also holds a CLIP BPE
  tokenizer (``vocab.json`` + ``merges.txt``), the shapes captions' word ids are translated to
  its ids on the device (:func:`make_translation`); without one, the encoder's vocabulary must
  be ``genjax.text``'s.

``cascade.text_encoder = "joint"`` trains a fresh encoder (``config.text_encoder``: the
``TextEncoder`` fields) with the diffusion model instead, as latent diffusion does (Rombach et
al. 2022, Sec. 3.3), so that the two can be compared.

A frozen encoder's parameters live in the trainer's ``model_state["text"]``: they get no
gradient, no optimizer state and no EMA, and each checkpoint records them. Its output reaches
the U-Net as Imagen's does (Sec. 2.1 and App. F): the last hidden states as the
cross-attention context (padding masked) and the pooled embedding (at the end-of-text token)
added to the time embedding (``UNet.emb_dim``). Classifier-free guidance drops captions to the
empty caption during training (``diffusion.cond_drop_prob``); the null condition is the empty
caption's encoding.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TEXT_ENCODERS", "TextConditioner", "build_text_conditioner", "make_translation"]

TEXT_ENCODERS = ("none", "clip", "weights", "joint")


@dataclasses.dataclass(frozen=True)
class TextConditioner:
  """A stage's text encoder.

  Attributes:
    kind: clip | weights | joint.
    module: the ``TextEncoder``.
    frozen_params: the frozen encoder's parameters (None when trained jointly).
    width: D, the width of its hidden states (the U-Net's ``context_dim`` and ``emb_dim``).
    max_len: the caption length (genjax tokens) it takes.
    translate: ``tokens [B, L] -> (encoder ids [B, L'], mask [B, L'])``: the caption in the
      encoder's vocabulary and which positions hold tokens.
    empty_tokens: ``[L]`` the empty caption (guidance's null condition).
    source: where the frozen encoder came from (for messages and records).
  """
  kind: str
  module: Any
  frozen_params: Any
  width: int
  max_len: int
  translate: Callable[[jax.Array], tuple]
  empty_tokens: jax.Array
  source: str = ""

  @property
  def frozen(self) -> bool:
    return self.frozen_params is not None

  def encode(self, params, tokens: jax.Array) -> dict:
    """``{"context": [B, L', D], "context_mask": [B, L'] bool, "pooled": [B, D]}`` of genjax
    tokens ``[B, L]`` with encoder parameters ``params``."""
    ids, mask = self.translate(jnp.asarray(tokens, jnp.int32))
    hidden, pooled = self.module.apply({"params": params}, ids)
    return {"context": hidden, "context_mask": mask, "pooled": pooled}

  def init(self, key: jax.Array, tokens: jax.Array):
    """Fresh parameters (joint training)."""
    ids, _ = self.translate(jnp.asarray(tokens, jnp.int32))
    return self.module.init(key, ids)["params"]


def _identity_translation(tokens):
  from genjax.text import PAD_ID
  return tokens, tokens != PAD_ID


def make_translation(tokenizer, max_len: int) -> Callable[[jax.Array], tuple]:
  """Shapes-caption word ids -> a CLIP BPE tokenizer's ids, on the device.

  Each genjax word id maps to the BPE ids of that word alone (a table ``[V, P]``, ``-1``
  padded); BOS / EOS map to the tokenizer's start / end tokens and padding to nothing. A row's
  pieces are concatenated in order (a stable sort moves the ``-1`` holes to the end), cut or
  padded to ``max_len`` with the tokenizer's pad id; the mask marks the real tokens. Captions
  of separate words tokenize as CLIP's tokenizer would tokenize the joined caption, since
  CLIP's BPE never merges across a space.

  Args:
    tokenizer: a :class:`genjax.pretrained.clip_text.CLIPTokenizer`.
    max_len: the encoder's positions (``max_position_embeddings``).

  Returns:
    ``translate(tokens [B, L]) -> (ids int32 [B, max_len], mask bool [B, max_len])``.
  """
  from genjax import text
  words = text.shapes_tokenizer().id_to_token
  pieces = []
  for i, w in enumerate(words):
    if i == text.BOS_ID:
      pieces.append([tokenizer.bos_id])
    elif i == text.EOS_ID:
      pieces.append([tokenizer.eos_id])
    elif i == text.PAD_ID:
      pieces.append([])
    else:
      ids = [int(j) for j in tokenizer([w], 64)[0]]
      body = ids[1:ids.index(tokenizer.eos_id, 1)] if tokenizer.eos_id in ids[1:] else ids[1:]
      pieces.append(body)
  width = max(1, max(len(p) for p in pieces))
  table = np.full((len(pieces), width), -1, np.int32)
  for i, p in enumerate(pieces):
    table[i, :len(p)] = p
  table = jnp.asarray(table)
  pad_id = int(tokenizer.pad_id)

  def translate(tokens):
    b = tokens.shape[0]
    flat = table[jnp.clip(tokens, 0, table.shape[0] - 1)].reshape(b, -1)
    valid = flat >= 0
    order = jnp.argsort(~valid, axis=-1, stable=True)
    ids = jnp.take_along_axis(flat, order, axis=-1)
    ok = jnp.take_along_axis(valid, order, axis=-1)
    n = ids.shape[1]
    if n < max_len:
      ids = jnp.pad(ids, ((0, 0), (0, max_len - n)), constant_values=-1)
      ok = jnp.pad(ok, ((0, 0), (0, max_len - n)))
    ids, ok = ids[:, :max_len], ok[:, :max_len]
    return jnp.where(ok, ids, pad_id).astype(jnp.int32), ok

  return translate


def _from_clip_run(path: str):
  from genjax.clip.score import load_clip
  clip = load_clip(path)
  return clip.model.text_encoder, clip.params["text_encoder"]


def _from_weights(path: str, max_len: int):
  from genjax import text
  from genjax.nets.text import TextEncoder
  from genjax.pretrained.clip_text import load_clip_text, load_tokenizer
  kw, params = load_clip_text(path)
  module = TextEncoder(**kw)
  has_tok = all(os.path.isfile(os.path.join(path, f)) for f in ("vocab.json", "merges.txt"))
  if has_tok:
    translate = make_translation(load_tokenizer(path), kw["max_len"])
  else:
    if kw["vocab_size"] != text.vocab_size():
      raise ValueError(f"cascade.text_encoder_path={path!r}: a text encoder of {kw['vocab_size']}"
                       f" token ids with no tokenizer (vocab.json, merges.txt) beside it; the "
                       f"shapes captions have {text.vocab_size()} ids. Put its CLIP tokenizer in "
                       "the folder.")
    if kw["max_len"] < max_len:
      raise ValueError(f"cascade.text_encoder_path={path!r} has {kw['max_len']} positions; the "
                       f"captions have {max_len} tokens (data.text_len).")
    translate = _identity_translation
  return module, jax.tree.map(jnp.asarray, params), translate


def build_text_conditioner(kind: str, path: str, config, max_len: int
                           ) -> Optional[TextConditioner]:
  """The stage's text encoder (None for ``kind="none"``); every bad source is one line.

  Raises:
    ValueError: an unknown kind, a missing path / a path for ``joint``, a run that is not a
      CLIP, an encoder that cannot read the captions.
    CheckpointError / PretrainedError: no trained run / no readable weights at the path.
  """
  from genjax import text
  from genjax.typed_config import to_dict
  if kind not in TEXT_ENCODERS:
    raise ValueError(f"cascade.text_encoder must be one of {', '.join(TEXT_ENCODERS)}, got "
                     f"{kind!r}.")
  if kind == "none":
    if path:
      raise ValueError("cascade.text_encoder_path is set but cascade.text_encoder='none'; set "
                       "it to clip or weights.")
    return None
  empty = jnp.asarray(text.tokenize([""], max_len)[0], jnp.int32)
  if kind == "joint":
    if path:
      raise ValueError("cascade.text_encoder='joint' trains a fresh encoder: leave "
                       "cascade.text_encoder_path empty (clip / weights read a frozen one).")
    from genjax.nets.text import TextEncoder
    fields = dict(to_dict(config.get("text_encoder")) if "text_encoder" in config else {})
    fields.setdefault("vocab_size", text.vocab_size())
    fields.setdefault("max_len", max_len)
    module = TextEncoder(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in fields.items()})
    return TextConditioner("joint", module, None, int(module.width), max_len,
                           _identity_translation, empty)
  what = ("the workdir of a trained CLIP (python train.py --config=configs/clip_shapes.py "
          "--workdir=runs/clip)" if kind == "clip" else
          "a transformers CLIPTextModel folder (config.json + model.safetensors)")
  if not path:
    raise ValueError(f"cascade.text_encoder={kind!r} needs cascade.text_encoder_path: {what}.")
  if not os.path.isdir(path):
    raise ValueError(f"cascade.text_encoder_path={path!r} does not exist; it must be {what}.")
  if kind == "clip":
    if _is_weights_folder(path):
      raise ValueError(f"cascade.text_encoder_path={path!r} is a CLIPTextModel weights folder, "
                       "not a CLIP run: set cascade.text_encoder='weights'.")
    module, params = _from_clip_run(path)
    if module.max_len < max_len:
      raise ValueError(f"the CLIP in {path!r} has {module.max_len} text positions; the captions "
                       f"have {max_len} tokens (data.text_len).")
    translate = _identity_translation
  else:
    if not _is_weights_folder(path):
      raise ValueError(f"cascade.text_encoder_path={path!r} is not a CLIPTextModel folder "
                       "(no config.json with model_type clip_text_model / architectures "
                       "CLIPTextModel); for a genjax CLIP run set cascade.text_encoder='clip'.")
    module, params, translate = _from_weights(path, max_len)
  params = jax.tree.map(jnp.asarray, params)
  return TextConditioner(kind, module, params, int(module.width), max_len, translate, empty,
                         source=path)


def _is_weights_folder(path: str) -> bool:
  import json
  f = os.path.join(path, "config.json")
  if not os.path.isfile(f):
    return False
  try:
    with open(f) as fh:
      cfg = json.load(fh)
  except (OSError, ValueError):
    return False
  return isinstance(cfg, dict) and ("CLIPTextModel" in (cfg.get("architectures") or [])
                                    or cfg.get("model_type") in ("clip_text_model", "clip"))
