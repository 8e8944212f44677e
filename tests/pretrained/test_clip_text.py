"""transformers CLIPTextModel + CLIP BPE tokenizer -> genjax TextEncoder: parity at a tiny size,
and the tokenizer against transformers' own CLIPTokenizer (slow) and CLIPTokenizerFast."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from genjax.nets.text import TextEncoder  # noqa: E402
from genjax.pretrained import clip_text  # noqa: E402
from genjax.pretrained.io import PretrainedError  # noqa: E402

WORDS = ["a", "red", "circle", "small", "square", "the", "top", "left", "of", "blue"]
TEXTS = ["a small red circle", "The  BLUE square,\tat the top-left!", "", "unknown words 42",
         "red " * 20]


def _bytes_to_unicode():
  bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
  cs, n = bs[:], 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return [chr(c) for c in cs]


def _write_tokenizer(folder):
  """A small CLIP vocabulary: every byte, every byte + </w>, merges spelling WORDS, specials."""
  os.makedirs(folder, exist_ok=True)
  chars = _bytes_to_unicode()
  vocab = chars + [c + "</w>" for c in chars]
  merges = []
  for w in WORDS:
    parts = list(w[:-1]) + [w[-1] + "</w>"]
    while len(parts) > 1:
      m = (parts[0], parts[1])
      if m not in merges:
        merges.append(m)
        vocab.append(m[0] + m[1])
      parts = [m[0] + m[1]] + parts[2:]
  vocab += ["<|startoftext|>", "<|endoftext|>"]
  vocab = list(dict.fromkeys(vocab))
  json.dump({t: i for i, t in enumerate(vocab)}, open(os.path.join(folder, "vocab.json"), "w"))
  with open(os.path.join(folder, "merges.txt"), "w") as f:
    f.write("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
  json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
             "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
            open(os.path.join(folder, "special_tokens_map.json"), "w"))
  json.dump({"model_max_length": 16}, open(os.path.join(folder, "tokenizer_config.json"), "w"))
  return len(vocab)


def test_tokenizer_matches_transformers(tmp_path):
  folder = str(tmp_path / "tokenizer")
  _write_tokenizer(folder)
  ours = clip_text.load_tokenizer(folder)
  for cls in (transformers.CLIPTokenizer, transformers.CLIPTokenizerFast):
    ref = cls.from_pretrained(folder)
    want = ref(TEXTS, padding="max_length", max_length=16, truncation=True)["input_ids"]
    np.testing.assert_array_equal(ours(TEXTS, 16), np.asarray(want), err_msg=cls.__name__)
  assert ours(["a small red circle"]).shape == (1, 16)  # model_max_length
  assert ours.decode(ours(["a small red circle"])[0]) == "a small red circle"
  os.remove(os.path.join(folder, "merges.txt"))
  with pytest.raises(PretrainedError, match="no merges.txt"):
    clip_text.load_tokenizer(folder)


@pytest.mark.parametrize("legacy_eos", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_text_encoder_parity(tmp_path, legacy_eos):
  tok_dir = str(tmp_path / "tokenizer")
  vocab_size = _write_tokenizer(tok_dir)
  tok = clip_text.load_tokenizer(tok_dir)
  cfg = transformers.CLIPTextConfig(
      vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
      num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
      bos_token_id=tok.bos_id, eos_token_id=2 if legacy_eos else tok.eos_id, pad_token_id=1)
  torch.manual_seed(0)
  m = transformers.CLIPTextModel(cfg).eval()
  folder = str(tmp_path / "text_encoder")
  m.save_pretrained(folder)
  kw, params = clip_text.load_clip_text(folder)
  assert kw["pooling"] == ("argmax" if legacy_eos else "first_eos")
  ids = tok(TEXTS, 16)
  with torch.no_grad():
    ref = m(input_ids=torch.from_numpy(ids.astype(np.int64)))
  hidden, pooled = jax.jit(TextEncoder(**kw).apply)({"params": params}, jnp.asarray(ids))
  np.testing.assert_array_less(np.abs(np.asarray(hidden) - ref.last_hidden_state.numpy()).max(),
                               1e-5)
  np.testing.assert_array_less(np.abs(np.asarray(pooled) - ref.pooler_output.numpy()).max(), 1e-5)
  # A config that disagrees with the weights is named.
  c = json.load(open(os.path.join(folder, "config.json")))
  c["intermediate_size"] = 48
  json.dump(c, open(os.path.join(folder, "config.json"), "w"))
  with pytest.raises(PretrainedError, match=r"mlp.fc1.weight' has shape \[64, 32\]"):
    clip_text.load_clip_text(folder)
