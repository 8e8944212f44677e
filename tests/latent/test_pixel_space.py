"""``ldm.first_stage_workdir = "pixels"``: f = 1 pixel-space diffusion through the second-stage
code (the f = 1 row of the pixel-against-latent comparison)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ldm_digits
from genjax.latent import ldm
from genjax.types import DataSpec

SPEC = DataSpec(shape=(8, 8, 1), num_classes=10, kind="image")


def _config(**ldm_fields):
  config = ldm_digits.get_config()
  config.ldm.first_stage_workdir = "pixels"
  for k, v in ldm_fields.items():
    config.ldm[k] = v
  config.model.ch = 8
  config.model.num_res_blocks = 1
  config.model.attn_resolutions = ()
  config.model.ch_mult = (1, 2)
  config.diffusion.num_timesteps = 50
  config.sampling.steps = 3
  return config


def test_pixel_space_is_the_identity_first_stage():
  fs = ldm.pixel_space(SPEC)
  x = jnp.linspace(-1, 1, 2 * 8 * 8).reshape(2, 8, 8, 1)
  assert fs.factor == 1 and fs.latent_shape == (8, 8, 1)
  np.testing.assert_array_equal(fs.encode({}, x, jax.random.key(0)), x)
  np.testing.assert_array_equal(fs.decode({}, x), x)
  cfg = ldm.LDMConfig(first_stage_workdir="pixels")
  _, params, scale = ldm.load_first_stage(cfg, SPEC)
  assert params == {} and scale == 1.0


def test_pixel_space_ldm_trains_and_samples_images():
  method = ldm.build_ldm(_config(), SPEC)
  batch = {"x": jax.random.uniform(jax.random.key(0), (4, 8, 8, 1), minval=-1, maxval=1),
           "label": jnp.arange(4) % 10}
  params, _ = method.init(jax.random.key(1), batch)
  loss, metrics = method.loss(params, batch, jax.random.key(2))
  assert np.isfinite(float(loss))
  np.testing.assert_allclose(float(metrics["latent_std"]), float(jnp.std(batch["x"])), rtol=1e-6)
  x = method.sample(params, jax.random.key(3), 3)
  assert x.shape == (3, 8, 8, 1) and bool(jnp.all(jnp.abs(x) <= 1.0))


def test_pixel_space_refuses_another_factor():
  with pytest.raises(ValueError, match="'pixels' is f=1"):
    ldm.load_first_stage(ldm.LDMConfig(first_stage_workdir="pixels", first_stage_factor=4),
                         SPEC)
