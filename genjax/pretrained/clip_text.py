"""transformers' ``CLIPTextModel`` and its byte-level BPE tokenizer -> genjax's
:class:`~genjax.nets.text.TextEncoder` (the text tower of CLIP, Radford et al. 2021, and the
frozen text encoder of Stable Diffusion 1.x).

The weights map by name (``TextEncoder``'s parameters mirror the ``CLIPTextModel`` state dict)
with each linear weight transposed; the config gives the sizes, ``layer_norm_eps`` and the
pooling rule (``eos_token_id == 2``: the legacy argmax of the ids, as transformers does; else
the first ``eos_token_id``). Only ``hidden_act = "quick_gelu"`` (every published CLIP text
tower) is supported.

The tokenizer is CLIP's BPE rebuilt with the ``tokenizers`` package from the checkpoint folder's
``vocab.json`` and ``merges.txt``, exactly as transformers' ``CLIPTokenizerFast`` converts it
(NFC, whitespace collapsed, lower case; CLIP's pre-tokenizing regex; byte-level BPE with the
``</w>`` end-of-word suffix; ``<|startoftext|>`` ... ``<|endoftext|>``), then truncated and
padded to ``max_len`` as ``tokenizer(..., padding="max_length", truncation=True)``.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np

from genjax.pretrained import convert as cv
from genjax.pretrained.io import PretrainedError, read_model_folder

__all__ = ["CLIPTokenizer", "encoder_kwargs", "expected_params", "load_clip_text",
           "load_tokenizer", "rules"]


def encoder_kwargs(cfg: dict, where: str = "config.json") -> dict:
  """``TextEncoder`` keyword arguments for a ``CLIPTextConfig`` (or a ``CLIPConfig``'s
  ``text_config``)."""
  if "text_config" in cfg and "hidden_size" not in cfg:
    cfg = cfg["text_config"]
  act = cfg.get("hidden_act", "quick_gelu")
  if act != "quick_gelu":
    raise PretrainedError(f"{where}: hidden_act={act!r}; genjax's TextEncoder uses CLIP's "
                          "quick_gelu.")
  eos = int(cfg.get("eos_token_id", 2))
  return dict(vocab_size=int(cfg.get("vocab_size", 49408)),
              max_len=int(cfg.get("max_position_embeddings", 77)),
              width=int(cfg.get("hidden_size", 512)),
              depth=int(cfg.get("num_hidden_layers", 12)),
              num_heads=int(cfg.get("num_attention_heads", 8)),
              mlp_dim=int(cfg.get("intermediate_size", 2048)),
              eps=float(cfg.get("layer_norm_eps", 1e-5)),
              pooling="argmax" if eos == 2 else "first_eos", eos_id=eos)


def expected_params(kw: dict):
  """``jax.eval_shape`` of the encoder's params."""
  import jax
  import jax.numpy as jnp
  from genjax.nets.text import TextEncoder
  tokens = jax.ShapeDtypeStruct((1, kw["max_len"]), jnp.int32)
  net = TextEncoder(**kw)
  return jax.eval_shape(lambda t: net.init(jax.random.key(0), t), tokens)["params"]


def rules(depth: int, prefix: str = "text_model.") -> list[cv.Rule]:
  """Every ``TextEncoder`` parameter from the ``CLIPTextModel`` names."""
  def lin(t, s):
    return [cv.rule(f"{t}/kernel", f"{prefix}{s}.weight", cv.LINEAR),
            cv.rule(f"{t}/bias", f"{prefix}{s}.bias")]

  def norm(t, s):
    return [cv.rule(f"{t}/scale", f"{prefix}{s}.weight"), cv.rule(f"{t}/bias", f"{prefix}{s}.bias")]
  r = [cv.rule("token_embedding/embedding", f"{prefix}embeddings.token_embedding.weight"),
       cv.rule("position_embedding/embedding", f"{prefix}embeddings.position_embedding.weight")]
  for i in range(depth):
    e = f"encoder.layers.{i}"
    r += norm(f"layers_{i}/layer_norm1", f"{e}.layer_norm1")
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
      r += lin(f"layers_{i}/self_attn/{p}", f"{e}.self_attn.{p}")
    r += norm(f"layers_{i}/layer_norm2", f"{e}.layer_norm2")
    r += lin(f"layers_{i}/mlp/fc1", f"{e}.mlp.fc1") + lin(f"layers_{i}/mlp/fc2", f"{e}.mlp.fc2")
  r += norm("final_layer_norm", "final_layer_norm")
  return r


