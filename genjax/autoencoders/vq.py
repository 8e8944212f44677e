"""Vector quantization (VQ-VAE, van den Oord et al. 2017) as pure functions.

Seed 003 Sec. 1.3.2, eq. 11-13:

* eq. 11, nearest-codebook quantization ``z_q = e_k, k = argmin_i ||z_e - e_i||_2`` ->
  :func:`nearest_codes`, :func:`quantize`;
* the straight-through estimator ``grad_{z_e} L ~ grad_{z_q} L`` -> :func:`straight_through`;
* eq. 12, ``||sg[z_e] - e||^2`` (codebook / "VQ" loss) and ``beta ||z_e - sg[e]||^2``
  (commitment loss) -> :func:`vq_losses`;
* eq. 13, the EMA codebook (paper appendix A.1):
  ``N_i <- g N_i + (1 - g) n_i``, ``m_i <- g m_i + (1 - g) sum_j z_{i,j}``, ``e_i = m_i / N_i``
  -> :func:`ema_codebook`, an optax-style ``(init, update)`` pair whose state lives in the
  trainer's ``model_state``;
* dead-code restart (Dhariwal et al. 2020, Jukebox, Sec. 2.3: codes used less than a
  threshold are moved onto random encoder outputs of the batch) -> :func:`restart_dead_codes`;
* codebook usage and perplexity ``exp(H(p))`` of the code frequencies -> :func:`code_perplexity`.

Shapes: encoder outputs are [..., D]; a codebook is [K, D]; codes are int32 [...].

Example:
  >>> z_q, codes = quantize(z_e, codebook)
  >>> z_dec = straight_through(z_e, z_q)          # decoder input; grads reach the encoder
  >>> codebook_loss, commit = vq_losses(z_e, z_q)
  >>> loss = recon + codebook_loss + 0.25 * commit  # eq. 12
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def squared_distances(z: Array, codebook: Array) -> Array:
  """``||z - e_i||^2`` for every code: [..., D] x [K, D] -> [..., K]."""
  return (jnp.sum(jnp.square(z), axis=-1, keepdims=True) - 2.0 * z @ codebook.T
          + jnp.sum(jnp.square(codebook), axis=-1))


def nearest_codes(z_e: Array, codebook: Array) -> Array:
  """``k = argmin_i ||z_e - e_i||_2`` (seed 003 eq. 11).

  Args:
    z_e: [..., D] encoder outputs.
    codebook: [K, D] embeddings e_i.

  Returns:
    [...] int32 code indices.
  """
  return jnp.argmin(squared_distances(z_e, codebook), axis=-1).astype(jnp.int32)


def lookup(codes: Array, codebook: Array) -> Array:
  """``e_k`` for integer codes: [...] -> [..., D]."""
  return jnp.take(codebook, codes, axis=0)


def quantize(z_e: Array, codebook: Array) -> tuple[Array, Array]:
  """Nearest-neighbour quantization ``z_q(x) = e_k`` (seed 003 eq. 11).

  Args:
    z_e: [..., D] encoder outputs.
    codebook: [K, D].

  Returns:
    ``(z_q [..., D], codes [...] int32)``. ``z_q`` is differentiable in the codebook only;
    use :func:`straight_through` for the decoder input.
  """
  codes = nearest_codes(z_e, codebook)
  return lookup(codes, codebook), codes


def straight_through(z_e: Array, z_q: Array) -> Array:
  """The straight-through estimator: forward ``z_q``, backward the identity to ``z_e``.

  ``z_e + sg[z_q - z_e]``, so ``d L / d z_e = d L / d z_q`` (van den Oord et al. 2017, Sec.
  3.2; seed 003 after eq. 11). No gradient reaches the codebook through this path.
  """
  return z_e + jax.lax.stop_gradient(z_q - z_e)


def vq_losses(z_e: Array, z_q: Array) -> tuple[Array, Array]:
  """The codebook and commitment terms of seed 003 eq. 12 (van den Oord et al. 2017, eq. 3).

  * codebook ("VQ") loss ``||sg[z_e] - e_k||^2``: moves only the codebook;
  * commitment loss ``||z_e - sg[e_k]||^2``: moves only the encoder (weight it by beta,
    0.25 in the paper).

  Both are mean squared errors over all elements (as the reference Sonnet implementation;
  eq. 12's squared norm differs by the constant factor D x positions).

  Args:
    z_e: [..., D] encoder outputs.
    z_q: [..., D] their quantized values ``e_k`` (from :func:`quantize`).

  Returns:
    ``(codebook_loss, commitment_loss)``, scalars.
  """
  codebook_loss = jnp.mean(jnp.square(jax.lax.stop_gradient(z_e) - z_q))
  commitment_loss = jnp.mean(jnp.square(z_e - jax.lax.stop_gradient(z_q)))
  return codebook_loss, commitment_loss


def code_perplexity(codes: Array, num_codes: int) -> tuple[Array, Array]:
  """Perplexity ``exp(-sum_k p_k log p_k)`` of the code frequencies, and the used fraction.

  Perplexity is K when all codes are used equally, 1 when one code takes everything.

  Args:
    codes: [...] int codes.
    num_codes: K.

  Returns:
    ``(perplexity, fraction of the K codes used at least once)``, scalars.
  """
  counts = jnp.sum(jax.nn.one_hot(codes.reshape(-1), num_codes, dtype=jnp.float32), axis=0)
  p = counts / jnp.maximum(jnp.sum(counts), 1.0)
  entropy = -jnp.sum(jax.scipy.special.xlogy(p, p))
  return jnp.exp(entropy), jnp.mean((counts > 0).astype(jnp.float32))


class CodebookEmaState(NamedTuple):
  """State of the EMA codebook (seed 003 eq. 13).

  Attributes:
    cluster_size: [K] N_i, the EMA of the number of encoder outputs assigned to code i.
    embed_sum: [K, D] m_i, the EMA of their sum.
  """
  cluster_size: Array
  embed_sum: Array


class CodebookEma(NamedTuple):
  """An optax-style pair: ``init(codebook) -> state``;
  ``update(z_e [M, D], codes [M], state) -> (codebook, state)``."""
  init: Callable[[Array], CodebookEmaState]
  update: Callable[[Array, Array, CodebookEmaState], tuple[Array, CodebookEmaState]]


def ema_codebook(decay: float = 0.99, epsilon: float = 1e-5, init_count: float = 1.0) -> CodebookEma:
  """The exponential-moving-average codebook update, seed 003 eq. 13 (van den Oord et al.
  2017, appendix A.1), as an ``(init, update)`` pair in optax's shape.

  With ``n_i`` the number of the M encoder outputs assigned to code i in this batch::

    N_i <- g N_i + (1 - g) n_i
    m_i <- g m_i + (1 - g) sum_{j: k_j = i} z_j
    e_i  = m_i / N~_i,   N~_i = (N_i + eps) / (n + K eps) * n,   n = sum_i N_i

  ``N~`` is the Laplace smoothing of the Sonnet reference (it keeps unused codes finite);
  with ``epsilon=0`` it is ``N`` and the update is eq. 13 verbatim. ``init`` sets
  ``N_i = init_count`` and ``m_i = init_count * e_i``: as if each code had already been
  assigned ``init_count`` vectors equal to itself, so that the first update is a weighted
  mean of the old code and the batch (the reference starts from ``N = 0``, ``m = e``, which
  rescales every code by 1 / (1 - g) at the first step).

  Args:
    decay: g, e.g. 0.99.
    epsilon: Laplace smoothing (0 for eq. 13 exactly).
    init_count: initial N_i.

  Returns:
    :class:`CodebookEma`.
  """

  def init(codebook: Array) -> CodebookEmaState:
    k = codebook.shape[0]
    return CodebookEmaState(jnp.full((k,), init_count, codebook.dtype), init_count * codebook)

  def update(z_e: Array, codes: Array, state: CodebookEmaState) -> tuple[Array, CodebookEmaState]:
    k = state.cluster_size.shape[0]
    z = z_e.reshape(-1, z_e.shape[-1])
    onehot = jax.nn.one_hot(codes.reshape(-1), k, dtype=z.dtype)  # [M, K]
    n_i = jnp.sum(onehot, axis=0)
    sums = onehot.T @ z  # [K, D]
    cluster = decay * state.cluster_size + (1.0 - decay) * n_i
    embed_sum = decay * state.embed_sum + (1.0 - decay) * sums
    n = jnp.sum(cluster)
    smoothed = (cluster + epsilon) / (n + k * epsilon) * n
    codebook = embed_sum / smoothed[:, None]
    return codebook, CodebookEmaState(cluster, embed_sum)

  return CodebookEma(init, update)


def restart_dead_codes(key: Array, codebook: Array, state: CodebookEmaState, z_e: Array,
                       threshold: float = 1.0) -> tuple[Array, CodebookEmaState, Array]:
  """Moves codes whose EMA usage ``N_i < threshold`` onto random encoder outputs of the batch.

  Dhariwal et al. 2020 (Jukebox, Sec. 2.3, "random restarts"). A restarted code gets
  ``N_i = threshold`` and ``m_i = threshold * e_i`` so that the EMA update continues from it.

  Args:
    key: PRNG key (which encoder outputs replace the dead codes).
    codebook: [K, D].
    state: the EMA statistics (``cluster_size`` measures usage).
    z_e: [..., D] encoder outputs of the current batch.
    threshold: usage below which a code is dead (in assigned vectors per step, EMA).

  Returns:
    ``(codebook, state, number of codes restarted)``.
  """
  z = jax.lax.stop_gradient(z_e.reshape(-1, z_e.shape[-1]))
  k = codebook.shape[0]
  dead = state.cluster_size < threshold
  pick = z[jax.random.randint(key, (k,), 0, z.shape[0])]
  codebook = jnp.where(dead[:, None], pick, codebook)
  cluster = jnp.where(dead, threshold, state.cluster_size)
  embed_sum = jnp.where(dead[:, None], threshold * pick, state.embed_sum)
  return codebook, CodebookEmaState(cluster, embed_sum), jnp.sum(dead)


def sample_codes_uniform(key: Array, shape: tuple[int, ...], num_codes: int,
                         logits: Optional[Array] = None) -> Array:
  """Codes drawn i.i.d.: uniformly (the VQ-VAE training prior, van den Oord et al. 2017,
  Sec. 3.1) or from ``logits`` [K]."""
  if logits is None:
    return jax.random.randint(key, shape, 0, num_codes, jnp.int32)
  return jax.random.categorical(key, logits, shape=shape).astype(jnp.int32)
