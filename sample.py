"""Samples from (or evaluates) a trained genjax model.

    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --sampler=ddim --steps=50 --num=64
    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --sampler=ddpm   # all T steps
    python sample.py --config=configs/iddpm.py --workdir=runs/iddpm --sampler=ddpm --respacing=50
    python sample.py --config=configs/ddpm_cfg.py --workdir=runs/ddpm_cfg --guidance_scale=2
    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --mode=inpaint --input=test
    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm --mode=inpaint --input=test
        --mask=right --sampler=ddpm --repaint_jump=10 --repaint_resample=10   # RePaint
    python sample.py --config=configs/ldm_shapes.py --workdir=runs/ldm_shapes
        --prompt="a red circle" --prompt="a small blue square" --guidance_scale=3   # text
    python sample.py --pretrained=weights/ddpm-cifar10-32 --sampler=ddim --steps=100 --out=out

Every field of the config's sampling section is a flag (``--help`` lists each method's
samplers and what each field does). ``--mode=inpaint|colorize|img2img`` with ``--input`` (an
image file, a folder, an .npz or a dataset split) writes the inputs, what the model was given
and the results side by side.

On an unCLIP decoder (``config.method = "unclip_decoder"``) ``--prompt`` runs text -> CLIP
text embedding -> prior -> decoder, and ``--variations=image.png`` (or a folder, .npz, .npy or a
split) decodes each input's CLIP image embedding ``--num_per_prompt`` times.

On a cascade stage (``config.method = "cascade"``) it runs the whole chain below the stage and
also writes every stage's grid side by side (``<tag>_stages.png``); with ``--prompt`` on a
text-conditioned stage (Imagen, configs/imagen_shapes_sr.py) every text stage takes the prompts.

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
flags.DEFINE_multi_string("prompt", None, "A caption to sample from (repeatable), for "
                          "text-conditioned models; writes one column per prompt, the prompt "
                          "under it.")
flags.DEFINE_string("prompts_file", None, "A file of captions, one per line (with --prompt or "
                    "instead of it).")
flags.DEFINE_integer("num_per_prompt", 4, "Samples per prompt (--prompt / --prompts_file).",
                     lower_bound=1)
flags.DEFINE_string("variations", None, "unCLIP decoder runs: an image file, a folder, an .npz, "
                    "an .npy or a dataset split (test, train) whose CLIP image embeddings are "
                    "decoded --num_per_prompt times each; writes input | variations rows.")
flags.DEFINE_string("control", None, "ControlNet runs: the condition computed from "
                    "--control_image (the run's own: edges, sobel, scribble, blur, lowres, mask, "
                    "foreground), or 'map' when the images are control maps already.")
flags.DEFINE_string("control_image", None, "ControlNet runs: an image file, a folder, an .npz or "
                    "a dataset split (test, train) whose control maps condition the samples; "
                    "writes control map | sample pairs.")
flags.DEFINE_list("control_scale", None, "ControlNet runs: the control scale(s); several (e.g. "
                  "0,0.5,1,2) give one sample column each (default: "
                  "config.controlnet.control_scale).")
flags.DEFINE_string("pretrained", None, "Sample a published model instead of a run: a diffusers "
                    "pipeline folder (model_index.json with unet/ or a DiT transformer/, "
                    "scheduler/) or a UNet2DModel folder (README, 'Pretrained weights'); needs "
                    "--out, not --config/--workdir.")
flags.DEFINE_integer("height", None, "--pretrained Stable Diffusion folders: image height "
                     "(default: the U-Net's sample size times the VAE's factor).", lower_bound=8)
flags.DEFINE_integer("width", None, "--pretrained Stable Diffusion folders: image width.",
                     lower_bound=8)


@flags.multi_flags_validator(["config", "workdir", "pretrained"])
def _required_unless_pretrained(f):
  missing = [n for n in ("config", "workdir") if f[n] is None]
  if f["pretrained"] is None and missing:
    # absl's own wording for a required flag, which genjax.cli turns into one line.
    raise flags.ValidationError(f"Flag --{missing[0]} must have a value other than None.")
  return True


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


def _main_pretrained():
  """``--pretrained``: a converted published model through genjax's samplers."""
  if FLAGS.config is not None or FLAGS.workdir is not None:
    raise cli.UsageError("--pretrained takes no --config/--workdir: the folder has its own.")
  if not FLAGS.out:
    raise cli.UsageError("--pretrained needs --out, the folder to write the samples into.")
  cli.check_output_dir(FLAGS.out, "--out")
  from genjax.pretrained import pipeline
  given = {f: FLAGS[f].value for f in catalog.SamplingConfig.__dataclass_fields__
           if FLAGS[f].present}
  if "taus" in given:
    given["taus"] = tuple(float(t) for t in given["taus"])
  if FLAGS.prompt or FLAGS.prompts_file:
    from genjax.latent import prompts as prompts_lib
    texts = prompts_lib.read_prompts(FLAGS.prompt, FLAGS.prompts_file)
    if not pipeline.is_text_pipeline(FLAGS.pretrained):
      raise cli.UsageError(f"--prompt needs a text-to-image pipeline folder; {FLAGS.pretrained} "
                           "is not one (no unet/ UNet2DConditionModel).")
    paths = pipeline.text_to_files(FLAGS.pretrained, FLAGS.out, texts,
                                   num_per_prompt=FLAGS.num_per_prompt, batch=FLAGS.batch,
                                   seed=FLAGS.seed, height=FLAGS.height, width=FLAGS.width,
                                   **given)
    print("Wrote " + ", ".join(paths))
    return
  if FLAGS.height is not None or FLAGS.width is not None:
    raise cli.UsageError("--height/--width apply to text-to-image pipelines (with --prompt).")
  paths = pipeline.sample_to_files(FLAGS.pretrained, FLAGS.out, num=FLAGS.num, batch=FLAGS.batch,
                                   seed=FLAGS.seed, **given)
  print("Wrote " + ", ".join(paths))


