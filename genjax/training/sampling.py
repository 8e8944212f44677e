"""Sampling and evaluation of a trained run: what sample.py calls."""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from genjax import viz
from genjax.training import compile_opts
from genjax.training import method as method_lib
from genjax.training import run as run_lib
from genjax.training import trainer


def generate(method, params, key, num: int, batch: int, mesh=None, progress: bool = True,
             inputs: Optional[dict] = None, xla_cpu_options: str = "auto") -> np.ndarray:
  """Draws ``num`` samples in equal jitted chunks of ``batch``, sharded over the devices.

  ``inputs`` (inpainting, colorization, img2img: ``{"known": [num, ...], "mask": ...}``) are
  cut into the same chunks (the last one padded) and passed to ``method.sample``. The sampler
  is compiled with the ``sample`` options of ``xla_cpu_options``
  (:mod:`genjax.training.compile_opts`; CPU only), as the trainer's in-training samples are.
  """
  mesh = mesh or trainer.make_mesh()
  batch = min(batch, num)
  batch = max(mesh.size, batch // mesh.size * mesh.size)  # divisible by the device count
  jit = dict(out_shardings=NamedSharding(mesh, P("data")),
             compiler_options=compile_opts.compiler_options(xla_cpu_options, "sample"))
  if inputs is None:
    fn = jax.jit(lambda p, k, _: method.sample(p, k, batch), **jit)
  else:
    fn = jax.jit(lambda p, k, inp: method.sample(p, k, batch, inputs=inp), **jit)
  chunks = []
  n_chunks = -(-num // batch)
  it = range(n_chunks)
  if progress:
    from tqdm.auto import tqdm
    it = tqdm(it, desc=f"sample {method.name}", unit="batch", dynamic_ncols=True)
  for i in it:
    chunk = None
    if inputs is not None:
      idx = np.arange(i * batch, (i + 1) * batch) % num  # the last chunk wraps around
      chunk = {k: (np.asarray(v)[idx] if np.ndim(v) and np.shape(v)[0] == num else v)
               for k, v in inputs.items()}
    chunks.append(np.asarray(jax.device_get(fn(params, jax.random.fold_in(key, i), chunk))))
  return np.concatenate(chunks)[:num]


def sample_to_files(config, workdir: str, out: str, num: int = 64, batch: int = 256,
                    seed: int = 0, step: Optional[int] = None) -> list[str]:
  """Restores ``workdir`` and writes ``<tag>.png`` (grid) and ``<tag>.npz`` (all samples).

  ``out`` is created only when the samples are written; ``workdir`` is only read.

  Raises:
    ValueError: ``num`` or ``batch`` is not a positive integer.
    CheckpointError: no intact checkpoint (see :func:`genjax.training.run.restore`).
  """
  for name, value in (("num", num), ("batch", batch)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be a positive integer (samples), got {value!r}.")
  run, state = run_lib.restore(config, workdir, step)
  samples = generate(run.method, state.ema_params, jax.random.key(seed), num, batch,
                     xla_cpu_options=run.train.xla_cpu_options)
  os.makedirs(out, exist_ok=True)
  tag = run.method.sample_tag
  png = os.path.join(out, f"{tag}.png")
  if run.method.plot_samples is not None:
    data = run.dataset.test.get(np.arange(min(len(run.dataset.test), 5000)))["x"]
    method_lib.plot_samples(run.method, samples, data, png, state=state)
  else:
    viz.save_image_grid(samples[:256], png)
  npz = os.path.join(out, f"{tag}.npz")
  np.savez_compressed(npz, samples=samples, step=int(jax.device_get(state.step)))
  return [png, npz]


SAMPLE_METRICS = ("fd", "fid", "kid", "is", "pr")
# The reconstruction metrics (methods that reconstruct) come after the sample metrics.
GENERIC_EVALS = SAMPLE_METRICS + ("psnr", "ssim", "lpips", "parzen")


def evaluate(config, workdir: str, names: Sequence[str], out: str, num: int = 1000,
             seed: int = 0, step: Optional[int] = None, batch: int = 256,
             extractor: Optional[str] = None, ref: Optional[str] = None,
             weights: Optional[str] = None, ref_format: Optional[str] = None,
             allow_resize_mismatch: bool = False, lpips_weights: Optional[str] = None) -> dict:
  """Runs the named evaluations and writes ``eval.json``.

  Names are the method's own evaluators (e.g. ``nll``, ``elbo``, ``modes``) or the evaluations
  every method has:

  * the sample metrics ``fd``/``fid``, ``kid``, ``is``, ``pr``: ``num`` samples are drawn batch
    by batch (sharded over the devices) and streamed into ``genjax.metrics.Evaluator``, so no
    more than one batch of images is held: on the digits in the shipped digits classifier's
    feature space with the real-against-real floor beside them (keys ``fd_digits``, ...); on
    shapes likewise in the shipped shapes classifier's space (``fd_shapes``, ...); on
    other data with ``extractor`` (default Inception; needs ``weights``) against the ``ref``
    file (genjax's, or pytorch-fid / TTUR / clean-fid statistics: ``ref_format``);
  * the reconstruction metrics ``psnr``, ``ssim``, ``lpips`` (methods that reconstruct: the
    autoencoders and first stages) on the first ``num`` held-out test images;
  * ``parzen``: the Parzen-window test log-likelihood of Goodfellow et al. (Table 1), a kernel
    density on ``config.parzen.num_samples`` samples (:func:`genjax.metrics.parzen.parzen_on_dataset`).

  Names, the extractor, the weights and the reference (and its compatibility with the samples)
  are all checked before anything is sampled.
  """
  from genjax.metrics import extractors as extractors_lib
  from genjax.metrics import reconstruction
  names = [n.strip().lower() for n in names if n.strip()]
  if not names:
    raise ValueError(f"--eval names no evaluation; valid: {list(GENERIC_EVALS)} and the "
                     "method's own.")
  if extractor is not None:
    extractors_lib.check_extractor_name(extractor)
  recon = [n for n in names if n in reconstruction.RECONSTRUCTION_METRICS]
  if recon and run_lib.build_run(config).method.reconstruct is None:  # before any reading
    raise ValueError(f"--eval={','.join(recon)} needs a method that reconstructs (the "
                     f"autoencoders); {config.method!r} does not.")
  run, state = run_lib.restore(config, workdir, step)
  unknown = [n for n in names if n not in GENERIC_EVALS and n not in run.method.evaluators]
  if unknown:
    raise ValueError(f"--eval={','.join(unknown)} is not available for method "
                     f"{run.method.name!r}; available: "
                     f"{sorted(run.method.evaluators) + list(GENERIC_EVALS)}.")
  quality = [n for n in names if n in SAMPLE_METRICS]
  # Everything that can fail without samples fails now: weights, reference, counts.
  quality_eval = (_sample_quality(run, state, quality, num, batch, seed, extractor, ref, weights,
                                  ref_format, allow_resize_mismatch) if quality else None)
  recon_eval = None
  if recon:
    if run.dataset.spec.kind != "image":
      raise ValueError("--eval=psnr/ssim/lpips needs image data.")
    recon_eval = reconstruction.ReconstructionEvaluator(recon, run.dataset.spec.shape,
                                                        lpips_weights)
  results = {"step": int(jax.device_get(state.step)), "method": run.method.name}
  for i, name in enumerate(names):
    if name in run.method.evaluators:
      fn = run.method.evaluators[name]
      extra = {"out": out} if _takes_out(fn) else {}  # evaluators that write figures
      results[name] = fn(state, run.dataset, jax.random.key(seed + i), num, **extra)
  if "parzen" in names and "parzen" not in run.method.evaluators:
    from genjax.metrics import parzen
    from genjax.typed_config import from_section
    cfg = from_section(parzen.ParzenConfig, config.get("parzen", {}), where="parzen")
    samples = generate(run.method, state.ema_params, jax.random.key(seed + names.index("parzen")),
                       cfg.num_samples, batch, xla_cpu_options=run.train.xla_cpu_options)
    results["parzen"] = parzen.parzen_on_dataset(samples, run.dataset, cfg, num,
                                                 image=run.dataset.spec.kind == "image")
  if quality_eval is not None:
    results["sample_quality"] = quality_eval()
  if recon_eval is not None:
    fn = jax.jit(run.method.reconstruct)
    n = min(int(num), len(run.dataset.test))
    for start in range(0, n, batch):
      x = np.asarray(run.dataset.test.get(np.arange(start, min(start + batch, n)))["x"])
      recon_eval.update(x, np.asarray(fn(state.ema_params, x)))
    results["reconstruction"] = dict(recon_eval.compute(), split="test")
  results["sampling"] = run.method.sample_tag
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "eval.json"), "w") as f:
    json.dump(results, f, indent=2, default=float)
  return results


def _takes_out(fn) -> bool:
  """Whether an evaluator has an ``out`` parameter (the output directory for its figures)."""
  import inspect
  try:
    return "out" in inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False


def _sample_quality(run, state, names, num, batch, seed, extractor, ref, weights,
                    ref_format=None, allow_resize_mismatch=False):
  """Checks the sample-metric setup now; returns a thunk that samples and scores.

  The samples are drawn in jitted, sharded chunks of ``batch`` (the same draws as
  :func:`generate` with this seed), clipped to [-1, 1] as a PNG would be (the clipped fraction
  is recorded), and streamed into a ``genjax.metrics.Evaluator`` with a progress bar.
  """
  from genjax import metrics
  if run.dataset.spec.kind != "image":
    raise ValueError("--eval=fd/kid/is/pr needs image data; 2-D point data has no feature "
                     "extractor (use the method's own evaluators).")
  is_digits = run.data.dataset == "digits"
  is_shapes = run.data.dataset == "shapes"
  extractor = extractor or ("digits" if is_digits else "shapes" if is_shapes else "inception")
  digits_floor = extractor == "digits" and ref is None
  shapes_floor = extractor == "shapes" and ref is None
  if digits_floor and not is_digits:
    raise ValueError("The digits classifier scores digits only; pass --extractor=inception "
                     "--weights=... --ref=... for this dataset.")
  if shapes_floor and not is_shapes:
    raise ValueError("The shapes classifier scores shapes only; pass --extractor=inception "
                     "--weights=... --ref=... for this dataset.")
  if ref is None and not (digits_floor or shapes_floor) and names != ["is"]:
    raise ValueError(
        f"--eval={','.join(names)} on {run.data.dataset!r} needs reference statistics: make "
        f"them once with `python -m genjax.metrics.ref_stats --dataset {run.data.dataset} "
        f"--split test --extractor {extractor} --out REF.npz` and pass --ref=REF.npz.")
  metric_names = ("fd", "kid", "is", "pr") if digits_floor or shapes_floor else tuple(
      dict.fromkeys("fd" if n == "fid" else n for n in names))
  ev = metrics.Evaluator(metric_names, extractor, ref, image_shape=run.dataset.spec.shape,
                         num=num, weights=weights, ref_format=ref_format,
                         allow_resize_mismatch=allow_resize_mismatch, progress=True)

  def sample_and_score() -> dict:
    from tqdm.auto import tqdm
    mesh = trainer.make_mesh()
    b = min(batch, num)
    b = max(mesh.size, b // mesh.size * mesh.size)  # divisible by the device count
    fn = jax.jit(lambda p, k: run.method.sample(p, k, b),
                 out_shardings=NamedSharding(mesh, P("data")),
                 compiler_options=compile_opts.compiler_options(run.train.xla_cpu_options,
                                                                "sample"))
    key = jax.random.key(seed)
    clipped = 0
    bar = tqdm(total=num, desc=f"sample + evaluate ({ev.extractor.space})", unit="img",
               dynamic_ncols=True)
    for i in range(-(-num // b)):
      x = np.asarray(jax.device_get(fn(state.ema_params, jax.random.fold_in(key, i))))
      x = x[:num - i * b]
      clipped += int(np.sum(np.abs(x) > 1.0))
      ev.update(np.clip(x, -1.0, 1.0))
      bar.update(len(x))
    bar.close()
    out = ev.compute()
    if digits_floor:
      metrics.add_digits_baseline(out, ev, progress=True)
    if shapes_floor:
      metrics.add_shapes_baseline(out, ev, progress=True)
    out["clipped_fraction"] = clipped / float(num * int(np.prod(run.dataset.spec.shape)))
    return out

  return sample_and_score


# ------------------------------------------------------------------------------------------------
# Training-free conditional sampling: inpaint / colorize / img2img (config.sampling.mode).
# ------------------------------------------------------------------------------------------------


def load_inputs(source: str, dataset, n: int, seed: int = 0, flag: str = "--input",
                use: str = "inpaint / colorize / img2img") -> np.ndarray:
  """``n`` input images in the data's shape and range: a dataset split (``test`` / ``train``:
  a seeded choice of its examples), an image file or folder (PNG/JPEG, resized and converted
  to the data's channels), or an ``.npz`` of images.

  ``flag`` and ``use`` name the command-line flag the images came from and what they are for,
  in the error messages (e.g. ``"--control_image"``, ``"ControlNet"``).

  Raises:
    ValueError: no input, an unknown split, or images that cannot take the data's shape.
  """
  spec = dataset.spec
  if spec.kind != "image":
    raise ValueError(f"{use} need image data.")
  h, w, c = spec.shape
  if not source:
    raise ValueError(f"{'mode ' if flag == '--input' else ''}{use} needs {flag}: an image file, a "
                     "folder of images, an .npz, or a dataset split (test or train).")
  if source in ("test", "train"):
    split = getattr(dataset, source)
    idx = np.random.default_rng(seed).choice(len(split), size=min(n, len(split)), replace=False)
    return np.asarray(split.get(np.sort(idx))["x"], np.float32)
  from genjax.data import resize_images
  from genjax.metrics import image_files
  if not os.path.exists(source):
    raise ValueError(f"{flag} {source!r} is neither a file, a folder nor a split (test, train).")
  if os.path.isfile(source) and not source.endswith(".npz"):
    images = image_files.read_image(source, c)[None]
  else:
    images = next(image_files.iter_image_batches(source, batch_size=n, max_images=n))
  images = np.asarray(images, np.float32)[:n]
  if images.shape[-1] != c:  # grey <-> RGB
    images = (images.mean(axis=-1, keepdims=True) if c == 1
              else np.repeat(images[..., :1], c, axis=-1))
  return resize_images(images, (h, w))


def _input_mask(spec: str, shape, seed: int) -> np.ndarray:
  from genjax.sampling.conditional import MASKS, make_mask
  if spec in MASKS:
    return make_mask(spec, shape, seed)
  if not os.path.isfile(spec):
    raise ValueError(f"--mask {spec!r} is neither one of {', '.join(MASKS)} nor an image file.")
  from genjax.data import resize_images
  from genjax.metrics import image_files
  m = image_files.read_image(spec, 1)[None]  # white (kept) = 1
  m = (resize_images(np.asarray(m, np.float32), tuple(shape[1:3])) > 0.0).astype(np.float32)
  return np.broadcast_to(m, (shape[0],) + tuple(shape[1:3]) + (1,)).copy()


def edit_to_files(config, workdir: str, out: str, num: int = 16, batch: int = 256,
                  seed: int = 0, step: Optional[int] = None, per_input: int = 4) -> list[str]:
  """Inpaints, colorizes or edits (SDEdit) input images with a restored run and writes
  ``<tag>.png`` (one row per input: the input, what the model was given, and ``per_input``
  results side by side) and ``<tag>.npz`` (inputs, mask and results).

  ``config.sampling`` says what to do: ``mode``, ``input`` (a file, folder, ``.npz`` or a split),
  ``mask`` (inpainting: the region to fill in, or a mask image) and ``strength`` (img2img).

  Raises:
    ValueError: a method without that mode, or unusable inputs.
  """
  from genjax.sampling.catalog import SamplingConfig
  from genjax.typed_config import from_section
  cfg = from_section(SamplingConfig, config.get("sampling", {}), where="sampling")
  run, state = run_lib.restore(config, workdir, step)
  if cfg.mode not in run.method.modes:
    raise ValueError(f"method {run.method.name!r} cannot {cfg.mode}; its modes: "
                     f"{', '.join(run.method.modes)}.")
  per_input = max(1, min(int(per_input), num))
  n_in = max(1, num // per_input)
  images = load_inputs(cfg.input, run.dataset, n_in, seed)
  n_in = len(images)
  known = np.repeat(images, per_input, axis=0)  # grouped by input
  total = len(known)
  inputs = {"known": known}
  shown = images
  mask = None
  if cfg.mode == "inpaint":
    mask = _input_mask(cfg.mask, known.shape, seed)
    inputs["mask"] = mask
    shown = images * mask[::per_input]  # the unknown region shown as mid-grey (0)
  elif cfg.mode == "colorize":
    shown = np.repeat(images.mean(axis=-1, keepdims=True), images.shape[-1], axis=-1)
  samples = generate(run.method, state.ema_params, jax.random.key(seed), total, batch,
                     inputs=inputs, xla_cpu_options=run.train.xla_cpu_options)
  os.makedirs(out, exist_ok=True)
  tag = run.method.sample_tag
  columns = [images[:, None]] + ([shown[:, None]] if cfg.mode != "img2img" else [])
  columns.append(samples.reshape((n_in, per_input) + samples.shape[1:]))
  rows = np.concatenate(columns, axis=1)
  png = os.path.join(out, f"{tag}.png")
  viz.save_image_grid(rows.reshape((-1,) + rows.shape[2:]), png, nrow=rows.shape[1])
  npz = os.path.join(out, f"{tag}.npz")
  np.savez_compressed(npz, samples=samples, inputs=images,
                      mask=np.zeros(0) if mask is None else mask[::per_input],
                      step=int(jax.device_get(state.step)))
  return [png, npz]
