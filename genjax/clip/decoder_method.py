"""unCLIP's decoder as a trainer method, ``config.method = "unclip_decoder"`` (Ramesh et al.
2022, Sec. 2.1; seed 003 Sec. 2.6.2, eq. 49 ``P(x|y) = P(x|z_i, y) P(z_i|y)``).

A diffusion U-Net (the DDPM family's loss, schedules and every sampler of the core) generates
images, or the latents of a frozen first stage (``unclip.first_stage_workdir``, as latent
diffusion; empty: pixels), conditioned on the CLIP image embedding ``z_i`` of the frozen CLIP
in ``unclip.clip_workdir`` (:mod:`genjax.clip.decoder`):

1. ``z_i`` (scaled by ``sqrt(E)``, so its coordinates are about unit size) is projected and
   added to the time embedding (the U-Net's ``emb_dim`` input);
2. it is projected into ``unclip.num_tokens`` extra context tokens for the U-Net's
   cross-attention, followed, with ``unclip.caption = "clip"``, by the caption's tokens: the
   frozen CLIP text transformer's last hidden states (GLIDE's text-encoder outputs in the paper;
   padding masked);
3. for classifier-free guidance, ``z_i`` is zeroed with probability ``unclip.embed_drop_prob``
   (0.1) and, independently, the caption replaced by the empty caption with probability
   ``unclip.caption_drop_prob`` (0.5); guided sampling contrasts with both dropped.

``sample(params, key, num, inputs)`` with

* ``{"text": tokens}``: text -> CLIP text embedding -> the prior of ``unclip.prior_workdir``
  (its own sampler, guided by ``unclip.prior_guidance_scale``, or its config's) -> ``z_i`` ->
  the decoder (with this config's sampling and guidance), the caption also given to the decoder;
  so ``sample.py --prompt=...`` works through prior and decoder;
* ``{"images": x}``: image variations, ``z_i = CLIP(x)`` decoded with the null caption
  (``sample.py --variations=...``, :func:`variations_to_files`);
* ``{"image_embed": z_i}`` (optionally with ``"text"``): decode given embeddings;
* nothing: the captions of held-out test images through the prior (the embeddings of those
  images if no prior is named), which is what ``--eval=fd`` and the training grids sample.

``sample.py --eval=decoder`` decodes the embeddings of held-out images and reports how close the
CLIP embeddings of the results come to them, beside unrelated pairs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.clip.decoder import (EmbeddingTokens, decoder_context, decoder_null,
                                 drop_decoder_condition)
from genjax.diffusion import losses
from genjax.diffusion.method import DDPMConfig
from genjax.nets.build import build_network
from genjax.sampling import registry, schedules
from genjax.training.method import Method
from genjax.typed_config import field, from_section, to_dict
from genjax.types import DataSpec

__all__ = ["DecoderConfig", "build_unclip_decoder", "check_clip_workdir", "variations_to_files"]

CAPTIONS = ("none", "clip")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  """The ``config.unclip`` section of the decoder.

  Attributes:
    clip_workdir: the trained CLIP's workdir (``configs/clip_shapes.py``), frozen.
    prior_workdir: the trained prior's workdir (``configs/unclip_prior_shapes.py``), made with
      the same CLIP; needed for text-to-image (``--prompt``), not for training or variations.
    first_stage_workdir: a trained first stage (``configs/autoencoder_kl_shapes.py``) to
      diffuse its latents; empty: diffuse pixels.
    num_tokens: context tokens projected from z_i (the paper: 4).
    caption: "clip": the caption's tokens (the frozen CLIP text transformer's last hidden
      states) follow them in the context; "none": z_i alone.
    embed_drop_prob: z_i set to zero in training (the paper: 0.1).
    caption_drop_prob: caption replaced by the empty caption in training (the paper: 0.5).
    prior_guidance_scale: the prior's classifier-free guidance; < 0: its own config's.
    prior_steps: the prior's sampler steps; 0: its own config's.
    eval_num: held-out images of ``--eval=decoder``.
  """
  clip_workdir: str = ""
  prior_workdir: str = ""
  first_stage_workdir: str = ""
  num_tokens: int = field(4, gt=0)
  caption: str = field("clip", choices=CAPTIONS)
  embed_drop_prob: float = field(0.1, ge=0.0, lt=1.0)
  caption_drop_prob: float = field(0.5, ge=0.0, lt=1.0)
  prior_guidance_scale: float = -1.0
  prior_steps: int = field(0, ge=0)
  eval_num: int = field(256, gt=0)


def _record(workdir: str) -> Optional[dict]:
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def check_clip_workdir(workdir: str, spec: DataSpec, text_len: int,
                       where: str = "unclip.clip_workdir") -> None:
  """Refuses, in one line and before anything is restored, a CLIP workdir that is missing, holds
  another method, or was trained on other images or captions than ``spec`` / ``text_len``.

  Raises:
    ValueError: naming the workdir, what it holds and what is needed.
  """
  if not workdir:
    raise ValueError(f"{where} must name a trained CLIP run (python train.py "
                     "--config=configs/clip_shapes.py --workdir=runs/clip).")
  rec = _record(workdir)
  if rec is None:
    raise ValueError(f"{where}={workdir!r} holds no trained run (no config.json); train a CLIP "
                     f"there first: python train.py --config=configs/clip_shapes.py "
                     f"--workdir={workdir}.")
  if rec.get("method") != "clip":
    raise ValueError(f"{where}={workdir!r} holds a {rec.get('method')!r} run, not a CLIP "
                     "(config.method='clip').")
  data = rec.get("data", {})
  size = data.get("image_size")
  problems = []
  if size and (int(size), int(size)) != tuple(spec.shape[:2]):
    problems.append(f"{size}x{size} images, this data {spec.shape[0]}x{spec.shape[1]}")
  clip_len = int(data.get("text_len") or 32)
  if clip_len != int(text_len):
    problems.append(f"captions of {clip_len} tokens, this data {text_len}")
  if problems:
    raise ValueError(f"{where}={workdir!r} is a CLIP of another shape: {'; '.join(problems)}. "
                     "Point it at a CLIP trained on this data.")


def _load_prior(cfg: DecoderConfig, clip_workdir: str):
  """``(prior Method, its EMA params)`` of ``cfg.prior_workdir``, rebuilt with the decoder's
  prior sampling overrides; the prior must use the decoder's CLIP."""
  from genjax import methods
  from genjax.training import run as run_lib
  rec = _record(cfg.prior_workdir)
  if rec is None:
    raise ValueError(f"unclip.prior_workdir={cfg.prior_workdir!r} holds no trained run (no "
                     "config.json); train the prior first: python train.py "
                     "--config=configs/unclip_prior_shapes.py --workdir=...")
  if rec.get("method") != "unclip_prior":
    raise ValueError(f"unclip.prior_workdir={cfg.prior_workdir!r} holds a {rec.get('method')!r}"
                     " run, not an unCLIP prior (config.method='unclip_prior').")
  its_clip = rec.get("unclip", {}).get("clip_workdir", "")
  if os.path.realpath(its_clip) != os.path.realpath(clip_workdir):
    raise ValueError(f"unclip.prior_workdir={cfg.prior_workdir!r} was trained on the CLIP in "
                     f"{its_clip!r}, this decoder on {clip_workdir!r}; they must be the same.")
  config, run, state = run_lib.load_trained(cfg.prior_workdir)
  method = run.method
  if cfg.prior_guidance_scale >= 0 or cfg.prior_steps:
    with config.unlocked():
      if cfg.prior_guidance_scale >= 0:
        config.sampling.guidance_scale = float(cfg.prior_guidance_scale)
      if cfg.prior_steps:
        config.sampling.steps = int(cfg.prior_steps)
    method = methods.build_method(config, run.dataset.spec)
  return method, state.ema_params


