"""Does a class-conditional network condition? Class accuracy and FD of a few variants of one
config, each trained for the same number of steps, on the digits (pixels or latents).

    python -m benchmarks.dit_conditioning --config=configs/dit.py --steps=600 \
        --variant="paper:" --variant="embed1:model.class_embed_std=1.0" --out=/tmp/dit/pix

Each ``--variant`` is ``name:field=value;field=value`` (dotted config fields; an empty list
is the config as it is). Every variant trains in ``--out/<name>`` (reused when finished, see
``benchmarks.common.train_or_reuse``) for ``--steps`` steps, then draws ``--per_class``
samples of every class with the config's sampler (unguided, w = 0, unless ``--scale``) and
reports:

* class accuracy of the shipped digits classifier on them (chance 0.10);
* fd_digits against the test digits, with the real-data floor;
* the label sensitivity of the trained denoiser: the RMS over examples of
  ``eps(x_t, t, y) - mean_y eps(x_t, t, y)`` on noised training images at t = T/4, T/2, 3T/4,
  the size of the part of its output that the label decides;
* the final training loss and the train steps per second of the run.

Writes ``conditioning.json`` and ``conditioning.md`` into ``--out``.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/dit.py", "The config every variant starts from.")
flags.DEFINE_multi_string("variant", ["paper:"], "name:field=value;field=value")
flags.DEFINE_multi_string("set", [], "field=value applied to every variant (e.g. "
                          "ldm.first_stage_workdir=/tmp/latent/runs/ae_kl_d).")
flags.DEFINE_integer("steps", 600, "Training steps of each variant.", lower_bound=1)
flags.DEFINE_integer("per_class", 50, "Samples per class.", lower_bound=1)
flags.DEFINE_float("scale", 0.0, "Classifier-free guidance w of the samples.")
flags.DEFINE_integer("sampling_steps", 20, "DDIM steps of the samples.", lower_bound=1)
flags.DEFINE_string("out", "/tmp/dit_conditioning", "Output directory.")


def _value(text: str):
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    return text


def parse_variant(spec: str) -> tuple[str, dict]:
  """``"name:a.b=1;c.d=x"`` -> ``("name", {"a.b": 1, "c.d": "x"})``."""
  name, _, rest = spec.partition(":")
  if not name:
    raise common.BenchmarkError(f"--variant needs a name before ':', got {spec!r}.")
  fields = {}
  for item in filter(None, rest.split(";")):
    key, eq, val = item.partition("=")
    if not eq:
      raise common.BenchmarkError(f"--variant {name}: {item!r} is not field=value.")
    fields[key.strip()] = _value(val.strip())
  return name, fields


def with_model_fields(config, fields: dict):
  """``common.with_fields``, where ``model.<name>`` may also be a network field the config
  leaves at its default (``model.class_embed_std``); ``build_network`` checks the name."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for k, v in fields.items():
      if k.startswith("model.") and k.count(".") == 1 and k[6:] not in config.model:
        config.model[k[6:]] = v
  return common.with_fields(config, fields, copy=False)


def label_sensitivity(method_net, params, x, num_classes: int, sched, key) -> dict:
  """RMS of the label's part of the denoiser output at three noise levels.

  Args:
    method_net: ``fn(params, x_t, t, y) -> eps``.
    params: the network's params.
    x: [B, ...] clean training inputs (images, or scaled latents).
    num_classes: labels 0..num_classes-1 are compared.
    sched: the discrete schedule (``alphas_cumprod``).
    key: noise key.
  """
  out = {}
  T = len(sched.alphas_cumprod)
  for frac in (0.25, 0.5, 0.75):
    t = int(frac * T)
    a = sched.alphas_cumprod[t]
    noise = jax.random.normal(jax.random.fold_in(key, t), x.shape)
    xt = jnp.sqrt(a) * x + jnp.sqrt(1 - a) * noise
    tt = jnp.full((x.shape[0],), t, jnp.int32)
    eps = jnp.stack([method_net(params, xt, tt, jnp.full((x.shape[0],), k, jnp.int32))
                     for k in range(num_classes)])
    out[f"t{t}"] = float(jnp.sqrt(jnp.mean((eps - eps.mean(0)) ** 2)))
  return out


