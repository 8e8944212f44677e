"""The generic trainer: one compile, exact resume, the non-finite guard, clear errors."""

import json

import jax
import numpy as np
import pytest

from genjax.data import BatchIterator
from genjax.training import trainer
from genjax.training.checkpoint import Checkpointer
from genjax.training.config import OptimConfig, TrainConfig
from tests.training.toy import toy_dataset, toy_method


def _train(workdir, num_steps, ds=None, method=None, **kw):
  ds = ds or toy_dataset()
  method = method or toy_method()
  cfg = TrainConfig(batch_size=32, num_steps=num_steps, log_every=10, sample_every=0,
                    ckpt_every=kw.pop("ckpt_every", 20), keep_checkpoints=2, progress=False,
                    tensorboard=False, ema_decay=0.9, **kw.pop("train_cfg", {}))
  optim = OptimConfig(learning_rate=1e-2, grad_clip=1.0)
  it = BatchIterator(ds.train, cfg.batch_size, seed=0)
  return trainer.train(method, ds, it, cfg, optim, str(workdir), seed=3, **kw)


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(
      (state.params, state.ema_params, state.opt_state, state.step))]


def test_trains_logs_and_compiles_once(tmp_path):
  state = _train(tmp_path, 60)
  assert int(state.step) == 60
  rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
  assert rows[-1]["loss"] < rows[0]["loss"]
  assert all(r["train_step_traces"] == 1 for r in rows), "train step was retraced"
  assert Checkpointer(str(tmp_path / "checkpoints")).all_steps() == [40, 60]  # keep last 2
  assert (tmp_path / "loss.png").exists()


@pytest.mark.parametrize("clock", ["wall", "process"])
def test_time_budget_stops_and_checkpoints(tmp_path, clock):
  state = _train(tmp_path, 10_000, train_cfg=dict(time_budget_s=0.0, time_budget_clock=clock))
  assert int(state.step) == 1  # the budget is checked after every step
  assert Checkpointer(str(tmp_path / "checkpoints")).all_steps() == [1]


def test_time_budget_does_not_count_compiling(tmp_path):
  """Tracing and compiling longer than the whole budget still leave the budget to train in."""
  import dataclasses
  import time

  method = toy_method()

  def slow_to_trace(params, batch, key):
    time.sleep(3.0)  # Python: runs when the train step is traced, never in a compiled step
    return method.loss(params, batch, key)

  state = _train(tmp_path, 20, method=dataclasses.replace(method, loss=slow_to_trace),
                 train_cfg=dict(time_budget_s=2.0, time_budget_clock="wall"))
  assert int(state.step) == 20  # 20 toy steps take well under the 2 s left after compiling


def test_a_restored_checkpoint_is_checked_by_the_method(tmp_path):
  """Resume and sample.py's restore both hand the restored state to method.check_restored."""
  import dataclasses

  _train(tmp_path, 20)
  seen = []

  def refuse(state):
    seen.append(int(state.step))
    raise ValueError("not this checkpoint")

  method = dataclasses.replace(toy_method(), check_restored=refuse)
  with pytest.raises(ValueError, match="not this checkpoint"):
    _train(tmp_path, 30, method=method)
  assert seen == [20]


def test_time_budget_clock_is_checked(tmp_path):
  with pytest.raises(ValueError, match="config.training.time_budget_clock must be one of "
                                       "'wall', 'process', got 'cpu'"):
    _train(tmp_path, 10, train_cfg=dict(time_budget_s=1.0, time_budget_clock="cpu"))


def test_resume_is_bitwise_exact(tmp_path):
  full = _train(tmp_path / "full", 60)
  _train(tmp_path / "split", 20)              # "interrupted" after a checkpoint at step 20
  resumed = _train(tmp_path / "split", 60)    # same command again: resumes at 20
  for a, b in zip(_leaves(full), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  # Rows 1000.. of the data are NaN; the shuffled batches hit one within the first epochs.
  ds = toy_dataset(n=2048, nan_rows=range(1000, 1002))
  with pytest.raises(trainer.NonFiniteLossError, match=r"Non-finite loss or parameters at step (\d+)") as e:
    _train(tmp_path, 400, ds=ds, ckpt_every=5)
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  steps = ckpt.all_steps()
  bad = int(str(e.value).split("at step ")[1].split(".")[0])
  assert steps and max(steps) <= bad
  # The kept checkpoints are finite.
  items = _restore_items(tmp_path / "checkpoints", max(steps))
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(items["params"]))


def test_nonfinite_message_names_the_current_settings(tmp_path):
  """No checkpoint yet: it says so (not "step None"); clipping is on: it does not advise
  turning it on."""
  ds = toy_dataset(n=2048, nan_rows=range(0, 2048))
  with pytest.raises(trainer.NonFiniteLossError) as e:
    _train(tmp_path, 50, ds=ds, ckpt_every=50)
  message = str(e.value)
  assert "no checkpoint had been saved yet" in message and "None" not in message
  assert "--config.optim.learning_rate=0.01 now" in message
  assert "--config.optim.grad_clip=1 now" in message and "enable" not in message


def test_resume_logs_each_step_once(tmp_path):
  """Rows logged after the last checkpoint of a killed run are computed again on resume: they
  are replaced, not duplicated, so the loss curve never runs backwards."""
  _train(tmp_path, 30, ckpt_every=20)                 # checkpoints 20 and 30, rows 10, 20, 30
  import shutil
  shutil.rmtree(tmp_path / "checkpoints" / "30")    # killed after logging 30, before saving it
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 4')                             # and in the middle of a row
  _train(tmp_path, 40, ckpt_every=20)                 # resumes at 20
  rows = [json.loads(l)["step"] for l in open(tmp_path / "metrics.jsonl")]
  assert rows == [10, 20, 30, 40]


def _restore_items(directory, step):
  import orbax.checkpoint as ocp
  mngr = ocp.CheckpointManager(str(directory))
  out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                    meta=ocp.args.JsonRestore()))
  return out["state"]


def test_batch_must_divide_device_count():
  with pytest.raises(ValueError, match="does not divide by the number of devices"):
    trainer.check_batch_divides(3, _FakeMesh(2))
  trainer.check_batch_divides(4, _FakeMesh(2))


class _FakeMesh:
  def __init__(self, size):
    self.size = size
