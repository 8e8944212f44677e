"""diffusers' steps_offset on the leading grid, through the sampling core."""

import numpy as np
import pytest

from genjax.sampling import ancestral, registry
from genjax.sampling.catalog import SamplingConfig
from genjax.sampling.schedules import make_schedule


def test_leading_grid_with_offset():
  np.testing.assert_array_equal(ancestral.ddim_timesteps(1000, 5, "leading", steps_offset=1),
                                [801, 601, 401, 201, 1])
  np.testing.assert_array_equal(ancestral.ddim_timesteps(1000, 5, "leading"),
                                [800, 600, 400, 200, 0])
  with pytest.raises(ValueError, match="spacing='leading' only"):
    ancestral.ddim_timesteps(1000, 5, "trailing", steps_offset=1)
  with pytest.raises(ValueError, match=r"T // S = 200"):
    ancestral.ddim_timesteps(1000, 5, "leading", steps_offset=200)


def test_matches_diffusers_timesteps():
  diffusers = pytest.importorskip("diffusers")
  s = diffusers.DDIMScheduler(steps_offset=1)
  s.set_timesteps(7)
  np.testing.assert_array_equal(ancestral.ddim_timesteps(1000, 7, "leading", steps_offset=1),
                                s.timesteps.numpy())


def test_validate_names_the_samplers_that_take_an_offset():
  m = registry.Model(process=make_schedule(np.linspace(1e-4, 0.02, 100)),
                     model_fn=lambda x, t, c: x)
  registry.validate(SamplingConfig(sampler="ddim", spacing="leading", steps_offset=1), m)
  registry.validate(SamplingConfig(sampler="pndm", steps_offset=1), m)
  with pytest.raises(ValueError, match="not of 'ddpm'"):
    registry.validate(SamplingConfig(sampler="ddpm", steps_offset=1), m)
  with pytest.raises(ValueError, match="spacing=leading"):
    registry.validate(SamplingConfig(sampler="ddim", steps_offset=1), m)
