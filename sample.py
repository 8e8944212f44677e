"""Samples from (or evaluates) a trained genjax model.

    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --sampler=ddim --steps=50 --num=64
    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --sampler=ddpm   # all T steps
    python sample.py --config=configs/iddpm.py --workdir=runs/iddpm --sampler=ddpm --respacing=50
    python sample.py --config=configs/ddpm_cfg.py --workdir=runs/ddpm_cfg --guidance_scale=2
    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --mode=inpaint --input=test
    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --mode=inpaint --input=test
        --mask=right --sampler=ddpm --repaint_jump=10 --repaint_resample=10   # RePaint

Every field of the config's sampling section is a flag (``--help`` lists each method's
samplers and what each field does). ``--mode=inpaint|colorize|img2img`` with ``--input`` (an
image file, a folder, an .npz or a dataset split) writes the inputs, what the model was given
and the results side by side.

Loads the latest checkpoint (or --step) from --workdir, samples with the EMA params and writes a
PNG grid and an .npz of the samples into --workdir (or --out). The config must be the one the
run was trained with (overrides included). A damaged newest checkpoint is skipped (with a
warning naming it) for the newest intact one. Reading creates nothing in --workdir, and a
command that cannot work prints one line and exits with 2 (usage) or 1 (see genjax.cli).
"""

import os

from absl import flags
from ml_collections import config_flags

from genjax import cli, methods
from genjax.sampling import catalog

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "The config the run was trained with.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "The training run's workdir.")
flags.DEFINE_integer("num", 64, "Number of samples.", lower_bound=1)
flags.DEFINE_integer("batch", 256, "Samples generated per jitted call.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Sampling seed.", lower_bound=0)
flags.DEFINE_integer("step", None, "Checkpoint step to load (default: the newest intact one).",
                     lower_bound=0)
flags.DEFINE_string("out", None, "Output directory (default: --workdir).")
flags.DEFINE_string("eval", None, "Comma-separated evaluations instead of a grid: the "
                    "method's own (nll, elbo, recon, modes, ...), the sample metrics "
                    "fd,fid,kid,is,pr (streamed, fixed memory), the reconstruction metrics "
                    "psnr,ssim,lpips (methods that reconstruct, on the test split) and/or "
                    "parzen (any method; config.parzen).")
flags.DEFINE_string("extractor", None, "Feature extractor for fid/kid/is/pr: digits | shapes | "
                    "inception (pytorch-fid's resize) | inception_clean (clean-fid's resize) "
                    "(default: digits on the digits, shapes on shapes, else inception).")
flags.DEFINE_string("ref", None, "Reference statistics .npz: python -m genjax.metrics.ref_stats, "
                    "or pytorch-fid / TTUR / clean-fid statistics (see --ref_format).")
flags.DEFINE_string("ref_format", None, "Format of another project's --ref file: pytorch-fid | "
                    "ttur | clean-fid:clean | clean-fid:legacy_pytorch | "
                    "clean-fid:legacy_tensorflow (default: from clean-fid's/TTUR's file names).")
flags.DEFINE_bool("allow_resize_mismatch", False, "Accept another project's --ref statistics "
                  "made with another resize than the extractor's (recorded in eval.json).")
flags.DEFINE_string("weights", None, "Extractor weights (Inception: pytorch-fid .pth or .npz).")
flags.DEFINE_string("lpips_weights", None, "LPIPS weights .npz for --eval=lpips (python -m "
                    "genjax.metrics.convert_lpips; default $GENJAX_LPIPS_WEIGHTS).")
flags.mark_flags_as_required(["config", "workdir"])


def _define_sampling_flags():
  """``--<field>`` for every field of the typed sampling config (``config.sampling``), with its
  help; ``--sampler`` lists each method's samplers from the catalog."""
  import dataclasses
  import re
  import typing
  doc = catalog.SamplingConfig.__doc__
  helps = dict(re.findall(r"^    (\w+): ((?:.|\n(?!    \w+:))*)", doc, re.M))
  hints = typing.get_type_hints(catalog.SamplingConfig)
  for f in dataclasses.fields(catalog.SamplingConfig):
    text = " ".join(helps.get(f.name, f.name).split()) + f" (config.sampling.{f.name})"
    if f.name == "sampler":
      text += ". Samplers by method: " + catalog.help_by_method(methods.SAMPLING)
    elif f.name == "steps":
      text += ". Per sampler: " + catalog.help_text()
    hint = hints[f.name]
    if hint is bool:
      flags.DEFINE_bool(f.name, None, text)
    elif hint is int:
      flags.DEFINE_integer(f.name, None, text)
    elif hint is float:
      flags.DEFINE_float(f.name, None, text)
    elif hint is str:
      flags.DEFINE_string(f.name, None, text)
    else:  # tuple[float, ...]
      flags.DEFINE_list(f.name, None, text)


_define_sampling_flags()


def main(argv):
  del argv
  cli.check_workdir_to_read(FLAGS.workdir)
  cli.check_output_dir(FLAGS.out or FLAGS.workdir, "--out" if FLAGS.out else "--workdir")
  from genjax.training import sampling

  config = FLAGS.config
  given = {f: FLAGS[f].value for f in catalog.SamplingConfig.__dataclass_fields__
           if FLAGS[f].present}
  if given:
    if "sampling" not in config:
      raise cli.UsageError(f"--{sorted(given)[0]} does not apply to config.method="
                           f"{config.method!r}: it has no sampling section.")
    with config.unlocked():
      for k, v in given.items():
        config.sampling[k] = tuple(float(t) for t in v) if k == "taus" else v
  out = FLAGS.out or FLAGS.workdir
  if FLAGS.eval:
    result = sampling.evaluate(config, FLAGS.workdir, FLAGS.eval.split(","), out,
                               num=FLAGS.num, seed=FLAGS.seed, step=FLAGS.step,
                               batch=FLAGS.batch, extractor=FLAGS.extractor, ref=FLAGS.ref,
                               weights=FLAGS.weights, ref_format=FLAGS.ref_format,
                               allow_resize_mismatch=FLAGS.allow_resize_mismatch,
                               lpips_weights=FLAGS.lpips_weights)
    import json
    print(json.dumps(result, indent=2, default=float))
    print(f"Wrote {os.path.join(out, 'eval.json')}")
  elif "sampling" in config and config.sampling.get("mode", "sample") != "sample":
    paths = sampling.edit_to_files(config, FLAGS.workdir, out, num=FLAGS.num, batch=FLAGS.batch,
                                   seed=FLAGS.seed, step=FLAGS.step)
    print("Wrote " + ", ".join(paths))
  else:
    paths = sampling.sample_to_files(config, FLAGS.workdir, out, num=FLAGS.num,
                                     batch=FLAGS.batch, seed=FLAGS.seed, step=FLAGS.step)
    print("Wrote " + ", ".join(paths))


if __name__ == "__main__":
  cli.run(main)
