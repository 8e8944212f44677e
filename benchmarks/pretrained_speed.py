"""genjax's jitted sampler against the diffusers pipeline on the same converted model.

A diffusers ``UNet2DModel`` (random weights) is saved with ``save_pretrained`` and converted
with :mod:`genjax.pretrained`; then, for each batch size, genjax's DDIM / respaced DDPM sampler
(one jitted ``lax.scan``) and diffusers' ``DDIMPipeline`` / ``DDPMPipeline`` run the same
scheduler on the same timesteps, interleaved in one process (``--repeats`` rounds; the median
is reported). Peak memory is measured apart, in a fresh child process per framework: the growth
of the peak resident set (``ru_maxrss``) over what the process held after loading the model.

    python -m benchmarks.pretrained_speed --configs=tiny,cifar10 --batches=1,4 --steps=10

Configurations: ``tiny`` (a 2-level, 32/64-channel U-Net on 16x16) and ``cifar10`` (Ho et al.'s
CIFAR-10 U-Net, 35.7M parameters, 32x32). ``--json`` writes the rows.

Both frameworks run single-threaded (``--threads=1``: ``torch.set_num_threads(1)`` and XLA's
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``): on a loaded machine
PyTorch's two-thread barriers cost a scheduler quantum per operator (measured 64x slower per
U-Net call at load 40), which would measure the machine, not the frameworks.
"""

from __future__ import annotations

import json
import os
import sys

if "--threads=1" in sys.argv or not any(a.startswith("--threads") for a in sys.argv):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                             " intra_op_parallelism_threads=1").strip()
import resource
import statistics
import subprocess
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("configs", "tiny,cifar10", "Comma-separated: tiny | cifar10.")
flags.DEFINE_string("batches", "1,4", "Comma-separated batch sizes.")
flags.DEFINE_integer("steps", 10, "Sampler steps (DDIM; DDPM on the same respaced grid).")
flags.DEFINE_string("samplers", "ddim,ddpm", "Comma-separated: ddim | ddpm.")
flags.DEFINE_integer("repeats", 3, "Interleaved timing rounds.")
flags.DEFINE_string("json", None, "Write the rows here.")
flags.DEFINE_string("mem_only", None, "Internal: measure one framework's peak memory.")
flags.DEFINE_string("folder", None, "Internal: the saved model folder.")
flags.DEFINE_integer("batch", 1, "Internal: the batch of --mem_only.")
flags.DEFINE_string("sampler", "ddim", "Internal: the sampler of --mem_only.")
flags.DEFINE_integer("threads", 1, "1: both frameworks single-threaded; 0: their defaults.")

CONFIGS = {
    "tiny": dict(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                 down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8),
    "cifar10": dict(sample_size=32, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D",
                                      "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                    norm_num_groups=32),
}
COMMON = dict(in_channels=3, out_channels=3, attention_head_dim=None, downsample_padding=0,
              flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6)


def save_model(name: str, folder: str) -> str:
  import diffusers
  import torch
  torch.manual_seed(0)
  diffusers.UNet2DModel(**CONFIGS[name], **COMMON).save_pretrained(folder)
  return folder


def genjax_runner(folder: str, sampler: str, steps: int, batch: int):
  """A callable that samples ``batch`` images with genjax (compiled on its first call)."""
  import jax
  import jax.numpy as jnp
  from genjax.pretrained import pipeline, scheduler
  from genjax.sampling import registry
  model = pipeline.load(folder)
  model = pipeline.Pretrained(model.kind, model.kwargs, model.params, model.shape,
                              scheduler.scheduler_config({"_class_name": "DDPMScheduler"}),
                              folder)
  cfg = pipeline.sampling_config(model, sampler=sampler, steps=steps if sampler == "ddim" else 0,
                                 respacing=f"ddim{steps}" if sampler == "ddpm" else "", eta=0.0)
  m = pipeline.registry_model(model)
  registry.validate(cfg, m)
  net_apply = pipeline._apply

  @jax.jit
  def run(params, key):
    import dataclasses
    mm = dataclasses.replace(m, model_fn=lambda x, t, c: net_apply(model, params, x, t, c))
    return registry.run(mm, cfg, key, (batch, *model.shape))
  params = jax.tree.map(jnp.asarray, model.params)
  state = {"i": 0}

  def call():
    state["i"] += 1
    return jax.block_until_ready(run(params, jax.random.key(state["i"])))
  return call


def diffusers_runner(folder: str, sampler: str, steps: int, batch: int):
  import diffusers
  import torch
  unet = diffusers.UNet2DModel.from_pretrained(folder).eval()
  if sampler == "ddim":
    pipe = diffusers.DDIMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler())
    kw = dict(num_inference_steps=steps, eta=0.0)
  else:
    pipe = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler())
    kw = dict(num_inference_steps=steps)
  pipe.set_progress_bar_config(disable=True)
  state = {"i": 0}

  def call():
    state["i"] += 1
    with torch.no_grad():
      return pipe(batch_size=batch, generator=torch.manual_seed(state["i"]), output_type="np",
                  **kw).images
  return call