def main(argv):
  del argv
  if FLAGS.pretrained is not None:
    return _main_pretrained()
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
  controlled = bool(FLAGS.control or FLAGS.control_image or FLAGS.control_scale)
  if (FLAGS.prompt or FLAGS.prompts_file) and not controlled:
    from genjax.latent import prompts as prompts_lib
    texts = prompts_lib.read_prompts(FLAGS.prompt, FLAGS.prompts_file)  # checked before work
    if FLAGS.eval:
      raise cli.UsageError("--prompt / --prompts_file and --eval cannot be combined.")
    if FLAGS.variations:
      raise cli.UsageError("--prompt / --prompts_file and --variations cannot be combined.")
    if config.get("method") == "cascade":  # every stage of the chain, side by side
      from genjax.cascade import chain
      paths = chain.prompts_to_files(config, FLAGS.workdir, out, texts,
                                     per_prompt=FLAGS.num_per_prompt, batch=FLAGS.batch,
                                     seed=FLAGS.seed, step=FLAGS.step)
    else:
      paths = prompts_lib.prompt_grid_to_files(config, FLAGS.workdir, out, texts,
                                               per_prompt=FLAGS.num_per_prompt,
                                               batch=FLAGS.batch, seed=FLAGS.seed,
                                               step=FLAGS.step)
    print("Wrote " + ", ".join(paths))
  elif FLAGS.variations:
    if FLAGS.eval:
      raise cli.UsageError("--variations and --eval cannot be combined.")
    from genjax.clip.decoder_method import variations_to_files
    paths = variations_to_files(config, FLAGS.workdir, out, FLAGS.variations,
                                per_image=FLAGS.num_per_prompt, num=FLAGS.num, batch=FLAGS.batch,
                                seed=FLAGS.seed, step=FLAGS.step)
    print("Wrote " + ", ".join(paths))
  elif controlled:  # with --prompt: captions for a ControlNet on a text-conditioned base
    from genjax.controlnet.sampling import control_to_files
    texts = None
    if FLAGS.prompt or FLAGS.prompts_file:
      from genjax.latent import prompts as prompts_lib
      texts = prompts_lib.read_prompts(FLAGS.prompt, FLAGS.prompts_file)
    try:
      scales = None if FLAGS.control_scale is None else [float(v) for v in FLAGS.control_scale]
    except ValueError:
      raise cli.UsageError(f"--control_scale takes numbers, got {FLAGS.control_scale}.")
    paths = control_to_files(config, FLAGS.workdir, out, control=FLAGS.control,
                             image=FLAGS.control_image or "test", scales=scales, num=FLAGS.num,
                             batch=FLAGS.batch, seed=FLAGS.seed, step=FLAGS.step,
                             prompts=texts)
    print("Wrote " + ", ".join(paths))
  elif FLAGS.eval:
    result = sampling.evaluate(config, FLAGS.workdir, FLAGS.eval.split(","), out,
                               num=FLAGS.num, seed=FLAGS.seed, step=FLAGS.step,
                               batch=FLAGS.batch, extractor=FLAGS.extractor, ref=FLAGS.ref,
                               weights=FLAGS.weights, ref_format=FLAGS.ref_format,
                               allow_resize_mismatch=FLAGS.allow_resize_mismatch,
                               lpips_weights=FLAGS.lpips_weights)
    import json
    print(json.dumps(result, indent=2, default=float))
    print(f"Wrote {os.path.join(out, 'eval.json')}")
  elif config.get("method") == "cascade":  # the whole chain, every stage's grid side by side
    from genjax.cascade import chain
    paths = chain.sample_to_files(config, FLAGS.workdir, out, num=FLAGS.num, batch=FLAGS.batch,
                                  seed=FLAGS.seed, step=FLAGS.step)
    print("Wrote " + ", ".join(paths))
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
