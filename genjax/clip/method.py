"""CLIP trained contrastively on image-caption pairs (Radford et al. 2021) as a trainer Method.

Each step embeds a batch of ``shapes`` images and their caption tokens (``batch["text"]``),
takes the symmetric InfoNCE loss of the scaled cosine similarities
(:func:`genjax.clip.losses.infonce_loss`); the last transformation of the optimizer keeps the
learned log inverse temperature in ``[0, ln 100]`` (Sec. 2.5, :func:`clamp_temperature`). ``sample.py --eval=zeroshot,retrieval``
reports zero-shot attribute classification of held-out single-object images (prompt ensembles
over the grammar's other attributes, Sec. 3.1.4) and image-text retrieval recall@1/5.
CLIP generates nothing: its config sets ``training.sample_every = 0``.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.clip.losses import clamp_logit_scale, clip_logits, infonce_loss, l2_normalize
from genjax.clip.model import CLIP, ImageResNet
from genjax.training.method import Method
from genjax.typed_config import field, from_section
from genjax.types import DataSpec

__all__ = ["ClipConfig", "build_clip", "build_clip_model", "clamp_temperature",
           "retrieval_recall", "zero_shot_prompts"]

ATTRIBUTES = ("shape", "colour", "size", "cell")


@dataclasses.dataclass(frozen=True)
class ClipConfig:
  """The ``config.clip`` section.

  Attributes:
    embed_dim: the joint embedding width.
    image_width, image_mult, image_blocks: the ResNet image encoder.
    text_width, text_depth, text_heads: the text transformer (``genjax.nets.text``).
    eval_num: held-out pairs for retrieval and images for zero-shot classification.
  """
  embed_dim: int = field(64, gt=0)
  image_width: int = field(32, gt=0)
  image_mult: tuple = (1, 2, 4)
  image_blocks: int = field(1, gt=0)
  text_width: int = field(64, gt=0)
  text_depth: int = field(2, gt=0)
  text_heads: int = field(2, gt=0)
  eval_num: int = field(1000, gt=0)


def build_clip_model(cfg: ClipConfig, text_len: int) -> CLIP:
  from genjax import text
  from genjax.nets.text import TextEncoder
  return CLIP(ImageResNet(cfg.image_width, tuple(cfg.image_mult), cfg.image_blocks),
              TextEncoder(vocab_size=text.vocab_size(), max_len=text_len, width=cfg.text_width,
                          depth=cfg.text_depth, num_heads=cfg.text_heads),
              embed_dim=cfg.embed_dim)


def zero_shot_prompts(attribute: str):
  """``(captions, class of each caption)``: every single-object caption of the grammar, and its
  value of ``attribute`` (shape, colour, size or cell), for prompt-ensemble classification."""
  from genjax.data import shapes_grammar as g
  caps, cls = [], []
  for (si, size), (ci, colour), (hi, shape), (pi, pos) in itertools.product(
      enumerate(g.SIZES), enumerate(g.COLOURS), enumerate(g.SHAPES), enumerate(g.POSITIONS)):
    prep = "in" if pos == "center" else "at"
    caps.append(f"a {size} {colour} {shape} {prep} the {pos}")
    cls.append({"size": si, "colour": ci, "shape": hi, "cell": pi}[attribute])
  return caps, np.asarray(cls)


def build_clip(config, spec: DataSpec) -> Method:
  cfg = from_section(ClipConfig, config.get("clip", {}), where="clip")
  if config.data.get("dataset") != "shapes":
    raise ValueError("method 'clip' trains on image-caption pairs: set data.dataset='shapes'.")
  text_len = int(config.data.get("text_len", 32) or 32)
  model = build_clip_model(cfg, text_len)

  def loss(params, batch, key):
    del key
    img, txt, t = model.apply({"params": params}, batch["x"], batch["text"])
    value, metrics = infonce_loss(clip_logits(img, txt, t))
    return value, dict(metrics, temperature=1.0 / jnp.exp(clamp_logit_scale(t)))

  def make_optimizer(optim_cfg, num_steps):
    from genjax.training import optim as optim_lib
    return optax.chain(optim_lib.make_optimizer(optim_cfg, num_steps), clamp_temperature())

  def init(key, batch):
    return model.init(key, batch["x"][:1], batch["text"][:1])["params"], {}

  def sample(params, key, num, inputs=None):
    raise ValueError("CLIP embeds images and captions; it does not generate images (use "
                     "sample.py --eval=zeroshot,retrieval).")

  enc_img = jax.jit(lambda p, x: l2_normalize(model.apply({"params": p}, x,
                                                          method=CLIP.encode_image)))
  enc_txt = jax.jit(lambda p, t: l2_normalize(model.apply({"params": p}, t,
                                                          method=CLIP.encode_text)))

  def embed(params, arrays, fn, batch=250):
    return np.concatenate([np.asarray(fn(params, arrays[i:i + batch]))
                           for i in range(0, len(arrays), batch)])

  def eval_retrieval(state, dataset, key, num):
    n = min(int(num), cfg.eval_num, len(dataset.test))
    data = dataset.test.get(np.arange(n))
    i = embed(state.ema_params, np.asarray(data["x"]), enc_img)
    t = embed(state.ema_params, np.asarray(data["text"]), enc_txt)
    return dict(retrieval_recall(i @ t.T), num_pairs=n, split="test", params="ema")

  def eval_zeroshot(state, dataset, key, num):
    from genjax import text
    n = min(int(num), cfg.eval_num * 4, len(dataset.test))
    data = dataset.test.get(np.arange(n))
    single = np.asarray(data["num_objects"]) == 1
    i = embed(state.ema_params, np.asarray(data["x"])[single], enc_img)
    out = {"num_images": int(single.sum()), "split": "test (single-object images)"}
    for attr in ATTRIBUTES:
      caps, cls = zero_shot_prompts(attr)
      t = embed(state.ema_params, text.tokenize(caps, text_len), enc_txt)
      k = int(cls.max()) + 1
      proto = l2_normalize(jnp.asarray(np.stack([t[cls == c].mean(0) for c in range(k)])))
      pred = np.argmax(i @ np.asarray(proto).T, axis=1)
      truth = np.asarray(data[attr])[single, 0]
      out[f"acc_{attr}"] = float(np.mean(pred == truth))
      out[f"chance_{attr}"] = float(np.max(np.bincount(truth, minlength=k)) / len(truth))
    return out

  return Method(name="clip", init=init, loss=loss, make_optimizer=make_optimizer, sample=sample,
                evaluators={"retrieval": eval_retrieval, "zeroshot": eval_zeroshot})


def clamp_temperature() -> optax.GradientTransformation:
  """An optax transformation, last in the chain, that keeps ``params["logit_scale"]`` in
  ``[0, ln 100]``: its update becomes ``clamp(t + u) - t`` (open_clip's in-place clamp after
  each step; Radford et al. 2021, Sec. 2.5)."""

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("clamp_temperature needs the params (optax passes them in update).")
    t = params["logit_scale"]
    u = clamp_logit_scale(t + updates["logit_scale"]) - t
    return dict(updates, logit_scale=u), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def retrieval_recall(sim: np.ndarray, ks=(1, 5)) -> dict:
  """Recall@k of image->text (rows) and text->image (columns) retrieval for a similarity
  matrix ``[N, N]`` whose diagonal holds the pairs."""
  sim = np.asarray(sim)
  n = sim.shape[0]
  rank_i2t = (sim > np.diag(sim)[:, None]).sum(axis=1)   # texts scored above the true one
  rank_t2i = (sim > np.diag(sim)[None, :]).sum(axis=0)
  out = {}
  for k in ks:
    out[f"i2t_recall@{k}"] = float(np.mean(rank_i2t < k))
    out[f"t2i_recall@{k}"] = float(np.mean(rank_t2i < k))
  out["chance@1"] = 1.0 / n
  return out
