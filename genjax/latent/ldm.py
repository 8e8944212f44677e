"""Latent diffusion (Rombach et al. 2022; seed 004, seed 003 Sec. 2.5) as a trainer method,
``config.method = "ldm"``.

A frozen first stage (:mod:`genjax.latent.autoencoder`, named by ``config.ldm.
first_stage_workdir``) encodes each training image, ``z = scale * E(x)`` (a posterior sample for
KL, the unquantized latent for VQ; ``scale`` = the first stage's ``1 / std`` of its latents, LDM
App. G), and the diffusion family's own loss (:func:`genjax.diffusion.losses.make_ddpm_loss`:
L_simple / L_hybrid, eps / x0 / v) and schedules train a U-Net or DiT on ``z``. Sampling runs
any sampler of the core (:func:`genjax.sampling.registry.run`) in latent space, with
classifier-free guidance through the core's transform, then decodes ``x = D(z / scale)`` (for
VQ the decoder quantizes first).

Conditions reach the network through the core's ``cond`` pytree, a dict with any of:

* ``"label"`` [B] - class conditioning (``ldm.condition = "class"``): the U-Net's / DiT's label
  embedding, the null label for guidance;
* ``"text"`` [B, L] int tokens (``"text"``): ``tau_theta`` = :class:`genjax.nets.text.
  TextEncoder`, trained jointly with the diffusion model (LDM Sec. 4.3.1), its last hidden
  states the cross-attention context (seed 003 eq. 47-48), padded tokens masked; caption
  dropout to the empty caption (``diffusion.cond_drop_prob``) for classifier-free guidance;
* ``"concat"`` [B, h, w, k] - a spatial condition concatenated to ``z`` (LDM Sec. 4.4-4.5):
  ``"inpaint"`` gives ``[mask at latent resolution, scale * E(x * mask)]`` (1 = known; random
  rectangles while training), ``"super_res"`` the ``ldm.lowres_factor``-times smaller image
  resized to the latent grid.

``sample(params, key, num, inputs=None)``: ``inputs={"text": int32 [num, L]}`` (text models;
``sample.py --prompt``), ``{"label": [num]}``, ``{"known": images, "mask": ...}`` (inpainting;
``sample.py --mode=inpaint``) or ``{"known": high-resolution images}`` (super-resolution).
Without inputs it uses held-out examples' captions / images, or every class in turn.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genjax.diffusion import losses
from genjax.diffusion.method import DDPMConfig
from genjax.latent.autoencoder import FirstStageModel, build_first_stage_model, scale_factor
from genjax.nets.build import build_network
from genjax.sampling import guidance, registry, schedules
from genjax.sampling.posterior import LEARNED_VAR_TYPES
from genjax.training.method import Method
from genjax.typed_config import field, from_section, to_dict
from genjax.types import DataSpec

CONDITIONS = ("none", "class", "text", "inpaint", "super_res")
FIRST_STAGES = ("autoencoder_kl", "vqgan")
PIXELS = "pixels"


def pixel_space(spec: DataSpec) -> FirstStageModel:
  """The identity "first stage" of ``ldm.first_stage_workdir = "pixels"``: f = 1, the latent is
  the image (pixel-space diffusion through the same second-stage code)."""
  ident = lambda params, x, key=None: x
  return FirstStageModel(net=None, regularizer="none", image_shape=tuple(spec.shape),
                         latent_shape=tuple(spec.shape), factor=1, encode=ident,
                         decode=lambda params, z: z, reconstruct=lambda params, x: x)


@dataclasses.dataclass(frozen=True)
class LDMConfig:
  """The ``config.ldm`` section.

  Attributes:
    first_stage_workdir: the trained first stage's workdir (a ``configs/autoencoder_kl.py`` or
      ``configs/vqgan.py`` run; its ``config.json`` rebuilds it), or ``"pixels"``: no first
      stage (f = 1 pixel-space diffusion with the same network, conditions and sampler; the
      scale is ``scale_factor`` or 1).
    condition: none | class | text | inpaint | super_res.
    scale_factor: the latent scale; 0 takes the first stage's stored ``1 / std``.
    sample_posterior: KL first stages: train on ``z ~ q(z|x)`` (LDM) instead of its mean.
    first_stage_factor: if > 0, the downsampling factor f the first stage must have.
    latent_channels: if > 0, the latent channels the first stage must have.
    lowres_factor: super_res: how many times smaller the low-resolution condition is.
  """
  first_stage_workdir: str = ""
  condition: str = field("none", choices=CONDITIONS)
  scale_factor: float = field(0.0, ge=0.0)
  sample_posterior: bool = True
  first_stage_factor: int = field(0, ge=0)
  latent_channels: int = field(0, ge=0)
  lowres_factor: int = field(4, ge=1)


def load_first_stage(cfg: LDMConfig, spec: DataSpec):
  """``(FirstStageModel, params, scale)`` of the frozen first stage, checked against the data.

  Raises:
    ValueError: no workdir, a run of another method, or a first stage of another shape (one
      line naming both shapes).
  """
  if not cfg.first_stage_workdir:
    raise ValueError("config.ldm.first_stage_workdir is required: the workdir of a trained "
                     "first stage (python train.py --config=configs/autoencoder_kl.py "
                     "--workdir=runs/autoencoder_kl).")
  if cfg.first_stage_workdir == PIXELS:
    model = pixel_space(spec)
    if cfg.first_stage_factor not in (0, 1) or (cfg.latent_channels and
                                                cfg.latent_channels != spec.shape[-1]):
      raise ValueError(f"config.ldm.first_stage_workdir='pixels' is f=1 with "
                       f"{spec.shape[-1]} channels; config.ldm.first_stage_factor="
                       f"{cfg.first_stage_factor}, latent_channels={cfg.latent_channels} ask "
                       f"for another.")
    return model, {}, cfg.scale_factor or 1.0
  from genjax.training.run import load_trained
  fs_config, fs_run, fs_state = load_trained(cfg.first_stage_workdir)
  if fs_config.method not in FIRST_STAGES:
    raise ValueError(f"config.ldm.first_stage_workdir={cfg.first_stage_workdir!r} holds a "
                     f"{fs_config.method!r} run, not a first stage ({', '.join(FIRST_STAGES)}).")
  fs_spec = fs_run.dataset.spec
  model = build_first_stage_model(fs_config, fs_spec, "kl" if fs_config.method ==
                                  "autoencoder_kl" else "vq")
  problems = []
  if tuple(fs_spec.shape) != tuple(spec.shape):
    problems.append(f"images {tuple(fs_spec.shape)}, this config's data {tuple(spec.shape)}")
  if cfg.first_stage_factor and model.factor != cfg.first_stage_factor:
    problems.append(f"f={model.factor}, config.ldm.first_stage_factor={cfg.first_stage_factor}")
  if cfg.latent_channels and model.latent_shape[-1] != cfg.latent_channels:
    problems.append(f"{model.latent_shape[-1]} latent channels, config.ldm.latent_channels="
                    f"{cfg.latent_channels}")
  if problems:
    raise ValueError(f"The first stage in {cfg.first_stage_workdir} has another shape: "
                     f"{'; '.join(problems)}. Train a first stage for this data or point "
                     f"config.ldm.first_stage_workdir at one.")
  params = fs_state.ema_params["ae"]
  scale = cfg.scale_factor or float(scale_factor(fs_state.model_state))
  return model, params, scale


def random_box_masks(key: jax.Array, num: int, h: int, w: int, lo: float = 0.25,
                     hi: float = 0.75) -> jax.Array:
  """Random rectangle masks ``[num, h, w, 1]``, 1 = known, 0 = a box to fill in whose sides are
  ``lo..hi`` of the image's (LDM's inpainting trains on large random masks)."""
  k1, k2, k3, k4 = jax.random.split(key, 4)
  bh = jnp.round(jax.random.uniform(k1, (num,), minval=lo, maxval=hi) * h)
  bw = jnp.round(jax.random.uniform(k2, (num,), minval=lo, maxval=hi) * w)
  y0 = jnp.floor(jax.random.uniform(k3, (num,)) * (h - bh + 1))
  x0 = jnp.floor(jax.random.uniform(k4, (num,)) * (w - bw + 1))
  ys = jnp.arange(h)[None, :, None]
  xs = jnp.arange(w)[None, None, :]
  inside = ((ys >= y0[:, None, None]) & (ys < (y0 + bh)[:, None, None])
            & (xs >= x0[:, None, None]) & (xs < (x0 + bw)[:, None, None]))
  return (1.0 - inside.astype(jnp.float32))[..., None]


def area_downsample(x: jax.Array, r: int) -> jax.Array:
  """``[B, H, W, C] -> [B, H/r, W/r, C]`` by averaging r x r blocks."""
  b, h, w, c = x.shape
  return x.reshape(b, h // r, r, w // r, r, c).mean(axis=(2, 4))


@dataclasses.dataclass(frozen=True)
class LatentParts:
  """What a latent-diffusion run is built from (:func:`latent_parts`).

  Attributes:
    first_stage, first_stage_params, scale: the frozen first stage and its latent scale factor.
    encode: ``x, key=None -> scale * E(x)`` (a posterior sample when ``key`` is given), without
      gradients.
    decode: ``z -> clip(D(z / scale), -1, 1)``.
    net: the denoiser on the latents (U-Net or DiT; a label embedding for class models, the
      text encoder's width as ``context_dim`` for text models).
    text_encoder: tau_theta (:class:`genjax.nets.text.TextEncoder`) of a text model, else None.
    max_len: its token length (text models).
    empty_tokens: the empty caption's tokens ``[max_len]`` (text models).
  """
  first_stage: Any
  first_stage_params: Any
  scale: float
  encode: Any
  decode: Any
  net: Any
  text_encoder: Any = None
  max_len: int = 0
  empty_tokens: Any = None


def latent_parts(config, spec: DataSpec, cfg: LDMConfig, learned: bool) -> LatentParts:
  """The frozen first stage, tau_theta and the latent denoiser of ``config`` (an ``ldm`` config),
  as :func:`build_ldm` builds them; also the way to rebuild a trained ldm run's network (a
  ControlNet on a latent base).

  Args:
    config: the run's config (``model``, ``text_encoder``, ``data``).
    spec: the image data's spec.
    cfg: its ``ldm`` section.
    learned: the denoiser also outputs improved DDPM's variance channels.
  """
  from genjax.latent.prompts import text_max_len
  condition = cfg.condition
  # 1. The frozen first stage.
  fs, fs_params, scale = load_first_stage(cfg, spec)
  lh, lw, lc = fs.latent_shape

  def encode(x, key=None):
    return jax.lax.stop_gradient(fs.encode(fs_params, x, key) * scale)

  def decode(z):
    return jnp.clip(fs.decode(fs_params, z / scale), -1.0, 1.0)

  # 2. tau_theta, the text encoder trained jointly (text models).
  text_enc, max_len, empty_tokens = None, 0, None
  overrides = {}
  if condition == "text":
    from genjax.nets.text import TextEncoder
    from genjax.text import tokenize
    from genjax.text import vocab_size
    max_len = text_max_len(config)
    enc_fields = dict(to_dict(config.get("text_encoder")))
    enc_fields.setdefault("vocab_size", vocab_size())
    enc_fields.setdefault("max_len", max_len)
    text_enc = TextEncoder(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in enc_fields.items()})
    probe = jnp.zeros((1, max_len), jnp.int32)
    out = jax.eval_shape(lambda t: text_enc.init_with_output(jax.random.key(0), t)[0], probe)
    overrides["context_dim"] = int(out[0].shape[-1])  # the text encoder's width decides
    empty_tokens = jnp.asarray(tokenize([""], max_len)[0], jnp.int32)

  # 3. The denoiser on latents (U-Net or DiT; label embedding for class models).
  latent_spec = DataSpec(shape=(lh, lw, lc), num_classes=spec.num_classes if condition ==
                         "class" else 0, kind="image")
  if not learned:
    overrides["out_channels"] = lc
  model_section = dict(to_dict(config.model))
  if condition != "class" and model_section.get("num_classes", 0):
    raise ValueError(f"config.model.num_classes is for ldm.condition='class' (this model: "
                     f"{condition!r}); set it to 0.")
  net = build_network(model_section, latent_spec, learned_variance=learned, **overrides)
  if learned:
    net = dataclasses.replace(net, out_channels=2 * lc)
  return LatentParts(fs, fs_params, scale, encode, decode, net, text_enc, max_len, empty_tokens)


def build_ldm(config, spec: DataSpec) -> Method:
  """Builds latent diffusion from ``config.ldm``, ``config.diffusion``, ``config.model``,
  ``config.sampling`` (and ``config.text_encoder``: the fields of :class:`genjax.nets.text.TextEncoder`, for text models; ``vocab_size`` and ``max_len`` default to the tokenizer's and the data's ``text_len``)."""
  cfg = from_section(LDMConfig, config.get("ldm"), where="ldm")
  dcfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  if dcfg.parameterization not in losses.PARAMETERIZATIONS:
    raise ValueError(f"diffusion.parameterization must be eps, x0 or v, got "
                     f"{dcfg.parameterization!r}.")
  if not 0.0 <= dcfg.cond_drop_prob < 1.0:
    raise ValueError(f"diffusion.cond_drop_prob must be in [0, 1), got {dcfg.cond_drop_prob}.")
  sampling = registry.from_config(config.get("sampling"), default="ddim")
  if spec.kind != "image":
    raise ValueError("method 'ldm' needs image data.")
  condition = cfg.condition
  if condition == "class" and not spec.num_classes:
    raise ValueError("ldm.condition='class' needs labelled data (e.g. the digits).")
  if condition == "text" and dcfg.cond_drop_prob == 0 and sampling.guidance_scale:
    raise ValueError("sampling.guidance_scale needs diffusion.cond_drop_prob > 0 (caption "
                     "dropout to the empty caption).")

  h, w, c = spec.shape
  if condition == "super_res" and (h % cfg.lowres_factor or w % cfg.lowres_factor):
    raise ValueError(f"ldm.lowres_factor={cfg.lowres_factor} does not divide the {h}x{w} images.")
  learned = dcfg.var_type in LEARNED_VAR_TYPES
  parts = latent_parts(config, spec, cfg, learned)
  fs = parts.first_stage
  lh, lw, lc = fs.latent_shape
  encode, decode, net, text_enc = parts.encode, parts.decode, parts.net, parts.text_encoder
  empty_tokens = parts.empty_tokens
  num_classes = getattr(net, "num_classes", 0)
  sched = schedules.get_schedule(dcfg.schedule, dcfg.num_timesteps)

  def apply_net(params, x, t, cond, train=False, key=None):
    cond = cond or {}
    if "concat" in cond:
      x = jnp.concatenate([x, cond["concat"].astype(x.dtype)], axis=-1)
    kw = {}
    if text_enc is not None:
      tokens = cond["text"]
      ctx = text_enc.apply({"params": params["text"]}, tokens)[0]
      kw = dict(context=ctx, context_mask=(tokens != 0))
    rngs = {"dropout": key} if (train and key is not None) else {}
    return net.apply({"params": params["net"]}, x, t, y=cond.get("label"), train=train,
                     rngs=rngs, **kw)

  def model_fn(params, x, t, cond, key):
    return apply_net(params, x, t, cond, True, key)

  droppable = {"class": ("label",), "text": ("text",)}.get(condition, ())
  null_parts = {}
  if num_classes:
    null_parts["label"] = num_classes
  if text_enc is not None:
    null_parts["text"] = empty_tokens

  def null_cond(cond):
    return dict(cond, **{k: jnp.broadcast_to(jnp.asarray(v, cond[k].dtype), cond[k].shape)
                         for k, v in null_parts.items()})

  guided = dcfg.cond_drop_prob > 0 and bool(null_parts)
  if sampling.guidance_scale and not guided:
    raise ValueError("sampling.guidance_scale needs a conditional model trained with "
                     "diffusion.cond_drop_prob > 0 (class or text).")

  def model_of(params) -> registry.Model:
    fn = lambda x, t, cond: apply_net(params, x, t, cond)
    return registry.Model(process=sched, model_fn=fn, prediction=dcfg.parameterization,
                          learned_variance=learned, var_type=dcfg.var_type, clip=None,
                          null_cond=null_cond if guided else None)

  # 4. Conditions from a batch (training) or from inputs (sampling).
  def spatial_cond(x, mask):
    """The concatenated condition of inpainting / super-resolution for images x."""
    if condition == "inpaint":
      m = jax.image.resize(mask, (x.shape[0], lh, lw, 1), "linear", antialias=True)
      return jnp.concatenate([m, encode(x * mask)], axis=-1)
    lr = area_downsample(x, cfg.lowres_factor)
    return jax.image.resize(lr, (x.shape[0], lh, lw, c), "linear", antialias=False)

  def batch_cond(batch, key):
    cond = {}
    if num_classes:
      cond["label"] = batch["label"]
    if text_enc is not None:
      cond["text"] = batch["text"].astype(jnp.int32)
    if condition in ("inpaint", "super_res"):
      x = batch["x"]
      mask = random_box_masks(key, x.shape[0], h, w) if condition == "inpaint" else None
      cond["concat"] = spatial_cond(x, mask)
    return cond or None

  base_loss = losses.make_ddpm_loss(model_fn, sched, dcfg.parameterization, dcfg.loss_type,
                                    var_type=dcfg.var_type, vlb_weight=dcfg.vlb_weight,
                                    num_bins=dcfg.decoder_bins)

  def loss(params, batch, key):
    """1. encode with the frozen first stage and scale; 2. the condition (with dropout for
    guidance); 3. the diffusion family's loss on the latents."""
    k_enc, k_cond, k_drop, k_loss = jax.random.split(key, 4)
    z = encode(batch["x"], k_enc if (cfg.sample_posterior and fs.regularizer == "kl") else None)
    cond = batch_cond(batch, k_cond)
    if guided:
      part = {k: cond[k] for k in droppable}
      null = {k: null_parts[k] for k in droppable}
      cond = dict(cond, **guidance.drop_condition(k_drop, part, null, dcfg.cond_drop_prob))
    value, metrics = base_loss(params, {"x": z, "label": cond}, k_loss)
    return value, dict(metrics, latent_std=jnp.std(z))

  def init(key, batch):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    b1 = jax.tree.map(lambda a: a[:1], dict(batch))
    cond = batch_cond(b1, k3)
    params = {}
    if text_enc is not None:
      params["text"] = text_enc.init(k4, cond["text"])["params"]
    x = jnp.zeros((1, lh, lw, lc))
    if cond and "concat" in cond:
      x = jnp.concatenate([x, cond["concat"]], axis=-1)
    kw = {}
    if text_enc is not None:
      ctx = text_enc.apply({"params": params["text"]}, cond["text"])[0]
      kw = dict(context=ctx, context_mask=cond["text"] != 0)
    params["net"] = net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,), jnp.int32),
                             y=None if cond is None else cond.get("label"), **kw)["params"]
    return params, {}

  # Held-out examples: the captions / images behind the trainer's sample grids.
  shown = None
  if condition in ("text", "inpaint", "super_res"):
    from genjax.data import DataConfig, load_dataset
    data = load_dataset(from_section(DataConfig, config.data, where="data"))
    got = data.test.get(np.arange(min(64, len(data.test))))
    shown = {k: jnp.asarray(got[k]) for k in ("x", "text") if k in got}
    if condition == "text" and "text" not in shown:
      raise ValueError(f"ldm.condition='text' needs captioned data (batches with 'text' "
                       f"tokens); {config.data.dataset!r} has none.")
  registry.class_labels(1, num_classes, sampling.label)  # a bad label fails before any work
  registry.validate(dataclasses.replace(sampling, mode="sample"), model_of(None))
  plain = dataclasses.replace(sampling, mode="sample")  # modes are the model's own here
  mask_seed = jax.random.key(1234)

  def sample(params, key, num, inputs=None):
    """``num`` images: sample z with the configured sampler and guidance, decode D(z / scale)."""
    inputs = dict(inputs or {})
    cond = {}
    if num_classes:
      cond["label"] = (jnp.asarray(inputs["label"]) if "label" in inputs
                       else registry.class_labels(num, num_classes, sampling.label))
    if text_enc is not None:
      cond["text"] = (jnp.asarray(inputs["text"], jnp.int32) if "text" in inputs
                      else shown["text"][jnp.arange(num) % shown["text"].shape[0]])
    if condition in ("inpaint", "super_res"):
      x = (jnp.asarray(inputs["known"]) if "known" in inputs
           else shown["x"][jnp.arange(num) % shown["x"].shape[0]])
      mask = None
      if condition == "inpaint":
        mask = (jnp.broadcast_to(jnp.asarray(inputs["mask"], x.dtype)[..., :1],
                                 x.shape[:3] + (1,)) if "mask" in inputs
                else random_box_masks(mask_seed, num, h, w))
      cond["concat"] = spatial_cond(x, mask)
    z = registry.run(model_of(params), plain, key, (num, lh, lw, lc), cond=cond or None)
    return decode(z)

  evaluators = {}
  if num_classes and spec.shape[-1] == 1:
    def eval_class_accuracy(state, dataset, key, num):
      """Accuracy of the shipped digits classifier on samples of every class in turn."""
      from genjax.metrics.digits_classifier import load_digits_classifier
      from genjax.training.sampling import generate
      _, probs_fn = load_digits_classifier()
      n = int(num)
      want = np.arange(n) % num_classes if sampling.label < 0 else np.full(n, sampling.label)
      x = generate(method, state.ema_params, key, n, 256, progress=False,
                   inputs={"label": want.astype(np.int32)})  # labels travel with each chunk
      pred = np.asarray(probs_fn(np.clip(x, -1, 1))).argmax(-1)
      return {"accuracy": float(np.mean(pred == want)), "num_samples": n,
              "chance": 1.0 / num_classes, "guidance_scale": sampling.guidance_scale,
              "classifier": "shipped digits classifier"}
    evaluators["class_accuracy"] = eval_class_accuracy

  modes = ("sample",) + (("text",) if text_enc is not None else ()) + (
      ("inpaint",) if condition == "inpaint" else ())
  method = Method(name="ldm", init=init, loss=loss, sample=sample, evaluators=evaluators,
                  sample_tag="ldm_" + registry.tag(plain, model_of(None)), modes=modes)
  return method


__all__ = ["CONDITIONS", "LDMConfig", "PIXELS", "area_downsample", "build_ldm", "load_first_stage",
           "pixel_space", "random_box_masks"]
