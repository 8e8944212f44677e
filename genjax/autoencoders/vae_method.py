"""The VAE and beta-VAE as a trainer :class:`~genjax.training.method.Method` (``"vae"``).

Kingma & Welling 2014; seed 003 eq. 6-10; seed 000 Algorithm 1. Per batch::

  1. target: binarized x (Bernoulli decoder) or x itself (Gaussian / discretized logistic)
  2. (mu, log sigma^2) = g(x)                            encoder, q(z|x) = N(mu, sigma^2)
  3. z = mu + sigma * eps                                reparameterization (eq. 7)
  4. log p(x|z) from the decoder f(z)                    Bernoulli | Gaussian | disc. logistic
  5. KL(q(z|x) || N(0, I)) in closed form
  6. loss = mean_i [-log p(x_i|z_i) + beta KL_i]         eq. 10 (beta = 1: the negative ELBO)
     or  mean_i [-log p(x_i|z_i) + gamma |KL_i - C(step)|] with a KL capacity (Burgess 2018)

``sample.py --eval=elbo`` reports the test-set negative ELBO and the IWAE bound
(Burda et al. 2016) in nats per image and bits/dim (:func:`eval_elbo`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from genjax.autoencoders import common
from genjax.autoencoders import vae as vae_lib
from genjax.metrics.likelihood import nats_to_bpd
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec

DECODERS = ("bernoulli", "gaussian", "logistic")


@dataclasses.dataclass(frozen=True)
class VAEConfig:
  """The ``config.vae`` section.

  Attributes:
    latent_dim: D, the width of z (2 gives the latent-manifold figure).
    decoder: p(x|z): "bernoulli" (binarized data, logits), "gaussian" (mean, learned
      per-pixel sigma) or "logistic" (discretized logistic on ``num_levels`` levels).
    binarize: "threshold" (x > 0) or "stochastic" (fresh Bernoulli draws each batch) for the
      Bernoulli decoder; "none" for the others. Evaluation binarizes stochastic data once,
      with a fixed key.
    num_levels: levels of the quantized data: 17 for the sklearn digits (0..16), 256 for
      8-bit images. Gives the bins of the discretized logistic and the bits/dim offset of the
      Gaussian decoder.
    min_log_scale: floor of the decoder's log sigma / log s (keeps the density bounded on
      pixels that never vary, e.g. the digits' empty border).
    beta: weight of the KL (beta-VAE, eq. 10).
    capacity_max: KL capacity C_max in nats (Burgess et al. 2018); 0 disables the capacity.
    capacity_steps: steps over which C grows linearly from 0 to C_max.
    capacity_gamma: gamma, the weight of |KL - C|.
    num_samples: Monte Carlo samples of z per example in training.
    analytic_kl: closed-form KL (estimator B of K&W) or Monte Carlo (estimator A).
    eval_samples: Monte Carlo samples of the test ELBO.
    eval_iwae_k: k of the test IWAE bound.
  """
  latent_dim: int = 16
  decoder: str = "bernoulli"
  binarize: str = "threshold"
  num_levels: int = 17
  min_log_scale: float = -4.0
  beta: float = 1.0
  capacity_max: float = 0.0
  capacity_steps: int = 10_000
  capacity_gamma: float = 100.0
  num_samples: int = 1
  analytic_kl: bool = True
  eval_samples: int = 16
  eval_iwae_k: int = 1000

  def __post_init__(self):
    if self.decoder not in DECODERS:
      raise ValueError(f"vae.decoder must be one of {DECODERS}, got {self.decoder!r}.")
    if self.decoder == "bernoulli" and self.binarize not in ("threshold", "stochastic"):
      raise ValueError("vae.decoder='bernoulli' models binary data: set --config.vae.binarize="
                       "threshold or stochastic.")
    if self.decoder != "bernoulli" and self.binarize != "none":
      raise ValueError(f"vae.binarize={self.binarize!r} applies only to the Bernoulli decoder; "
                       f"set --config.vae.binarize=none for decoder={self.decoder!r}.")
    if self.num_levels < 2:
      raise ValueError(f"vae.num_levels must be >= 2, got {self.num_levels}.")
    if self.latent_dim < 1 or self.num_samples < 1 or self.eval_samples < 1 or self.eval_iwae_k < 1:
      raise ValueError("vae.latent_dim, num_samples, eval_samples and eval_iwae_k must be >= 1.")


def build_vae_model(config, spec: DataSpec) -> tuple[common.AutoencoderModel, Method]:
  """The VAE's pure functions and trainer method, from ``config.vae`` and ``config.model``."""
  common.check_image_spec(spec, "vae")
  cfg = from_section(VAEConfig, config.vae, where="vae")
  net = from_section(common.NetConfig, config.model, where="model")
  c = spec.shape[-1]
  dims = int(np.prod(spec.shape))
  encoder = common.make_encoder(net, 2 * cfg.latent_dim)
  decoder = common.make_decoder(net, spec, 2 * c if cfg.decoder == "logistic" else c)

  def encode(params, x):
    h = encoder.apply({"params": params["encoder"]}, x)
    mean, logvar = jnp.split(h, 2, axis=-1)
    return mean, logvar

  def decoder_out(params, z):
    return decoder.apply({"params": params["decoder"]}, z)

  def floor(log_s):
    # Smooth floor: min_log_scale + softplus(log_s - min_log_scale) >= min_log_scale.
    return cfg.min_log_scale + jax.nn.softplus(log_s - cfg.min_log_scale)

  def log_likelihood(params, target, z):
    """log p(target | z) [B] for z [B, D]."""
    out = decoder_out(params, z)
    if cfg.decoder == "bernoulli":
      return vae_lib.bernoulli_log_prob(target, out)
    if cfg.decoder == "gaussian":
      return vae_lib.gaussian_log_prob(target, out, floor(params["log_sigma"]))
    mean, log_s = jnp.split(out, 2, axis=-1)
    return vae_lib.discretized_logistic_log_prob(target, mean, floor(log_s), cfg.num_levels)

  def decode_mean(params, z):
    """The mean of p(x|z) in data space [-1, 1]."""
    out = decoder_out(params, z)
    if cfg.decoder == "bernoulli":
      return 2.0 * jax.nn.sigmoid(out) - 1.0
    if cfg.decoder == "logistic":
      out = jnp.split(out, 2, axis=-1)[0]
    return jnp.clip(out, -1.0, 1.0)

  def target_of(x, key):
    if cfg.decoder == "bernoulli":
      return common.binarize(x, cfg.binarize, key)
    return x

  def encoder_input(target):
    # The encoder sees what the decoder models: binary images as {-1, 1}.
    return 2.0 * target - 1.0 if cfg.decoder == "bernoulli" else target

  def eval_target(x):
    return target_of(x, jax.random.key(0))  # a fixed binarization of the test set

  def init(key, batch):
    k1, k2 = jax.random.split(key)
    x = batch["x"][:1]
    params = {"encoder": encoder.init(k1, x)["params"],
              "decoder": decoder.init(k2, jnp.zeros((1, cfg.latent_dim), x.dtype))["params"]}
    if cfg.decoder == "gaussian":
      params["log_sigma"] = jnp.full(spec.shape, math.log(0.3), jnp.float32)
    return params, {}

  def objective(params, batch, key, capacity):
    k_bin, k_z = jax.random.split(key)
    x = batch["x"]
    target = target_of(x, k_bin)                                   # 1.
    mean, logvar = encode(params, encoder_input(target))           # 2.
    terms = vae_lib.elbo(                                          # 3.-5.
        k_z, target, mean, logvar, lambda t, z: log_likelihood(params, t, z),
        cfg.num_samples, cfg.analytic_kl)
    per_example = vae_lib.beta_vae_loss(                            # 6.
        terms.log_likelihood, terms.kl, cfg.beta, capacity,
        cfg.capacity_gamma if capacity is not None else None)
    metrics = {"elbo": jnp.mean(terms.elbo), "recon_nll": -jnp.mean(terms.log_likelihood),
               "kl": jnp.mean(terms.kl), "bpd": nats_to_bpd(-jnp.mean(terms.elbo), dims)}
    if capacity is not None:
      metrics["capacity"] = capacity
    return jnp.mean(per_example), metrics

  loss, train_step = None, None
  if cfg.capacity_max > 0:
    def train_step(state, batch, key):
      cap = vae_lib.capacity_schedule(state.step, cfg.capacity_max, cfg.capacity_steps)

      def loss_fn(p, b, k):
        l, m = objective(p, b, k, cap)
        return l, (m, None)

      new, metrics, _ = common.gradient_step(state, loss_fn, batch, key)
      return new, metrics
  else:
    def loss(params, batch, key):
      return objective(params, batch, key, None)

  def sample(params, key, num):
    return decode_mean(params, jax.random.normal(key, (num, cfg.latent_dim)))

  def reconstruct(params, x):
    return decode_mean(params, encode(params, encoder_input(eval_target(x)))[0])

  def bits_per_dim(nll_nats):
    if cfg.decoder == "gaussian":  # a density: add the bin-width offset (small-bin limit)
      return nats_to_bpd(nll_nats + dims * common.bin_offset_nats(cfg.num_levels), dims)
    return nats_to_bpd(nll_nats, dims)  # Bernoulli / discretized logistic: probabilities

  def eval_elbo(state, dataset, key, num):
    """Test-set negative ELBO and IWAE bound, nats per image and bits/dim (sample.py --eval=elbo)."""
    chunk = math.gcd(cfg.eval_iwae_k, 100)

    @jax.jit
    def batch_terms(params, x, k):
      t = eval_target(x)
      mean, logvar = encode(params, encoder_input(t))
      ll_fn = lambda tt, z: log_likelihood(params, tt, z)
      k1, k2 = jax.random.split(k)
      terms = vae_lib.elbo(k1, t, mean, logvar, ll_fn, cfg.eval_samples, cfg.analytic_kl)
      iwae = vae_lib.iwae_bound(k2, t, mean, logvar, ll_fn, cfg.eval_iwae_k, chunk)
      return terms.elbo, terms.kl, iwae

    elbos, kls, iwaes = [], [], []
    for i, b in enumerate(common.iter_test_batches(dataset, num, batch_size=128)):
      e, kl, iw = batch_terms(state.ema_params, jnp.asarray(b["x"]), jax.random.fold_in(key, i))
      elbos.append(np.asarray(e)), kls.append(np.asarray(kl)), iwaes.append(np.asarray(iw))
    neg_elbo = -float(np.mean(np.concatenate(elbos)))
    neg_iwae = -float(np.mean(np.concatenate(iwaes)))
    data = ("binarized ({})".format(cfg.binarize) if cfg.decoder == "bernoulli"
            else f"{cfg.num_levels}-level")
    return {
        "neg_elbo_nats": neg_elbo, "neg_elbo_bpd": float(bits_per_dim(neg_elbo)),
        "neg_iwae_nats": neg_iwae, "neg_iwae_bpd": float(bits_per_dim(neg_iwae)),
        "iwae_k": cfg.eval_iwae_k, "elbo_samples": cfg.eval_samples,
        "kl_nats": float(np.mean(np.concatenate(kls))),
        "num_examples": int(sum(len(e) for e in elbos)), "num_dims": dims,
        "decoder": cfg.decoder, "data": data,
    }

  def eval_recon(state, dataset, key, num):
    del key
    # Against what the decoder models (the binarized image for the Bernoulli decoder).
    fn = jax.jit(lambda p, x: jnp.sum(
        jnp.square(reconstruct(p, x) - encoder_input(eval_target(x))), axis=(1, 2, 3)))
    errs = [np.asarray(fn(state.ema_params, jnp.asarray(b["x"])))
            for b in common.iter_test_batches(dataset, num)]
    sq = float(np.mean(np.concatenate(errs)))
    return {"test_sq_error_per_image": sq, "test_mse_per_dim": sq / dims}

  model = common.AutoencoderModel(
      name="vae", reconstruct=reconstruct, sample=sample,
      encode=lambda p, x: encode(p, encoder_input(eval_target(x)))[0], decode=decode_mean,
      latent_dim=cfg.latent_dim, view_input=lambda x: encoder_input(eval_target(x)))
  method = Method(name="vae", init=init, loss=loss, train_step=train_step, sample=sample,
                  evaluators={"elbo": eval_elbo, "recon": eval_recon},
                  reconstruct=model.reconstruct)
  return model, method


def build_vae(config, spec: DataSpec) -> Method:
  """Registry entry: the ``"vae"`` method (VAE, beta-VAE, KL capacity)."""
  return build_vae_model(config, spec)[1]