def build_unclip_decoder(config, spec: DataSpec) -> Method:
  """Builds the decoder from ``config.unclip`` (:class:`DecoderConfig`), ``config.diffusion``,
  ``config.model`` (a U-Net; ``emb_dim`` and, with a caption, ``context_dim`` are set here) and
  ``config.sampling``."""
  from genjax.clip.score import load_clip
  from genjax.latent.prompts import text_max_len
  from genjax.text import tokenize
  cfg = from_section(DecoderConfig, config.get("unclip", {}), where="unclip")
  dcfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  sampling = registry.from_config(config.get("sampling"), default="ddim")
  if config.data.get("dataset") != "shapes":
    raise ValueError("method 'unclip_decoder' trains on image-caption pairs: set "
                     "data.dataset='shapes'.")
  if dcfg.cond_drop_prob:
    raise ValueError("unCLIP's decoder drops its conditions with unclip.embed_drop_prob and "
                     "unclip.caption_drop_prob; set diffusion.cond_drop_prob=0.")
  if dcfg.loss_type != "simple" or dcfg.var_type == "learned_range":
    raise ValueError("unCLIP's decoder trains L_simple with a fixed variance: set "
                     "diffusion.loss_type='simple' and a fixed diffusion.var_type.")
  guided = cfg.embed_drop_prob > 0
  if sampling.guidance_scale and not guided:
    raise ValueError("sampling.guidance_scale needs unclip.embed_drop_prob > 0 (the null "
                     "embedding is learned by dropping z_i).")
  text_len = text_max_len(config)

  # 1. The frozen CLIP (checked from its record first), the optional prior and first stage.
  check_clip_workdir(cfg.clip_workdir, spec, text_len)
  clip = load_clip(cfg.clip_workdir)
  if tuple(clip.image_shape) != tuple(spec.shape):
    raise ValueError(f"unclip.clip_workdir={cfg.clip_workdir!r} is a CLIP of another shape: "
                     f"{clip.image_shape} images, this data {tuple(spec.shape)}.")
  e = clip.embed_dim
  prior = _load_prior(cfg, cfg.clip_workdir) if cfg.prior_workdir else None
  h, w, c = spec.shape
  if cfg.first_stage_workdir:
    from genjax.latent.ldm import LDMConfig, load_first_stage
    fs, fs_params, fs_scale = load_first_stage(LDMConfig(first_stage_workdir=
                                                         cfg.first_stage_workdir), spec)
    shape = tuple(fs.latent_shape)

    def encode(x, key):
      return jax.lax.stop_gradient(fs.encode(fs_params, x, key if fs.regularizer == "kl"
                                             else None) * fs_scale)

    def decode(z):
      return jnp.clip(fs.decode(fs_params, z / fs_scale), -1.0, 1.0)
  else:
    shape = (h, w, c)
    encode = lambda x, key: x
    decode = lambda x: jnp.clip(x, -1.0, 1.0)

  # 2. The network: a U-Net with z_i in its time embedding and in its context.
  empty = jnp.asarray(tokenize([""], text_len), jnp.int32)            # [1, L]
  if cfg.caption == "clip":
    probe = jax.eval_shape(clip.text_hidden, empty)
    ctx_dim = int(probe.shape[-1])                                     # the CLIP text width
    null_hidden = clip.text_hidden(empty)                              # [1, L, D]
  else:
    ctx_dim = int(config.model.get("context_dim", 0) or 64)
    null_hidden = None
  model_section = dict(to_dict(config.model))
  if model_section.get("name", "unet") != "unet":
    raise ValueError("unCLIP's decoder is a U-Net: set config.model.name='unet'.")
  if model_section.get("num_classes", 0):
    raise ValueError("unCLIP's decoder is conditioned on z_i, not labels: set "
                     "config.model.num_classes=0.")
  net = build_network(model_section, DataSpec(shape=shape, num_classes=0, kind="image"),
                      out_channels=shape[-1], emb_dim=e, context_dim=ctx_dim)
  tokens_mod = EmbeddingTokens(cfg.num_tokens, ctx_dim)
  sched = schedules.get_schedule(dcfg.schedule, dcfg.num_timesteps)
  zscale = math.sqrt(e)

  def apply_net(params, x, t, cond, train=False, key=None):
    zi = cond["zi"].astype(x.dtype) * zscale
    toks = tokens_mod.apply({"params": params["tokens"]}, zi)
    ctx, mask = decoder_context(toks, cond.get("ctx"), cond.get("ctx_mask"))
    rngs = {"dropout": key} if (train and key is not None) else {}
    return net.apply({"params": params["net"]}, x, t, train=train, rngs=rngs, emb=zi,
                     context=ctx, context_mask=mask)

  # 3. Conditions and their null (the zero embedding, the empty caption).
  def make_cond(zi, tokens=None):
    cond = {"zi": zi.astype(jnp.float32)}
    if cfg.caption == "clip":
      b = zi.shape[0]
      if tokens is None:
        cond["ctx"] = jnp.broadcast_to(null_hidden, (b,) + null_hidden.shape[1:])
        cond["ctx_mask"] = jnp.broadcast_to((empty != 0).astype(jnp.float32), (b, text_len))
      else:
        tokens = jnp.asarray(tokens, jnp.int32)
        cond["ctx"] = jax.lax.stop_gradient(clip.text_hidden(tokens))
        cond["ctx_mask"] = (tokens != 0).astype(jnp.float32)
    return cond

  null = {"zi": jnp.zeros((e,), jnp.float32)}
  if cfg.caption == "clip":
    null["ctx"] = null_hidden[0]
    null["ctx_mask"] = (empty[0] != 0).astype(jnp.float32)

  def null_cond(cond):
    return decoder_null(cond, null)

  def model_of(params) -> registry.Model:
    return registry.Model(process=sched, model_fn=lambda x, t, cond: apply_net(params, x, t, cond),
                          prediction=dcfg.parameterization, var_type=dcfg.var_type,
                          clip=(-1.0, 1.0) if (dcfg.clip_x0 and not cfg.first_stage_workdir)
                          else None, null_cond=null_cond if guided else None)

  registry.validate(dataclasses.replace(sampling, mode="sample"), model_of(None))
  plain = dataclasses.replace(sampling, mode="sample")

  # 4. Training: frozen CLIP embeddings, dropped for guidance, and the DDPM family's loss.
  base_loss = losses.make_ddpm_loss(lambda p, x, t, cond, key: apply_net(p, x, t, cond, True, key),
                                    sched, dcfg.parameterization, "simple",
                                    var_type=dcfg.var_type)

  def loss(params, batch, key):
    """1. CLIP's z_i (and caption tokens) of the images; 2. the guidance dropout; 3. the
    diffusion loss on the images or their latents."""
    k_enc, k_drop, k_loss = jax.random.split(key, 3)
    zi = jax.lax.stop_gradient(clip.encode_image(batch["x"]))
    cond = make_cond(zi, batch["text"] if cfg.caption == "clip" else None)
    cond = drop_decoder_condition(k_drop, cond, null, cfg.embed_drop_prob,
                                  cfg.caption_drop_prob)
    return base_loss(params, {"x": encode(batch["x"], k_enc), "label": cond}, k_loss)

  def init(key, batch):
    k1, k2, k3 = jax.random.split(key, 3)
    x = jnp.zeros((1,) + shape)
    cond = make_cond(jnp.zeros((1, e)), jnp.asarray(batch["text"][:1]) if cfg.caption == "clip"
                     else None)
    tparams = tokens_mod.init(k3, cond["zi"])["params"]
    toks = tokens_mod.apply({"params": tparams}, cond["zi"])
    ctx, mask = decoder_context(toks, cond.get("ctx"), cond.get("ctx_mask"))
    nparams = net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,), jnp.int32), emb=cond["zi"],
                       context=ctx, context_mask=mask)["params"]
    return {"net": nparams, "tokens": tparams}, {}

  # 5. Sampling: text -> prior -> decoder, images -> variations, or given embeddings.
  from genjax.data import DataConfig, load_dataset
  test = load_dataset(from_section(DataConfig, config.data, where="data")).test
  got = test.get(np.arange(min(64, len(test))))
  shown_text = jnp.asarray(got["text"], jnp.int32)
  shown_x = jnp.asarray(got["x"])

  def prior_embed(key, tokens):
    if prior is None:
      raise ValueError("Text-to-image needs the prior: set unclip.prior_workdir to a trained "
                       "unCLIP prior (configs/unclip_prior_shapes.py) made with this CLIP.")
    p_method, p_params = prior
    return p_method.sample(p_params, key, tokens.shape[0], inputs={"text": tokens})

  def sample(params, key, num, inputs=None):
    """``num`` images; see the module docstring for ``inputs``."""
    inputs = dict(inputs or {})
    k_prior, k_dec = jax.random.split(key)
    tokens = jnp.asarray(inputs["text"], jnp.int32) if "text" in inputs else None
    if "image_embed" in inputs:
      zi = jnp.asarray(inputs["image_embed"], jnp.float32)
    elif "images" in inputs:
      zi = clip.encode_image(jnp.asarray(inputs["images"]))
    else:
      if tokens is None:
        idx = jnp.arange(num) % shown_text.shape[0]
        tokens = shown_text[idx]
        if prior is None:  # no prior: the held-out images' own embeddings
          zi = clip.encode_image(shown_x[idx])
        else:
          zi = prior_embed(k_prior, tokens)
      else:
        zi = prior_embed(k_prior, tokens)
    cond = make_cond(zi, tokens)
    x = registry.run(model_of(params), plain, k_dec, (num,) + shape, cond=cond)
    return decode(x)

  def eval_decoder(state, dataset, key, num):
    """Decodes the CLIP embeddings of held-out images (null caption) and compares the CLIP
    embeddings of the results with them."""
    from genjax.training.sampling import generate
    n = min(int(num), cfg.eval_num, len(dataset.test))
    data = dataset.test.get(np.arange(n))
    zi = np.asarray(clip.encode_image(jnp.asarray(data["x"])))
    x = generate(method, state.ema_params, key, n, 256, progress=False,
                 inputs={"image_embed": zi})
    zo = np.asarray(clip.encode_image(jnp.asarray(x)))
    perm = np.roll(np.arange(n), 1)
    return {"cos_decoded_source": float(np.mean(np.sum(zo * zi, axis=1))),
            "cos_unrelated_images": float(np.mean(np.sum(zi[perm] * zi, axis=1))),
            "guidance_scale": sampling.guidance_scale, "num_images": n, "params": "ema"}

  method = Method(name="unclip_decoder", init=init, loss=loss, sample=sample,
                  evaluators={"decoder": eval_decoder},
                  sample_tag="unclip_" + registry.tag(plain, model_of(None)),
                  modes=("sample", "text"))
  return method


