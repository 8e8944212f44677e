"""Deterministic autoencoders as a trainer :class:`~genjax.training.method.Method`.

One method, ``"ae"``, covers the plain AE (seed 003 eq. 1), the denoising AE (eq. 2), the
sparse AE with the KL penalty (eq. 3), the k-sparse AE (Makhzani & Frey 2013) and the
contractive AE (eq. 4), chosen by the ``config.ae`` section (see :class:`AEConfig`); the
configs ``ae.py``, ``dae.py``, ``sparse_ae.py``, ``ksparse_ae.py`` and ``cae.py`` set it.

Training minimises, per batch (numbered as in :func:`build_ae_model`'s loss)::

  1. x~ = corrupt(x)                               (DAE; identity otherwise)
  2. h  = act(g(x~));  h' = top_k(h) or h          (k-sparse: gradient through k units only)
  3. L  = mean_i rec(x_i, f(h'_i))                 (MSE eq. 1-2, or Bernoulli cross-entropy)
  4.    + beta * sum_j KL(rho || mean_i h_ij)      (sparse AE, eq. 3)
  5.    + lambda * mean_i ||d h / d x~||_F^2       (contractive AE, eq. 4; exact or Hutchinson)

A plain autoencoder has no prior: ``sample`` decodes ``act(z)``, z ~ N(0, I), which shows
why the VAE exists (compare the two sample grids).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from genjax.autoencoders import ae as ae_lib
from genjax.autoencoders import common
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec

CODE_ACTIVATIONS = {"none": lambda h: h, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
                    "relu": jax.nn.relu}


@dataclasses.dataclass(frozen=True)
class AEConfig:
  """The ``config.ae`` section.

  Attributes:
    latent_dim: width of the code h.
    code_activation: none | sigmoid | tanh | relu, applied to the encoder output.
    recon: "mse" (eq. 1) or "bce" (Bernoulli cross-entropy on (x + 1) / 2, decoder logits).
    corruption: none | mask | gaussian | salt_pepper (denoising AE, eq. 2).
    noise_level: corruption probability (mask, salt_pepper) or std (gaussian).
    sparsity: none | kl (eq. 3; needs code_activation="sigmoid") | topk (k-sparse AE).
    sparsity_target: rho of eq. 3.
    sparsity_weight: beta of eq. 3.
    k: units kept by the k-sparse AE.
    k_eval_multiplier: alpha of Makhzani & Frey: keep round(alpha k) units when encoding for
      evaluation (reconstructions, interpolations); 1 keeps k.
    contractive_weight: lambda of the contractive penalty (eq. 4); 0 disables it.
    contractive_estimator: "exact" (jacfwd) or "hutchinson" (random projections).
    contractive_projections: projections of the Hutchinson estimator.
  """
  latent_dim: int = 16
  code_activation: str = "none"
  recon: str = "mse"
  corruption: str = "none"
  noise_level: float = 0.0
  sparsity: str = "none"
  sparsity_target: float = 0.05
  sparsity_weight: float = 0.0
  k: int = 8
  k_eval_multiplier: float = 1.0
  contractive_weight: float = 0.0
  contractive_estimator: str = "exact"
  contractive_projections: int = 1

  def __post_init__(self):
    if self.code_activation not in CODE_ACTIVATIONS:
      raise ValueError(f"ae.code_activation must be one of {sorted(CODE_ACTIVATIONS)}, got "
                       f"{self.code_activation!r}.")
    if self.recon not in ("mse", "bce"):
      raise ValueError(f"ae.recon must be 'mse' or 'bce', got {self.recon!r}.")
    if self.corruption not in ae_lib.CORRUPTIONS:
      raise ValueError(f"ae.corruption must be one of {ae_lib.CORRUPTIONS}, got {self.corruption!r}.")
    if self.sparsity not in ("none", "kl", "topk"):
      raise ValueError(f"ae.sparsity must be none, kl or topk, got {self.sparsity!r}.")
    if self.sparsity == "kl" and self.code_activation != "sigmoid":
      raise ValueError("ae.sparsity='kl' compares mean activations with rho in (0, 1): set "
                       "--config.ae.code_activation=sigmoid.")
    if self.sparsity == "topk" and not 1 <= self.k <= self.latent_dim:
      raise ValueError(f"ae.k={self.k} must lie in [1, latent_dim={self.latent_dim}].")
    if self.contractive_estimator not in ("exact", "hutchinson"):
      raise ValueError(f"ae.contractive_estimator must be 'exact' or 'hutchinson', got "
                       f"{self.contractive_estimator!r}.")


def build_ae_model(config, spec: DataSpec) -> tuple[common.AutoencoderModel, Method]:
  """The AE family's pure functions and its trainer method, from ``config.ae``/``config.model``."""
  common.check_image_spec(spec, "ae")
  cfg = from_section(AEConfig, config.ae, where="ae")
  net = from_section(common.NetConfig, config.model, where="model")
  encoder = common.make_encoder(net, cfg.latent_dim)
  decoder = common.make_decoder(net, spec, spec.shape[-1])
  act = CODE_ACTIVATIONS[cfg.code_activation]
  k_eval = min(cfg.latent_dim, max(1, int(round(cfg.k_eval_multiplier * cfg.k))))

  def code(params, x):
    """h = act(g(x)) [B, J], before any top-k."""
    return act(encoder.apply({"params": params["encoder"]}, x))

  def sparsify(h, k):
    return ae_lib.k_sparse(h, k) if cfg.sparsity == "topk" else h

  def to_data(out):
    return jnp.clip(out, -1.0, 1.0) if cfg.recon == "mse" else 2.0 * jax.nn.sigmoid(out) - 1.0

  def decode(params, h):
    return to_data(decoder.apply({"params": params["decoder"]}, h))

  def init(key, batch):
    k1, k2 = jax.random.split(key)
    x = batch["x"][:1]
    p_enc = encoder.init(k1, x)["params"]
    p_dec = decoder.init(k2, jnp.zeros((1, cfg.latent_dim), x.dtype))["params"]
    return {"encoder": p_enc, "decoder": p_dec}, {}

  def loss(params, batch, key):
    x = batch["x"]
    k_noise, k_proj = jax.random.split(key)
    # 1. corruption (denoising AE)
    x_in = ae_lib.corrupt(k_noise, x, cfg.corruption, cfg.noise_level)
    # 2. code, k-sparse
    h = code(params, x_in)
    out = decoder.apply({"params": params["decoder"]}, sparsify(h, cfg.k))
    # 3. reconstruction of the clean x
    if cfg.recon == "mse":
      rec = ae_lib.mse_reconstruction(x, out)
    else:
      rec = ae_lib.bce_reconstruction(x, out)
    total = jnp.mean(rec)
    metrics = {"recon": jnp.mean(rec), "mean_activation": jnp.mean(h)}
    # 4. KL sparsity penalty
    if cfg.sparsity == "kl":
      pen = ae_lib.kl_sparsity_penalty(h, cfg.sparsity_target)
      total = total + cfg.sparsity_weight * pen
      metrics["sparsity_kl"] = pen
    # 5. contractive penalty
    if cfg.contractive_weight > 0:
      enc = lambda v: code(params, v)
      if cfg.contractive_estimator == "exact":
        pen = ae_lib.contractive_penalty(enc, x_in)
      else:
        pen = ae_lib.contractive_penalty_hutchinson(k_proj, enc, x_in, cfg.contractive_projections)
      total = total + cfg.contractive_weight * jnp.mean(pen)
      metrics["contractive"] = jnp.mean(pen)
    return total, metrics

  def reconstruct(params, x):
    return decode(params, sparsify(code(params, x), k_eval))

  def sample(params, key, num):
    z = jax.random.normal(key, (num, cfg.latent_dim))
    return decode(params, sparsify(act(z), k_eval))

  def eval_recon(state, dataset, key, num):
    del key
    sq, n = 0.0, 0
    fn = jax.jit(lambda p, x: jnp.sum(jnp.square(reconstruct(p, x) - x), axis=(1, 2, 3)))
    for b in common.iter_test_batches(dataset, num):
      sq += float(np.sum(np.asarray(fn(state.ema_params, jnp.asarray(b["x"])))))
      n += len(b["x"])
    dims = int(np.prod(spec.shape))
    return {"test_sq_error_per_image": sq / n, "test_mse_per_dim": sq / n / dims,
            "num_examples": n}

  model = common.AutoencoderModel(
      name="ae", reconstruct=reconstruct, sample=sample,
      encode=lambda p, x: code(p, x), decode=lambda p, h: decode(p, sparsify(h, k_eval)),
      latent_dim=cfg.latent_dim)
  method = Method(name="ae", init=init, loss=loss, sample=sample,
                  evaluators={"recon": eval_recon},
                  reconstruct=model.reconstruct)
  return model, method


def build_ae(config, spec: DataSpec) -> Method:
  """Registry entry: the ``"ae"`` method (AE, DAE, sparse, k-sparse, contractive)."""
  return build_ae_model(config, spec)[1]
