"""DiT checkpoints -> genjax DiT: the authors' layout (against their model, written out in
``_dit_reference.py``) and diffusers' DiTTransformer2DModel, at tiny sizes, float32."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from genjax.nets.dit import DiT  # noqa: E402
from genjax.pretrained import convert as cv, dit  # noqa: E402
from genjax.pretrained.io import PretrainedError  # noqa: E402


def _perturb(m, seed=0):
  torch.manual_seed(seed)
  with torch.no_grad():  # adaLN-Zero starts at zero: make every layer matter
    for p in m.parameters():
      if p.requires_grad:
        p.add_(0.02 * torch.randn_like(p))
  return m.eval()


def _inputs(c=4, size=8, b=2, num_classes=3):
  rng = np.random.RandomState(0)
  return (rng.randn(b, c, size, size).astype(np.float32), np.array([7, 640]),
          np.array([1, num_classes]))  # a class and the null label


def _genjax(kw, params, x, t, y):
  out = jax.jit(DiT(**kw).apply)({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)),
                                 jnp.asarray(t), jnp.asarray(y))
  return np.asarray(out).transpose(0, 3, 1, 2)


def test_original_checkpoint_parity_and_round_trip(tmp_path):
  from tests.pretrained._dit_reference import DiT as RefDiT
  m = _perturb(RefDiT(input_size=8, patch_size=2, in_channels=4, hidden_size=384, depth=2,
                      num_heads=6, num_classes=3))
  path = str(tmp_path / "DiT-tiny.pt")
  torch.save(m.state_dict(), path)
  kw, shape, params = dit.load_dit(path)
  assert kw["num_heads"] == 6 and kw["out_channels"] == 8 and shape == (8, 8, 4)
  x, t, y = _inputs()
  with torch.no_grad():
    ref = m(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()
  out = _genjax(kw, params, x, t, y)
  assert np.abs(ref).max() > 1.0
  np.testing.assert_array_less(np.abs(out - ref).max(), 1e-5)
  # Export in the same layout (safetensors, no torch needed) and back: bitwise.
  back = dit.export_original(str(tmp_path / "rt.safetensors"), kw, shape, params)
  kw2, _, params2 = dit.load_dit(back)
  assert kw2 == kw
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params),
                                                  jax.tree.leaves(params2)))
  # A .pt that is not DiT: named.
  torch.save({"conv.weight": torch.zeros(2)}, str(tmp_path / "other.pt"))
  with pytest.raises(PretrainedError, match="missing key 'x_embedder.proj.weight'"):
    dit.load_dit(str(tmp_path / "other.pt"))
  sd = {k: v.clone() for k, v in m.state_dict().items()}
  sd["pos_embed"] += 1
  torch.save(sd, str(tmp_path / "bad_pos.pt"))
  with pytest.raises(PretrainedError, match="'pos_embed' is not DiT's fixed"):
    dit.load_dit(str(tmp_path / "bad_pos.pt"))


@pytest.mark.slow
def test_diffusers_dit_parity(tmp_path):
  diffusers = pytest.importorskip("diffusers")
  m = diffusers.DiTTransformer2DModel(num_attention_heads=4, attention_head_dim=16,
                                      in_channels=4, out_channels=8, num_layers=2,
                                      sample_size=8, patch_size=2, num_embeds_ada_norm=3)
  m = _perturb(m)
  with torch.no_grad():  # the published conversion copies one embedder into every block
    for blk in m.transformer_blocks[1:]:
      blk.norm1.emb.load_state_dict(m.transformer_blocks[0].norm1.emb.state_dict())
  folder = str(tmp_path / "dit")
  m.save_pretrained(folder)
  kw, shape, params = dit.load_dit(folder)
  assert kw["temb_freq_shift"] == 1.0 and kw["mlp_norm_eps"] == 1e-5
  x, t, y = _inputs()
  with torch.no_grad():
    ref = m(torch.from_numpy(x), timestep=torch.from_numpy(t),
            class_labels=torch.from_numpy(y)).sample.numpy()
  out = _genjax(kw, params, x, t, y)
  assert np.abs(ref).max() > 1.0
  np.testing.assert_array_less(np.abs(out - ref).max(), 1e-5)
  # Without the two options the outputs differ: they are needed.
  plain = dict(kw, temb_freq_shift=0.0, mlp_norm_eps=1e-6)
  assert np.abs(_genjax(plain, params, x, t, y) - ref).max() > 1e-4
  # Per-block embedders that differ cannot load into one embedder: named.
  with torch.no_grad():
    m.transformer_blocks[1].norm1.emb.class_embedder.embedding_table.weight.add_(1.0)
  m.save_pretrained(folder)
  with pytest.raises(PretrainedError, match="transformer_blocks.1.norm1.emb.class_embedder"):
    dit.load_dit(folder)
  cfg = json.load(open(os.path.join(folder, "config.json")))
  cfg["num_layers"] = 3
  json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))
  with pytest.raises(PretrainedError, match="missing key 'transformer_blocks.2"):
    dit.load_dit(folder)


def test_dit_options_default_to_the_authors_numerics():
  kw = dict(patch_size=2, hidden_size=32, depth=1, num_heads=2, num_classes=2)
  x, t, y = _inputs(size=4, num_classes=2)
  xj = jnp.asarray(x.transpose(0, 2, 3, 1))
  p = DiT(**kw).init(jax.random.key(0), xj, jnp.asarray(t), jnp.asarray(y))["params"]
  p = jax.tree.map(lambda a: a + 0.1, p)
  a = _genjax(kw, p, x, t, y)
  b = _genjax(dict(kw, temb_freq_shift=0.0, mlp_norm_eps=1e-6), p, x, t, y)
  assert np.array_equal(a, b)
  assert set(cv.flatten(p)) == set(cv.flatten(dit.expected_params(kw, (4, 4, 4))))