def _variation_inputs(source: str, dataset, n: int, seed: int) -> np.ndarray:
  """Input images for variations: a split, an image file or folder, an .npz, or an .npy of
  images ``[N, H, W, C]`` (uint8, or floats in [-1, 1])."""
  if source not in ("test", "train") and not os.path.exists(source):
    raise ValueError(f"--variations {source!r} is neither an image file, a folder, an .npz, an "
                     ".npy nor a dataset split (test, train).")
  from genjax.training.sampling import load_inputs
  if source.endswith(".npy"):
    from genjax.data import resize_images
    x = np.load(source, allow_pickle=False)
    if x.ndim == 3:
      x = x[None]
    h, w, c = dataset.spec.shape
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
      raise ValueError(f"--variations {source!r}: an .npy of images [N, H, W, C] with C = 1 or 3"
                       f" is needed, got shape {x.shape}.")
    x = x.astype(np.float32) / 127.5 - 1.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.shape[-1] != c:
      x = x.mean(-1, keepdims=True) if c == 1 else np.repeat(x[..., :1], c, axis=-1)
    return resize_images(x[:n], (h, w))
  return load_inputs(source, dataset, n, seed)


def variations_to_files(config, workdir: str, out: str, source: str, per_image: int = 4,
                        num: int = 16, batch: int = 256, seed: int = 0,
                        step: Optional[int] = None) -> list[str]:
  """``sample.py --variations=SOURCE``: encodes input images with the decoder's CLIP image tower
  and decodes each ``per_image`` times (Ramesh et al. 2022, Sec. 3.1, image variations).

  Writes ``<tag>_variations.png`` (one row per input: the input, then its variations) and
  ``<tag>_variations.npz`` (inputs, samples, and the cosine of each variation's CLIP embedding
  with its input's).

  Raises:
    ValueError: a run that is not an unCLIP decoder, a bad count, an unusable source.
  """
  from genjax import viz
  from genjax.clip.score import load_clip
  from genjax.training import run as run_lib
  from genjax.training.sampling import generate
  if config.get("method") != "unclip_decoder":
    raise ValueError(f"--variations needs an unCLIP decoder run (configs/unclip_decoder_shapes."
                     f"py); config.method={config.get('method')!r}.")
  if not isinstance(per_image, (int, np.integer)) or per_image < 1:
    raise ValueError(f"--num_per_prompt must be a positive integer, got {per_image!r}.")
  if source not in ("test", "train") and not os.path.exists(source):
    _variation_inputs(source, None, 0, seed)  # the one-line error, before restoring
  run, state = run_lib.restore(config, workdir, step)
  n_in = max(1, int(num) // int(per_image))
  images = _variation_inputs(source, run.dataset, n_in, seed)
  n_in = len(images)
  repeated = np.repeat(images, per_image, axis=0)
  samples = generate(run.method, state.ema_params, jax.random.key(seed), len(repeated), batch,
                     inputs={"images": repeated}, progress=False,
                     xla_cpu_options=run.train.xla_cpu_options)
  clip = load_clip(config.unclip.clip_workdir)
  cos = np.sum(np.asarray(clip.encode_image(jnp.asarray(samples)))
               * np.asarray(clip.encode_image(jnp.asarray(repeated))), axis=1)
  os.makedirs(out, exist_ok=True)
  stem = os.path.join(out, f"{run.method.sample_tag}_variations")
  rows = np.concatenate([images[:, None], samples.reshape((n_in, per_image) + images.shape[1:])],
                        axis=1)
  viz.save_image_grid(rows.reshape((-1,) + rows.shape[2:]), stem + ".png", nrow=1 + per_image)
  np.savez_compressed(stem + ".npz", inputs=images, samples=samples, clip_cosine=cos,
                      per_image=per_image, step=int(jax.device_get(state.step)))
  return [stem + ".png", stem + ".npz"]
