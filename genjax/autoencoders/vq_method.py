"""VQ-VAE (van den Oord et al. 2017) and VQ-VAE-2 (Razavi et al. 2019) as trainer methods.

``"vqvae"``: one grid of codes. ``"vqvae2"``: a two-level hierarchy (Razavi et al. 2019,
Sec. 3.1 and Fig. 2a): a bottom encoder maps x to features h_b (/2^n); a top encoder maps h_b
to the top latents (/2 more), which are quantized; a top decoder brings them back to the
bottom resolution, where they condition the bottom latents (quantized too); the decoder
sees the bottom codes and the upsampled top codes. The autoregressive prior over the codes
is a second training stage (``genjax.autoencoders.prior_method``, ``configs/vqvae2_prior.py``).

One train step (a ``train_step``, because the EMA codebook is not a gradient update)::

  1. z_e = E(x);  z_q = e_k, k = argmin ||z_e - e||  (eq. 11); decoder input z_e + sg[z_q - z_e]
  2. L = mean (x - D(.))^2 + beta ||z_e - sg[e]||^2 (+ ||sg[z_e] - e||^2 without EMA)  (eq. 12)
  3. one optimizer update of the encoder and decoder (and of the codebook without EMA)
  4. EMA codebook (eq. 13): N, m in ``model_state``; e = m / N written into ``params``
  5. optionally, dead codes restarted on random encoder outputs of the batch

Params: ``{..networks.., "codebooks": {level: [K, D]}}``; model state:
``{"codebooks": {level: {"cluster_size": [K], "embed_sum": [K, D]}}}``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.autoencoders import common
from genjax.autoencoders import vq as vq_lib
from genjax.nets.conv import ConvDecoder, ConvEncoder
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class VQConfig:
  """The ``config.vq`` section.

  Attributes:
    num_codes: K, codebook size (of every level unless ``top_num_codes`` is set).
    top_num_codes: VQ-VAE-2: K of the top codebook (None: ``num_codes``).
    embedding_dim: D, width of each code vector.
    commitment_cost: beta of eq. 12 (0.25 in the paper).
    ema: update the codebook by EMA (eq. 13) instead of the codebook loss.
    ema_decay: gamma of eq. 13.
    ema_epsilon: Laplace smoothing of the EMA cluster sizes (0: eq. 13 verbatim).
    restart_dead_codes: restart codes whose EMA usage falls below ``dead_code_threshold``.
    dead_code_threshold: usage threshold, in assigned vectors per step (EMA).
  """
  num_codes: int = 64
  top_num_codes: Optional[int] = None
  embedding_dim: int = 16
  commitment_cost: float = 0.25
  ema: bool = True
  ema_decay: float = 0.99
  ema_epsilon: float = 1e-5
  restart_dead_codes: bool = False
  dead_code_threshold: float = 0.1

  def __post_init__(self):
    if self.num_codes < 2 or self.embedding_dim < 1:
      raise ValueError("vq.num_codes must be >= 2 and vq.embedding_dim >= 1.")
    if not 0.0 <= self.ema_decay < 1.0:
      raise ValueError(f"vq.ema_decay must lie in [0, 1), got {self.ema_decay}.")


@dataclasses.dataclass(frozen=True)
class VQModel:
  """The pure functions of a (hierarchical) VQ-VAE.

  Attributes:
    levels: level names, coarsest first: ("z",) or ("top", "bottom").
    num_codes: {level: K}.
    code_shapes: {level: (h, w)} of each code grid.
    embedding_dim: D.
    forward: ``(params, x) -> (out, z_e, z_q, codes)`` (dicts by level); ``out`` is the
      decoder output (straight-through inputs).
    decode_codes: ``(params, {level: codes}) -> x`` in [-1, 1].
    decode_latents: ``(params, {level: quantized [B, h, w, D]}) -> decoder output``.
    init: ``(key, x, init_codebook) -> params``; ``init_codebook(key, z_e, K) -> [K, D]``.
  """
  levels: tuple[str, ...]
  num_codes: dict
  code_shapes: dict
  embedding_dim: int
  forward: object
  decode_codes: object
  decode_latents: object
  init: object


def make_vq_model(config, spec: DataSpec, hierarchical: bool) -> tuple[VQModel, VQConfig]:
  """Networks and forward/decode functions of a VQ-VAE (``hierarchical``: VQ-VAE-2)."""
  name = "vqvae2" if hierarchical else "vqvae"
  common.check_image_spec(spec, name)
  cfg = from_section(VQConfig, config.vq, where="vq")
  net = from_section(common.NetConfig, config.model, where="model")
  if net.name != "conv" or not net.channels:
    raise ValueError(f"{name} quantizes a grid of latents: set --config.model.name=conv with at "
                     f"least one stage in config.model.channels.")
  h, w, c = spec.shape
  d = cfg.embedding_dim
  n = 2 ** (len(net.channels) + (1 if hierarchical else 0))
  if h % n or w % n:
    raise ValueError(f"{name}: image size {h}x{w} is not divisible by {n} (the total "
                     f"downsampling); use fewer stages in config.model.channels or "
                     f"--config.data.image_size.")
  res = dict(num_res_blocks=net.num_res_blocks, res_channels=net.res_channels,
             activation=net.activation)
  ch = tuple(net.channels)
  up = tuple(reversed(ch))
  st = vq_lib.straight_through

  if not hierarchical:
    levels = ("z",)
    num_codes = {"z": cfg.num_codes}
    code_shapes = {"z": (h // n, w // n)}
    enc = ConvEncoder(ch, out_channels=d, **res)
    dec = ConvDecoder(c, up, hidden=ch[-1], **res)

    def forward(params, x):
      z_e = enc.apply({"params": params["enc"]}, x)
      z_q, codes = vq_lib.quantize(z_e, params["codebooks"]["z"])
      out = dec.apply({"params": params["dec"]}, st(z_e, z_q))
      return out, {"z": z_e}, {"z": z_q}, {"z": codes}

    def decode_latents(params, q):
      return dec.apply({"params": params["dec"]}, q["z"])

    def init(key, x, init_codebook):
      k1, k2, k3 = jax.random.split(key, 3)
      p = {"enc": enc.init(k1, x)["params"]}
      z_e = enc.apply({"params": p["enc"]}, x)
      p["codebooks"] = {"z": init_codebook(k3, z_e, cfg.num_codes)}
      p["dec"] = dec.init(k2, z_e)["params"]
      return p
  else:
    levels = ("top", "bottom")
    k_top = cfg.top_num_codes or cfg.num_codes
    num_codes = {"top": k_top, "bottom": cfg.num_codes}
    code_shapes = {"top": (h // n, w // n), "bottom": (2 * h // n, 2 * w // n)}
    enc_b = ConvEncoder(ch, out_channels=ch[-1], **res)
    enc_t = ConvEncoder((ch[-1],), out_channels=d, **res)
    dec_t = ConvDecoder(ch[-1], (ch[-1],), hidden=ch[-1], **res)
    pre_q_b = ConvEncoder((), out_channels=d, num_res_blocks=0, activation=net.activation)
    up_t = ConvDecoder(d, (d,), hidden=d, num_res_blocks=0, activation=net.activation)
    dec = ConvDecoder(c, up, hidden=ch[-1], **res)

    def ap(mod, name, params, x):
      return mod.apply({"params": params[name]}, x)

    def forward(params, x):
      cb = params["codebooks"]
      h_b = ap(enc_b, "enc_b", params, x)                       # bottom features, /2^n
      z_e_t = ap(enc_t, "enc_t", params, h_b)                   # top latents, /2^(n+1)
      z_q_t, c_t = vq_lib.quantize(z_e_t, cb["top"])
      q_t = st(z_e_t, z_q_t)
      cond = ap(dec_t, "dec_t", params, q_t)                     # top -> bottom resolution
      z_e_b = ap(pre_q_b, "pre_q_b", params, jnp.concatenate([h_b, cond], -1))
      z_q_b, c_b = vq_lib.quantize(z_e_b, cb["bottom"])
      q_b = st(z_e_b, z_q_b)
      out = decode_latents(params, {"top": q_t, "bottom": q_b})
      return (out, {"top": z_e_t, "bottom": z_e_b}, {"top": z_q_t, "bottom": z_q_b},
              {"top": c_t, "bottom": c_b})

    def decode_latents(params, q):
      up_top = ap(up_t, "up_t", params, q["top"])
      return ap(dec, "dec", params, jnp.concatenate([q["bottom"], up_top], -1))

    def init(key, x, init_codebook):
      ks = jax.random.split(key, 8)
      p = {"enc_b": enc_b.init(ks[0], x)["params"]}
      h_b = ap(enc_b, "enc_b", p, x)
      p["enc_t"] = enc_t.init(ks[1], h_b)["params"]
      z_e_t = ap(enc_t, "enc_t", p, h_b)
      cb_t = init_codebook(ks[2], z_e_t, k_top)
      q_t = vq_lib.quantize(z_e_t, cb_t)[0]
      p["dec_t"] = dec_t.init(ks[3], q_t)["params"]
      cond = ap(dec_t, "dec_t", p, q_t)
      hc = jnp.concatenate([h_b, cond], -1)
      p["pre_q_b"] = pre_q_b.init(ks[4], hc)["params"]
      z_e_b = ap(pre_q_b, "pre_q_b", p, hc)
      cb_b = init_codebook(ks[5], z_e_b, cfg.num_codes)
      p["up_t"] = up_t.init(ks[6], q_t)["params"]
      up_top = ap(up_t, "up_t", p, q_t)
      p["dec"] = dec.init(ks[7], jnp.concatenate([z_e_b, up_top], -1))["params"]
      p["codebooks"] = {"top": cb_t, "bottom": cb_b}
      return p

  def decode_codes(params, codes):
    q = {lvl: vq_lib.lookup(codes[lvl], params["codebooks"][lvl]) for lvl in levels}
    return jnp.clip(decode_latents(params, q), -1.0, 1.0)

  model = VQModel(levels, num_codes, code_shapes, d, forward, decode_codes, decode_latents, init)
  return model, cfg


def init_codebook_from_data(key, z_e, num_codes):
  """K random encoder outputs of the first batch (plus a little noise), so that every code
  starts where the data are instead of far from them."""
  z = z_e.reshape(-1, z_e.shape[-1])
  k1, k2 = jax.random.split(key)
  pick = z[jax.random.randint(k1, (num_codes,), 0, z.shape[0])]
  scale = 0.01 * (jnp.std(z) + 1e-3)
  return pick + scale * jax.random.normal(k2, pick.shape, pick.dtype)


def _stats_to_dict(s: vq_lib.CodebookEmaState) -> dict:
  return {"cluster_size": s.cluster_size, "embed_sum": s.embed_sum}


def _dict_to_stats(d: dict) -> vq_lib.CodebookEmaState:
  return vq_lib.CodebookEmaState(d["cluster_size"], d["embed_sum"])


def build_vq_model(config, spec: DataSpec, hierarchical: bool):
  """``(AutoencoderModel, Method, VQModel)`` for ``"vqvae"`` or (``hierarchical``) ``"vqvae2"``."""
  model, cfg = make_vq_model(config, spec, hierarchical)
  name = "vqvae2" if hierarchical else "vqvae"
  levels = model.levels
  ema = vq_lib.ema_codebook(cfg.ema_decay, cfg.ema_epsilon)

  def init(key, batch):
    params = model.init(key, batch["x"], init_codebook_from_data)
    stats = {lvl: _stats_to_dict(ema.init(params["codebooks"][lvl])) for lvl in levels}
    return params, {"codebooks": stats}

  def loss_fn(params, batch, key):
    del key
    x = batch["x"]
    out, z_e, z_q, codes = model.forward(params, x)
    # 1.-2. reconstruction, commitment (and codebook) losses, eq. 12
    recon = jnp.mean(jnp.square(out - x))
    total = recon
    metrics = {"recon_mse": recon}
    for lvl in levels:
      cb_loss, commit = vq_lib.vq_losses(z_e[lvl], z_q[lvl])
      total = total + cfg.commitment_cost * commit + (0.0 if cfg.ema else cb_loss)
      perplexity, used = vq_lib.code_perplexity(codes[lvl], model.num_codes[lvl])
      metrics.update({f"commitment_{lvl}": commit, f"perplexity_{lvl}": perplexity,
                      f"codes_used_{lvl}": used})
    aux = ({lvl: jax.lax.stop_gradient(z_e[lvl]) for lvl in levels}, codes)
    return total, (metrics, aux)

  def train_step(state, batch, key):
    k_loss, k_restart = jax.random.split(key)
    # 3. one optimizer update from the gradient of eq. 12
    new, metrics, (z_e, codes) = common.gradient_step(state, loss_fn, batch, k_loss)
    codebooks = dict(new.params["codebooks"])
    stats = dict(new.model_state["codebooks"])
    for i, lvl in enumerate(levels):
      s = _dict_to_stats(stats[lvl])
      # 4. EMA statistics (eq. 13); they also measure usage when the codebook is trained
      # by gradient.
      cb_ema, s = ema.update(z_e[lvl], codes[lvl], s)
      cb = cb_ema if cfg.ema else codebooks[lvl]
      # 5. dead-code restart
      if cfg.restart_dead_codes:
        cb, s, n_dead = vq_lib.restart_dead_codes(jax.random.fold_in(k_restart, i), cb, s,
                                                  z_e[lvl], cfg.dead_code_threshold)
        metrics[f"restarted_{lvl}"] = n_dead
      codebooks[lvl], stats[lvl] = cb, _stats_to_dict(s)
    new = new.replace(params=dict(new.params, codebooks=codebooks),
                      model_state={"codebooks": stats})
    return new, metrics

  def sample(params, key, num):
    """Codes drawn uniformly and independently (the prior VQ-VAE trains with, Sec. 3.1), then
    decoded. Real samples need the learned prior: configs/vqvae_prior.py / vqvae2_prior.py."""
    codes = {lvl: vq_lib.sample_codes_uniform(jax.random.fold_in(key, i),
                                              (num, *model.code_shapes[lvl]), model.num_codes[lvl])
             for i, lvl in enumerate(levels)}
    return model.decode_codes(params, codes)

  def reconstruct(params, x):
    return jnp.clip(model.forward(params, x)[0], -1.0, 1.0)

  def encode(params, x):
    return model.forward(params, x)[1]

  def decode(params, z_e):
    q = {lvl: vq_lib.quantize(z_e[lvl], params["codebooks"][lvl])[0] for lvl in levels}
    return jnp.clip(model.decode_latents(params, q), -1.0, 1.0)

  def codes_fn(params, x):
    return model.forward(params, x)[3]

  def eval_recon(state, dataset, key, num):
    """Test reconstruction error and, per level, code perplexity and usage."""
    del key
    fn = jax.jit(lambda p, x: (jnp.sum(jnp.square(reconstruct(p, x) - x), axis=(1, 2, 3)),
                               codes_fn(p, x)))
    errs, codes = [], {lvl: [] for lvl in levels}
    for b in common.iter_test_batches(dataset, num):
      e, c = fn(state.ema_params, jnp.asarray(b["x"]))
      errs.append(np.asarray(e))
      for lvl in levels:
        codes[lvl].append(np.asarray(c[lvl]).reshape(-1))
    dims = int(np.prod(spec.shape))
    sq = float(np.mean(np.concatenate(errs)))
    result = {"test_sq_error_per_image": sq, "test_mse_per_dim": sq / dims}
    for lvl in levels:
      cc = np.concatenate(codes[lvl])
      perp, used = vq_lib.code_perplexity(jnp.asarray(cc), model.num_codes[lvl])
      result[f"perplexity_{lvl}"] = float(perp)
      result[f"codes_used_{lvl}"] = int(round(float(used) * model.num_codes[lvl]))
      result[f"num_codes_{lvl}"] = model.num_codes[lvl]
    return result

  am = common.AutoencoderModel(
      name=name, reconstruct=reconstruct, sample=sample, encode=encode, decode=decode,
      codes=codes_fn, num_codes=dict(model.num_codes))
  method = Method(name=name, init=init, train_step=train_step, sample=sample,
                  evaluators={"recon": eval_recon},
                  reconstruct=am.reconstruct)
  return am, method, model


def build_vqvae(config, spec: DataSpec) -> Method:
  """Registry entry: the single-level ``"vqvae"``."""
  return build_vq_model(config, spec, hierarchical=False)[1]


def build_vqvae2(config, spec: DataSpec) -> Method:
  """Registry entry: the two-level ``"vqvae2"`` (its prior is ``"vq_prior"``)."""
  return build_vq_model(config, spec, hierarchical=True)[1]
