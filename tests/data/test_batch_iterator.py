"""BatchIterator: determinism, resumption, epoch coverage, batches_per_step, flips, prefetch."""

import itertools

import numpy as np
import pytest

from genjax.data import ArraySource, BatchIterator, DataConfig, load_dataset, make_train_iterator
from genjax.data import sequential_batches


def _index_source(n: int, image: bool = False) -> ArraySource:
  """Example i is the constant i (as an image [4, 3, 1] with a ramp along W if ``image``)."""
  if image:
    x = np.arange(n, dtype=np.float32)[:, None, None, None] + np.arange(3, dtype=np.float32)[None, None, :, None] / 10
    x = np.broadcast_to(x, (n, 4, 3, 1)).copy()
  else:
    x = np.arange(n, dtype=np.float32)[:, None]
  return ArraySource(x, np.arange(n) % 7)


def _ids(batch):
  return np.round(batch["x"][..., 0, 0, 0] if batch["x"].ndim >= 4 else batch["x"][..., 0]).astype(int)


def test_same_seed_same_batches_and_different_seed_different():
  src = _index_source(50)
  a = [BatchIterator(src, 8, seed=1).batch_at(s) for s in range(10)]
  b = list(itertools.islice(BatchIterator(src, 8, seed=1), 10))
  c = [BatchIterator(src, 8, seed=2).batch_at(s) for s in range(10)]
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["x"], y["x"])
    np.testing.assert_array_equal(x["label"], y["label"])
    assert x["x"].shape == (8, 1) and x["x"].dtype == np.float32 and x["label"].dtype == np.int32
  assert any(not np.array_equal(x["x"], z["x"]) for x, z in zip(a, c))
  # Labels travel with their examples.
  np.testing.assert_array_equal(a[0]["label"], _ids(a[0]) % 7)


def test_permutation_is_a_pure_function_of_seed_and_epoch():
  it = BatchIterator(_index_source(40), 10, seed=3)
  for epoch in range(3):
    perm = np.random.default_rng([3, epoch]).permutation(40)
    got = np.concatenate([_ids(it.batch_at(s)) for s in range(4 * epoch, 4 * epoch + 4)])
    np.testing.assert_array_equal(got, perm)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_resume(prefetch):
  src = _index_source(37)
  fresh = list(itertools.islice(BatchIterator(src, 5, seed=0, prefetch=prefetch), 20))
  for k in (0, 6, 7, 13):
    it = BatchIterator(src, 5, seed=0)
    np.testing.assert_array_equal(it.batch_at(k)["x"], fresh[k]["x"])
    # Resume through a checkpointed state, as the trainer does.
    first = BatchIterator(src, 5, seed=0, prefetch=prefetch)
    list(itertools.islice(first, k))
    state = first.state_dict()
    assert state["step"] == first.position == k
    first.close()
    resumed = BatchIterator.from_state(src, state, prefetch=prefetch)
    rest = list(itertools.islice(resumed, 20 - k))
    for x, y in zip(rest, fresh[k:]):
      np.testing.assert_array_equal(x["x"], y["x"])
    resumed.close()
  # start_step and iterate(start_step) agree too.
  np.testing.assert_array_equal(next(BatchIterator(src, 5, seed=0, start_step=9))["x"], fresh[9]["x"])
  np.testing.assert_array_equal(next(BatchIterator(src, 5, seed=0).iterate(start_step=11))["x"], fresh[11]["x"])


def test_resume_rejects_a_different_stream():
  src = _index_source(30)
  state = BatchIterator(src, 5, seed=0, start_step=4).state_dict()
  with pytest.raises(ValueError, match="batch_size"):
    BatchIterator(src, 6, seed=0).load_state_dict(state)
  with pytest.raises(ValueError, match="seed"):
    BatchIterator(src, 5, seed=1).load_state_dict(state)
  with pytest.raises(ValueError, match="num_examples"):
    BatchIterator.from_state(_index_source(31), state)


def test_epoch_coverage_exactly_once():
  n, b = 60, 12  # Divisible: every example exactly once per epoch.
  it = BatchIterator(_index_source(n), b, seed=4)
  for epoch in range(3):
    ids = np.concatenate([_ids(it.batch_at(s)) for s in range(epoch * 5, epoch * 5 + 5)])
    assert sorted(ids.tolist()) == list(range(n))


