"""Host throughput of the tfds input path (read + decode, flip, shard) on CIFAR-10-shaped data.

    python -m benchmarks.input_pipeline                 # 2,048 mock examples, batch 128
    python -m benchmarks.input_pipeline --smoke

Runs under ``tfds.testing.mock_data`` (no download): the mock source hands out already-decoded
uint8 arrays, so the PNG decode that a real ArrayRecord CIFAR-10 file needs is timed apart
(PIL, the decoder ``tfds.data_source`` uses) and added. Stages, per image:
  1. ``TfdsSource.get`` on the mock source (per-example reads, uint8 -> float32 in [-1, 1]);
  2. PNG decode of a 32x32x3 image with PIL;
  3. ``BatchIterator.batch_at`` with ``random_flip`` (1 + the flips);
  4. ``jax.device_put`` of the batch, sharded over the devices (``P('data')``).
The figure to compare with an accelerator's step rate is the end-to-end images/s (1 + 2 + 3 +
4 in one thread). Then the same batches (1 + 3) through ``GrainLoader`` with each of
``--grain_workers`` worker processes, consumed as the trainer does (next batch, device_put),
after a warm-up batch (the workers' start-up is not counted).
"""

from __future__ import annotations

import io
import tempfile
import time

from absl import flags
import jax
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_examples", 2048, "Mock examples.", lower_bound=1)
flags.DEFINE_integer("batch", 128, "Batch size.", lower_bound=1)
flags.DEFINE_integer("batches", 10, "Batches timed.", lower_bound=1)
flags.DEFINE_list("grain_workers", ["0", "1", "2"], "grain worker counts to time the batches "
                  "through (genjax.data.grain_loader; empty: skip).")
flags.DEFINE_bool("smoke", False, "256 examples, 2 batches of 32; the figures mean nothing.")


def measure(num_examples: int, batch: int, batches: int, grain_workers=()) -> dict:
  import tensorflow_datasets as tfds
  from PIL import Image

  from genjax.data import BatchIterator, DataConfig, load_dataset
  from genjax.training import trainer
  out = {}
  with tfds.testing.mock_data(num_examples=num_examples):
    ds = load_dataset(DataConfig(dataset="cifar10", data_dir=tempfile.mkdtemp(),
                                 random_flip=True))
    it = BatchIterator(ds.train, batch, seed=0, random_flip=True)
    idx = np.arange(batch)
    t0 = time.perf_counter()
    for _ in range(batches):
      ds.train.get(idx)
    out["read_img_s"] = batch * batches / (time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    pngs = []
    for _ in range(batch):
      buf = io.BytesIO()
      Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
      pngs.append(buf.getvalue())
    t0 = time.perf_counter()
    for _ in range(batches):
      [np.asarray(Image.open(io.BytesIO(p))) for p in pngs]
    out["png_decode_img_s"] = batch * batches / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for s in range(batches):
      it.batch_at(s)
    out["batch_at_flip_img_s"] = batch * batches / (time.perf_counter() - t0)
    mesh = trainer.make_mesh()
    sharding = trainer.batch_sharding(mesh)
    b = it.batch_at(0)
    t0 = time.perf_counter()
    for _ in range(batches):
      jax.block_until_ready(jax.device_put(b, sharding))
    out["device_put_img_s"] = batch * batches / (time.perf_counter() - t0)
    from genjax.data.grain_loader import GrainLoader
    for workers in grain_workers:
      stream = GrainLoader(it, num_workers=workers, buffer=4).stream(0)
      try:
        jax.block_until_ready(jax.device_put(next(stream), sharding))  # start-up, not timed
        t0 = time.perf_counter()
        for _ in range(batches):
          jax.block_until_ready(jax.device_put(next(stream), sharding))
        out[f"grain_{workers}_workers_img_s"] = batch * batches / (time.perf_counter() - t0)
      finally:
        stream.close()
  # One thread does all stages in turn: the rates combine harmonically.
  out["end_to_end_img_s"] = 1.0 / (1 / out["batch_at_flip_img_s"] + 1 / out["png_decode_img_s"]
                                   + 1 / out["device_put_img_s"])
  out["devices"] = jax.device_count()
  return out


def main(argv):
  del argv
  n, b, k = FLAGS.num_examples, FLAGS.batch, FLAGS.batches
  if FLAGS.smoke:
    n, b, k = 256, 32, 2
  workers = [int(w) for w in FLAGS.grain_workers if w.strip()]
  if FLAGS.smoke:
    workers = workers[:1]
  for name, v in measure(n, b, k, workers).items():
    print(f"{name:22s} {v:12,.0f}")


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
