"""The grain data loader: worker processes make bitwise the batches of ``batch_at``, its
position is saved in the orbax checkpoint, and a resumed run continues exactly."""

import json
import os

import jax
import numpy as np

from genjax.data import BatchIterator, DataConfig, load_dataset
from genjax.data.grain_loader import GrainLoader, check_equal
from tests.training.runs import leaves, tiny_2d_config


def test_stream_is_batch_at_and_resumes_from_its_state():
  ds = load_dataset(DataConfig(dataset="digits"))
  it = BatchIterator(ds.train, 32, seed=3, random_flip=True)
  loader = GrainLoader(it, num_workers=1)
  stream = loader.stream(5)
  for s in (5, 6, 7):
    assert check_equal(next(stream), it.batch_at(s))
  state = json.loads(json.dumps(stream.get_state()))  # JSON, as in the checkpoint's meta
  after = next(stream)
  stream.close()
  resumed = loader.stream(8, state=state)
  assert check_equal(next(resumed), after) and check_equal(after, it.batch_at(8))
  assert check_equal(next(resumed), it.batch_at(9))
  resumed.close()
  rows = GrainLoader(it, num_workers=0).stream(2, rows=slice(8, 16))  # a process's shard
  np.testing.assert_array_equal(next(rows)["x"], it.batch_at(2)["x"][8:16])
  rows.close()
  try:
    loader.stream(9, state=state)
    raise AssertionError("a state of step 8 was accepted at step 9")
  except ValueError as e:
    assert "at step 8, but the run resumes at step 9" in str(e)


def test_training_with_grain_resumes_exactly(tmp_path):
  """A run stopped at step 2 and resumed (the loader restarted from the checkpoint's state) ends
  bitwise where the synchronous loader's straight run ends. In-process loader (0 workers): the
  worker processes are covered above and cost seconds each to start."""
  import dataclasses

  from genjax.training import run as run_lib
  from genjax.training import trainer
  ref = run_lib.train_and_evaluate(tiny_2d_config(), str(tmp_path / "sync"))
  config = tiny_2d_config()
  config.data.loader, config.data.num_workers = "grain", 0
  run = run_lib.build_run(config)
  assert isinstance(run.iterator, GrainLoader)
  wd = str(tmp_path / "grain")
  for steps in (2, 4):  # the second call resumes at step 2
    state = trainer.train(run.method, run.dataset, run.iterator,
                          dataclasses.replace(run.train, num_steps=steps), run.optim, wd)
  meta = json.load(open(os.path.join(wd, "checkpoints", "2", "meta", "metadata")))
  assert meta["data_state"]["next_step"] == 2, meta
  for a, b in zip(leaves(ref), leaves(state)):
    np.testing.assert_array_equal(a, b)
  assert int(jax.device_get(state.step)) == 4
