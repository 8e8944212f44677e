"""Trains a genjax model.

    python train.py --config=configs/ddpm.py --workdir=runs/ddpm
    python train.py --config=configs/ddpm.py --config.training.batch_size=128

Any config field can be overridden with --config.<section>.<field>=<value>; a mistyped field
fails at once. Running the same command again resumes from the last checkpoint in --workdir.

This file only parses flags: the majority of logic is in libraries that can be easily tested
(genjax.training.run / genjax.training.trainer).
"""

import logging
import sys

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/ddpm.py.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and sample grids.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  from absl import logging as absl_logging
  if not FLAGS["verbosity"].present:  # orbax logs every save at INFO; keep the progress bar readable
    absl_logging.set_verbosity(absl_logging.WARNING)
  import jax

  from genjax.training import run, trainer
  from genjax.training.checkpoint import CheckpointError

  workdir = FLAGS.workdir or f"runs/{FLAGS.config.method}"
  logging.info("JAX devices: %s", jax.devices())
  try:
    run.train_and_evaluate(FLAGS.config, workdir)
  except trainer.TrainingInterrupted as e:
    print(f"\n{e}", file=sys.stderr)
    sys.exit(130)
  except (trainer.NonFiniteLossError, CheckpointError, ValueError) as e:
    print(f"\nerror: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"Done. Checkpoints, metrics.jsonl, loss.png and samples/ are in {workdir}")


if __name__ == "__main__":
  app.run(main)
