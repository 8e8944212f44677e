"""Config -> run -> checkpoint -> samples in process: tfds through mock_data, pretrained runs.

Damaged checkpoints: test_checkpoint.py; the workdir, its lock and config record: test_workdir.py.
"""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import ddpm
from genjax.training import run as run_lib
from genjax.training import sampling
from genjax.training.checkpoint import CheckpointError
from tests.training.runs import leaves


def tiny_config(dataset="digits"):
  config = ddpm.get_config()
  config.data.dataset = dataset
  m = config.model
  m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions = 8, (1, 2), 1, ()
  config.diffusion.num_timesteps = 50
  config.sampling.steps = 3
  t = config.training
  t.batch_size, t.num_steps, t.log_every, t.sample_every, t.ckpt_every = 8, 4, 2, 4, 2
  t.num_sample_images, t.progress, t.tensorboard = 4, False, False
  return config


@pytest.mark.parametrize("dataset,shape", [
    ("mnist", (28, 28, 1)),
    pytest.param("cifar10", (32, 32, 3), marks=pytest.mark.slow),  # RGB + flips; ~1 min
])
def test_tfds_mock_train_and_sample(dataset, shape, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  config = tiny_config(dataset)
  config.data.image_size = 8  # keep the U-Net tiny; the tfds path and the resize are exercised
  config.data.random_flip = dataset == "cifar10"
  wd = str(tmp_path / "run")
  with tfds.testing.mock_data(num_examples=32):
    state = run_lib.train_and_evaluate(config, wd)
    assert int(state.step) == 4
    paths = sampling.sample_to_files(config, wd, wd, num=3, batch=3)
  samples = np.load(paths[1])["samples"]
  assert samples.shape == (3, 8, 8, shape[-1])
  assert np.all(np.isfinite(samples))
  assert os.path.exists(os.path.join(wd, "samples", "step_0000004.png"))


def test_load_trained_rebuilds_a_run_from_its_workdir(trained_2d, tmp_path):
  """What a distillation student / ControlNet uses: config.json (with overrides) + checkpoint."""
  wd, final = trained_2d  # trained with model.hidden=16, an override only config.json remembers
  loaded_config, run, state = run_lib.load_trained(wd)
  assert loaded_config.model.hidden == 16 and run.method.name == "ddpm"
  assert int(state.step) == 4
  for a, b in zip(final, leaves(state)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(CheckpointError, match="does not exist"):
    run_lib.load_trained(str(tmp_path / "nowhere"))
