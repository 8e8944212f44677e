"""The first stage's losses as pure functions (Rombach et al. 2022, Sec. 3.1 and App. G;
Esser et al. 2021, Sec. 3.1).

* :func:`gaussian_kl` - the KL regularizer of the "KL-f" autoencoders, ``KL(q(z|x) || N(0, I))``
  of a diagonal Gaussian posterior in closed form (Kingma & Welling 2014, App. B);
* :func:`sample_posterior` - the reparameterized draw ``z = mu + sigma eps``;
* :func:`adaptive_weight` - VQGAN's adaptive weight of the GAN term, Esser et al. 2021 eq. 7:
  ``lambda = ||grad_{G_L}[L_rec]|| / (||grad_{G_L}[L_GAN]|| + delta)``, the gradients taken with
  respect to the decoder's last layer ``G_L``, ``delta = 1e-4``;
* :func:`kl_rate_bits` - the rate of a KL latent, ``KL / ln 2`` bits per latent dimension.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array

LOGVAR_RANGE = (-30.0, 20.0)  # LDM's DiagonalGaussianDistribution clamps the log-variance


def split_moments(moments: Array) -> tuple[Array, Array]:
  """``[..., 2D] -> (mean [..., D], logvar [..., D])``, the log-variance clamped to
  [-30, 20] as LDM's ``DiagonalGaussianDistribution``."""
  mean, logvar = jnp.split(moments, 2, axis=-1)
  return mean, jnp.clip(logvar, *LOGVAR_RANGE)


def gaussian_kl(mean: Array, logvar: Array) -> Array:
  """``KL(N(mean, exp(logvar)) || N(0, I))`` summed over all but the batch axis.

  ``0.5 * sum(mean^2 + exp(logvar) - 1 - logvar)`` (Kingma & Welling 2014, App. B; LDM's
  ``DiagonalGaussianDistribution.kl``).

  Args:
    mean, logvar: [B, ...].

  Returns:
    [B] KL in nats, in ``mean``'s dtype.
  """
  terms = jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar
  return 0.5 * jnp.sum(terms, axis=tuple(range(1, mean.ndim)))


def sample_posterior(key: Array, mean: Array, logvar: Array) -> Array:
  """``z = mean + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` (the reparameterization trick)."""
  return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)


def adaptive_weight(rec_grad, gan_grad, delta: float = 1e-4, max_weight: float = 1e4) -> Array:
  """VQGAN's adaptive weight, Esser et al. 2021 eq. 7.

  ``lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta)``, clipped to
  ``[0, max_weight]`` and detached, as taming's ``calculate_adaptive_weight``.

  Args:
    rec_grad: the gradient (any pytree) of the reconstruction loss with respect to the decoder's
      last layer.
    gan_grad: the gradient of the generator's GAN loss with respect to the same layer.
    delta: the paper's delta (1e-4).
    max_weight: the clip of the reference (1e4).

  Returns:
    Scalar weight (no gradient flows through it).
  """
  norm = lambda g: jnp.sqrt(sum(jnp.sum(jnp.square(a)) for a in jax.tree.leaves(g)))
  w = norm(rec_grad) / (norm(gan_grad) + delta)
  return jax.lax.stop_gradient(jnp.clip(w, 0.0, max_weight))


def kl_rate_bits(mean: Array, logvar: Array) -> Array:
  """The rate of a KL-regularized latent in bits per latent dimension: ``KL / (ln 2 * D)``
  per example, ``D`` the latent's size (the bits-back cost of sending z ~ q(z|x) under the
  prior N(0, I))."""
  d = math.prod(mean.shape[1:])
  return gaussian_kl(mean, logvar) / (math.log(2.0) * d)


def first_stage_grads(terms_fn, params, reg_weight, disc_weight, last_layer):
  """The autoencoder's gradient of ``L_rec + reg_weight L_reg + lambda disc_weight L_G`` with
  VQGAN's adaptive ``lambda`` (Esser et al. 2021, eq. 7) from one forward pass.

  ``terms_fn(params) -> ((L_rec, L_reg, L_G), aux)``. The forward pass is linearized once
  (``jax.vjp``); the gradients of ``L_rec`` and ``L_G`` at the last layer come from two
  pullbacks of which only the last layer's part is kept (so XLA computes little more than that
  layer's gradient), and the full gradient of the weighted sum from a third.

  Args:
    terms_fn: as above.
    params: the autoencoder's params.
    reg_weight: the KL (or VQ) weight.
    disc_weight: the factor on lambda (times the discriminator on/off factor).
    last_layer: ``last_layer(grads) -> the decoder's last-layer leaf`` (taming's
      ``decoder.conv_out.weight``).

  Returns:
    ``(grads, (L_rec, L_reg, L_G), lambda, lambda * disc_weight, aux)``.
  """
  terms, vjp, aux = jax.vjp(terms_fn, params, has_aux=True)
  rec = terms[0]
  one, zero = jnp.ones((), rec.dtype), jnp.zeros((), rec.dtype)
  lam = adaptive_weight(last_layer(vjp((one, zero, zero))[0]),
                        last_layer(vjp((zero, zero, one))[0]))
  g_weight = jnp.asarray(disc_weight, rec.dtype) * lam
  (grads,) = vjp((one, jnp.asarray(reg_weight, rec.dtype), g_weight))
  return grads, terms, lam, g_weight, aux
