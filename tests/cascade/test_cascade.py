"""Cascade stages: the training condition, sampling with and without a stage below, a mismatched
stage below refused in one line, and (slow) the whole chain through the command line."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cascade_digits_base, cascade_digits_sr16, cascade_digits_sr32
from genjax.cascade import method as cm
from genjax.types import DataSpec
from tests.conftest import run_python

TINY = ["--config.model.ch=4", "--config.model.ch_mult=(1,)", "--config.model.attn_resolutions=()",
        "--config.diffusion.num_timesteps=20", "--config.training.batch_size=8",
        "--config.training.log_every=2", "--config.training.sample_every=0",
        "--config.training.ckpt_every=2", "--config.training.num_steps=2",
        "--config.training.progress=False", "--config.sampling.steps=2"]


def _tiny(config):
  config.model.ch = 4
  config.model.ch_mult = (1,)
  config.model.attn_resolutions = ()
  config.diffusion.num_timesteps = 20
  config.sampling.steps = 2
  if config.cascade.low_size:
    config.cascade.max_aug_level = 10
    config.cascade.sample_aug_level = 3
  return config


def test_sr_stage_trains_on_corrupted_conditions_and_super_resolves_given_images():
  config = _tiny(cascade_digits_sr16.get_config())
  config.cascade.lower_workdir = ""          # no stage below: held-out low-res images
  config.cascade.max_aug_level = 10
  config.cascade.sample_aug_level = 0
  method = cm.build_cascade(config, DataSpec((16, 16, 1), 10))
  x = jax.random.uniform(jax.random.key(0), (4, 16, 16, 1), minval=-1, maxval=1)
  params, _ = method.init(jax.random.key(1), {"x": x})
  assert params["conv_in"]["kernel"].shape[2] == 2     # x_t and the upsampled condition
  assert params["conv_out"]["kernel"].shape[3] == 1    # out_channels = C
  assert "aug_dense0" in params
  loss, metrics = jax.jit(method.loss)(params, {"x": x, "label": jnp.zeros(4, jnp.int32)},
                                       jax.random.key(2))
  assert np.isfinite(float(loss))
  low = jax.random.uniform(jax.random.key(3), (3, 8, 8, 1), minval=-1, maxval=1)
  stage = cm.build_stage(config, DataSpec((16, 16, 1), 10))
  out = jax.jit(lambda p, k: stage.sample_stages(p, k, 3, low=low))(params, jax.random.key(4))
  assert [o.shape for o in out] == [(3, 8, 8, 1), (3, 16, 16, 1)]
  assert np.array_equal(np.asarray(out[0]), np.asarray(low))
  assert np.all(np.abs(np.asarray(out[1])) <= 1.0)
  assert method.sample_tag.endswith("_gaussian0")


def test_bad_settings_fail_before_work():
  spec = DataSpec((16, 16, 1), 10)
  for field, value, match in (("low_size", 16, "below the data's size"),
                              ("augmentation", "truncated", "set cascade.lower_workdir"),
                              ("sample_aug_level", 2000, "levels 0..T")):
    config = _tiny(cascade_digits_sr16.get_config())
    config.cascade.lower_workdir = ""
    config.cascade[field] = value
    with pytest.raises(ValueError, match=match):
      cm.build_cascade(config, spec)
  config = _tiny(cascade_digits_base.get_config())
  config.cascade.sample_aug_level = 3
  with pytest.raises(ValueError, match="super-resolution stage"):
    cm.build_cascade(config, DataSpec((8, 8, 1), 10))


def test_a_mismatched_stage_below_is_refused_in_one_line(tmp_path):
  """The stage below is checked from its config record, before any checkpoint is read."""
  base = tmp_path / "base"
  base.mkdir()
  (base / "config.json").write_text(json.dumps(cascade_digits_base.get_config().to_dict()))
  config = _tiny(cascade_digits_sr32.get_config())      # wants a 16x16 stage below
  config.cascade.lower_workdir = str(base)
  with pytest.raises(ValueError) as e:
    cm.build_cascade(config, DataSpec((32, 32, 1), 10))
  msg = str(e.value)
  assert "makes 8x8x1 images" in msg and "16x16x1" in msg and "\n" not in msg
  from configs import ddpm
  (base / "config.json").write_text(json.dumps(ddpm.get_config().to_dict()))
  config = _tiny(cascade_digits_sr16.get_config())
  config.cascade.lower_workdir = str(base)
  with pytest.raises(ValueError, match="holds a 'ddpm' run, not a cascade stage"):
    cm.build_cascade(config, DataSpec((16, 16, 1), 10))
  from genjax.training.checkpoint import CheckpointError
  config.cascade.lower_workdir = str(tmp_path / "missing")
  with pytest.raises(CheckpointError, match="no trained run"):
    cm.build_cascade(config, DataSpec((16, 16, 1), 10))


@pytest.mark.slow
def test_chain_end_to_end_through_the_cli(tmp_path):
  b, s = str(tmp_path / "b"), str(tmp_path / "s16")
  run_python(["train.py", "--config=configs/cascade_digits_base.py", *TINY, f"--workdir={b}"],
             check=True)
  sr = ["--config=configs/cascade_digits_sr16.py", *TINY, f"--config.cascade.lower_workdir={b}",
        "--config.cascade.max_aug_level=10", "--config.cascade.sample_aug_level=3"]
  run_python(["train.py", *sr, f"--workdir={s}"], check=True)
  run_python(["sample.py", *sr, f"--workdir={s}", "--num=6", "--batch=4"], check=True)
  npz = np.load(os.path.join(s, "ddim2_eta1.0_gaussian3.npz"))
  assert npz["stage0"].shape == (6, 8, 8, 1) and npz["stage1"].shape == (6, 16, 16, 1)
  assert np.array_equal(npz["samples"], npz["stage1"])
  assert os.path.exists(os.path.join(s, "ddim2_eta1.0_gaussian3_stages.png"))
  # Truncated: the stage below stops at level 3 and its z_3 is the condition.
  run_python(["sample.py", *sr, "--config.cascade.augmentation=truncated", f"--workdir={s}",
              "--num=4", f"--out={tmp_path / 'trunc'}"], check=True)
  assert os.path.exists(tmp_path / "trunc" / "ddim2_eta1.0_truncated3_stages.png")
  # A stage below of the wrong size: one line, exit status 1, before any training.
  bad = run_python(["train.py", "--config=configs/cascade_digits_sr32.py", *TINY,
                    "--config.cascade.max_aug_level=10", f"--config.cascade.lower_workdir={b}",
                    "--config.cascade.sample_aug_level=3", f"--workdir={tmp_path / 'bad'}"])
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith("error: cascade.lower_workdir=")
