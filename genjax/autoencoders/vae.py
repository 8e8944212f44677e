"""Variational autoencoders as pure functions: reparameterization, KL, decoders, ELBO, IWAE, beta-VAE.

Equation numbers are those of the seed notes ``seeds/003`` section 1.2-1.3 (and Algorithm 1
of ``seeds/000`` section 2.1); the papers win where the notes are loose:

* Kingma & Welling 2014 (K&W), "Auto-Encoding Variational Bayes": reparameterization
  (Sec. 2.4; seed eq. 7 and Sec. 1.2.4), the Gaussian KL to N(0, I) in closed form
  (appendix B), the SGVB estimators A (eq. 6: ``log p(x, z) - log q(z|x)``) and B (eq. 7:
  reconstruction minus analytic KL), Bernoulli and Gaussian decoders (appendix C).
* Burda et al. 2016, "Importance Weighted Autoencoders", eq. 8:
  ``L_k = E[log 1/k sum_i p(x, z_i) / q(z_i|x)]``, ``L_1 = ELBO <= L_k <= L_{k+1} -> log p(x)``.
* Higgins et al. 2017, beta-VAE (seed eq. 10): ``-E_q log p(x|z) + beta KL``; the KL-capacity
  variant of Burgess et al. 2018 ("Understanding disentangling in beta-VAE", eq. 8):
  ``-E_q log p(x|z) + gamma |KL - C|`` with C raised linearly.
* Salimans et al. 2017 (PixelCNN++, Sec. 2.1) / Kingma et al. 2016 (IAF): the discretized
  logistic likelihood of quantized pixels.

The seed notes write the reconstruction term as a squared error (seed 000, Algorithm 1
step 7): that is the Gaussian decoder with a fixed variance, up to constants; here it is a
proper log-likelihood, so that the ELBO is a bound on log p(x) in nats.

Shapes: latents are [..., D]; data are [..., *event]; the log-likelihood functions sum over
the last ``event_ndim`` axes (3 for NHWC images).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
LogLikelihoodFn = Callable[[Array, Array], Array]  # (x [B, *event], z [B, D]) -> [B]

_LOG_2PI = math.log(2.0 * math.pi)


def _sum_event(x: Array, event_ndim: int) -> Array:
  return jnp.sum(x, axis=tuple(range(x.ndim - event_ndim, x.ndim))) if event_ndim else x


# ------------------------------------------------------------------------------------------
# Gaussians.


def reparameterize(key: Array, mean: Array, logvar: Array,
                   num_samples: Optional[int] = None) -> Array:
  """``z = mu + sigma * eps``, eps ~ N(0, I): the reparameterization trick (K&W Sec. 2.4;
  seed 003 Sec. 1.2.4 and eq. 7, seed 000 Algorithm 1 step 5).

  Args:
    key: PRNG key.
    mean: [..., D] mean of q(z|x).
    logvar: [..., D] log-variance of q(z|x).
    num_samples: if given, draw that many samples along a new leading axis.

  Returns:
    [..., D] or [num_samples, ..., D] samples; differentiable in mean and logvar.
  """
  shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
  eps = jax.random.normal(key, shape, mean.dtype)
  return mean + jnp.exp(0.5 * logvar) * eps


def diag_gaussian_log_prob(z: Array, mean: Array, logvar: Array) -> Array:
  """log N(z; mean, diag(exp(logvar))), summed over the last axis.

  Args:
    z, mean, logvar: [..., D] (broadcastable).

  Returns:
    [...] log-density in nats.
  """
  return -0.5 * jnp.sum(_LOG_2PI + logvar + jnp.square(z - mean) * jnp.exp(-logvar), axis=-1)


def standard_normal_log_prob(z: Array) -> Array:
  """log N(z; 0, I) summed over the last axis: the VAE prior p(z) (seed 003 Sec. 1.2.2)."""
  return -0.5 * jnp.sum(_LOG_2PI + jnp.square(z), axis=-1)


def gaussian_kl_standard_normal(mean: Array, logvar: Array) -> Array:
  """KL(N(mean, diag(exp(logvar))) || N(0, I)) in closed form (K&W appendix B):

  ``-1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)``, the regularizer of seed 003 eq. 7
  and seed 000 Algorithm 1 step 8.

  Args:
    mean, logvar: [..., D].

  Returns:
    [...] KL in nats.
  """
  return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar, axis=-1)


def gaussian_kl(mean_q: Array, logvar_q: Array, mean_p: Array, logvar_p: Array) -> Array:
  """KL(N(mean_q, diag var_q) || N(mean_p, diag var_p)), summed over the last axis.

  ``1/2 sum (log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1)``.
  """
  return 0.5 * jnp.sum(logvar_p - logvar_q
                       + (jnp.exp(logvar_q) + jnp.square(mean_q - mean_p)) * jnp.exp(-logvar_p)
                       - 1.0, axis=-1)


# ------------------------------------------------------------------------------------------
# Decoders p(x|z): log-likelihoods of data given the decoder's output.


def bernoulli_log_prob(x01: Array, logits: Array, event_ndim: int = 3) -> Array:
  """log Bernoulli(x | sigmoid(logits)) of binary data (K&W appendix C.1).

  ``sum x l - softplus(l)``.

  Args:
    x01: [..., *event] data in {0, 1}.
    logits: [..., *event] decoder logits.
    event_ndim: trailing axes forming one example.

  Returns:
    [...] log-probability in nats.
  """
  return _sum_event(x01 * logits - jax.nn.softplus(logits), event_ndim)


def gaussian_log_prob(x: Array, mean: Array, log_sigma: Array, event_ndim: int = 3) -> Array:
  """log N(x; mean, sigma^2) of continuous data, summed over the event (K&W appendix C.2).

  A density, not a probability: bits/dim of quantized data need the bin-width offset
  (``genjax.metrics.likelihood``).

  Args:
    x, mean: [..., *event].
    log_sigma: log standard deviation, broadcastable to x.
    event_ndim: trailing axes forming one example.

  Returns:
    [...] log-density in nats.
  """
  # (x - mean)^2 has x's shape, so a per-pixel or scalar log_sigma broadcasts over it.
  return _sum_event(
      -0.5 * (_LOG_2PI + 2.0 * log_sigma + jnp.square(x - mean) * jnp.exp(-2.0 * log_sigma)),
      event_ndim)


def discretized_logistic_log_prob(x: Array, mean: Array, log_scale: Array, num_levels: int = 256,
                                  low: float = -1.0, high: float = 1.0,
                                  event_ndim: int = 3) -> Array:
  """log P(x) of quantized data under a logistic discretized into ``num_levels`` bins.

  Salimans et al. 2017 (PixelCNN++), Sec. 2.1, with one mixture component: the levels
  ``low + k (high - low) / (L - 1)``, ``k = 0..L-1``, own the bins of half-width
  ``delta = (high - low) / (2 (L - 1))``; ``P(x) = sigmoid((x + delta - mu) / s) -
  sigmoid((x - delta - mu) / s)``, except that the lowest bin extends to -inf and the highest
  to +inf, so the probabilities of the L levels sum to 1. The bin mass is computed in log
  space without cancellation, so no density fallback is needed where it is tiny.

  Args:
    x: [..., *event] data on the grid (e.g. digits: 17 levels on [-1, 1]).
    mean: [..., *event] logistic location.
    log_scale: [..., *event] log of the logistic scale s.
    num_levels: L (256 for 8-bit images, 17 for the sklearn digits).
    low, high: the data range.
    event_ndim: trailing axes forming one example.

  Returns:
    [...] log-probability in nats (a discrete probability: no bin offset needed).
  """
  delta = (high - low) / (2.0 * (num_levels - 1))
  inv_s = jnp.exp(-log_scale)
  plus_in = inv_s * (x - mean + delta)
  min_in = inv_s * (x - mean - delta)
  # Interior bins: sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)) for a > b,
  # so log P = log_sigmoid(a) + log_sigmoid(-b) + log(-expm1(b - a)): stable in both tails
  # (no PixelCNN++-style fallback to the density at the bin centre is needed).
  log_mid = (jax.nn.log_sigmoid(plus_in) + jax.nn.log_sigmoid(-min_in)
             + jnp.log(-jnp.expm1(min_in - plus_in)))
  log_p = jnp.where(x < low + delta, jax.nn.log_sigmoid(plus_in),          # lowest bin: (-inf, .]
                    jnp.where(x > high - delta, jax.nn.log_sigmoid(-min_in),  # top bin: [., inf)
                              log_mid))
  return _sum_event(log_p, event_ndim)


# ------------------------------------------------------------------------------------------
# Bounds.


class ElboTerms(NamedTuple):
  """Per-example terms of the ELBO (seed 003 eq. 7).

  Attributes:
    elbo: [B] ``log_likelihood - kl``, a lower bound on log p(x) in nats.
    log_likelihood: [B] Monte Carlo estimate of ``E_q[log p(x|z)]`` (the reconstruction term).
    kl: [B] ``KL(q(z|x) || p(z))`` (analytic, or its Monte Carlo estimate).
  """
  elbo: Array
  log_likelihood: Array
  kl: Array


def elbo(key: Array, x: Array, mean: Array, logvar: Array, log_likelihood_fn: LogLikelihoodFn,
         num_samples: int = 1, analytic_kl: bool = True) -> ElboTerms:
  """The evidence lower bound of seed 003 eq. 6-7 (K&W eq. 3, estimators A and B).

  ``ELBO = E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || p(z))`` with ``q = N(mean, diag
  exp(logvar))`` and ``p(z) = N(0, I)``. The expectation is a ``num_samples`` reparameterized
  Monte Carlo average. With ``analytic_kl`` the KL is the closed form (K&W's estimator B, eq.
  7); otherwise the single-sample ``log q(z|x) - log p(z)`` is averaged too (estimator A, eq.
  6), which has zero variance when q is the exact posterior.

  Args:
    key: PRNG key.
    x: [B, *event] data.
    mean, logvar: [B, D] parameters of q(z|x) from the encoder.
    log_likelihood_fn: ``(x [B, *event], z [B, D]) -> log p(x|z) [B]``.
    num_samples: Monte Carlo samples of z per example.
    analytic_kl: closed-form KL (True) or Monte Carlo (False).

  Returns:
    :class:`ElboTerms` of [B] arrays.

  Example:
    >>> terms = elbo(key, x, mu, logvar, lambda x, z: bernoulli_log_prob(x, dec(z)))
    >>> loss = -terms.elbo.mean()
  """
  z = reparameterize(key, mean, logvar, num_samples)  # [S, B, D]
  ll = jax.vmap(lambda zs: log_likelihood_fn(x, zs))(z)  # [S, B]
  if analytic_kl:
    kl = gaussian_kl_standard_normal(mean, logvar)
  else:
    kl = jnp.mean(diag_gaussian_log_prob(z, mean, logvar) - standard_normal_log_prob(z), axis=0)
  ll = jnp.mean(ll, axis=0)
  return ElboTerms(ll - kl, ll, kl)


def iwae_bound(key: Array, x: Array, mean: Array, logvar: Array,
               log_likelihood_fn: LogLikelihoodFn, num_samples: int,
               chunk_size: Optional[int] = None) -> Array:
  """The importance-weighted bound L_k (Burda et al. 2016, eq. 8), k = ``num_samples``:

  ``L_k = log 1/k sum_{i=1}^k p(x|z_i) p(z_i) / q(z_i|x)``, ``z_i ~ q(z|x)``.

  ``E[L_1]`` is the ELBO, ``E[L_k]`` rises with k and tends to log p(x) (their Theorem 1): the
  log-likelihood estimate that papers report. Samples are drawn ``chunk_size`` at a time (one
  ``lax.scan`` with a running log-sum-exp) so that k = 5000 fits in memory.

  Args:
    key: PRNG key.
    x: [B, *event] data.
    mean, logvar: [B, D] parameters of q(z|x).
    log_likelihood_fn: ``(x [B, *event], z [B, D]) -> log p(x|z) [B]``.
    num_samples: k.
    chunk_size: samples per scan step; must divide k (default: k, one step).

  Returns:
    [B] one draw of L_k for each example, in nats.
  """
  chunk = chunk_size or num_samples
  if num_samples % chunk:
    raise ValueError(f"iwae_bound: chunk_size={chunk} must divide num_samples={num_samples}.")

  def log_weights(k):
    z = reparameterize(k, mean, logvar, chunk)  # [c, B, D]
    ll = jax.vmap(lambda zs: log_likelihood_fn(x, zs))(z)
    return ll + standard_normal_log_prob(z) - diag_gaussian_log_prob(z, mean, logvar)  # [c, B]

  def body(acc, i):
    lw = log_weights(jax.random.fold_in(key, i))
    return jnp.logaddexp(acc, jax.scipy.special.logsumexp(lw, axis=0)), None

  init = jnp.full(mean.shape[:-1], -jnp.inf, mean.dtype)
  acc, _ = jax.lax.scan(body, init, jnp.arange(num_samples // chunk))
  return acc - math.log(num_samples)


# ------------------------------------------------------------------------------------------
# beta-VAE.


def capacity_schedule(step: Array, capacity_max: float, capacity_steps: int) -> Array:
  """The KL capacity C of Burgess et al. 2018 (Sec. 5): linear from 0 to ``capacity_max``
  nats over ``capacity_steps`` steps, then constant."""
  frac = jnp.clip(jnp.asarray(step, jnp.float32) / max(capacity_steps, 1), 0.0, 1.0)
  return capacity_max * frac


def beta_vae_loss(log_likelihood: Array, kl: Array, beta: float = 1.0,
                  capacity: Optional[Array] = None, gamma: Optional[float] = None) -> Array:
  """Per-example beta-VAE loss, seed 003 eq. 10 (Higgins et al. 2017, eq. 4):

  ``L = -E_q[log p(x|z)] + beta KL(q(z|x) || p(z))``; beta = 1 is the negative ELBO.

  With a ``capacity`` C (Burgess et al. 2018, eq. 8) the KL is pulled towards C instead:
  ``L = -E_q[log p(x|z)] + gamma |KL - C|``; this is eq. 9 of the seed notes with the
  constraint value delta made an explicit, scheduled target.

  Args:
    log_likelihood: [B] reconstruction term.
    kl: [B] KL term.
    beta: weight of the KL (Higgins et al.).
    capacity: scalar C in nats, or None for the plain beta-VAE.
    gamma: weight of |KL - C| (Burgess et al. use 1000); required with ``capacity``.

  Returns:
    [B] losses to minimise.
  """
  if capacity is None:
    return -log_likelihood + beta * kl
  if gamma is None:
    raise ValueError("beta_vae_loss: a capacity needs its weight gamma (e.g. 1000).")
  return -log_likelihood + gamma * jnp.abs(kl - capacity)
