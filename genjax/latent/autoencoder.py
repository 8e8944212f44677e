"""The first stage of latent diffusion as a trainer method: a KL- or VQ-regularized autoencoder
trained with L1 + perceptual + PatchGAN losses (Rombach et al. 2022, Sec. 3.1 and App. G;
Esser et al. 2021, Sec. 3.1).

``config.method = "autoencoder_kl"`` (LDM's "KL-f"): ``z ~ q(z|x) = N(mu, sigma^2)`` with a
tiny KL penalty towards N(0, I). ``config.method = "vqgan"`` (LDM's "VQ-f"): the encoder output
is quantized with a codebook (:mod:`genjax.autoencoders.vq`: nearest code, straight-through,
codebook + commitment losses); a second stage diffuses the latent *before* quantization and the
quantization is absorbed into the decoder (:meth:`FirstStageModel.decode`).

One train step (``train_step``, two optimizers as the GAN family):

1. autoencoder: ``L = L_rec + kl_weight * L_KL (or codebook_weight * L_VQ)
   + lambda * disc_factor * L_G``, with ``L_rec = sum_pixels(|x - x_hat| + p_w * d_perc(x, x_hat))``
   per image averaged over the batch and ``L_KL`` summed over the latent (LDM's
   ``LPIPSWithDiscriminator`` conventions, with its learned output log-variance fixed at 0);
   ``L_G = -mean D(x_hat)`` (hinge); ``lambda = disc_weight * ||grad_{G_L} L_rec|| /
   (||grad_{G_L} L_G|| + 1e-4)`` at the decoder's last layer (Esser et al. eq. 7,
   :func:`genjax.latent.losses.adaptive_weight`); ``disc_factor = 1`` from ``disc_start`` on.
2. discriminator: ``disc_factor * 0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))``.

The latent scale factor of the LDM paper (``1 / std`` of the latents, App. G "we rescale the
latents to unit variance") is estimated as an EMA of the batch mean and mean square of the latents
during training, stored in the checkpoint (``model_state``), and read by the second stage.

``sample`` returns reconstructions of held-out images (a first stage is not a generative model
on its own); ``sample.py --eval=recon`` reports the reconstruction error, PSNR, SSIM and the
rate in bits per latent dimension (KL: ``KL / ln 2`` per dimension; VQ: ``log2 K`` and the
empirical code entropy).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.autoencoders import vq as vq_lib
from genjax.gan import losses as gan_losses
from genjax.latent import losses as L
from genjax.latent.perceptual import make_perceptual
from genjax.nets.first_stage import FirstStage, PatchDiscriminator
from genjax.training import optim as optim_lib
from genjax.training.config import OptimConfig
from genjax.training.method import Method
from genjax.typed_config import field, from_section, to_dict
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class FirstStageConfig:
  """The ``config.first_stage`` section.

  Attributes:
    kl_weight: weight of the KL term (LDM: 1e-6).
    perceptual: perceptual network: auto | digits | shapes | lpips | none
      (:mod:`genjax.latent.perceptual`).
    perceptual_weight: p_w (LDM / taming: 1.0).
    lpips_weights: LPIPS weights .npz (``python -m genjax.metrics.convert_lpips``).
    disc_start: train step from which the GAN terms are on (LDM: 50001 for ImageNet).
    disc_weight: the factor on the adaptive weight (LDM KL: 0.5; taming: 0.8).
    disc_ndf: PatchGAN base width.
    disc_layers: PatchGAN stride-2 layers.
    codebook_weight: weight of the VQ codebook + commitment loss (taming: 1.0).
    commitment_cost: beta of the commitment loss (0.25).
    scale_decay: EMA decay of the latent statistics behind the scale factor.
  """
  kl_weight: float = field(1e-6, ge=0.0)
  perceptual: str = field("auto", choices=("auto", "digits", "shapes", "lpips", "none"))
  perceptual_weight: float = field(1.0, ge=0.0)
  lpips_weights: str = ""
  disc_start: int = field(0, ge=0)
  disc_weight: float = field(0.5, ge=0.0)
  disc_ndf: int = field(32, gt=0)
  disc_layers: int = field(2, ge=1)
  codebook_weight: float = field(1.0, ge=0.0)
  commitment_cost: float = field(0.25, ge=0.0)
  scale_decay: float = field(0.99, ge=0.0, lt=1.0)


@dataclasses.dataclass(frozen=True)
class FirstStageModel:
  """The pure pieces of a trained first stage, what a second stage uses.

  Attributes:
    net: the :class:`~genjax.nets.first_stage.FirstStage` module.
    regularizer: "kl" | "vq".
    image_shape: (H, W, C).
    latent_shape: (H/f, W/f, embed_dim).
    factor: f.
    encode: ``encode(params, x, key=None) -> z``: KL: a posterior sample (the mean when
      ``key`` is None); VQ: the unquantized latent.
    decode: ``decode(params, z) -> x``; VQ quantizes ``z`` first.
    reconstruct: ``reconstruct(params, x) -> x_hat`` (posterior mean / quantized latent).
  """
  net: Any
  regularizer: str
  image_shape: tuple
  latent_shape: tuple
  factor: int
  encode: Callable
  decode: Callable
  reconstruct: Callable


def _model_fields(config, spec: DataSpec, regularizer: str) -> dict:
  d = dict(to_dict(config.model))
  name = d.pop("name", "first_stage")
  if name != "first_stage":
    raise ValueError(f"config.model.name must be 'first_stage' for method "
                     f"{config.method!r}, got {name!r}.")
  fields = {f.name for f in dataclasses.fields(FirstStage)} - {"parent", "name", "out_channels",
                                                                 "regularizer"}
  unknown = sorted(set(d) - fields)
  if unknown:
    raise ValueError(f"Unknown field(s) {unknown} for config.model (first stage); valid: "
                     f"{sorted(fields)}.")
  d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
  return dict(d, out_channels=int(spec.shape[-1]), regularizer=regularizer)


def build_first_stage_model(config, spec: DataSpec, regularizer: str) -> FirstStageModel:
  """The first stage's network and its encode / decode functions from ``config.model``."""
  if spec.kind != "image":
    raise ValueError(f"method {config.method!r} needs image data, got {spec.kind} data.")
  net = FirstStage(**_model_fields(config, spec, regularizer))
  f = 2 ** (len(net.ch_mult) - 1)
  h, w, c = spec.shape
  if h % f or w % f:
    raise ValueError(f"config.model.ch_mult={tuple(net.ch_mult)} downsamples by f={f}, which "
                     f"does not divide the {h}x{w} images; use a shorter ch_mult.")
  latent_shape = (h // f, w // f, net.embed_dim)
  kl = regularizer == "kl"

  def encode(params, x, key=None):
    h_ = net.apply({"params": params}, x, method="encode")
    if not kl:
      return h_
    mean, logvar = L.split_moments(h_)
    return mean if key is None else L.sample_posterior(key, mean, logvar)

  def quantize(params, z):
    return vq_lib.quantize(z, params["quantize"]["embedding"])[0]

  def decode(params, z):
    if not kl:
      z = quantize(params, z)
    return net.apply({"params": params}, z, method="decode")

  def reconstruct(params, x):
    return decode(params, encode(params, x))

  return FirstStageModel(net=net, regularizer=regularizer, image_shape=tuple(spec.shape),
                         latent_shape=latent_shape, factor=f, encode=encode, decode=decode,
                         reconstruct=reconstruct)


class FirstStageOptimizers(NamedTuple):
  """One optax transformation for the autoencoder, one for the discriminator."""
  ae: optax.GradientTransformation
  d: optax.GradientTransformation


def scale_factor(model_state) -> jax.Array:
  """``1 / std`` of the latents from the EMA statistics in the first stage's ``model_state``
  (LDM's ``scale_factor``; 1 before any statistics)."""
  s = model_state["latent_stats"]
  var = jnp.maximum(s["sq"] - jnp.square(s["mean"]), 1e-12)
  return jnp.where(s["count"] > 0, jax.lax.rsqrt(var), 1.0)


def _build(config, spec: DataSpec, regularizer: str) -> Method:
  cfg = from_section(FirstStageConfig, config.get("first_stage"), where="first_stage")
  model = build_first_stage_model(config, spec, regularizer)
  net = model.net
  kl = regularizer == "kl"
  disc = PatchDiscriminator(cfg.disc_ndf, cfg.disc_layers)
  perceptual = (make_perceptual(cfg.perceptual, spec.shape, cfg.lpips_weights)
                if cfg.perceptual_weight > 0 else None)
  numel = int(np.prod(spec.shape))
  from genjax.gan.method import player_optim_configs
  overrides_ae, overrides_d = player_optim_configs(config)

  def make_optimizer(optim_cfg: OptimConfig, num_steps: int):
    return FirstStageOptimizers(
        ae=optim_lib.make_optimizer(dataclasses.replace(optim_cfg, **overrides_ae), num_steps),
        d=optim_lib.make_optimizer(dataclasses.replace(optim_cfg, **overrides_d), num_steps))

  def init_opt_state(tx, params):
    return {"ae": tx.ae.init(params["ae"]), "d": tx.d.init(params["d"])}

  def init(key, batch):
    k1, k2 = jax.random.split(key)
    x = batch["x"][:1]
    ae = net.init(k1, x)["params"]
    d = disc.init(k2, x)["params"]
    stats = {"mean": jnp.zeros(()), "sq": jnp.zeros(()), "count": jnp.zeros(())}
    return {"ae": ae, "d": d}, {"latent_stats": stats}

  def d_logits(d_params, x):
    return disc.apply({"params": d_params}, x)

  def ae_terms(ae_params, d_params, x, key):
    """(rec, reg, g_loss) and aux for one batch; rec and reg as in LDM's loss."""
    h = net.apply({"params": ae_params}, x, method="encode")
    aux = {}
    if kl:
      mean, logvar = L.split_moments(h)
      z = L.sample_posterior(key, mean, logvar)
      reg = jnp.mean(L.gaussian_kl(mean, logvar))
      aux["kl"] = reg
      aux["latent"] = z
      z_dec = z
    else:
      codebook = ae_params["quantize"]["embedding"]
      z_q, codes = vq_lib.quantize(h, codebook)
      codebook_loss, commit = vq_lib.vq_losses(h, z_q)
      reg = codebook_loss + cfg.commitment_cost * commit
      perplexity, used = vq_lib.code_perplexity(codes, net.num_codes)
      aux.update(vq_loss=reg, perplexity=perplexity, codes_used=used, latent=h)
      z_dec = vq_lib.straight_through(h, z_q)
    x_hat = net.apply({"params": ae_params}, z_dec, method="decode")
    l1 = jnp.sum(jnp.abs(x - x_hat), axis=(1, 2, 3))
    rec = l1
    if perceptual is not None:
      p = perceptual(x, x_hat)
      rec = rec + cfg.perceptual_weight * p * numel
      aux["perceptual"] = jnp.mean(p)
    aux["l1"] = jnp.mean(l1) / numel
    g_loss = gan_losses.hinge_generator_loss(d_logits(d_params, x_hat))
    aux["x_hat"] = x_hat
    return (jnp.mean(rec), reg, g_loss), aux

  reg_weight = cfg.kl_weight if kl else cfg.codebook_weight

  def train_step(state, batch, key):
    tx: FirstStageOptimizers = state.tx
    x = batch["x"]
    ae_params, d_params = state.params["ae"], state.params["d"]
    disc_factor = (state.step >= cfg.disc_start).astype(jnp.float32)

    # 1. Autoencoder step: one forward, the last-layer gradients for eq. 7, one full backward.
    f = lambda p: ae_terms(p, d_params, x, key)
    grads, (rec, reg, g_loss), lam, g_weight, aux = L.first_stage_grads(
        f, ae_params, reg_weight, cfg.disc_weight * disc_factor,
        lambda g: g["decoder"]["conv_out"]["kernel"])
    updates, ae_opt = tx.ae.update(grads, state.opt_state["ae"], ae_params)
    new_ae = optax.apply_updates(ae_params, updates)
    loss_ae = rec + reg_weight * reg + g_weight * g_loss

    # 2. Discriminator step (hinge) on the data and the detached reconstructions.
    x_hat = jax.lax.stop_gradient(aux.pop("x_hat"))

    def d_loss_fn(d):
      real, fake = d_logits(d, x), d_logits(d, x_hat)
      return disc_factor * 0.5 * gan_losses.hinge_discriminator_loss(real, fake), (real, fake)

    (d_loss, (real, fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
    updates, d_opt = tx.d.update(d_grads, state.opt_state["d"], d_params)
    new_d = optax.apply_updates(d_params, updates)

    # 3. Latent statistics for the scale factor (EMA, bias-free from the first step).
    z = jax.lax.stop_gradient(aux.pop("latent"))
    s = state.model_state["latent_stats"]
    decay = jnp.where(s["count"] > 0, cfg.scale_decay, 0.0)
    stats = {"mean": decay * s["mean"] + (1 - decay) * jnp.mean(z),
             "sq": decay * s["sq"] + (1 - decay) * jnp.mean(jnp.square(z)),
             "count": s["count"] + 1}
    metrics = dict(aux, loss=loss_ae + d_loss, rec=rec, reg=reg, g_loss=g_loss, d_loss=d_loss,
                   adaptive_weight=lam, disc_factor=disc_factor, logits_real=jnp.mean(real),
                   logits_fake=jnp.mean(fake), ae_grad_norm=optax.global_norm(grads))
    new = state.replace(params={"ae": new_ae, "d": new_d}, opt_state={"ae": ae_opt, "d": d_opt},
                        model_state={"latent_stats": stats})
    return new, metrics

  # Held-out images whose reconstructions are the trainer's sample grids.
  from genjax.data import DataConfig, load_dataset
  from genjax.typed_config import from_section as _fs
  try:
    data = load_dataset(_fs(DataConfig, config.data, where="data"))
    shown = jnp.asarray(data.test.get(np.arange(min(64, len(data.test))))["x"])
  except Exception:  # a config without loadable data (tests of the pieces): grids of zeros
    shown = jnp.zeros((8,) + tuple(spec.shape))

  def sample(params, key, num, inputs=None):
    """Reconstructions of held-out images (cycled to ``num``), or of ``inputs['known']``."""
    del key
    x = shown[jnp.arange(num) % shown.shape[0]] if inputs is None else inputs["known"]
    return jnp.clip(model.reconstruct(params["ae"], x), -1.0, 1.0)

  def reconstruct(params, x):
    return jnp.clip(model.reconstruct(params["ae"], x), -1.0, 1.0)

  def eval_recon(state, dataset, key, num):
    """Test-set reconstruction error, PSNR, SSIM, the rate and the scale factor."""
    del key
    from genjax.metrics.image import psnr, ssim
    params = state.ema_params["ae"]
    n = min(int(num), len(dataset.test))
    x = np.asarray(dataset.test.get(np.arange(n))["x"], np.float32)

    @jax.jit
    def one(xb):
      h = net.apply({"params": params}, xb, method="encode")
      out = {}
      if kl:
        mean, logvar = L.split_moments(h)
        out["rate"] = L.kl_rate_bits(mean, logvar)
        z = mean
      else:
        z = h
        out["codes"] = vq_lib.nearest_codes(h, params["quantize"]["embedding"])
      x_hat = jnp.clip(model.decode(params, z), -1.0, 1.0)
      out["mse"] = jnp.mean(jnp.square(x_hat - xb), axis=(1, 2, 3))
      out["l1"] = jnp.mean(jnp.abs(x_hat - xb), axis=(1, 2, 3))
      out["psnr"] = psnr(xb, x_hat, 2.0)
      win = min(7, xb.shape[1] - (1 - xb.shape[1] % 2))
      out["ssim"] = ssim(xb, x_hat, 2.0, win_size=win)
      return out

    parts = [jax.device_get(one(jnp.asarray(x[i:i + 256]))) for i in range(0, n, 256)]
    cat = {k: np.concatenate([np.atleast_1d(p[k]) for p in parts]) for k in parts[0]}
    res = {"mse": float(cat["mse"].mean()), "l1": float(cat["l1"].mean()),
           "psnr_db": float(cat["psnr"].mean()), "ssim": float(cat["ssim"].mean()),
           "ssim_window": int(min(7, x.shape[1] - (1 - x.shape[1] % 2))),
           "latent_shape": list(model.latent_shape), "factor": model.factor,
           "scale_factor": float(scale_factor(state.model_state)),
           "num_images": n, "split": "test", "params": "ema"}
    latent_dims = int(np.prod(model.latent_shape))
    if kl:
      res["rate_bits_per_latent"] = float(cat["rate"].mean())
      res["rate_bits_per_pixel"] = float(cat["rate"].mean() * latent_dims / np.prod(spec.shape))
    else:
      counts = np.bincount(cat["codes"].reshape(-1), minlength=net.num_codes)
      p = counts / counts.sum()
      entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
      positions = int(np.prod(model.latent_shape[:2]))
      res.update(rate_bits_per_code=math.log2(net.num_codes), code_entropy_bits=entropy,
                 codes_used=int((counts > 0).sum()), num_codes=net.num_codes,
                 rate_bits_per_pixel=positions * math.log2(net.num_codes) / np.prod(spec.shape))
    return res

  return Method(name="autoencoder_kl" if kl else "vqgan", init=init, sample=sample,
                train_step=train_step, make_optimizer=make_optimizer,
                init_opt_state=init_opt_state, ema_filter=lambda p: {"ae": p["ae"]},
                evaluators={"recon": eval_recon}, reconstruct=reconstruct,
                sample_tag="reconstructions")


def build_autoencoder_kl(config, spec: DataSpec) -> Method:
  """LDM's KL-regularized autoencoder (``config.method = "autoencoder_kl"``)."""
  return _build(config, spec, "kl")


def build_vqgan(config, spec: DataSpec) -> Method:
  """VQGAN / LDM's VQ-regularized autoencoder (``config.method = "vqgan"``)."""
  return _build(config, spec, "vq")
