"""The discrete VAE of DALL-E (Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation",
Sec. 2.1, stage 1) as a trainer method, ``"dvae"``.

An encoder maps an image to K logits at each of h x w latent positions; training decodes a
Gumbel-softmax relaxation of the codes, and inference decodes the argmax codes::

  1. logits = E(x)                       [B, h, w, K]
  2. y = gumbel_softmax(logits, tau_t)   relaxed one-hots, tau annealed 1 -> 1/16 (cosine)
  3. x_hat = D(y @ C)                    C [K, D]: the decoder's first (1x1, bias-free) layer
  4. L = sum_pixels (x - x_hat)^2 / (2 sigma^2) + beta_t sum_positions KL(q(z|x) || U_K)
     with beta_t increased from 0 (cosine), the negative ELBO of eq. 1 with a uniform prior.

The paper's reconstruction term is its logit-Laplace likelihood; this one is a Gaussian with a
fixed sigma (``dvae.recon_sigma``). Codes for the transformer are the argmax codes
(:attr:`DVAEModel.codes`); ``--eval=recon`` reports the test error of argmax reconstructions,
the code perplexity and the number of codes used, as the VQ models' evaluator does.
"""

from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.autoencoders import common
from genjax.autoencoders import vq as vq_lib
from genjax.dalle import gumbel
from genjax.nets.conv import ConvDecoder, ConvEncoder
from genjax.training.method import Method
from genjax.typed_config import field, from_section, validate
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class DVAEConfig:
  """The ``config.dvae`` section.

  Attributes:
    num_codes: K, the codebook size (8192 in the paper).
    embedding_dim: width of each code's vector in the decoder's first layer.
    tau_start / tau_end: Gumbel-softmax temperature at step 0 / after ``tau_anneal_steps``
      (1 and 1/16 in the paper).
    tau_anneal_steps: length of the temperature's cosine schedule.
    kl_weight_start / kl_weight_end: beta at step 0 / after ``kl_anneal_steps`` (0 and 6.6).
    kl_anneal_steps: length of beta's cosine schedule (5000 updates in the paper).
    recon_sigma: sigma of the Gaussian reconstruction term, in data units ([-1, 1]).
    hard: straight-through one-hots in training (the paper decodes the soft relaxation).
  """
  num_codes: int = field(512, ge=2)
  embedding_dim: int = field(64, gt=0)
  tau_start: float = field(1.0, gt=0.0)
  tau_end: float = field(1.0 / 16.0, gt=0.0)
  tau_anneal_steps: int = field(10_000, gt=0)
  kl_weight_start: float = field(0.0, ge=0.0)
  kl_weight_end: float = field(6.6, ge=0.0)
  kl_anneal_steps: int = field(5_000, gt=0)
  recon_sigma: float = field(0.1, gt=0.0)
  hard: bool = False

  def __post_init__(self):
    validate(self, "dvae")


class _Embed(nn.Module):
  """Relaxed (or hard) one-hots [..., K] -> vectors [..., D]: ``y @ C``."""
  num_codes: int
  dim: int

  @nn.compact
  def __call__(self, y):
    c = self.param("codebook", nn.initializers.normal(1.0), (self.num_codes, self.dim))
    return y @ c.astype(y.dtype)


@dataclasses.dataclass(frozen=True)
class DVAEModel:
  """The pure functions of a trained dVAE (what the transformer stage needs).

  Attributes:
    logits: ``(params, x) -> [B, h, w, K]``.
    decode_onehot: ``(params, y [B, h, w, K]) -> decoder output`` (unconstrained).
    codes: ``(params, x) -> int32 [B, h, w]`` argmax codes.
    decode_codes: ``(params, codes [B, h, w]) -> x`` in [-1, 1].
    code_shape: (h, w).
    num_codes: K.
    init: ``(key, x) -> params``.
  """
  logits: object
  decode_onehot: object
  codes: object
  decode_codes: object
  code_shape: tuple
  num_codes: int
  init: object


