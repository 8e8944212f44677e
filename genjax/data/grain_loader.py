"""The training batches of a :class:`~genjax.data.BatchIterator`, made by grain worker processes.

``BatchIterator.batch_at(step)`` is a pure function of the step, so any number of processes can
compute batches ahead of the train step. :class:`GrainLoader` runs it in ``num_workers`` grain
worker processes (``grain.MapDataset.range(start, ...).map(batch_at)``, ``mp_prefetch``): the
reading, decoding, scaling and flipping of a batch happen off the training process, in
parallel, and the batches come back in step order. Every batch is bitwise the one
``batch_at(step)`` returns, so switching loaders (``config.data.loader``) changes nothing but
speed.

The stream's position is grain's iterator state (``get_state()``: a JSON dict); the trainer stores
it in each checkpoint (orbax, beside the data position) and a resumed run continues from it
(:meth:`GrainLoader.stream` with ``state=``), checked against the step it resumes at.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from genjax.data.pipeline import Batch, BatchIterator

_END = 2 ** 62  # the stream is endless: epochs repeat by step (BatchIterator's indexing)


def _grain():
  import grain
  from absl import flags
  if not flags.FLAGS.is_parsed():  # grain reads absl flags; libraries and tests have none
    flags.FLAGS.mark_as_parsed()
  return grain


class _BatchAt:
  """``step -> iterator.batch_at(step, rows)`` (picklable, for the worker processes)."""

  def __init__(self, iterator: BatchIterator, rows: Optional[slice]):
    self.iterator, self.rows = iterator, rows

  def __call__(self, step) -> Batch:
    return self.iterator.batch_at(int(step), self.rows)


class BatchStream:
  """An iterator over the batches of steps ``start, start + 1, ...`` with a checkpointable
  position (:meth:`get_state`)."""

  def __init__(self, grain_iter, start: int):
    self._it, self.start = grain_iter, start
    self.next_step = start

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    batch = next(self._it)
    self.next_step += 1
    return batch

  def get_state(self) -> dict:
    """JSON: the first step of the stream, the next step it yields and grain's state."""
    return {"start": self.start, "next_step": self.next_step, "grain": self._it.get_state()}

  def close(self) -> None:
    close = getattr(self._it, "close", None)
    if close is not None:
      close()


class GrainLoader:
  """``iterator``'s batches from grain worker processes.

  Args:
    iterator: the deterministic :class:`BatchIterator` whose batches to make.
    num_workers: grain worker processes (0: in this process, no prefetch).
    buffer: batches each worker computes ahead.

  Attributes as ``iterator``'s (``batch_size``, ``batches_per_step``, ``batch_at``), so the
  trainer treats it as the iterator it wraps.
  """

  def __init__(self, iterator: BatchIterator, num_workers: int = 2, buffer: int = 2):
    if num_workers < 0 or buffer < 1:
      raise ValueError(f"GrainLoader: num_workers must be >= 0 and buffer >= 1, got "
                       f"{num_workers}, {buffer}.")
    self.iterator, self.num_workers, self.buffer = iterator, num_workers, buffer

  def __getattr__(self, name: str) -> Any:  # batch_size, batches_per_step, batch_at, ...
    if name == "iterator":
      raise AttributeError(name)
    return getattr(self.iterator, name)

  def stream(self, start: int, rows: Optional[slice] = None,
             state: Optional[dict] = None) -> BatchStream:
    """The batches of steps ``start, start + 1, ...`` (only ``rows`` of each, if given).

    Args:
      start: the first step.
      rows: this process's rows of every global batch (a multi-process run).
      state: a :meth:`BatchStream.get_state` from a checkpoint; the stream resumes there.

    Raises:
      ValueError: ``state`` is not a state of this loader at step ``start``.
    """
    grain = _grain()
    first = start
    if state is not None:
      if not isinstance(state, dict) or {"start", "next_step", "grain"} - set(state):
        raise ValueError(f"Not a data-loader state: {state!r}.")
      if int(state["next_step"]) != start:
        raise ValueError(f"The saved data-loader state is at step {state['next_step']}, but the "
                         f"run resumes at step {start}.")
      first = int(state["start"])
    ds = grain.MapDataset.range(first, _END).map(_BatchAt(self.iterator, rows))
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    if self.num_workers > 0:
      ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers,
                                                       per_worker_buffer_size=self.buffer))
    it = iter(ds)
    stream = BatchStream(it, first)
    if state is not None:
      it.set_state(state["grain"])
      stream.next_step = start
    return stream


def check_equal(a: Batch, b: Batch) -> bool:
  """Whether two batches are bitwise equal (for tests and checks)."""
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
