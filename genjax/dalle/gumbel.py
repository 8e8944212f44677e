"""The discrete VAE's relaxation and prior term (Ramesh et al. 2021, "Zero-Shot Text-to-Image
Generation", Sec. 2.1 and Appendix A.2), as pure functions of arrays.

* :func:`gumbel_softmax`: the Gumbel-softmax (Jang et al. 2017, eq. 1) / Concrete (Maddison
  et al. 2017) relaxation of a categorical sample,
  ``y_k = exp((log pi_k + g_k) / tau) / sum_j exp((log pi_j + g_j) / tau)``, ``g ~ Gumbel(0, 1)``.
  As ``tau -> 0`` it becomes the one-hot of ``argmax(log pi + g)``, which is distributed as
  ``Categorical(pi)`` (the Gumbel-max trick), so its expectation tends to ``softmax(logits)``.
* :func:`kl_to_uniform`: ``KL(q || U_K) = sum_k q_k log q_k + log K`` per latent position, the
  KL term of the dVAE's ELBO under the uniform prior over the K codes (Ramesh et al. eq. 1
  with ``p_psi`` uniform during the first stage).
* :func:`posterior_usage`: the mean entropy of ``q(z | x)`` per position and the perplexity of
  the aggregate posterior (the average of ``q`` over a batch's positions), the two figures that
  show a codebook collapsing before the argmax codes do.
* :func:`cosine_anneal`: the schedules of Appendix A.2: the temperature from 1 to 1/16 and the
  KL weight beta from 0 up (6.6 in the paper), each along a half cosine, then held.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def gumbel_softmax(key: Array, logits: Array, tau, hard: bool = False) -> Array:
  """A relaxed one-hot sample (Jang et al. 2017, eq. 1), over the last axis.

  Args:
    key: PRNG key.
    logits: [..., K] unnormalised log-probabilities ``log pi`` (any normalisation).
    tau: temperature > 0 (scalar or broadcastable).
    hard: return the one-hot of the argmax in the forward pass with the relaxed sample's
      gradient (the straight-through variant, Jang et al. Sec. 2.2).

  Returns:
    [..., K] in the logits' dtype; rows sum to 1.
  """
  g = jax.random.gumbel(key, logits.shape, logits.dtype)
  y = jax.nn.softmax((logits + g) / jnp.asarray(tau, logits.dtype), axis=-1)
  if hard:
    one_hot = jax.nn.one_hot(jnp.argmax(y, -1), logits.shape[-1], dtype=logits.dtype)
    y = y + jax.lax.stop_gradient(one_hot - y)
  return y


def kl_to_uniform(logits: Array) -> Array:
  """``KL(softmax(logits) || Uniform(K))`` over the last axis (Ramesh et al. 2021, Sec. 2.1).

  ``KL = sum_k q_k log q_k + log K``, computed as ``sum_k q_k log_softmax_k + log K``.

  Args:
    logits: [..., K].

  Returns:
    [...] nats, >= 0, in the logits' dtype.
  """
  logq = jax.nn.log_softmax(logits, axis=-1)
  k = logits.shape[-1]
  return jnp.sum(jnp.exp(logq) * logq, axis=-1) + jnp.asarray(math.log(k), logits.dtype)


def cosine_anneal(step, start: float, end: float, num_steps: int) -> Array:
  """``end + (start - end) (1 + cos(pi min(step / num_steps, 1))) / 2``: ``start`` at step 0,
  ``end`` from ``num_steps`` on (the cosine schedules of Ramesh et al. 2021, Appendix A.2)."""
  frac = jnp.clip(jnp.asarray(step, jnp.float32) / max(int(num_steps), 1), 0.0, 1.0)
  return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def posterior_usage(logits: Array) -> tuple[Array, Array]:
  """How many codes the encoder's posteriors spread over, for a batch of logits.

  * ``entropy``: the mean over positions of ``H(q) = -sum_k q_k log q_k`` (``log K`` for a
    uniform posterior, 0 for a one-hot one); ``KL(q || U_K) = log K - H(q)``.
  * ``aggregate perplexity``: ``exp(H(q_bar))`` with ``q_bar = mean over all positions of q``
    (K when the batch's posteriors together cover all codes evenly, m when they sit on m codes).

  Args:
    logits: [..., K].

  Returns:
    ``(entropy, aggregate_perplexity)``, float32 scalars.
  """
  logq = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  q = jnp.exp(logq)
  entropy = -jnp.mean(jnp.sum(q * logq, axis=-1))
  q_bar = jnp.mean(q.reshape(-1, logits.shape[-1]), axis=0)
  agg = jnp.exp(-jnp.sum(jax.scipy.special.xlogy(q_bar, q_bar)))
  return entropy, agg
