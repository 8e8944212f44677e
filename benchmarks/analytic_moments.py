"""Estimates and stores the two moments of a trained DDPM that Analytic-DPM and the optimal
sub-trajectories need (genjax.sampling.analytic), once, on training data.

  python -m benchmarks.analytic_moments --config=configs/ddpm.py --workdir=runs/ddpm
  python sample.py --config=configs/ddpm.py --workdir=runs/ddpm \\
      --analytic_moments=runs/ddpm/analytic_moments.npz --eta=0          # Analytic-DDIM
  python sample.py ... --analytic_moments=runs/ddpm/analytic_moments.npz --spacing=optimal

Writes ``<workdir>/analytic_moments.npz`` (``eps_sq``: ``Gamma_t = E||eps_theta(x_t, t)||^2 / d``;
``eps_mse``: ``E||eps - eps_theta(x_t, t)||^2 / d``; ``timesteps``), from ``--num`` training
images and one noise draw per image and step, with the EMA parameters of the latest checkpoint.
Unconditional models (a class-conditional one is evaluated with its null label when it has one).
"""

from __future__ import annotations

import os

from absl import flags
from ml_collections import config_flags
import numpy as np

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "The training config.", lock_config=True)
flags.DEFINE_string("workdir", None, "The trained run's workdir.")
flags.DEFINE_integer("num", 512, "Training images per step.", lower_bound=1)
flags.DEFINE_integer("batch", 256, "Images per network call.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Noise seed.", lower_bound=0)
flags.DEFINE_string("out", None, "Output file (default <workdir>/analytic_moments.npz).")


def moments_for(config, workdir, num=512, batch=256, seed=0) -> dict:
  """Restores the run and estimates the moments (see the module docstring)."""
  import jax
  import jax.numpy as jnp
  from genjax.nets.build import build_network
  from genjax.sampling import analytic, schedules
  from genjax.sampling.convert import denoiser
  from genjax.training import run as run_lib
  if config.method != "ddpm":
    raise ValueError(f"analytic moments need a DDPM run (method ddpm), not {config.method!r}.")
  run, state = run_lib.restore(config, workdir)
  diff = config.diffusion
  learned = diff.var_type == "learned_range"
  net = build_network(config.model, run.dataset.spec, learned_variance=learned)
  sched = schedules.get_schedule(diff.schedule, diff.num_timesteps)
  num_classes = getattr(net, "num_classes", 0)
  params = state.ema_params

  def model_fn(x, t, c):
    y = None if not num_classes else jnp.full((x.shape[0],), num_classes, jnp.int32)
    return net.apply({"params": params}, x, t, y=y, train=False)

  eps = denoiser(model_fn, sched, diff.parameterization, learned_variance=learned)

  def eps_fn(x, t):
    out = eps(x, t, None)
    return out if not isinstance(out, tuple) else out[0]

  n = min(num, len(run.dataset.train))
  rng = np.random.default_rng(seed)
  idx = np.sort(rng.choice(len(run.dataset.train), n, replace=False))
  x = np.asarray(run.dataset.train.get(idx)["x"], np.float32)
  batches = [x[i:i + batch] for i in range(0, n, batch)]
  return analytic.estimate_moments(eps_fn, sched, batches, jax.random.key(seed))


def main(argv):
  del argv
  from genjax import cli
  from genjax.sampling import analytic
  if FLAGS.workdir is None or FLAGS.config is None:
    raise cli.UsageError("give --config and --workdir of a trained DDPM run.")
  out = FLAGS.out or os.path.join(FLAGS.workdir, "analytic_moments.npz")
  m = moments_for(FLAGS.config, FLAGS.workdir, FLAGS.num, FLAGS.batch, FLAGS.seed)
  analytic.save_moments(out, m)
  print(f"wrote {out}: Gamma_t from {m['eps_sq'][0]:.4f} (t=0) to {m['eps_sq'][-1]:.4f} "
        f"(t=T-1)")


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
