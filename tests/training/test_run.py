"""Config -> run -> checkpoint -> samples in process: tfds through mock_data, corrupt checkpoints."""

import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import ddpm
from genjax.training import run as run_lib
from genjax.training import sampling
from genjax.training.checkpoint import CheckpointError


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


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
  from configs import ddpm_2d
  config = ddpm_2d.get_config()  # the MLP compiles in seconds; the checkpoint path is the same
  config.model.hidden = 16
  config.data.num_points, config.data.num_test_points = 256, 64
  t = config.training
  t.batch_size, t.num_steps, t.log_every, t.sample_every, t.ckpt_every = 8, 4, 2, 0, 2
  t.progress, t.tensorboard = False, False
  wd = str(tmp_path / "run")
  run_lib.train_and_evaluate(config, wd)
  step_dir = os.path.join(wd, "checkpoints", "4")
  # Damage every array file of the latest checkpoint.
  damaged = 0
  for root, _, files in os.walk(step_dir):
    for f in files:
      p = os.path.join(root, f)
      if os.path.getsize(p) > 0 and not f.endswith(".json") and "meta" not in root:
        with open(p, "r+b") as fh:
          fh.truncate(max(os.path.getsize(p) // 3, 1))
        damaged += 1
  assert damaged
  with pytest.raises(CheckpointError, match=r"step 4 .* corrupt"):
    run_lib.restore(config, wd)


def test_load_trained_rebuilds_a_run_from_its_workdir(tmp_path):
  """What a distillation student / ControlNet uses: config.json (with overrides) + checkpoint."""
  from configs import ddpm_2d
  config = ddpm_2d.get_config()
  config.model.hidden = 24  # an override that only config.json remembers
  config.data.num_points, config.data.num_test_points = 256, 64
  t = config.training
  t.batch_size, t.num_steps, t.log_every, t.sample_every, t.ckpt_every = 8, 2, 2, 0, 2
  t.progress, t.tensorboard = False, False
  wd = str(tmp_path / "run")
  trained = run_lib.train_and_evaluate(config, wd)
  loaded_config, run, state = run_lib.load_trained(wd)
  assert loaded_config.model.hidden == 24 and run.method.name == "ddpm"
  assert int(state.step) == 2
  np.testing.assert_array_equal(
      np.concatenate([np.ravel(a) for a in jax.tree.leaves(state.ema_params)]),
      np.concatenate([np.ravel(a) for a in jax.tree.leaves(trained.ema_params)]))
  with pytest.raises(CheckpointError, match="does not exist"):
    run_lib.load_trained(str(tmp_path / "nowhere"))
