"""TextEncoder: shapes, the causal mask, pooling, and parity with transformers' CLIPTextModel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import text
from genjax.nets.text import TextEncoder, pool_positions, quick_gelu

jax.config.update("jax_default_matmul_precision", "highest")

TINY = dict(vocab_size=40, max_len=16, width=32, depth=2, num_heads=4, mlp_dim=48)


def _tokens():
  return text.tokenize(["a small red circle above a large blue square",
                        "a large white cross in the center", ""], 16)


def test_shapes_and_pooled_is_hidden_at_first_eos():
  enc = TextEncoder(**dict(TINY, vocab_size=text.vocab_size()))
  tokens = _tokens()
  params = enc.init(jax.random.key(0), tokens)["params"]
  hidden, pooled = enc.apply({"params": params}, tokens)
  assert hidden.shape == (3, 16, 32) and pooled.shape == (3, 32)
  eos = [list(row).index(text.EOS_ID) for row in tokens]
  np.testing.assert_array_equal(pooled, hidden[np.arange(3), eos])
  np.testing.assert_array_equal(pool_positions(jnp.asarray(tokens)), eos)
  assert eos[2] == 1  # the empty caption is BOS EOS


def test_causal_changing_token_i_changes_nothing_before_i():
  enc = TextEncoder(**dict(TINY, vocab_size=text.vocab_size()))
  tokens = _tokens()
  params = enc.init(jax.random.key(1), tokens)["params"]
  hidden, pooled = enc.apply({"params": params}, tokens)
  for i in (3, 7, 12):
    changed = tokens.copy()
    changed[:, i] = (changed[:, i] + 5) % text.vocab_size()
    h2, p2 = enc.apply({"params": params}, changed)
    np.testing.assert_array_equal(h2[:, :i], hidden[:, :i])
    assert np.abs(np.asarray(h2[:, i]) - np.asarray(hidden[:, i])).max() > 1e-4
  # Pads after EOS never change the pooled feature.
  padded = tokens.copy()
  padded[padded == text.PAD_ID] = 7
  np.testing.assert_array_equal(enc.apply({"params": params}, padded)[1], pooled)


def test_bad_input_is_refused():
  enc = TextEncoder(**dict(TINY, vocab_size=text.vocab_size()))
  with pytest.raises(ValueError, match="exceed the encoder's max_len"):
    enc.init(jax.random.key(0), jnp.zeros((1, 17), jnp.int32))
  with pytest.raises(ValueError, match="integer token ids"):
    enc.init(jax.random.key(0), jnp.zeros((1, 4), jnp.float32))


def test_quick_gelu():
  x = jnp.linspace(-4, 4, 9)
  np.testing.assert_allclose(quick_gelu(x), x / (1 + np.exp(-1.702 * np.asarray(x))), rtol=1e-6)


def clip_state_dict_to_params(sd: dict, depth: int) -> dict:
  """Flax params of :class:`TextEncoder` from a ``CLIPTextModel`` state dict (numpy arrays).

  The mapping the module docstring gives: rename, and transpose linear weights.
  """
  p = "text_model."
  lin = lambda name: {"kernel": sd[name + ".weight"].T, "bias": sd[name + ".bias"]}
  ln = lambda name: {"scale": sd[name + ".weight"], "bias": sd[name + ".bias"]}
  params = {
      "token_embedding": {"embedding": sd[p + "embeddings.token_embedding.weight"]},
      "position_embedding": {"embedding": sd[p + "embeddings.position_embedding.weight"]},
      "final_layer_norm": ln(p + "final_layer_norm"),
  }
  for i in range(depth):
    q = f"{p}encoder.layers.{i}."
    params[f"layers_{i}"] = {
        "layer_norm1": ln(q + "layer_norm1"),
        "self_attn": {n: lin(q + "self_attn." + n) for n in ("q_proj", "k_proj", "v_proj", "out_proj")},
        "layer_norm2": ln(q + "layer_norm2"),
        "mlp": {"fc1": lin(q + "mlp.fc1"), "fc2": lin(q + "mlp.fc2")},
    }
  return params


@pytest.mark.parametrize("eos_token_id,pooling", [(5, "first_eos"), (2, "argmax")])
def test_parity_with_transformers_clip_text_model(eos_token_id, pooling):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.set_num_threads(1)  # a tiny model; extra threads only spin on a loaded machine
  cfg = transformers.CLIPTextConfig(
      vocab_size=TINY["vocab_size"], hidden_size=TINY["width"], intermediate_size=TINY["mlp_dim"],
      num_hidden_layers=TINY["depth"], num_attention_heads=TINY["num_heads"],
      max_position_embeddings=TINY["max_len"], hidden_act="quick_gelu", layer_norm_eps=1e-5,
      eos_token_id=eos_token_id, bos_token_id=1, pad_token_id=0, attention_dropout=0.0)
  torch.manual_seed(0)
  model = transformers.CLIPTextModel(cfg).eval()
  with torch.no_grad():  # random, non-trivial LayerNorm and bias values
    for name, t in model.named_parameters():
      if name.endswith("bias") or "layer_norm" in name:
        t.add_(0.1 * torch.randn_like(t))
  sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()
        if "position_ids" not in k}
  params = clip_state_dict_to_params(sd, TINY["depth"])
  rng = np.random.default_rng(0)
  tokens = rng.integers(3, TINY["vocab_size"], size=(4, 12)).astype(np.int32)
  tokens[:, 0] = 1
  for b, end in enumerate((4, 7, 11, 9)):
    tokens[b, end] = eos_token_id
    tokens[b, end + 1:] = 0
  tokens[3, 2] = eos_token_id  # two EOS: the first one counts
  with torch.no_grad():
    out = model(input_ids=torch.from_numpy(tokens).long())
  enc = TextEncoder(**TINY, pooling=pooling, eos_id=eos_token_id)
  hidden, pooled = enc.apply({"params": params}, jnp.asarray(tokens))
  np.testing.assert_allclose(hidden, out.last_hidden_state.numpy(), atol=1e-5, rtol=0)
  np.testing.assert_allclose(pooled, out.pooler_output.numpy(), atol=1e-5, rtol=0)
