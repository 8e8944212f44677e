"""DALL-E's second stage (Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation", Sec. 2.2) as
a trainer method, ``"dalle"``: a decoder-only transformer over ``[caption tokens; image tokens]``
where the image tokens are the argmax codes of a trained, frozen discrete VAE (``"dvae"``,
named by ``config.dalle.dvae_workdir``).

One training step::

  1. z = argmax codes of the frozen dVAE encoder          [B, h w]
  2. s = [caption; z];  logits = transformer(s[:, :-1])     position p predicts s[p + 1]
  3. L = 1/8 CE(text) + 7/8 CE(image), each the mean over its own tokens in the batch (Sec. 2.2:
     "normalized by the total number of each kind ... weighted by 1/8 and 7/8")

Sampling draws the image tokens after a caption position by position (one ``lax.scan`` with a
key-value cache, :func:`genjax.dalle.sampling.sample_tokens`) with temperature, top-k and top-p,
and decodes them with the frozen dVAE decoder. ``Method.sample(params, key, num,
inputs={"text": int32 [num, L]})`` takes captions as tokens; without ``inputs`` it draws for
fixed captions of the test split (shapes) or for the classes in turn (digits).

Captions: on ``shapes`` they are ``batch["text"]`` (``genjax.text``); on labelled data without
captions (the digits) ``dalle.text_from_label`` makes a one-word caption per class,
``[BOS, 3 + label, EOS, pad..]``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.dalle import sampling as sampling_lib
from genjax.dalle.dvae import DVAEModel, make_dvae_model
from genjax.nets.dalle_transformer import ATTENTION_KINDS, DalleTransformer
from genjax.training.method import Method
from genjax.typed_config import field, from_section, validate
from genjax.types import DataSpec

LABEL_TEXT_OFFSET = 3  # one-word label captions: ids 0 pad, 1 BOS, 2 EOS, 3 + label


@dataclasses.dataclass(frozen=True)
class DalleConfig:
  """The ``config.dalle`` section.

  Attributes:
    dvae_workdir: workdir of the trained ``"dvae"`` run (required).
    dvae_config: its config file; None reads the workdir's record (``config.json``).
    text_len: L, caption tokens per example (the dataset's ``data.text_len`` on shapes).
    text_from_label: make one-word captions from class labels (data without captions).
    dim / depth / num_heads / mlp_ratio: the transformer.
    attention: per-layer image-to-image masks, cycled: dense | row | column | conv.
    last_attention: mask of the last layer ("" keeps the cycle; the paper: conv).
    conv_kernel: side of the conv mask (11 in the paper, on a 32x32 grid).
    text_loss_weight / image_loss_weight: 1/8 and 7/8 in the paper.
    temperature / top_k / top_p: sampling (top_k 0 and top_p 1 disable the filters).
  """
  dvae_workdir: str = ""
  dvae_config: Optional[str] = None
  text_len: int = field(32, ge=2)
  text_from_label: bool = False
  dim: int = field(128, gt=0)
  depth: int = field(4, gt=0)
  num_heads: int = field(4, gt=0)
  mlp_ratio: float = field(4.0, gt=0.0)
  attention: tuple[str, ...] = ("dense",)
  last_attention: str = ""
  conv_kernel: int = field(3, gt=0)
  text_loss_weight: float = field(1.0 / 8.0, ge=0.0)
  image_loss_weight: float = field(7.0 / 8.0, ge=0.0)
  temperature: float = field(1.0, gt=0.0)
  top_k: int = field(0, ge=0)
  top_p: float = field(1.0, gt=0.0, le=1.0)

  def __post_init__(self):
    validate(self, "dalle")
    bad = [a for a in tuple(self.attention) + ((self.last_attention,) if self.last_attention
                                                 else ()) if a not in ATTENTION_KINDS]
    if bad or not self.attention:
      raise ValueError(f"dalle.attention / dalle.last_attention must name {ATTENTION_KINDS}; "
                       f"got {bad or 'nothing'}.")
    if self.dim % self.num_heads:
      raise ValueError("dalle.dim must be divisible by dalle.num_heads.")


def load_dvae(cfg: DalleConfig, spec: DataSpec, data_name: Optional[str] = None):
  """Restores the frozen dVAE: ``(DVAEModel, EMA params)``; one clear line if the workdir does
  not hold a dVAE of this run's data."""
  if not cfg.dvae_workdir:
    raise ValueError("config.dalle.dvae_workdir is required: the workdir of a trained dvae run "
                     "(python train.py --config=configs/dvae_shapes.py --workdir=WORKDIR).")
  from genjax.training import run as run_lib  # pylint: disable=g-import-not-at-top
  from genjax.training import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  path = cfg.dvae_config or workdir_lib.current_config_path(cfg.dvae_workdir) or os.path.join(
      cfg.dvae_workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"config.dalle.dvae_workdir={cfg.dvae_workdir!r} holds no trained run "
                     f"({path} is missing); train the dVAE there first.")
  stage = run_lib.load_config(path)
  if stage.get("method") != "dvae":
    raise ValueError(f"config.dalle.dvae_workdir={cfg.dvae_workdir!r} holds a "
                     f"{stage.get('method')!r} run, not a dvae; name a dvae workdir.")
  stage_data = stage.data.get("dataset") if "data" in stage else None
  if data_name is not None and stage_data != data_name:
    raise ValueError(f"config.dalle.dvae_workdir={cfg.dvae_workdir!r} holds a dVAE of "
                     f"{stage_data!r} images, this run trains on {data_name!r}; name a dVAE of "
                     f"the same data.")
  run, state = run_lib.restore(stage, cfg.dvae_workdir)
  if tuple(run.dataset.spec.shape) != tuple(spec.shape):
    raise ValueError(f"config.dalle.dvae_workdir={cfg.dvae_workdir!r} holds a dVAE of "
                     f"{tuple(run.dataset.spec.shape)} images, this run has {tuple(spec.shape)}; "
                     f"use the same config.data.")
  model, _ = make_dvae_model(stage, run.dataset.spec)
  return model, jax.tree.map(jnp.asarray, jax.device_get(state.ema_params))


def label_text(labels, text_len: int) -> jax.Array:
  """One-word captions of class labels: ``[BOS, 3 + label, EOS, 0, ...]`` int32 [B, L]."""
  labels = jnp.asarray(labels, jnp.int32)
  row = jnp.stack([jnp.ones_like(labels), LABEL_TEXT_OFFSET + labels, 2 * jnp.ones_like(labels)], 1)
  return jnp.pad(row, ((0, 0), (0, text_len - 3)))


@dataclasses.dataclass(frozen=True)
class DalleModel:
  """The pure functions of a DALL-E (the frozen dVAE inside).

  Attributes:
    net: the transformer module.
    dvae: the frozen dVAE's functions; ``dvae_params`` its EMA params.
    image_tokens: ``x -> int32 [B, h w]``.
    loss_terms: ``(params, text, x) -> (text CE, image CE)``, each per-token means.
    sample_codes: ``(params, key, text [B, L]) -> int32 [B, h w]`` (cached scan).
    sample: ``(params, key, text) -> images [B, H, W, C]``.
  """
  net: DalleTransformer
  dvae: DVAEModel
  dvae_params: object
  image_tokens: object
  loss_terms: object
  sample_codes: object
  sample: object
  cfg: DalleConfig


def make_dalle_model(cfg: DalleConfig, spec: DataSpec, text_vocab: int, dvae: DVAEModel,
                     dvae_params) -> DalleModel:
  grid = tuple(dvae.code_shape)
  n_img = grid[0] * grid[1]
  net = DalleTransformer(text_vocab=text_vocab, image_vocab=dvae.num_codes,
                         text_len=cfg.text_len, grid=grid, dim=cfg.dim, depth=cfg.depth,
                         num_heads=cfg.num_heads, attention=tuple(cfg.attention),
                         last_attention=cfg.last_attention or None,
                         conv_kernel=cfg.conv_kernel, mlp_ratio=cfg.mlp_ratio)
  l = cfg.text_len

  def image_tokens(x):
    return jax.lax.stop_gradient(dvae.codes(dvae_params, x)).reshape(x.shape[0], n_img)

  def loss_terms(params, text, x):
    seq = jnp.concatenate([text.astype(jnp.int32), image_tokens(x)], axis=1)   # 1.
    lt, li = net.apply({"params": params}, seq[:, :-1])                        # 2.
    targets = seq[:, 1:]
    ce_t = -jnp.take_along_axis(jax.nn.log_softmax(lt[:, :l - 1]),
                                targets[:, :l - 1, None], -1)[..., 0]
    ce_i = -jnp.take_along_axis(jax.nn.log_softmax(li[:, l - 1:]),
                                targets[:, l - 1:, None], -1)[..., 0]
    return jnp.mean(ce_t), jnp.mean(ce_i)

  def sample_codes(params, key, text):
    b = text.shape[0]
    step = lambda tok, pos, cache: net.apply({"params": params}, tok, pos, cache,
                                             method=DalleTransformer.step)
    cache = net.init_cache(b)
    return sampling_lib.sample_tokens(step, cache, key, text, n_img, cfg.temperature,
                                      cfg.top_k, cfg.top_p)

  def sample(params, key, text):
    codes = sample_codes(params, key, text)
    return dvae.decode_codes(dvae_params, codes.reshape(text.shape[0], *grid))

  return DalleModel(net, dvae, dvae_params, image_tokens, loss_terms, sample_codes, sample, cfg)


def text_vocab_size(cfg: DalleConfig, spec: DataSpec) -> int:
  if cfg.text_from_label:
    if spec.num_classes <= 0:
      raise ValueError("dalle.text_from_label needs labelled data; the dataset has no classes.")
    if cfg.text_len < 3:
      raise ValueError("dalle.text_from_label needs dalle.text_len >= 3 (BOS, word, EOS).")
    return LABEL_TEXT_OFFSET + spec.num_classes
  from genjax import text as text_lib  # pylint: disable=g-import-not-at-top
  return text_lib.vocab_size()


def build_dalle_model(config, spec: DataSpec):
  """``(DalleModel, Method)`` from ``config.dalle`` (the dVAE is restored here)."""
  cfg = from_section(DalleConfig, config.dalle, where="dalle")
  data_name = config.data.get("dataset") if "data" in config else None
  dvae, dvae_params = load_dvae(cfg, spec, data_name)
  model = make_dalle_model(cfg, spec, text_vocab_size(cfg, spec), dvae, dvae_params)

  def text_of(batch):
    if cfg.text_from_label:
      return label_text(batch["label"], cfg.text_len)
    if "text" not in batch:
      raise ValueError("dalle trains on captions: the dataset gives no batch['text'] (use "
                       "--config.data.dataset=shapes, or dalle.text_from_label on labelled data).")
    text = batch["text"]
    if text.shape[-1] != cfg.text_len:
      raise ValueError(f"captions have {text.shape[-1]} tokens, dalle.text_len is "
                       f"{cfg.text_len}; set them equal (config.data.text_len).")
    return text

  def init(key, batch):
    x = batch["x"][:2]
    seq = jnp.concatenate([text_of(jax.tree.map(lambda a: a[:2], batch)), model.image_tokens(x)], 1)
    return model.net.init(key, seq[:, :-1])["params"], {}

  def loss(params, batch, key):
    del key
    ce_t, ce_i = model.loss_terms(params, text_of(batch), batch["x"])
    total = cfg.text_loss_weight * ce_t + cfg.image_loss_weight * ce_i          # 3.
    return total, {"text_ce": ce_t, "image_ce": ce_i,
                   "image_bits_per_token": ce_i / np.log(2.0)}

  default_text = _default_text_fn(config, cfg, spec)

  def sample(params, key, num, inputs=None):
    text = default_text(num) if inputs is None or "text" not in inputs else inputs["text"]
    text = jnp.asarray(text, jnp.int32)
    if text.shape != (num, cfg.text_len):
      raise ValueError(f"inputs['text'] must be int32 [{num}, {cfg.text_len}], got "
                       f"{tuple(text.shape)}.")
    return model.sample(params, key, text)

  method = Method(name="dalle", init=init, loss=loss, sample=sample, modes=("sample", "text"),
                  sample_tag=_tag(cfg))
  return model, method


def _tag(cfg: DalleConfig) -> str:
  tag = f"dalle_t{cfg.temperature:g}"
  if cfg.top_k:
    tag += f"_k{cfg.top_k}"
  if cfg.top_p < 1:
    tag += f"_p{cfg.top_p:g}"
  return tag


def _default_text_fn(config, cfg: DalleConfig, spec: DataSpec):
  """Captions for ``sample`` without inputs: the classes in turn (label captions) or the first
  test captions of the shapes split."""
  if cfg.text_from_label:
    return lambda num: label_text(jnp.arange(num) % spec.num_classes, cfg.text_len)

  def shapes_text(num):
    from genjax.data import shapes as shapes_lib  # pylint: disable=g-import-not-at-top
    d = config.data
    scfg = shapes_lib.ShapesConfig(
        image_size=spec.shape[0], min_objects=d.get("shapes_min_objects", 1),
        max_objects=d.get("shapes_max_objects", shapes_lib.MAX_OBJECTS),
        max_rotation=d.get("shapes_max_rotation", 0.0), texture=d.get("shapes_texture", 0.5),
        text_len=cfg.text_len)
    return shapes_lib.generate(np.arange(num), scfg)["text"]
  return shapes_text


def build_dalle(config, spec: DataSpec) -> Method:
  """Registry entry: ``"dalle"``."""
  return build_dalle_model(config, spec)[1]