def _status_mib(field: str) -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) / 1024
  return float("nan")


def mem_only() -> None:
  """Child process: the peak resident-set growth of the first call (genjax: compilation
  included) and of a later call (VmHWM reset through /proc/self/clear_refs), over the RSS with
  the model loaded."""
  make = genjax_runner if FLAGS.mem_only == "genjax" else diffusers_runner
  call = make(FLAGS.folder, FLAGS.sampler, FLAGS.steps, FLAGS.batch)
  base = _status_mib("VmRSS")
  call()
  first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
  base = _status_mib("VmRSS")
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current RSS
  call()
  later = _status_mib("VmHWM") - base
  print(json.dumps({"first_call_growth_mib": first, "growth_mib": later}))


def child_memory(framework, folder, sampler, steps, batch) -> dict:
  cmd = [sys.executable, "-m", "benchmarks.pretrained_speed", f"--mem_only={framework}",
         f"--folder={folder}", f"--sampler={sampler}", f"--steps={steps}", f"--batch={batch}",
         f"--threads={FLAGS.threads}"]
  out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if FLAGS.threads == 1:
    import torch
    torch.set_num_threads(1)
  if FLAGS.mem_only:
    return mem_only()
  rows = []
  tmp = tempfile.mkdtemp(prefix="genjax_pretrained_speed_")
  for name in FLAGS.configs.split(","):
    folder = save_model(name, os.path.join(tmp, name))
    for sampler in FLAGS.samplers.split(","):
      for batch in [int(b) for b in FLAGS.batches.split(",")]:
        g = genjax_runner(folder, sampler, FLAGS.steps, batch)
        d = diffusers_runner(folder, sampler, FLAGS.steps, batch)
        t0 = time.perf_counter()
        g()
        compile_s = time.perf_counter() - t0
        d()  # warm-up
        tg, td = [], []
        for _ in range(FLAGS.repeats):  # interleaved: the machine's load hits both alike
          t0 = time.perf_counter()
          g()
          tg.append(time.perf_counter() - t0)
          t0 = time.perf_counter()
          d()
          td.append(time.perf_counter() - t0)
        mg = child_memory("genjax", folder, sampler, FLAGS.steps, batch)
        md = child_memory("diffusers", folder, sampler, FLAGS.steps, batch)
        row = dict(config=name, sampler=sampler, steps=FLAGS.steps, batch=batch,
                   genjax_s_per_image=statistics.median(tg) / batch,
                   diffusers_s_per_image=statistics.median(td) / batch,
                   speedup=statistics.median(td) / statistics.median(tg),
                   genjax_first_call_s=compile_s,
                   genjax_peak_growth_mib=mg["growth_mib"],
                   diffusers_peak_growth_mib=md["growth_mib"],
                   genjax_first_call_growth_mib=mg["first_call_growth_mib"],
                   diffusers_first_call_growth_mib=md["first_call_growth_mib"])
        rows.append(row)
        print(json.dumps(row), flush=True)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(rows, f, indent=1)
  print("| config | sampler | batch | genjax s/img | diffusers s/img | diffusers/genjax | "
        "peak MiB genjax / diffusers | first call MiB genjax / diffusers | genjax compile s |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['config']} | {r['sampler']} {r['steps']} | {r['batch']} | "
          f"{r['genjax_s_per_image']:.3f} | {r['diffusers_s_per_image']:.3f} | "
          f"{r['speedup']:.2f}x | {r['genjax_peak_growth_mib']:.0f} / "
          f"{r['diffusers_peak_growth_mib']:.0f} | {r['genjax_first_call_growth_mib']:.0f} / "
          f"{r['diffusers_first_call_growth_mib']:.0f} | {r['genjax_first_call_s']:.1f} |")


if __name__ == "__main__":
  app.run(main)