def test_epoch_coverage_with_remainder():
  n, b = 23, 5
  # drop_remainder=True: 4 batches per epoch, distinct examples, 3 skipped (changing each epoch).
  it = BatchIterator(_index_source(n), b, seed=0)
  skipped = []
  for epoch in range(3):
    ids = np.concatenate([_ids(it.batch_at(s)) for s in range(4 * epoch, 4 * epoch + 4)])
    assert len(set(ids.tolist())) == 20
    skipped.append(frozenset(range(n)) - set(ids.tolist()))
  assert len(set(skipped)) > 1
  # drop_remainder=False: the epochs form one stream; every batch is full and every example
  # appears exactly once in each run of 23 consecutive stream positions (an epoch).
  it = BatchIterator(_index_source(n), b, seed=0, drop_remainder=False)
  stream = np.concatenate([_ids(it.batch_at(s)) for s in range(14)])  # 70 >= 3 epochs.
  for epoch in range(3):
    assert sorted(stream[epoch * n:(epoch + 1) * n].tolist()) == list(range(n))
    np.testing.assert_array_equal(stream[epoch * n:(epoch + 1) * n], np.random.default_rng([0, epoch]).permutation(n))


def test_batches_per_step():
  src = _index_source(40, image=True)
  one = BatchIterator(src, 4, seed=0)
  three = BatchIterator(src, 4, seed=0, batches_per_step=3)
  batch = three.batch_at(2)
  assert batch["x"].shape == (3, 4, 4, 3, 1) and batch["label"].shape == (3, 4)
  for i in range(3):  # Step 2 holds minibatches 6, 7, 8.
    np.testing.assert_array_equal(batch["x"][i], one.batch_at(6 + i)["x"])
  assert next(three)["x"].shape == (3, 4, 4, 3, 1)


def test_random_flip_is_deterministic_and_flips_half():
  src = _index_source(64, image=True)
  it = BatchIterator(src, 32, seed=5, random_flip=True)
  plain = BatchIterator(src, 32, seed=5)
  flips = []
  for step in range(6):
    batch, ref = it.batch_at(step), plain.batch_at(step)
    np.testing.assert_array_equal(batch["x"], BatchIterator(src, 32, seed=5, random_flip=True).batch_at(step)["x"])
    np.testing.assert_array_equal(batch["label"], ref["label"])  # Same examples, same order.
    flipped = np.all(batch["x"] == ref["x"][:, :, ::-1, :], axis=(1, 2, 3))
    kept = np.all(batch["x"] == ref["x"], axis=(1, 2, 3))
    assert np.all(flipped ^ kept)
    expected = np.random.default_rng([5, step, 0x666C6970]).random((1, 32))[0] < 0.5
    np.testing.assert_array_equal(flipped, expected)
    np.testing.assert_array_equal(flipped, it.flips_at(step))
    flips.append(flipped)
  assert 0.3 < np.mean(flips) < 0.7
  # With batches_per_step the flips have the [n, B] layout.
  multi = BatchIterator(src, 8, seed=5, random_flip=True, batches_per_step=2)
  assert multi.flips_at(0).shape == (2, 8) and multi.batch_at(0)["x"].shape == (2, 8, 4, 3, 1)
  # Points cannot be flipped.
  with pytest.raises(ValueError, match="random_flip"):
    BatchIterator(_index_source(10), 2, seed=0, random_flip=True).batch_at(0)


def test_prefetch_matches_and_seek():
  src = _index_source(29, image=True)
  ref = BatchIterator(src, 4, seed=2, random_flip=True)
  with BatchIterator(src, 4, seed=2, random_flip=True, prefetch=3) as it:
    got = list(itertools.islice(it, 9))
    it.seek(3)
    again = next(it)
    assert it.position == 4
  for s, batch in enumerate(got):
    np.testing.assert_array_equal(batch["x"], ref.batch_at(s)["x"])
  np.testing.assert_array_equal(again["x"], ref.batch_at(3)["x"])


def test_prefetch_propagates_errors():
  class Broken(ArraySource):
    def get(self, indices):
      raise RuntimeError("disk on fire")

  it = BatchIterator(Broken(np.zeros((10, 2))), 2, seed=0, prefetch=2)
  with pytest.raises(RuntimeError, match="disk on fire"):
    next(it)
  it.close()


def test_bad_arguments():
  src = _index_source(10)
  with pytest.raises(ValueError, match="larger than the dataset"):
    BatchIterator(src, 11, seed=0)
  with pytest.raises(ValueError, match="batch_size"):
    BatchIterator(src, 0, seed=0)
  with pytest.raises(ValueError, match="seed"):
    BatchIterator(src, 2, seed=-1)
  with pytest.raises(ValueError, match="step"):
    BatchIterator(src, 2, seed=0).batch_at(-1)
  with pytest.raises(IndexError):
    src.get(np.array([10]))


def test_with_datasets_and_helpers():
  cfg = DataConfig(dataset="digits", image_size=16, random_flip=True, seed=7)
  ds = load_dataset(cfg)
  it = make_train_iterator(ds, cfg, 64, batches_per_step=2)
  batch = it.batch_at(0)
  assert batch["x"].shape == (2, 64, 16, 16, 1) and batch["label"].shape == (2, 64)
  assert it.seed == 7 and it.random_flip
  batches = list(sequential_batches(ds.test, 100))
  assert [len(b["x"]) for b in batches] == [100, 100, 70]
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), ds.test.get(np.arange(270))["label"])
