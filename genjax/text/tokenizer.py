"""A deterministic word-level tokenizer for captions.

Ids: ``0`` pad, ``1`` BOS (start of text), ``2`` EOS (end of text), ``3`` UNK, then the words
of the vocabulary in sorted order (``4, 5, ...``). A caption is lower-cased, a comma becomes a
word of its own, and it is split on whitespace; ``tokenize`` writes ``BOS w_1 ... w_n EOS``
followed by pads. An empty caption (the dropped condition of classifier-free guidance) is
``BOS EOS``.

The EOS id (2) is the largest id at its position only among the special tokens; the text
encoder pools at the *first* EOS token (``genjax.nets.text.TextEncoder``), not at the argmax
of the ids.

Example:
  >>> tok = shapes_tokenizer()
  >>> ids = tok.tokenize(["a small red circle at the top left", ""], max_len=12)
  >>> tok.detokenize(ids)
  ['a small red circle at the top left', '']
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
UNK_ID = 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def split_words(text: str) -> list[str]:
  """Lower-cases ``text``, makes each comma a word, and splits on whitespace."""
  return text.lower().replace(",", " , ").split()


class Tokenizer:
  """A word-level tokenizer over a fixed word list.

  Args:
    words: the vocabulary (distinct words, without spaces); ids follow their sorted order
      after the four special tokens, so the same set of words always gives the same ids.
    allow_unknown: map words outside the vocabulary to UNK (3) instead of raising.
  """

  def __init__(self, words: Sequence[str], allow_unknown: bool = False):
    words = sorted(set(words))
    for w in words:
      if not w or any(c.isspace() for c in w) or w in SPECIAL_TOKENS or w != w.lower():
        raise ValueError(f"vocabulary word {w!r} must be non-empty lower-case text without "
                         "spaces and not a special token.")
    self.words = tuple(words)
    self.id_to_token = SPECIAL_TOKENS + self.words
    self.token_to_id = {t: i for i, t in enumerate(self.id_to_token)}
    self.allow_unknown = allow_unknown

  @property
  def vocab_size(self) -> int:
    """Number of ids, special tokens included."""
    return len(self.id_to_token)

  def encode(self, text: str) -> list[int]:
    """Ids of the words of ``text`` (without BOS/EOS).

    Raises:
      ValueError: a word outside the vocabulary (unless ``allow_unknown``).
    """
    ids = []
    for w in split_words(text):
      i = self.token_to_id.get(w)
      if i is None or i < len(SPECIAL_TOKENS):
        if not self.allow_unknown:
          raise ValueError(f"word {w!r} of caption {text!r} is not in the vocabulary of "
                           f"{len(self.words)} words (e.g. {', '.join(self.words[:8])}, ...).")
        i = UNK_ID
      ids.append(i)
    return ids

  def tokenize(self, texts: Sequence[str], max_len: int) -> np.ndarray:
    """Token ids ``BOS w_1 .. w_n EOS pad ..`` of each text.

    Args:
      texts: a list of captions (a single ``str`` is refused: wrap it in a list).
      max_len: L, the length of every row (>= 2).

    Returns:
      int32 [B, L].

    Raises:
      ValueError: a caption longer than ``max_len - 2`` words (names it and its length), an
        unknown word, or a bad ``max_len``.
    """
    if isinstance(texts, str):
      raise ValueError("tokenize takes a list of captions, got a single string; use [text].")
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 2:
      raise ValueError(f"max_len must be an int >= 2 (room for BOS and EOS); got {max_len!r}.")
    out = np.full((len(texts), int(max_len)), PAD_ID, np.int32)
    for b, text in enumerate(texts):
      if not isinstance(text, str):
        raise ValueError(f"caption {b} is {type(text).__name__}, not a str.")
      ids = self.encode(text)
      if len(ids) + 2 > max_len:
        raise ValueError(f"caption {b} has {len(ids)} words, more than max_len - 2 = "
                         f"{max_len - 2} (BOS and EOS take two of the {max_len} tokens): "
                         f"{text!r}. Use a larger max_len.")
      out[b, 0] = BOS_ID
      out[b, 1:len(ids) + 1] = ids
      out[b, len(ids) + 1] = EOS_ID
    return out

  def detokenize(self, ids) -> list[str]:
    """The texts of token rows ``ids`` [B, L]: the words between BOS and the first EOS.

    Commas are re-attached to the word before them (``"a, b"``), so that ``detokenize``
    inverts ``tokenize`` on captions written that way.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
      raise ValueError(f"detokenize takes ids [B, L]; got shape {ids.shape}.")
    texts = []
    for row in ids.tolist():
      words = []
      for i in row:
        if i == EOS_ID:
          break
        if i in (PAD_ID, BOS_ID):
          continue
        if not 0 <= i < self.vocab_size:
          raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size}).")
        words.append(self.id_to_token[i])
      texts.append(" ".join(words).replace(" ,", ","))
    return texts


@functools.lru_cache(maxsize=None)
def shapes_tokenizer() -> Tokenizer:
  """The tokenizer of the ``shapes`` captions: every word its grammar can produce."""
  from genjax.data import shapes_grammar  # pure Python, no numpy work

  return Tokenizer(shapes_grammar.vocabulary_words())


def tokenize(texts: Sequence[str], max_len: int) -> np.ndarray:
  """``shapes_tokenizer().tokenize(texts, max_len)``: int32 [B, L], pad 0, BOS 1, EOS 2."""
  return shapes_tokenizer().tokenize(texts, max_len)


def detokenize(ids) -> list[str]:
  """``shapes_tokenizer().detokenize(ids)``."""
  return shapes_tokenizer().detokenize(ids)


def vocab_size() -> int:
  """Number of ids of the shapes tokenizer (special tokens included)."""
  return shapes_tokenizer().vocab_size
