"""A resumed run's TensorBoard events: the steps after the checkpoint, logged by the run that
was stopped and again by the resumed one, are shown once (tensorboardX's purge_step)."""

import glob
import os
import struct

from tensorboardX.proto import event_pb2

from genjax.training.trainer import _Logger


def _events(folder):
  """All events of the event files in ``folder``, file by file in write order (TFRecords)."""
  out = []
  for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")),
                     key=os.path.getmtime):
    with open(path, "rb") as f:
      data = f.read()
    i = 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      ev = event_pb2.Event()
      ev.ParseFromString(data[i + 12:i + 12 + n])
      out.append(ev)
      i += 12 + n + 4
  return out


def _shown(folder, tag="loss"):
  """The (step, value) pairs TensorBoard shows: a SessionLog.START at step s hides every
  earlier-read event at step >= s (TensorBoard's event accumulator)."""
  kept = []
  for ev in _events(folder):
    if ev.HasField("session_log") and ev.session_log.status == event_pb2.SessionLog.START:
      kept = [(s, v) for s, v in kept if s < ev.step]
    for val in ev.summary.value:
      if val.tag == tag:
        kept.append((ev.step, round(val.simple_value, 4)))
  return kept


def _run(workdir, start, steps, value):
  log = _Logger(str(workdir), tensorboard=True, start=start)
  log.drop_rows_after(start)
  for s in steps:
    log.write(s, {"loss": value})
  log.close()


def test_resumed_run_shows_each_step_once(tmp_path):
  _run(tmp_path, 0, range(1, 11), 1.0)  # stopped after step 10, last checkpoint at 5
  _run(tmp_path, 5, range(6, 9), 2.0)
  shown = _shown(tmp_path / "tb")
  assert [s for s, _ in shown] == list(range(1, 9))
  assert [v for _, v in shown] == [1.0] * 5 + [2.0] * 3
  with open(tmp_path / "metrics.jsonl") as f:
    assert len(f.readlines()) == 8


def test_without_the_purge_the_old_steps_would_show_twice(tmp_path):
  _run(tmp_path, 0, range(1, 11), 1.0)
  _run(tmp_path, 0, range(6, 9), 2.0)  # as if started from scratch: nothing purged
  steps = [s for s, _ in _shown(tmp_path / "tb")]
  assert steps.count(6) == 2 and 10 in steps
