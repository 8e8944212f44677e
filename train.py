"""Trains a genjax model.

    python train.py --config=configs/ddpm.py --workdir=runs/ddpm
    python train.py --config=configs/ddpm.py --config.training.batch_size=128

Any config field can be overridden with --config.<section>.<field>=<value>; a mistyped field
fails at once. Running the same command again resumes from the last intact checkpoint in
--workdir; a resumed run refuses a config that changes training unless
--config.training.allow_config_change=True, and one workdir takes one run at a time.

Settings, the workdir and its lock are checked before JAX is imported; a command that cannot
work prints one line (``error: ...``) and exits with 2 for a usage error, 1 otherwise (see
genjax.cli and docs/runs.md).

This file only parses flags: the majority of logic is in libraries that can be easily tested
(genjax.training.run / genjax.training.trainer).
"""

from absl import flags
from ml_collections import config_flags

from genjax import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/ddpm.py.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and sample grids.")
flags.mark_flags_as_required(["config"])
# A multi-process run (one process per host; docs/scale.md). Default: the GENJAX_COORDINATOR,
# GENJAX_NUM_PROCESSES and GENJAX_PROCESS_ID environment variables, else one process.
flags.DEFINE_string("coordinator_address", None, "Multi-process run: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-process run: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process run: this process, 0..num_processes-1.")
flags.DEFINE_bool("distributed", False, "Multi-process run on a Cloud TPU pod, SLURM or Open "
                  "MPI: let JAX detect the coordinator and the processes.")


def main(argv):
  del argv
  from genjax.training import distributed
  from genjax.training import workdir as workdir_lib

  config = FLAGS.config
  workdir = FLAGS.workdir or f"runs/{config.method}"
  spec = distributed.spec_from(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                               auto=FLAGS.distributed)
  distributed.export(spec)
  # Settings, workdir, lock and config record first: a bad command fails before JAX loads.
  with workdir_lib.open_for_training(config, workdir):
    import logging

    import jax

    from genjax.training import run
    distributed.initialize(spec)  # before any computation: the mesh spans every process
    logging.info("JAX devices: %s", jax.devices())
    state = run.train_and_evaluate(config, workdir)
  print(f"Done: step {int(state.step)}. Checkpoints, metrics.jsonl, loss.png and samples/ are "
        f"in {workdir}")


if __name__ == "__main__":
  cli.run(main)