def _position_ids_check(key: str, n: int) -> cv.Check:
  """Older checkpoints save the ``position_ids`` buffer; it must be ``arange(n)``."""
  def test(a, sd):
    ok = a.size == n and np.array_equal(a.reshape(-1), np.arange(n))
    return None if ok else "is not arange(max_position_embeddings)."
  return cv.Check(key, test, lambda out: np.arange(n)[None])


def load_clip_text(folder: str) -> tuple[dict, dict]:
  """Reads a transformers ``CLIPTextModel`` folder (``config.json`` + ``model.safetensors`` /
  ``pytorch_model.bin``): ``(TextEncoder kwargs, params)``."""
  cfg, sd = read_model_folder(folder, ("CLIPTextModel",))
  kw = encoder_kwargs(cfg, os.path.join(folder, "config.json"))
  checks = []
  pid = "text_model.embeddings.position_ids"
  if pid in sd:
    checks.append(_position_ids_check(pid, kw["max_len"]))
  params = cv.to_params(rules(kw["depth"]), sd, expected_params(kw), what=folder, checks=checks)
  return kw, params


def _token(v) -> Optional[str]:
  return v.get("content") if isinstance(v, dict) else v


class CLIPTokenizer:
  """CLIP's BPE from a tokenizer folder (``vocab.json``, ``merges.txt`` and, when present,
  ``special_tokens_map.json`` / ``tokenizer_config.json``), built with ``tokenizers``.

  ``tok(texts, max_len=None) -> int32 [B, max_len]``: ``<|startoftext|>``, the BPE ids
  (truncated to ``max_len - 2``), ``<|endoftext|>``, then the pad id.
  """

  def __init__(self, folder: str):
    vocab, merges = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    for f in (vocab, merges):
      if not os.path.isfile(f):
        raise PretrainedError(f"{folder}: no {os.path.basename(f)} (a CLIP tokenizer folder has "
                              "vocab.json and merges.txt).")
    try:
      from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
      from tokenizers.models import BPE
    except ImportError:
      raise PretrainedError("the CLIP tokenizer needs the tokenizers package "
                            "(pip install tokenizers).") from None
    special = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
      p = os.path.join(folder, name)
      if os.path.isfile(p):
        with open(p) as f:
          special.update({k: v for k, v in json.load(f).items() if v is not None})
    bos = _token(special.get("bos_token")) or "<|startoftext|>"
    eos = _token(special.get("eos_token")) or "<|endoftext|>"
    unk = _token(special.get("unk_token")) or "<|endoftext|>"
    pad = _token(special.get("pad_token")) or eos
    self.max_len = int(special.get("model_max_length", 77))
    if self.max_len > 100_000:  # transformers' "no limit" sentinel
      self.max_len = 77
    with open(vocab) as f:
      self.vocab = json.load(f)
    for t in (bos, eos, pad, unk):
      if t not in self.vocab:
        raise PretrainedError(f"{vocab}: lacks the special token {t!r}.")
    bpe = BPE.from_file(vocab, merges, dropout=None, continuing_subword_prefix="",
                        end_of_word_suffix="</w>", fuse_unk=False, unk_token=unk)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        sep=(eos, self.vocab[eos]), cls=(bos, self.vocab[bos]), add_prefix_space=False,
        trim_offsets=False)
    tok.add_special_tokens([bos, eos] + ([pad] if pad not in (bos, eos) else []))
    self._tok = tok
    self.bos_id, self.eos_id, self.pad_id = self.vocab[bos], self.vocab[eos], self.vocab[pad]
    self._pad = pad

  def __call__(self, texts: Sequence[str], max_len: Optional[int] = None) -> np.ndarray:
    n = int(max_len or self.max_len)
    self._tok.enable_truncation(n)
    self._tok.enable_padding(pad_id=self.pad_id, pad_token=self._pad, length=n)
    return np.asarray([e.ids for e in self._tok.encode_batch(list(texts))], np.int32)

  def decode(self, ids) -> str:
    """Text of token ids (special tokens dropped; word ends become spaces)."""
    inv = {v: k for k, v in self.vocab.items()}
    skip = {self.bos_id, self.eos_id, self.pad_id}
    text = "".join(inv[int(i)] for i in ids if int(i) not in skip).replace("</w>", " ")
    byte = {c: b for b, c in _bytes_to_unicode().items()}
    byte[" "] = 32  # the word ends just inserted
    return bytes(byte[c] for c in text if c in byte).decode("utf-8", "replace").strip()


def _bytes_to_unicode() -> dict[int, str]:
  """GPT-2's / CLIP's reversible byte -> printable character map of byte-level BPE."""
  bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
  cs, n = bs[:], 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return {b: chr(c) for b, c in zip(bs, cs)}


def load_tokenizer(folder: str) -> CLIPTokenizer:
  """The CLIP tokenizer of a tokenizer folder."""
  return CLIPTokenizer(folder)