def make_dvae_model(config, spec: DataSpec) -> tuple[DVAEModel, DVAEConfig]:
  common.check_image_spec(spec, "dvae")
  cfg = from_section(DVAEConfig, config.dvae, where="dvae")
  net = from_section(common.NetConfig, config.model, where="model")
  if net.name != "conv" or not net.channels:
    raise ValueError("dvae maps images to a grid of codes: set --config.model.name=conv with "
                     "at least one stage in config.model.channels.")
  h, w, c = spec.shape
  n = 2 ** len(net.channels)
  if h % n or w % n:
    raise ValueError(f"dvae: image size {h}x{w} is not divisible by {n} (the total "
                     f"downsampling of config.model.channels={tuple(net.channels)}).")
  res = dict(num_res_blocks=net.num_res_blocks, res_channels=net.res_channels,
             activation=net.activation)
  ch = tuple(net.channels)
  enc = ConvEncoder(ch, out_channels=cfg.num_codes, **res)
  emb = _Embed(cfg.num_codes, cfg.embedding_dim)
  dec = ConvDecoder(c, tuple(reversed(ch)), hidden=ch[-1], **res)
  k = cfg.num_codes

  def logits(params, x):
    return enc.apply({"params": params["enc"]}, x)

  def decode_onehot(params, y):
    return dec.apply({"params": params["dec"]}, emb.apply({"params": params["embed"]}, y))

  def codes(params, x):
    return jnp.argmax(logits(params, x), axis=-1).astype(jnp.int32)

  def decode_codes(params, z):
    return jnp.clip(decode_onehot(params, jax.nn.one_hot(z, k, dtype=jnp.float32)), -1.0, 1.0)

  def init(key, x):
    k1, k2, k3 = jax.random.split(key, 3)
    p = {"enc": enc.init(k1, x)["params"]}
    y = jax.nn.softmax(logits(p, x))
    p["embed"] = emb.init(k2, y)["params"]
    p["dec"] = dec.init(k3, emb.apply({"params": p["embed"]}, y))["params"]
    return p

  model = DVAEModel(logits, decode_onehot, codes, decode_codes, (h // n, w // n), k, init)
  return model, cfg


def build_dvae_model(config, spec: DataSpec) -> tuple[DVAEModel, Method]:
  model, cfg = make_dvae_model(config, spec)
  dims = int(np.prod(spec.shape))

  def schedules(step):
    tau = gumbel.cosine_anneal(step, cfg.tau_start, cfg.tau_end, cfg.tau_anneal_steps)
    beta = gumbel.cosine_anneal(step, cfg.kl_weight_start, cfg.kl_weight_end, cfg.kl_anneal_steps)
    return tau, beta

  def loss_at(params, batch, key, step):
    x = batch["x"]
    tau, beta = schedules(step)
    lg = model.logits(params, x)                                            # 1.
    y = gumbel.gumbel_softmax(key, lg, tau.astype(lg.dtype), cfg.hard)      # 2.
    out = model.decode_onehot(params, y)                                    # 3.
    sq = jnp.sum(jnp.square(out - x), axis=(1, 2, 3))
    recon = sq / (2.0 * cfg.recon_sigma ** 2)                               # 4.
    kl = jnp.sum(gumbel.kl_to_uniform(lg), axis=(1, 2))
    total = jnp.mean(recon + beta * kl)
    codes = jnp.argmax(lg, -1)
    perplexity, used = vq_lib.code_perplexity(codes, model.num_codes)
    q_entropy, q_agg_perplexity = gumbel.posterior_usage(jax.lax.stop_gradient(lg))
    metrics = {"recon_mse": jnp.mean(sq) / dims, "kl_nats": jnp.mean(kl), "tau": tau,
               "kl_weight": beta, "perplexity": perplexity, "codes_used": used,
               "q_entropy": q_entropy, "q_agg_perplexity": q_agg_perplexity}
    return total, (metrics, None)

  def init(key, batch):
    return model.init(key, batch["x"][:2]), {}

  def train_step(state, batch, key):
    fn = lambda p, b, k: loss_at(p, b, k, state.step)
    new, metrics, _ = common.gradient_step(state, fn, batch, key)
    return new, metrics

  def sample(params, key, num):
    """Uniformly random codes, decoded (the prior the dVAE trains with); real samples come from
    the transformer stage (``"dalle"``)."""
    z = vq_lib.sample_codes_uniform(key, (num, *model.code_shape), model.num_codes)
    return model.decode_codes(params, z)

  def reconstruct(params, x):
    return model.decode_codes(params, model.codes(params, x))

  def eval_recon(state, dataset, key, num, out=None):
    """Test error of the argmax reconstructions, code perplexity and usage (as the VQ models);
    writes ``dvae_recon.png`` (test images over their reconstructions) when given ``out``."""
    del key
    fn = jax.jit(lambda p, x: (reconstruct(p, x), model.codes(p, x)))
    errs, cc, first = [], [], None
    for b in common.iter_test_batches(dataset, num):
      x = jnp.asarray(b["x"])
      xr, c = fn(state.ema_params, x)
      errs.append(np.asarray(jnp.sum(jnp.square(xr - x), axis=(1, 2, 3))))
      cc.append(np.asarray(c).reshape(-1))
      if first is None:
        first = (np.asarray(x[:16]), np.asarray(xr[:16]))
    sq = float(np.mean(np.concatenate(errs)))
    perp, used = vq_lib.code_perplexity(jnp.asarray(np.concatenate(cc)), model.num_codes)
    result = {"test_sq_error_per_image": sq, "test_mse_per_dim": sq / dims,
              "perplexity": float(perp), "codes_used": int(round(float(used) * model.num_codes)),
              "num_codes": model.num_codes, "code_shape": list(model.code_shape)}
    if out is not None and first is not None:
      from genjax import viz  # pylint: disable=g-import-not-at-top
      k = len(first[0])
      grid = np.concatenate([first[0], first[1]], 0)
      result["figure"] = os.path.join(out, "dvae_recon.png")
      viz.save_image_grid(grid, result["figure"], nrow=k)
    return result

  method = Method(name="dvae", init=init, train_step=train_step, sample=sample,
                  evaluators={"recon": eval_recon}, reconstruct=reconstruct)
  return model, method


def build_dvae(config, spec: DataSpec) -> Method:
  """Registry entry: ``"dvae"``."""
  return build_dvae_model(config, spec)[1]
