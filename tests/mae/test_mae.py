"""MAE (He et al. 2022): masking per example, per-patch targets against the authors' torch code,
the loss ignores visible patches, and the method trains end to end through the CLI."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mae as mae_config
from genjax.mae import masking
from genjax.mae.method import build_mae_model
from genjax.types import DataSpec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("n,ratio", [(16, 0.75), (64, 0.75), (16, 0.5), (49, 0.6)])
def test_random_masking_masks_the_stated_fraction_per_example(n, ratio):
  ids_keep, mask, ids_restore = jax.jit(masking.random_masking, static_argnums=(1, 2, 3))(
      jax.random.key(0), 32, n, ratio)
  n_vis = int(n * (1 - ratio))
  mask = np.asarray(mask)
  np.testing.assert_array_equal(mask.sum(1), n - n_vis)         # exact count, every example
  keep = np.asarray(ids_keep)
  assert keep.shape == (32, n_vis)
  for b in range(32):
    assert len(set(keep[b])) == n_vis                             # without replacement
    np.testing.assert_array_equal(mask[b, keep[b]], 0.0)         # kept = visible
  # ids_restore un-shuffles: position j holds its rank in the visible-first order
  restore = np.asarray(ids_restore)
  np.testing.assert_array_equal(mask, (restore >= n_vis).astype(np.float32))
  # the masked set differs between examples (random per example, not one shared mask)
  assert len({tuple(m) for m in mask}) > 1


def test_masking_is_uniform_over_positions():
  _, mask, _ = masking.random_masking(jax.random.key(1), 4000, 16, 0.75)
  freq = np.asarray(mask).mean(0)
  np.testing.assert_allclose(freq, 0.75, atol=0.03)


def test_normalized_targets_match_the_authors_torch_code():
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).normal(size=(3, 5, 12))
  ours = np.asarray(masking.normalize_patch_targets(jnp.asarray(x, jnp.float64)
                                                    if jax.config.jax_enable_x64 else
                                                    jnp.asarray(x, jnp.float32)))
  t = torch.tensor(x)
  mean = t.mean(dim=-1, keepdim=True)
  var = t.var(dim=-1, keepdim=True)                     # models_mae.forward_loss
  ref = ((t - mean) / (var + 1.e-6) ** .5).numpy()
  np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
  assert ours.dtype == np.float32 or jax.config.jax_enable_x64


def test_masked_patch_loss_closed_form():
  rng = np.random.default_rng(1)
  pred, target = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 3))
  mask = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], np.float32)
  per = ((pred - target) ** 2).mean(-1)
  expected = (per * mask).sum() / mask.sum()
  got = masking.masked_patch_loss(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32),
                                  jnp.asarray(mask))
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def _small_model():
  config = mae_config.get_config()
  config.mae.enc_dim, config.mae.enc_depth, config.mae.dec_dim, config.mae.dec_depth = 16, 1, 8, 1
  config.mae.enc_heads = config.mae.dec_heads = 2
  spec = DataSpec((8, 8, 1), 10)
  model, method, cfg = build_mae_model(config, spec)
  x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1), minval=-1, maxval=1)
  params, _ = method.init(jax.random.key(1), {"x": x})
  return model, method, params, x


def test_loss_ignores_visible_patches_changes_in_masked_ones():
  model, method, params, x = _small_model()
  key = jax.random.key(3)
  _, _, mask = model.forward(params, x, key)  # the mask this key draws
  from genjax.nets.dit import patchify, unpatchify
  patches = patchify(x, 2)
  m = np.asarray(mask)[..., None]
  noise = jax.random.normal(jax.random.key(9), patches.shape)
  # The encoder reads visible patches, so the loss may depend on them through the prediction.
  # What it must not do is score them: with the prediction held fixed, a change of the
  # targets on visible patches leaves the loss unchanged, a change on masked ones does not.
  pred, target, _ = model.forward(params, x, key)
  base = masking.masked_patch_loss(pred, target, mask)
  vis_changed = target + noise * (1 - m)
  masked_changed = target + noise * m
  assert float(masking.masked_patch_loss(pred, vis_changed, mask)) == pytest.approx(float(base), abs=0)
  assert abs(float(masking.masked_patch_loss(pred, masked_changed, mask)) - float(base)) > 1e-3
  # End to end through the model: with the encoder's input unchanged (the same visible
  # patches), changing only what the masked patches hold changes the loss; the gradient of the
  # loss with respect to the target pixels of visible patches is exactly zero.
  x_masked_changed = unpatchify(patches + noise * m, 2, 8, 8)
  assert abs(float(model.loss(params, x_masked_changed, key)) - float(model.loss(params, x, key))) > 1e-4
  g = jax.grad(lambda t: masking.masked_patch_loss(pred, t, mask))(target)
  np.testing.assert_array_equal(np.asarray(g) * (1 - m), 0.0)
  assert np.abs(np.asarray(g) * m).sum() > 0


def test_encoder_sees_only_visible_patches():
  model, method, params, x = _small_model()
  key = jax.random.key(4)
  from genjax.nets.dit import patchify, unpatchify
  _, _, mask = model.forward(params, x, key)
  m = np.asarray(mask)[..., None]
  patches = patchify(x, 2)
  x2 = unpatchify(patches + 5.0 * m, 2, 8, 8)          # change only masked patches
  p1, _, _ = model.forward(params, x, key)
  p2, _, _ = model.forward(params, x2, key)
  np.testing.assert_allclose(np.asarray(p1), np.asarray(p2), atol=1e-6)   # prediction unchanged


@pytest.mark.slow
def test_mae_trains_through_the_cli(tmp_path):
  wd = str(tmp_path / "mae")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  small = ["--config.mae.enc_dim=16", "--config.mae.enc_depth=1", "--config.mae.dec_dim=8",
           "--config.mae.dec_depth=1", "--config.mae.enc_heads=2", "--config.mae.dec_heads=2",
           "--config.training.progress=False"]
  r = subprocess.run([sys.executable, "train.py", "--config=configs/mae.py", f"--workdir={wd}",
                      "--config.training.num_steps=3", "--config.training.ckpt_every=3",
                      "--config.training.batch_size=16"] + small,
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  r = subprocess.run([sys.executable, "sample.py", "--config=configs/mae.py", f"--workdir={wd}",
                      "--eval=recon", "--num=16"] + small[:-1],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert os.path.exists(os.path.join(wd, "mae_recon.png"))
