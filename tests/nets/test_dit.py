"""DiT (Peebles & Xie 2023): patchify, adaLN-Zero identity at init, parameter count, CLI."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nets.dit import DiT, DiTBlock, patchify, sincos_pos_embed_2d, unpatchify
from tests.conftest import run_python


def test_patchify_round_trip_and_order():
  x = jax.random.normal(jax.random.key(0), (2, 8, 12, 3))
  tok = patchify(x, 2)
  assert tok.shape == (2, 24, 12)
  np.testing.assert_array_equal(unpatchify(tok, 2, 8, 12), x)
  # token 1 is the patch at rows 0-1, columns 2-3, flattened (row, column, channel)
  np.testing.assert_array_equal(tok[0, 1], np.asarray(x[0, 0:2, 2:4, :]).reshape(-1))
  # tokens are row-major: token 6 (= 12 / 2) starts the second row of patches
  np.testing.assert_array_equal(tok[0, 6], np.asarray(x[0, 2:4, 0:2, :]).reshape(-1))


def test_position_embedding_halves():
  """MAE/DiT 2-D sin-cos: the first half embeds the column, the second the row."""
  e = sincos_pos_embed_2d(16, 3, 5)
  assert e.shape == (15, 16)
  omega = 1.0 / 10000 ** (np.arange(4) / 4.0)
  col, row = 7 % 5, 7 // 5  # token 7
  np.testing.assert_allclose(e[7, :8], np.concatenate([np.sin(col * omega), np.cos(col * omega)]),
                             rtol=1e-6)
  np.testing.assert_allclose(e[7, 8:], np.concatenate([np.sin(row * omega), np.cos(row * omega)]),
                             rtol=1e-6)


def test_adaln_zero_init_is_identity_and_outputs_zero():
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 2))
  t, y = jnp.array([0, 10, 999]), jnp.array([0, 4, 5])
  net = DiT(patch_size=2, hidden_size=32, depth=2, num_heads=4, num_classes=5)
  params = net.init(jax.random.key(1), x, t, y=y)["params"]
  np.testing.assert_array_equal(net.apply({"params": params}, x, t, y=y), np.zeros(x.shape))
  block = DiTBlock(32, 4)
  h = jax.random.normal(jax.random.key(2), (3, 16, 32))
  c = jax.random.normal(jax.random.key(3), (3, 32))
  bp = block.init(jax.random.key(4), h, c)
  np.testing.assert_array_equal(block.apply(bp, h, c), h)  # gates are 0
  # Trained (perturbed) parameters: the output depends on x, t and y.
  noisy = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(5), p.shape), params)
  out = lambda **kw: net.apply({"params": noisy}, **{"x": x, "t": t, "y": y, **kw})
  base = out()
  for change in (dict(x=x + 1.0), dict(t=t + 100), dict(y=jnp.array([5, 5, 5]))):
    assert float(jnp.abs(out(**change) - base).max()) > 1e-3


def test_dit_xl2_parameter_count_is_the_papers():
  """DiT-XL/2 on 32x32x4 latents, 1000 classes, learned sigma: the authors' models.py logs
  675,129,632 parameters, which includes the fixed 256 x 1152 position embedding (a frozen
  nn.Parameter there, a constant here)."""
  net = DiT(patch_size=2, hidden_size=1152, depth=28, num_heads=16, num_classes=1000,
            out_channels=8)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 4)),
                                           jnp.zeros((1,)), y=jnp.zeros((1,), jnp.int32)))
  n = sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))
  assert n + 256 * 1152 == 675_129_632


def test_shape_errors():
  net = DiT(patch_size=3, hidden_size=16, depth=1, num_heads=2)
  with pytest.raises(ValueError, match="not divisible by patch_size"):
    net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), jnp.zeros((1,)))
  with pytest.raises(ValueError, match="needs labels"):
    DiT(hidden_size=16, depth=1, num_heads=2, num_classes=3).init(
        jax.random.key(0), jnp.zeros((1, 8, 8, 1)), jnp.zeros((1,)))


def test_cli_train_and_sample_dit(tmp_path):
  wd = str(tmp_path / "run")
  tiny = ["--config=configs/dit.py", "--config.model.hidden_size=16", "--config.model.depth=1",
          "--config.model.num_heads=2", "--config.diffusion.num_timesteps=50",
          "--config.training.batch_size=16", "--config.training.num_steps=4",
          "--config.training.sample_every=4", "--config.training.ckpt_every=4",
          "--config.training.num_sample_images=10", "--config.sampling.steps=4"]
  run_python(["train.py", *tiny, f"--workdir={wd}"], check=True)
  run_python(["sample.py", *tiny, f"--workdir={wd}", "--guidance_scale=1", "--num=4"], check=True)
  x = np.load(os.path.join(wd, "ddim4_eta1.0_w1.0.npz"))["samples"]
  assert x.shape == (4, 8, 8, 1) and np.all(np.isfinite(x))
