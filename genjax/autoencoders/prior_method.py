"""The learned prior over VQ-VAE codes: a second training stage (``"vq_prior"``).

van den Oord et al. 2017 (Sec. 3.1: "we fit an autoregressive distribution over z ... with
a PixelCNN") and Razavi et al. 2019 (VQ-VAE-2, Sec. 3.2, Algorithm 2): the first stage (a
``"vqvae"`` or ``"vqvae2"`` run) is frozen; its encoder turns every training image into
codes, and a gated PixelCNN per level learns ``p(codes)`` by maximum likelihood. For
VQ-VAE-2 the top prior is unconditional (or class-conditional) and the bottom prior is
conditioned on the top codes (their codebook vectors, upsampled to the bottom grid).
Sampling draws the top codes, then the bottom codes, each by one ``lax.scan`` over the
positions in raster order, and decodes them with the frozen first-stage decoder.

The first stage is named by ``config.prior.vqvae_workdir``; its config is read from the
workdir's record (``config.json``, written by train.py) unless ``config.prior.vqvae_config``
names a config file. Its EMA params are what is frozen (those the trainer samples with).

  python train.py --config=configs/vqvae2.py --workdir=runs/vqvae2
  python train.py --config=configs/vqvae2_prior.py --workdir=runs/vqvae2_prior \
      --config.prior.vqvae_workdir=runs/vqvae2
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.autoencoders import common
from genjax.autoencoders import vq as vq_lib
from genjax.autoencoders.vq_method import build_vq_model
from genjax.nets.pixelcnn import GatedPixelCNN
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class PriorConfig:
  """The ``config.prior`` section.

  Attributes:
    vqvae_workdir: workdir of the trained first stage (required).
    vqvae_config: config file of the first stage; None reads the workdir's record of its
      latest checkpoints (``config.json``, or the ``config.step<N>.json`` of an accepted change).
    hidden: channels of the PixelCNN stacks.
    num_layers: gated layers after the first.
    kernel_size: odd size of the masked convolutions.
    cond_hidden: channels of the conditioning network (bottom prior of VQ-VAE-2).
    class_conditional: condition every level on the class label (samples cycle through the
      classes, one per grid column).
    temperature: softmax temperature when sampling (1: the learned distribution).
  """
  vqvae_workdir: str = ""
  vqvae_config: Optional[str] = None
  hidden: int = 64
  num_layers: int = 6
  kernel_size: int = 3
  cond_hidden: int = 64
  class_conditional: bool = False
  temperature: float = 1.0


def sample_autoregressive(logits_fn: Callable[[Array], Array], key: Array,
                          shape: tuple[int, int, int], temperature: float = 1.0) -> Array:
  """Draws a [B, H, W] grid of codes position by position in raster order (one ``lax.scan``).

  At step ``i`` (row ``i // W``, column ``i % W``) the network sees the codes drawn so far
  (later positions are still 0, and a causal network ignores them) and the code at ``i`` is
  drawn from ``softmax(logits / temperature)``.

  Args:
    logits_fn: ``codes [B, H, W] -> logits [B, H, W, K]``, causal in raster order.
    key: PRNG key.
    shape: (B, H, W).
    temperature: softmax temperature.

  Returns:
    [B, H, W] int32 codes.
  """
  b, h, w = shape

  def body(codes, i):
    r, c = i // w, i % w
    logits = logits_fn(codes)[:, r, c] / temperature
    new = jax.random.categorical(jax.random.fold_in(key, i), logits).astype(jnp.int32)
    return codes.at[:, r, c].set(new), None

  codes, _ = jax.lax.scan(body, jnp.zeros(shape, jnp.int32), jnp.arange(h * w))
  return codes


def code_nll(logits: Array, codes: Array) -> Array:
  """-sum_positions log softmax(logits)[code], per example: [B, H, W, K], [B, H, W] -> [B]."""
  logp = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(logp, codes[..., None], axis=-1)[..., 0]
  return -jnp.sum(picked, axis=(1, 2))


def first_stage_config_path(prior: PriorConfig) -> str:
  """The first stage's config file: ``config.prior.vqvae_config``, else the workdir's record
  of its latest checkpoints (``config.json``, or the ``config.step<N>.json`` written when a
  resume accepted a config change; the checkpoints' shapes follow that one)."""
  if prior.vqvae_config:
    return prior.vqvae_config
  from genjax.training import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  return (workdir_lib.current_config_path(prior.vqvae_workdir)
          or os.path.join(prior.vqvae_workdir, "config.json"))


def load_first_stage(prior: PriorConfig, spec: DataSpec):
  """Restores the first stage: ``(stage config, VQModel, AutoencoderModel, EMA params)``."""
  if not prior.vqvae_workdir:
    raise ValueError("config.prior.vqvae_workdir is required: the workdir of a trained vqvae or "
                     "vqvae2 run, e.g. --config.prior.vqvae_workdir=runs/vqvae2.")
  from genjax.training import run as run_lib  # pylint: disable=g-import-not-at-top
  path = first_stage_config_path(prior)
  if not os.path.exists(path):
    raise ValueError(f"First-stage config {path!r} does not exist. Train the VQ-VAE first "
                     f"(python train.py --config=configs/vqvae2.py --workdir=WORKDIR) and set "
                     f"--config.prior.vqvae_workdir=WORKDIR.")
  stage_cfg = run_lib.load_config(path)
  if stage_cfg.method not in ("vqvae", "vqvae2"):
    raise ValueError(f"config.prior.vqvae_workdir must hold a vqvae or vqvae2 run; its config "
                     f"says method={stage_cfg.method!r}.")
  run, state = run_lib.restore(stage_cfg, prior.vqvae_workdir)
  if tuple(run.dataset.spec.shape) != tuple(spec.shape):
    raise ValueError(f"The first stage was trained on images of shape {run.dataset.spec.shape}, "
                     f"this run loads {spec.shape}; use the same config.data (e.g. "
                     f"--config.data.image_size).")
  am, _, vq_model = build_vq_model(stage_cfg, run.dataset.spec,
                                   hierarchical=stage_cfg.method == "vqvae2")
  return stage_cfg, vq_model, am, jax.device_get(state.ema_params)


def build_prior_model(config, spec: DataSpec):
  """``(AutoencoderModel, Method)`` of the code prior (the first stage is frozen inside)."""
  common.check_image_spec(spec, "vq_prior")
  cfg = from_section(PriorConfig, config.prior, where="prior")
  if cfg.class_conditional and spec.num_classes <= 0:
    raise ValueError("prior.class_conditional needs labelled data; the dataset has no classes.")
  _, vq, stage_am, stage_params = load_first_stage(cfg, spec)
  stage_params = jax.tree.map(jnp.asarray, stage_params)
  levels = vq.levels
  num_classes = spec.num_classes if cfg.class_conditional else 0
  nets = {lvl: GatedPixelCNN(num_codes=vq.num_codes[lvl], hidden=cfg.hidden,
                             num_layers=cfg.num_layers, kernel_size=cfg.kernel_size,
                             num_classes=num_classes, cond_hidden=cfg.cond_hidden)
          for lvl in levels}

  def codes_of(x):
    return jax.lax.stop_gradient(vq.forward(stage_params, x)[3])

  def cond_of(lvl, codes):
    """The bottom prior sees the top codes' vectors, upsampled (nearest) to its grid."""
    if lvl != "bottom" or "top" not in codes:
      return None
    e = vq_lib.lookup(codes["top"], stage_params["codebooks"]["top"])
    f = vq.code_shapes["bottom"][0] // vq.code_shapes["top"][0]
    return jnp.repeat(jnp.repeat(e, f, axis=1), f, axis=2)

  def logits(params, lvl, codes, y):
    return nets[lvl].apply({"params": params[lvl]}, codes[lvl], cond_of(lvl, codes), y)

  def init(key, batch):
    codes = codes_of(batch["x"][:2])
    y = batch["label"][:2] if num_classes else None
    params = {lvl: nets[lvl].init(jax.random.fold_in(key, i), codes[lvl], cond_of(lvl, codes),
                                  y)["params"]
              for i, lvl in enumerate(levels)}
    return params, {}

  def nll_terms(params, x, y):
    codes = codes_of(x)
    return {lvl: code_nll(logits(params, lvl, codes, y), codes[lvl]) for lvl in levels}

  def loss(params, batch, key):
    del key
    y = batch["label"] if num_classes else None
    terms = nll_terms(params, batch["x"], y)
    total = sum(jnp.mean(t) for t in terms.values())  # nats per image (all levels)
    metrics = {}
    for lvl in levels:
      n = math.prod(vq.code_shapes[lvl])
      metrics[f"nll_{lvl}_bits_per_code"] = jnp.mean(terms[lvl]) / (n * math.log(2.0))
    return total, metrics

  def sample_codes(params, key, num):
    y = (jnp.arange(num) % num_classes).astype(jnp.int32) if num_classes else None
    codes = {}
    for i, lvl in enumerate(levels):
      h, w = vq.code_shapes[lvl]
      fn = lambda c, lvl=lvl: nets[lvl].apply({"params": params[lvl]}, c, cond_of(lvl, codes), y)
      codes[lvl] = sample_autoregressive(fn, jax.random.fold_in(key, i), (num, h, w),
                                         cfg.temperature)
    return codes

  def sample(params, key, num):
    return vq.decode_codes(stage_params, sample_codes(params, key, num))

  def eval_nll(state, dataset, key, num):
    """Test NLL of the first stage's codes under the prior (nats per image, bits per code)."""
    del key
    fn = jax.jit(nll_terms)
    per = {lvl: [] for lvl in levels}
    for b in common.iter_test_batches(dataset, num):
      y = jnp.asarray(b["label"]) if num_classes else None
      t = fn(state.ema_params, jnp.asarray(b["x"]), y)
      for lvl in levels:
        per[lvl].append(np.asarray(t[lvl]))
    out = {}
    total = 0.0
    for lvl in levels:
      v = float(np.mean(np.concatenate(per[lvl])))
      n = math.prod(vq.code_shapes[lvl])
      out[f"nll_{lvl}_nats"] = v
      out[f"nll_{lvl}_bits_per_code"] = v / (n * math.log(2.0))
      out[f"uniform_{lvl}_bits_per_code"] = math.log2(vq.num_codes[lvl])
      total += v
    out["nll_codes_nats_per_image"] = total
    return out

  am = dataclasses.replace(
      stage_am, name="vq_prior", sample=sample,
      reconstruct=lambda p, x: stage_am.reconstruct(stage_params, x),
      encode=lambda p, x: stage_am.encode(stage_params, x),
      decode=lambda p, z: stage_am.decode(stage_params, z),
      codes=lambda p, x: stage_am.codes(stage_params, x))
  method = Method(name="vq_prior", init=init, loss=loss, sample=sample,
                  evaluators={"nll": eval_nll},
                  reconstruct=am.reconstruct)
  return am, method


def build_vq_prior(config, spec: DataSpec) -> Method:
  """Registry entry: ``"vq_prior"``, the PixelCNN prior over a trained VQ-VAE's codes."""
  return build_prior_model(config, spec)[1]