def main(argv):
  del argv
  from genjax.sampling import schedules
  from genjax.metrics import sample_quality
  from genjax.metrics.digits_classifier import load_digits_classifier
  from genjax.nets.build import build_network
  from genjax.training import run as run_lib
  from genjax.types import DataSpec
  from genjax.typed_config import to_dict

  os.makedirs(FLAGS.out, exist_ok=True)
  shared = dict(parse_variant("set:" + ";".join(FLAGS.set))[1])
  variants = [parse_variant(v) for v in FLAGS.variant]
  _, probs_fn = load_digits_classifier()
  rows, floor = [], None
  for name, fields in variants:
    config = with_model_fields(common.load_config(FLAGS.config), {**shared, **fields})
    config = common.with_fields(config, {"training.num_steps": FLAGS.steps,
                                         "training.sample_every": FLAGS.steps,
                                         "training.ckpt_every": FLAGS.steps})
    workdir = os.path.join(FLAGS.out, name)
    trained = common.train_or_reuse(config, workdir)
    config, run, state = run_lib.load_trained(workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      logs = [json.loads(line) for line in f if '"loss"' in line]
    num_classes = run.dataset.spec.num_classes
    method = common.method_for(config, guidance_scale=FLAGS.scale, steps=FLAGS.sampling_steps)
    num = FLAGS.per_class * num_classes
    s = common.sample(method, state.ema_params, num, seed=0)
    x = s.as_images()
    labels = np.arange(num) % num_classes
    probs = np.asarray(probs_fn(x))
    q = sample_quality(x, baseline=floor is None)
    floor = floor or q["baseline"]

    # The label's part of the output, on noised training inputs.
    batch = run.dataset.train.get(np.arange(256))
    xb = jnp.asarray(batch["x"], jnp.float32)
    ms = dict(to_dict(config.model))
    p = state.ema_params
    if config.method == "ldm":
      from genjax.latent.ldm import load_first_stage
      from genjax.latent.ldm import LDMConfig
      from genjax.typed_config import from_section
      cfg = from_section(LDMConfig, config.ldm, where="ldm")
      fs, fs_params, scale = load_first_stage(cfg, run.dataset.spec)
      xb = fs.encode(fs_params, xb, None) * scale
      p = p["net"]
    ms["out_channels"] = int(xb.shape[-1])
    net = build_network(ms, DataSpec(shape=tuple(xb.shape[1:]), num_classes=num_classes,
                                     kind="image"))
    fn = lambda prm, xt, t, y: net.apply({"params": prm}, xt, t, y=y)
    sched = schedules.get_schedule(config.diffusion.schedule, config.diffusion.num_timesteps)
    sens = label_sensitivity(fn, p, xb, num_classes, sched, jax.random.key(2))
    row = {"variant": name, "fields": fields, "step": int(state.step),
           "train_s": trained.train_s, "steps_per_s": logs[-1].get("steps_per_s"),
           "final_loss": logs[-1]["loss"],
           "params": int(sum(np.size(a) for a in jax.tree.leaves(p))),
           "accuracy": float(np.mean(probs.argmax(-1) == labels)),
           "confidence": float(np.mean(probs[np.arange(num), labels])),
           "fd_digits": q["fd_digits"], "precision": q["precision_digits"],
           "recall": q["recall_digits"], "label_rms": sens, "sampler": s.tag,
           "sample_s": round(s.seconds, 1)}
    rows.append(row)
    print(json.dumps(row), flush=True)
  result = {"config": FLAGS.config, "set": shared, "steps": FLAGS.steps, "scale": FLAGS.scale,
            "per_class": FLAGS.per_class,
            "floor": {k: floor[k] for k in ("fd_digits", "fd_digits_std") if k in floor},
            "rows": rows}
  common.write_json(os.path.join(FLAGS.out, "conditioning.json"), result)
  keys = list(rows[0]["label_rms"]) if rows else []
  lines = [f"{FLAGS.config}, {FLAGS.steps} steps, w = {FLAGS.scale:g}, {FLAGS.per_class} "
           f"samples per class; fd_digits floor {floor['fd_digits']:.3f}", "",
           "| variant | params | final loss | class accuracy | fd_digits | " +
           " | ".join(f"label RMS {k}" for k in keys) + " |",
           "|---|---|---|---|---|" + "---|" * len(keys)]
  for r in rows:
    lines.append(f"| {r['variant']} | {r['params']:,} | {r['final_loss']:.4f} | "
                 f"{r['accuracy']:.3f} | {r['fd_digits']:.3f} | " +
                 " | ".join(f"{r['label_rms'][k]:.4f}" for k in keys) + " |")
  with open(os.path.join(FLAGS.out, "conditioning.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
