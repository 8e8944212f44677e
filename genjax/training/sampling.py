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
  if "sampling" in config:
    s = config.sampling
    tag = s.get("sampler", "samples")
    if tag == "ddim":
      tag += f"{s.get('steps')}_eta{s.get('eta')}"
    return tag
  return "samples"


def sample_to_files(config, workdir: str, out: str, num: int = 64, batch: int = 256,
                    seed: int = 0, step: Optional[int] = None) -> list[str]:
  """Restores ``workdir`` and writes ``<tag>.png`` (grid) and ``<tag>.npz`` (all samples)."""
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


def evaluate(config, workdir: str, names: Sequence[str], out: str, num: int = 1000,
             seed: int = 0, step: Optional[int] = None) -> dict:
  """Runs the named evaluations (the method's own, e.g. ``nll``) and writes ``eval.json``."""
  run, state = run_lib.restore(config, workdir, step)
  results = {"step": int(jax.device_get(state.step)), "method": run.method.name}
  for i, name in enumerate(n.strip() for n in names):
    if name not in run.method.evaluators:
      raise ValueError(f"--eval={name!r} is not available for method {run.method.name!r}; "
                       f"available: {sorted(run.method.evaluators)}.")
    results[name] = run.method.evaluators[name](state, run.dataset, jax.random.key(seed + i), num)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "eval.json"), "w") as f:
    json.dump(results, f, indent=2, default=float)
  return results
