"""Improved DDPM: respaced ancestral sampling with the learned variance, against DDIM.

    python -m benchmarks.iddpm_respacing --workdir runs/iddpm --out runs/iddpm_respacing
    python -m benchmarks.iddpm_respacing --smoke      # a quick end-to-end check

Loads a trained improved-DDPM run (configs/iddpm.py: cosine schedule, learned variance,
L_hybrid) and samples it with (a) ancestral sampling on respaced chains of K steps, the learned
variance reinterpreted on each chain (Nichol & Dhariwal 2021, Sec. 4), (b) the same chains with
the fixed variances beta~ (fixed_small) and beta (fixed_large), and (c) DDIM with eta = 0 and 1.
Every row samples the one trained network through the sampler registry
(``genjax.sampling.registry``); the fixed-variance rows use its mean (eps) channels only.
Quality is the Frechet distance in the digits classifier's feature space against the test
digits (``genjax.metrics.sample_quality``). Writes ``respacing.json`` and ``respacing.md``.

Without ``--workdir``, configs/iddpm.py is trained (or reused: a finished run of the same config,
``benchmarks.common.train_or_reuse``) in ``--out/model`` for ``--train_steps`` steps.

``--smoke``: trains configs/iddpm.py for 2 steps (unless ``--workdir`` is given), K = 5, 16
samples, into ``runs/iddpm_respacing_smoke`` unless ``--out`` is given; its figures mean
nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import flags
import numpy as np

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A trained configs/iddpm.py run (default: train one in "
                    "--out/model).")
flags.DEFINE_string("out", None, "Output directory (default runs/iddpm_respacing, or "
                    "runs/iddpm_respacing_smoke with --smoke).")
flags.DEFINE_list("steps", ["25", "50", "100"], "Respaced chain lengths K.")
flags.DEFINE_integer("num", 500, "Samples per cell.", lower_bound=2)
flags.DEFINE_integer("batch", 500, "Samples per jitted sampling call.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Sampling seed.", lower_bound=0)
flags.DEFINE_integer("train_steps", None, "Training steps when training here (default: the "
                     "config's).", lower_bound=1)
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: 2 training steps, K = 5, 16 "
                  "samples; the figures mean nothing.")


def sampler_method(config, spec, method, sampling_fields: dict, var_type: str):
  """``method`` sampling with other ``config.sampling`` fields and reverse variance
  ``var_type``, on the same learned-variance network (so every row shares one trained model)."""
  from genjax.diffusion.method import DDPMConfig
  from genjax.nets.build import build_network
  from genjax.sampling import get_schedule, registry, split_learned_output
  from genjax.typed_config import from_section

  dcfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  cfg = dataclasses.replace(registry.from_config(config.get("sampling"), default="ddpm"),
                            **sampling_fields)
  net = build_network(config.model, spec, learned_variance=True)
  sched = get_schedule(dcfg.schedule, dcfg.num_timesteps)
  clip = (-1.0, 1.0) if dcfg.clip_x0 else None

  learned = var_type == "learned_range"

  def model_of(params) -> registry.Model:
    def fn(x, t, cond):
      out = net.apply({"params": params}, x, t, train=False)
      return out if learned else split_learned_output(out)[0]  # the mean channels only
    return registry.Model(process=sched, model_fn=fn, prediction=dcfg.parameterization,
                          learned_variance=learned, var_type=var_type, clip=clip)

  sample = registry.make_sample_fn(cfg, model_of, spec.shape)  # validates cfg first
  tag = registry.tag(cfg, model_of(None)) + ("" if var_type == "learned_range"
                                             else f"_{var_type}")
  return dataclasses.replace(method, sample=sample, sample_tag=tag)


def main(argv):
  del argv
  from genjax.metrics import sample_quality
  from genjax.training import run as run_lib

  ks = common.list_flag("steps")
  num, train_steps = FLAGS.num, FLAGS.train_steps
  if FLAGS.smoke:
    ks, num, train_steps = [5], min(num, 16), 2
  out = FLAGS.out or os.path.join("runs", "iddpm_respacing_smoke" if FLAGS.smoke
                                  else "iddpm_respacing")
  os.makedirs(out, exist_ok=True)
  workdir = FLAGS.workdir
  if workdir is None:
    workdir = os.path.join(out, "model")
    fields = {"training.num_steps": train_steps} if train_steps else {}
    trained = common.train_or_reuse(common.load_config("iddpm", fields), workdir)
    print(f"{'reused' if trained.reused else 'trained'} {workdir}: step {trained.step}",
          flush=True)
  config, run, state = run_lib.load_trained(workdir)
  if config.diffusion.get("var_type") != "learned_range":
    raise common.BenchmarkError(
        f"{workdir} has var_type={config.diffusion.get('var_type')!r}; this benchmark needs a "
        "learned variance (configs/iddpm.py).")
  test = np.asarray(run.dataset.test.get(np.arange(min(len(run.dataset.test), num)))["x"])
  floor = sample_quality(test, baseline=True)["baseline"]["fd_digits"]
  cells = []
  for k in ks:
    cells += [("ancestral, learned variance", k, dict(sampler="ddpm", respacing=str(k)),
               "learned_range"),
              ("ancestral, beta~ (fixed_small)", k, dict(sampler="ddpm", respacing=str(k)),
               "fixed_small"),
              ("ancestral, beta (fixed_large)", k, dict(sampler="ddpm", respacing=str(k)),
               "fixed_large"),
              ("DDIM, eta = 0", k, dict(sampler="ddim", steps=k, eta=0.0), "learned_range"),
              ("DDIM, eta = 1", k, dict(sampler="ddim", steps=k, eta=1.0), "learned_range")]
  rows = []
  for name, k, fields, var_type in cells:
    method = sampler_method(config, run.dataset.spec, run.method, fields, var_type)
    s = common.sample(method, state.ema_params, num, seed=FLAGS.seed, batch=FLAGS.batch)
    row = {"sampler": name, "steps": k, "tag": s.tag,
           "fd_digits": sample_quality(s.as_images(), baseline=False)["fd_digits"],
           "sample_s": round(s.seconds, 1)}
    rows.append(row)
    print(json.dumps(row), flush=True)
  common.write_json(os.path.join(out, "respacing.json"),
                    {"workdir": workdir, "floor": floor, "num": num, "rows": rows})
  names = list(dict.fromkeys(r["sampler"] for r in rows))
  lines = [f"fd_digits against the test digits ({num} samples; floor {floor:.3f})", "",
           "| sampler | " + " | ".join(f"K = {k}" for k in sorted(set(ks))) + " |",
           "|---" * (len(set(ks)) + 1) + "|"]
  for n in names:
    lines.append(f"| {n} | " + " | ".join(
        f"{r['fd_digits']:.3f}" for k in sorted(set(ks)) for r in rows
        if r["sampler"] == n and r["steps"] == k) + " |")
  with open(os.path.join(out, "respacing.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
