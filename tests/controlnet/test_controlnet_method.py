"""The controlnet method on a tiny trained base: frozen base, trained ControlNet, exact start."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.training import run as run_lib


def _tiny_base_config():
  from configs import ddpm
  c = ddpm.get_config()
  c.model.ch = 8
  c.model.ch_mult = (1, 2)
  c.model.num_res_blocks = 1
  c.model.attn_resolutions = ()
  c.diffusion.num_timesteps = 20
  c.sampling.steps = 4
  t = c.training
  t.batch_size, t.num_steps, t.log_every, t.sample_every, t.ckpt_every = 16, 3, 3, 0, 3
  t.num_sample_images, t.progress, t.tensorboard = 4, False, False
  return c


def tiny_controlnet_config(base_workdir, steps=3):
  from configs import controlnet_digits_edges
  c = controlnet_digits_edges.get_config()
  c.controlnet.base_workdir = base_workdir
  c.controlnet.hint_channels = (4, 8)
  c.sampling.steps = 4
  t = c.training
  t.batch_size, t.num_steps, t.log_every, t.sample_every, t.ckpt_every = 16, steps, 1, 0, steps
  t.num_sample_images, t.progress, t.tensorboard = 4, False, False
  c.optim.warmup_steps = 0
  return c


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("cn") / "base")
  state = run_lib.train_and_evaluate(_tiny_base_config(), wd)
  return wd, state


def test_train_steps_change_only_controlnet_and_start_at_the_base(base_run, tmp_path):
  base_wd, base_state = base_run
  cfg = tiny_controlnet_config(base_wd)
  run = run_lib.build_run(cfg)
  method = run.method
  # 1. At initialisation, ControlNet + base samples exactly what the base samples.
  params, model_state = method.init(jax.random.key(0), run.iterator.batch_at(0))
  b_run = run_lib.build_run(_tiny_base_config())
  ours = jax.jit(lambda p, k: method.sample(p, k, 4))(params, jax.random.key(3))
  theirs = jax.jit(lambda p, k: b_run.method.sample(p, k, 4))(base_state.ema_params,
                                                              jax.random.key(3))
  # Equal to float32 rounding: the two programs differ (ControlNet adds its zero residuals), so
  # XLA may fuse the sampler's update differently; a non-zero residual would move them by far more.
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=0, atol=1e-5)
  # 2. Train: the base is bitwise unchanged, ControlNet moved, only it has optimizer state.
  wd = str(tmp_path / "cn")
  state = run_lib.train_and_evaluate(cfg, wd)
  for a, b in zip(jax.tree.leaves(state.model_state["base"]),
                  jax.tree.leaves(base_state.ema_params)):
    np.testing.assert_array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))
  assert "zero_conv_mid" in state.params and "up_0_block_0" not in state.params
  assert float(jnp.abs(state.params["zero_conv_mid"]["kernel"]).sum()) > 0
  opt_leaves = sum(np.size(x) for x in jax.tree.leaves(state.opt_state))
  n_params = sum(np.size(x) for x in jax.tree.leaves(state.params))
  assert opt_leaves < 2 * n_params + 10  # Adam's two moments of ControlNet's params, nothing else
  rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
  assert rows[-1]["step"] == 3 and np.isfinite(rows[-1]["loss"])
  assert rows[-1]["train_step_traces"] == 1  # compiled once (the grids: the CLI test)


def test_mismatched_or_missing_base_is_refused_in_one_line(base_run, tmp_path):
  base_wd, _ = base_run
  cfg = tiny_controlnet_config(base_wd)
  cfg.data.image_size = 16
  with pytest.raises(ValueError, match=r"trained on shape \(8, 8, 1\).*\(16, 16, 1\)"):
    run_lib.build_run(cfg)
  cfg = tiny_controlnet_config(str(tmp_path / "nothing"))
  with pytest.raises(ValueError, match="does not exist; train the base first"):
    run_lib.build_run(cfg)
  cfg = tiny_controlnet_config("")
  with pytest.raises(ValueError, match="base_workdir is required"):
    run_lib.build_run(cfg)
  cfg = tiny_controlnet_config(base_wd)
  cfg.controlnet.condition_args = {"threshold": 0.3}
  with pytest.raises(ValueError, match=r"\['threshold'\] are not arguments of condition 'edges'"):
    run_lib.build_run(cfg)


def test_a_changed_base_is_refused_on_restore(base_run):
  """Sampling applies the base as read from its workdir now: a ControlNet checkpoint that
  recorded another base in model_state is refused in one line."""
  import types

  from genjax.training.checkpoint import CheckpointMismatchError
  base_wd, base_state = base_run
  method = run_lib.build_run(tiny_controlnet_config(base_wd)).method
  same = jax.tree.map(np.asarray, base_state.ema_params)
  method.check_restored(types.SimpleNamespace(model_state={"base": same}))
  other = jax.tree.map(lambda a: a + 1e-3, same)
  with pytest.raises(CheckpointMismatchError,
                     match=f"The base run at {base_wd} is not the one this run was trained with"):
    method.check_restored(types.SimpleNamespace(model_state={"base": other}))
