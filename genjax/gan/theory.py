"""The closed forms of Goodfellow et al. 2014, sec. 4 (Proposition 1 and Theorem 1).

For a fixed generator with density ``p_g``, the discriminator that maximises ``V(D, G)`` is

  D*_G(x) = p_data(x) / (p_data(x) + p_g(x))                  (Proposition 1, eq. 2)

and the value there is the "virtual training criterion"

  C(G) = max_D V(D, G) = -log 4 + 2 JSD(p_data || p_g)        (Theorem 1, eq. 6)

whose global minimum ``-log 4`` is reached iff ``p_g = p_data``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def optimal_discriminator(p_data: Array, p_g: Array) -> Array:
  """``D*(x) = p_data(x) / (p_data(x) + p_g(x))`` (Goodfellow et al. 2014 Proposition 1, eq. 2).

  Args:
    p_data: [...] data density at the points ``x``.
    p_g: [...] generator density at the same points.

  Returns:
    [...] the optimal discriminator's probability that ``x`` is data (1/2 where both vanish).

  Example:
    >>> optimal_discriminator(jnp.array([1.0, 3.0]), jnp.array([1.0, 1.0]))
    Array([0.5 , 0.75], dtype=float32)
  """
  total = p_data + p_g
  return jnp.where(total > 0, p_data / jnp.where(total > 0, total, 1.0), 0.5)


def optimal_discriminator_logit(log_p_data: Array, log_p_g: Array) -> Array:
  """The logit of ``D*``: ``log p_data(x) - log p_g(x)`` (so ``D* = sigmoid(logit)``).

  The log-domain form of Proposition 1, stable where both densities are tiny.

  Args:
    log_p_data: [...] log data density.
    log_p_g: [...] log generator density.

  Returns:
    [...] logits of the optimal discriminator.
  """
  return log_p_data - log_p_g


def optimal_value(jsd: Array) -> Array:
  """``C(G) = V(D*_G, G) = -log 4 + 2 JSD(p_data || p_g)`` (Goodfellow et al. 2014 Theorem 1, eq. 6).

  Args:
    jsd: [...] Jensen-Shannon divergence in nats, in ``[0, log 2]``.

  Returns:
    [...] the value of the game at the optimal discriminator, in ``[-log 4, 0]``.
  """
  return -math.log(4.0) + 2.0 * jsd


def jensen_shannon_divergence(p: Array, q: Array, weights: Array) -> Array:
  """``JSD(p || q)`` in nats by quadrature: ``sum_i w_i [p KL-term + q KL-term] / 2``.

  ``JSD = 1/2 KL(p || m) + 1/2 KL(q || m)`` with ``m = (p + q) / 2``; points where a density is
  0 contribute 0 to its term.

  Args:
    p: [N] density values on quadrature nodes.
    q: [N] density values on the same nodes.
    weights: [N] quadrature weights (e.g. the grid spacing).

  Returns:
    Scalar JSD in ``[0, log 2]`` (up to quadrature error).
  """
  m = 0.5 * (p + q)

  def term(a):
    safe = jnp.where(a > 0, a, 1.0)
    return jnp.where(a > 0, a * (jnp.log(safe) - jnp.log(jnp.where(a > 0, m, 1.0))), 0.0)

  return 0.5 * jnp.sum(weights * (term(p) + term(q)))
