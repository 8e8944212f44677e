"""``sample.py --control=... --control_image=... --control_scale=...``: controlled samples of a
trained ControlNet run, written as control map | sample pairs."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import jax
import numpy as np

from genjax.controlnet import conditions as cond_lib
from genjax.controlnet.figures import save_pairs


def _control_images(source: str, dataset, num: int, seed: int):
  """``(images, extra fields)``: a dataset split (its first ``num`` examples, with fields such
  as masks), or image files / an .npz read in the data's shape."""
  if source in ("test", "train"):
    split = getattr(dataset, source)
    data = split.get(np.arange(num) % len(split))
    extra = {k: np.asarray(v) for k, v in data.items() if k not in ("x", "label")}
    return np.asarray(data["x"], np.float32), extra
  if not os.path.exists(source):
    raise ValueError(f"--control_image {source!r} is neither an image file, a folder, an .npz "
                     "nor a dataset split (test, train).")
  from genjax.training.sampling import load_inputs
  images = load_inputs(source, dataset, num, seed, flag="--control_image",
                       use="ControlNet control images")
  reps = -(-num // len(images))
  return np.concatenate([images] * reps)[:num], {}


def control_to_files(config, workdir: str, out: str, *, control: Optional[str] = None,
                     image: str = "test", scales: Optional[Sequence[float]] = None,
                     num: int = 16, batch: int = 256, seed: int = 0,
                     step: Optional[int] = None,
                     prompts: Optional[Sequence[str]] = None) -> list[str]:
  """Restores a ``controlnet`` run and samples it under the control maps of ``image``.

  Args:
    control: the condition computed from the images; must be the run's own condition, or
      ``"map"`` when the images are control maps already (default: the run's).
    image: an image file, a folder, an .npz or a dataset split (``test`` / ``train``).
    scales: control scales; each gives one column of the figure (default: the config's).
    prompts: captions for a text-conditioned base (``--prompt`` / ``--prompts_file``): the
      control image ``i`` is drawn with ``prompts[i % len(prompts)]``. Without prompts, the
      images of a dataset split keep their own captions, other images get the empty caption.

  Writes ``<tag>_control.png`` (rows of control map | sample at each scale) and
  ``<tag>_control.npz`` (images, maps, samples [num_scales, num, ...], scales, and the captions
  ``prompts`` [num] with their ``tokens`` when prompts were given).

  Raises:
    ValueError: a method other than controlnet, a condition other than the run's, a missing
      image, a bad number.
  """
  from genjax.training import run as run_lib
  from genjax.training.sampling import generate
  if config.method != "controlnet":
    raise ValueError(f"--control / --control_image / --control_scale need a controlnet run; "
                     f"config.method={config.method!r}.")
  own = config.controlnet.condition
  control = control or own
  if control not in (own, "map"):
    if control not in cond_lib.CONDITIONS:
      cond_lib.get_condition(control)  # the unknown-name error
    raise ValueError(f"--control={control}: this ControlNet was trained on {own!r} maps; pass "
                     f"--control={own}, or --control=map with images that are {own} maps.")
  for name, value in (("num", num), ("batch", batch)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}.")
  scales = [float(config.controlnet.control_scale)] if scales is None else [float(s) for s in
                                                                          scales]
  tokens = None
  if prompts:
    from genjax.latent.prompts import text_max_len
    from genjax.text import tokenize
    prompts = [prompts[i % len(prompts)] for i in range(num)]
    tokens = np.asarray(tokenize(list(prompts), text_max_len(config)), np.int32)
  run, state = run_lib.restore(config, workdir, step)
  if tokens is not None and "text" not in run.method.modes:
    raise ValueError("--prompt needs a ControlNet on a text-conditioned base (e.g. "
                     "configs/controlnet_shapes_masks.py on configs/ldm_shapes.py); this one's "
                     "base takes no text.")
  images, extra = _control_images(image, run.dataset, num, seed)
  if tokens is not None:
    extra = dict(extra, text=tokens)
  args = dict(config.controlnet.condition_args or {})
  key = jax.random.key(seed)
  if control == "map":  # a map file read as an image: keep the channels the condition makes
    binary = cond_lib.get_condition(own).channels == 1  # the one-channel maps are 0/1 masks
    maps = images[..., :1] if binary else images
    if binary and maps.min() < 0:  # read in [-1, 1]
      maps = (maps + 1) / 2
    base_inputs = {"control": maps}
    if tokens is not None:
      base_inputs["text"] = tokens
  else:
    maps = np.asarray(cond_lib.get_condition(own).compute(
        {"x": images, **extra}, jax.random.fold_in(key, 1), **args))
    base_inputs = {"images": images, **extra}
  samples = []
  for s in scales:
    inputs = dict(base_inputs, scale=np.float32(s))
    samples.append(generate(run.method, state.ema_params, key, num, batch, progress=False,
                            inputs=inputs, xla_cpu_options=run.train.xla_cpu_options))
  os.makedirs(out, exist_ok=True)
  tag = run.method.sample_tag + "_control"
  png = save_pairs(maps, samples, os.path.join(out, f"{tag}.png"))
  npz = os.path.join(out, f"{tag}.npz")
  more = {} if tokens is None else {"prompts": np.asarray(prompts), "tokens": tokens}
  np.savez_compressed(npz, images=images, maps=maps, samples=np.stack(samples),
                      scales=np.asarray(scales), step=int(jax.device_get(state.step)), **more)
  return [png, npz]
