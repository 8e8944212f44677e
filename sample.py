"""Samples from (or evaluates) a trained genjax model.

    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --sampler=ddim --steps=50 --num=64
    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --sampler=ddpm   # all T steps
    python sample.py --config=configs/iddpm.py --workdir=runs/iddpm --sampler=ddpm --respacing=50
    python sample.py --config=configs/ddpm_cfg.py --workdir=runs/ddpm_cfg --guidance_scale=2

Loads the latest checkpoint (or --step) from --workdir, samples with the EMA params and writes a
PNG grid and an .npz of the samples into --workdir (or --out). The config must be the one the
run was trained with (overrides included). A damaged newest checkpoint is skipped (with a
warning naming it) for the newest intact one. Reading creates nothing in --workdir, and a
command that cannot work prints one line and exits with 2 (usage) or 1 (see genjax.cli).
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from genjax import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "The config the run was trained with.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "The training run's workdir.")
flags.DEFINE_string("sampler", None, "Sampler (overrides config.sampling.sampler): ddpm | ddim.")
flags.DEFINE_integer("steps", None, "Sampling steps (overrides config.sampling.steps).")
flags.DEFINE_float("eta", None, "DDIM eta (overrides config.sampling.eta).")
flags.DEFINE_string("respacing", None, "Respaced ancestral sampling for --sampler=ddpm "
                    "(improved DDPM): '50', '10,20,30' or 'ddim50' (config.sampling.respacing).")
flags.DEFINE_float("guidance_scale", None, "Classifier-free guidance weight w (overrides "
                   "config.sampling.guidance_scale; class-conditional models trained with "
                   "diffusion.cond_drop_prob > 0).")
flags.DEFINE_integer("label", None, "Class to sample (config.sampling.label; -1: all in turn).")
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
flags.DEFINE_string("extractor", None, "Feature extractor for fid/kid/is/pr: digits | inception "
                    "(pytorch-fid's resize) | inception_clean (clean-fid's resize) (default: "
                    "digits on the digits, else inception).")
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


def main(argv):
  del argv
  cli.check_workdir_to_read(FLAGS.workdir)
  cli.check_output_dir(FLAGS.out or FLAGS.workdir, "--out" if FLAGS.out else "--workdir")
  from genjax.training import sampling

  config = FLAGS.config
  overrides = {"sampler": FLAGS.sampler, "steps": FLAGS.steps, "eta": FLAGS.eta,
               "respacing": FLAGS.respacing, "guidance_scale": FLAGS.guidance_scale,
               "label": FLAGS.label}
  for k, v in overrides.items():
    if v is not None:
      if "sampling" not in config or k not in config.sampling:
        print(f"error: --{k} does not apply to config.method={config.method!r} "
              f"(its config has no sampling.{k}).", file=sys.stderr)
        sys.exit(2)
      config.sampling[k] = v
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
  else:
    paths = sampling.sample_to_files(config, FLAGS.workdir, out, num=FLAGS.num,
                                     batch=FLAGS.batch, seed=FLAGS.seed, step=FLAGS.step)
    print("Wrote " + ", ".join(paths))


if __name__ == "__main__":
  cli.run(main)
