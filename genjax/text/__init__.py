"""Text for conditional models: the tokenizer of the ``shapes`` captions.

::

  tokenize(list[str], max_len) -> int32 [B, L]   # BOS w_1 .. w_n EOS pad..; pad 0, BOS 1, EOS 2
  detokenize(ids [B, L]) -> list[str]
  vocab_size() -> int                            # ids of the shapes tokenizer
  shapes_tokenizer() -> Tokenizer; Tokenizer(words).tokenize / .detokenize / .encode

The text encoder is ``genjax.nets.text.TextEncoder``.
"""

from genjax.text.tokenizer import BOS_ID
from genjax.text.tokenizer import detokenize
from genjax.text.tokenizer import EOS_ID
from genjax.text.tokenizer import PAD_ID
from genjax.text.tokenizer import shapes_tokenizer
from genjax.text.tokenizer import split_words
from genjax.text.tokenizer import tokenize
from genjax.text.tokenizer import Tokenizer
from genjax.text.tokenizer import UNK_ID
from genjax.text.tokenizer import vocab_size

DEFAULT_MAX_LEN = 32  # the longest shapes caption has 26 words

__all__ = [
    "BOS_ID",
    "DEFAULT_MAX_LEN",
    "detokenize",
    "EOS_ID",
    "PAD_ID",
    "shapes_tokenizer",
    "split_words",
    "tokenize",
    "Tokenizer",
    "UNK_ID",
    "vocab_size",
]
