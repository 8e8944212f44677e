"""genjax.text: the shapes tokenizer."""

import numpy as np
import pytest

from genjax import text
from genjax.data import shapes
from genjax.text import Tokenizer


def test_round_trip_on_generated_captions_and_layout():
  caps = shapes.captions(np.arange(200))
  ids = text.tokenize(caps, text.DEFAULT_MAX_LEN)
  assert ids.dtype == np.int32 and ids.shape == (200, text.DEFAULT_MAX_LEN)
  assert text.detokenize(ids) == caps
  assert (ids[:, 0] == text.BOS_ID).all()
  for row, cap in zip(ids, caps):
    n = len(text.split_words(cap))
    assert row[n + 1] == text.EOS_ID and (row[n + 2:] == text.PAD_ID).all()
    assert (row[1:n + 1] > text.UNK_ID).all()


def test_empty_caption_is_bos_eos():
  ids = text.tokenize(["", "  "], 4)
  np.testing.assert_array_equal(ids, [[1, 2, 0, 0], [1, 2, 0, 0]])
  assert text.detokenize(ids) == ["", ""]


def test_vocabulary_is_deterministic():
  tok = text.shapes_tokenizer()
  assert Tokenizer(reversed(tok.words)).id_to_token == tok.id_to_token
  assert tok.id_to_token[:4] == ("<pad>", "<bos>", "<eos>", "<unk>")
  assert text.vocab_size() == 4 + len(tok.words)
  assert text.tokenize(["a red"], 4).tolist() == [[1, tok.token_to_id["a"], tok.token_to_id["red"], 2]]


def test_errors():
  long = ("a small red circle at the top left, a large blue square at the top right and a small "
          "white cross at the bottom right")  # the longest caption form
  assert len(text.split_words(long)) == 26
  text.tokenize([long], 28)
  with pytest.raises(ValueError, match="26 words, more than max_len - 2 = 25"):
    text.tokenize([long], 27)
  with pytest.raises(ValueError, match="'zebra' .* not in the vocabulary"):
    text.tokenize(["a zebra"], 8)
  with pytest.raises(ValueError, match="single string"):
    text.tokenize("a red circle", 8)
  with pytest.raises(ValueError, match="max_len must be an int >= 2"):
    text.tokenize(["a"], 1)
  unk = Tokenizer(["a", "b"], allow_unknown=True)
  assert unk.tokenize(["a zebra"], 4).tolist() == [[1, 4, text.UNK_ID, 2]]
