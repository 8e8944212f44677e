"""Autoencoders and the VAE family as pure functions (seed 003 Sec. 1, eq. 1-14; seed 000
Sec. 2.1, Algorithm 1).

Pure functions (``from genjax.autoencoders import ...``)::

  # AE family (ae.py)
  mse_reconstruction(x, x_hat)              eq. 1-2       bce_reconstruction(x, logits)
  corrupt(key, x, kind, level)              eq. 2 (mask | gaussian | salt_pepper)
  kl_sparsity_penalty(h, rho)               eq. 3         topk_mask(h, k), k_sparse(h, k)
  contractive_penalty(encode_fn, x)         eq. 4 (exact) contractive_penalty_hutchinson(...)
  # VAE (vae.py)
  reparameterize(key, mean, logvar)         eq. 7         gaussian_kl_standard_normal(mean, logvar)
  bernoulli_log_prob / gaussian_log_prob / discretized_logistic_log_prob
  elbo(key, x, mean, logvar, log_likelihood_fn)            eq. 6-7
  iwae_bound(key, x, mean, logvar, log_likelihood_fn, k)   Burda et al. 2016, eq. 8
  beta_vae_loss(ll, kl, beta, capacity, gamma)             eq. 10 (+ Burgess et al. capacity)
  # VQ-VAE (vq.py)
  quantize(z_e, codebook)                   eq. 11        straight_through(z_e, z_q)
  vq_losses(z_e, z_q)                       eq. 12        ema_codebook(decay) -> (init, update)  eq. 13
  restart_dead_codes(...)                   code_perplexity(codes, K)
  # TD-VAE (tdvae.py)
  make_sequences(key, x, T, mode)           jump_objective(...)  eq. 14     rollout(...)

Trainer methods (``config.method``): ``ae`` (AE, DAE, sparse, k-sparse, contractive), ``vae``
(VAE, beta-VAE), ``vqvae``, ``vqvae2``, ``vq_prior`` (the PixelCNN prior, a second stage),
``tdvae``. Figures: ``python -m genjax.autoencoders.figures --config=... --workdir=...``.
"""

from genjax.autoencoders.ae import bce_reconstruction
from genjax.autoencoders.ae import bernoulli_kl
from genjax.autoencoders.ae import contractive_penalty
from genjax.autoencoders.ae import contractive_penalty_hutchinson
from genjax.autoencoders.ae import corrupt
from genjax.autoencoders.ae import k_sparse
from genjax.autoencoders.ae import kl_sparsity_penalty
from genjax.autoencoders.ae import mse_reconstruction
from genjax.autoencoders.ae import topk_mask
from genjax.autoencoders.tdvae import jump_objective
from genjax.autoencoders.tdvae import JumpTerms
from genjax.autoencoders.tdvae import make_sequences
from genjax.autoencoders.tdvae import rollout
from genjax.autoencoders.vae import bernoulli_log_prob
from genjax.autoencoders.vae import beta_vae_loss
from genjax.autoencoders.vae import capacity_schedule
from genjax.autoencoders.vae import diag_gaussian_log_prob
from genjax.autoencoders.vae import discretized_logistic_log_prob
from genjax.autoencoders.vae import elbo
from genjax.autoencoders.vae import ElboTerms
from genjax.autoencoders.vae import gaussian_kl
from genjax.autoencoders.vae import gaussian_kl_standard_normal
from genjax.autoencoders.vae import gaussian_log_prob
from genjax.autoencoders.vae import iwae_bound
from genjax.autoencoders.vae import reparameterize
from genjax.autoencoders.vae import standard_normal_log_prob
from genjax.autoencoders.vq import code_perplexity
from genjax.autoencoders.vq import CodebookEma
from genjax.autoencoders.vq import CodebookEmaState
from genjax.autoencoders.vq import ema_codebook
from genjax.autoencoders.vq import lookup
from genjax.autoencoders.vq import nearest_codes
from genjax.autoencoders.vq import quantize
from genjax.autoencoders.vq import restart_dead_codes
from genjax.autoencoders.vq import straight_through
from genjax.autoencoders.vq import vq_losses

__all__ = [
    "CodebookEma", "CodebookEmaState", "ElboTerms", "JumpTerms", "bce_reconstruction",
    "bernoulli_kl", "bernoulli_log_prob", "beta_vae_loss", "capacity_schedule", "code_perplexity",
    "contractive_penalty", "contractive_penalty_hutchinson", "corrupt", "diag_gaussian_log_prob",
    "discretized_logistic_log_prob", "elbo", "ema_codebook", "gaussian_kl",
    "gaussian_kl_standard_normal", "gaussian_log_prob", "iwae_bound", "jump_objective",
    "k_sparse", "kl_sparsity_penalty", "lookup", "make_sequences", "mse_reconstruction",
    "nearest_codes", "quantize", "reparameterize", "restart_dead_codes", "rollout",
    "standard_normal_log_prob", "straight_through", "topk_mask", "vq_losses",
]
