"""Sampling and evaluation of a trained run: what sample.py calls."""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from genjax import viz
from genjax.training import method as method_lib
from genjax.training import run as run_lib
from genjax.training import trainer


def generate(method, params, key, num: int, batch: int, mesh=None, progress: bool = True) -> np.ndarray:
  """Draws ``num`` samples in equal jitted chunks of ``batch``, sharded over the devices."""
  mesh = mesh or trainer.make_mesh()
  batch = min(batch, num)
  batch = max(mesh.size, batch // mesh.size * mesh.size)  # divisible by the device count
  out_sharding = NamedSharding(mesh, P("data"))
  fn = jax.jit(lambda p, k: method.sample(p, k, batch), out_shardings=out_sharding)
  chunks = []
  n_chunks = -(-num // batch)
  it = range(n_chunks)
  if progress:
    from tqdm.auto import tqdm
    it = tqdm(it, desc=f"sample {method.name}", unit="batch", dynamic_ncols=True)
  for i in it:
    chunks.append(np.asarray(jax.device_get(fn(params, jax.random.fold_in(key, i)))))
  return np.concatenate(chunks)[:num]


def _tag(config) -> str:
  """File stem naming the sampler and its step count, so that runs with different settings do
  not overwrite each other: ``ddim50_eta0.0``, ``ddpm`` (all T steps), ``pc_1000``,
  ``dpm-solver-2_20``, ``ddpm_respaced50``, ``ddim50_eta1.0_w2.0_label3``; ``samples`` for
  methods without a sampling section."""
  if "sampling" not in config:
    return "samples"
  s = config.sampling
  tag = s.get("sampler", "samples")
  if tag == "ddim":
    steps = s.get("steps") or "_student"  # progressive distillation: 0 = the student's N
    tag = f"ddim{steps}" + (f"_eta{s.get('eta')}" if "eta" in s else "")
  elif tag == "ddpm" and s.get("respacing"):
    tag = f"ddpm_respaced{s.get('respacing')}"
  elif tag != "ddpm" and s.get("steps") is not None:
    tag = f"{tag}_{s.get('steps')}"
  if s.get("guidance_scale"):
    tag += f"_w{s.get('guidance_scale')}"
  if s.get("label") is not None and s.get("label") >= 0:
    tag += f"_label{s.get('label')}"
  return tag


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
  samples = generate(run.method, state.ema_params, jax.random.key(seed), num, batch)
  os.makedirs(out, exist_ok=True)
  tag = _tag(config)
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
  if recon:
    from genjax.autoencoders import figures  # the registry of methods that reconstruct
    builders = figures.model_builders()
    if config.method not in builders:
      raise ValueError(f"--eval={','.join(recon)} needs a method that reconstructs "
                       f"({', '.join(sorted(builders))}); {config.method!r} does not.")
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
    model = builders[config.method](config, run.dataset.spec)
  results = {"step": int(jax.device_get(state.step)), "method": run.method.name}
  for i, name in enumerate(names):
    if name in run.method.evaluators:
      results[name] = run.method.evaluators[name](state, run.dataset, jax.random.key(seed + i),
                                                  num)
  if "parzen" in names and "parzen" not in run.method.evaluators:
    from genjax.metrics import parzen
    from genjax.typed_config import from_section
    cfg = from_section(parzen.ParzenConfig, config.get("parzen", {}), where="parzen")
    samples = generate(run.method, state.ema_params, jax.random.key(seed + names.index("parzen")),
                       cfg.num_samples, batch)
    results["parzen"] = parzen.parzen_on_dataset(samples, run.dataset, cfg, num,
                                                 image=run.dataset.spec.kind == "image")
  if quality_eval is not None:
    results["sample_quality"] = quality_eval()
  if recon_eval is not None:
    fn = jax.jit(model.reconstruct)
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
  extractor = extractor or ("digits" if is_digits else "inception")
  digits_floor = extractor == "digits" and ref is None
  if digits_floor and not is_digits:
    raise ValueError("The digits classifier scores digits only; pass --extractor=inception "
                     "--weights=... --ref=... for this dataset.")
  if ref is None and not digits_floor and names != ["is"]:
    raise ValueError(
        f"--eval={','.join(names)} on {run.data.dataset!r} needs reference statistics: make "
        f"them once with `python -m genjax.metrics.ref_stats --dataset {run.data.dataset} "
        f"--split test --extractor {extractor} --out REF.npz` and pass --ref=REF.npz.")
  metric_names = ("fd", "kid", "is", "pr") if digits_floor else tuple(
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
                 out_shardings=NamedSharding(mesh, P("data")))
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
    out["clipped_fraction"] = clipped / float(num * int(np.prod(run.dataset.spec.shape)))
    return out

  return sample_and_score
