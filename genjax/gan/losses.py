"""GAN objectives as pure functions of discriminator outputs (Goodfellow et al. 2014 and successors).

Every function takes the discriminator's raw outputs ("logits"), arrays of any shape (usually
[B]), and averages over all their entries. For the original GAN the discriminator's probability
is ``D(x) = sigmoid(l(x))``, and the logs are written with ``log_sigmoid`` / ``softplus`` so that
they stay finite when ``D`` saturates:

  log D(x)       = log_sigmoid(l)   = -softplus(-l)
  log(1 - D(x))  = log_sigmoid(-l)  = -softplus(l)

Conventions: every ``*_loss`` is minimised by the player it names. The value function ``V`` is
returned with the paper's sign (D maximises it, G minimises it).

References:
  * Goodfellow et al. 2014, "Generative Adversarial Nets", eq. 1 (V), Algorithm 1 (seed 000,
    sec. 2.2, Algorithm 2) and sec. 3 (the non-saturating generator loss).
  * Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 2 (a=0, b=c=1).
  * Lim & Ye 2017 "Geometric GAN"; Miyato et al. 2018 "Spectral Normalization" eq. 16-17 (hinge).
  * Arjovsky et al. 2017 "Wasserstein GAN" eq. 3; Gulrajani et al. 2017 "Improved Training of
    Wasserstein GANs" eq. 3 and Algorithm 1 (gradient penalty).
  * Mescheder et al. 2018 "Which Training Methods for GANs do actually Converge?" eq. 9 (R1).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


# ----------------------------------------------------------------------------------------------
# The original minimax game (Goodfellow et al. 2014).


def value_function(real_logits: Array, fake_logits: Array) -> Array:
  """The value function ``V(D, G)`` of the minimax game, estimated on a minibatch.

  ``V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))]`` (Goodfellow et al. 2014
  eq. 1), with ``D = sigmoid(logits)``; D ascends it, G descends it.

  Args:
    real_logits: [...] discriminator logits ``l(x)`` on data.
    fake_logits: [...] discriminator logits ``l(G(z))`` on generated samples.

  Returns:
    Scalar ``mean(log_sigmoid(real)) + mean(log_sigmoid(-fake))``; at most 0, and
    ``-log 4`` when ``D = 1/2`` everywhere.

  Example:
    >>> value_function(jnp.zeros(8), jnp.zeros(8))  # D = 1/2: -log 4
    Array(-1.3862944, dtype=float32)
  """
  return jnp.mean(jax.nn.log_sigmoid(real_logits)) + jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def discriminator_loss(real_logits: Array, fake_logits: Array) -> Array:
  """The discriminator's loss ``-V(D, G)`` (Goodfellow et al. 2014 Algorithm 1, step 5).

  D ascends ``V`` (the seed's Algorithm 2 says "descent"; the paper ascends), i.e. minimises
  ``-E[log D(x)] - E[log(1 - D(G(z)))]``: the binary cross-entropy with label 1 for data and 0 for
  samples.

  Args:
    real_logits: [...] logits on data.
    fake_logits: [...] logits on generated samples.

  Returns:
    Scalar ``mean(softplus(-real)) + mean(softplus(fake))`` (>= 0).
  """
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss_saturating(fake_logits: Array) -> Array:
  """The minimax ("saturating") generator loss ``E[log(1 - D(G(z)))]``, to be minimised.

  Goodfellow et al. 2014 Algorithm 1, step 8: G descends the second term of ``V``. Its gradient
  vanishes when D confidently rejects the samples (``D(G(z)) -> 0``): ``d/dl log(1 - sigmoid(l))
  = -sigmoid(l) -> 0``, which is why the paper trains with the non-saturating loss in practice.

  Args:
    fake_logits: [...] logits on generated samples.

  Returns:
    Scalar ``mean(log_sigmoid(-fake))`` (<= 0).
  """
  return jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def generator_loss_non_saturating(fake_logits: Array) -> Array:
  """The non-saturating generator loss ``-E[log D(G(z))]``, to be minimised.

  Goodfellow et al. 2014 sec. 3: "Rather than training G to minimize log(1 - D(G(z))) we can train
  G to maximize log D(G(z)). This objective function results in the same fixed point of the
  dynamics of G and D but provides much stronger gradients early in learning." Its gradient with
  respect to the logit is ``-(1 - sigmoid(l)) -> -1`` as ``D(G(z)) -> 0``.

  Args:
    fake_logits: [...] logits on generated samples.

  Returns:
    Scalar ``mean(softplus(-fake))`` (>= 0).
  """
  return jnp.mean(jax.nn.softplus(-fake_logits))


# ----------------------------------------------------------------------------------------------
# Alternatives: least squares, hinge, Wasserstein.


def lsgan_discriminator_loss(real_out: Array, fake_out: Array, a: float = 0.0,
                             b: float = 1.0) -> Array:
  """LSGAN discriminator loss ``1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]`` (Mao et al. eq. 2).

  ``D`` is the raw output (no sigmoid). The defaults ``a = 0, b = 1`` (with ``c = 1`` for G) are
  the 0-1 coding of Mao et al. sec. 3.2.3.

  Args:
    real_out: [...] raw discriminator outputs on data.
    fake_out: [...] raw outputs on generated samples.
    a: target for generated samples.
    b: target for data.

  Returns:
    Scalar loss.
  """
  return 0.5 * jnp.mean(jnp.square(real_out - b)) + 0.5 * jnp.mean(jnp.square(fake_out - a))


def lsgan_generator_loss(fake_out: Array, c: float = 1.0) -> Array:
  """LSGAN generator loss ``1/2 E[(D(G(z)) - c)^2]`` (Mao et al. 2017 eq. 2).

  Args:
    fake_out: [...] raw discriminator outputs on generated samples.
    c: the value G wants D to believe for its samples.

  Returns:
    Scalar loss.
  """
  return 0.5 * jnp.mean(jnp.square(fake_out - c))


def hinge_discriminator_loss(real_out: Array, fake_out: Array) -> Array:
  """Hinge discriminator loss ``E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]``.

  Lim & Ye 2017; Miyato et al. 2018 eq. 16. ``D`` is the raw output.

  Args:
    real_out: [...] raw outputs on data.
    fake_out: [...] raw outputs on generated samples.

  Returns:
    Scalar loss (>= 0).
  """
  return jnp.mean(jax.nn.relu(1.0 - real_out)) + jnp.mean(jax.nn.relu(1.0 + fake_out))


def hinge_generator_loss(fake_out: Array) -> Array:
  """Hinge generator loss ``-E[D(G(z))]`` (Miyato et al. 2018 eq. 17).

  Args:
    fake_out: [...] raw outputs on generated samples.

  Returns:
    Scalar loss.
  """
  return -jnp.mean(fake_out)


def wasserstein_critic_loss(real_out: Array, fake_out: Array) -> Array:
  """The critic's loss ``E[D(G(z))] - E[D(x)]`` (Arjovsky et al. 2017 eq. 3, negated).

  Minimising it maximises the Kantorovich-Rubinstein estimate ``E[D(x)] - E[D(G(z))]`` of the
  Wasserstein-1 distance, given a 1-Lipschitz critic (enforced here by :func:`gradient_penalty`).

  Args:
    real_out: [...] critic outputs on data.
    fake_out: [...] critic outputs on generated samples.

  Returns:
    Scalar loss.
  """
  return jnp.mean(fake_out) - jnp.mean(real_out)


def wasserstein_generator_loss(fake_out: Array) -> Array:
  """The generator's WGAN loss ``-E[D(G(z))]`` (Gulrajani et al. 2017 Algorithm 1, line 11).

  Args:
    fake_out: [...] critic outputs on generated samples.

  Returns:
    Scalar loss.
  """
  return -jnp.mean(fake_out)


# ----------------------------------------------------------------------------------------------
# Gradient penalties.


def interpolates(real: Array, fake: Array, key: jax.Array) -> Array:
  """Random points on the segments between data and samples, ``eps x + (1 - eps) x~``.

  Gulrajani et al. 2017 Algorithm 1, lines 4-6: ``eps ~ U[0, 1]`` per example, drawn as
  ``jax.random.uniform(key, (B,))`` and broadcast over the example's other axes.

  Args:
    real: [B, ...] data.
    fake: [B, ...] generated samples (same shape).
    key: PRNG key.

  Returns:
    [B, ...] interpolates.
  """
  if real.shape != fake.shape:
    raise ValueError(f"interpolates: real {real.shape} and fake {fake.shape} must have the same "
                     "shape (use the same batch size for both).")
  eps = jax.random.uniform(key, (real.shape[0],), real.dtype)
  eps = eps.reshape((-1,) + (1,) * (real.ndim - 1))
  return eps * real + (1.0 - eps) * fake


def input_gradient_norms(d_fn: Callable[[Array], Array], x: Array) -> Array:
  """Per-example norms ``||grad_x D(x)||_2`` of a discriminator's output.

  Computed as the gradient of ``sum_i D(x_i)``, which equals the per-example gradients only if
  ``d_fn`` treats examples independently (no batch normalization).

  Args:
    d_fn: ``d_fn(x [B, ...]) -> [B]`` outputs.
    x: [B, ...] inputs.

  Returns:
    [B] gradient norms.
  """
  grads = jax.grad(lambda v: jnp.sum(d_fn(v)))(x)
  return jnp.sqrt(jnp.sum(jnp.square(grads.reshape(x.shape[0], -1)), axis=-1) + 1e-12)


def gradient_penalty(critic_fn: Callable[[Array], Array], real: Array, fake: Array,
                     key: jax.Array, target: float = 1.0) -> Array:
  """WGAN-GP's penalty ``E_{x^ ~ P_x^}[(||grad_x^ D(x^)||_2 - 1)^2]`` (Gulrajani et al. eq. 3).

  ``x^`` are :func:`interpolates` of ``real`` and ``fake``. Multiply by ``lambda`` (10 in the
  paper) and add to :func:`wasserstein_critic_loss`. The critic must treat examples independently
  (the paper: no batch normalization in the critic; layer normalization instead).

  Args:
    critic_fn: ``critic_fn(x [B, ...]) -> [B]`` critic outputs (differentiable in x).
    real: [B, ...] data.
    fake: [B, ...] generated samples (stop their gradient to G first).
    key: PRNG key for the interpolation weights.
    target: the norm the penalty pulls towards (1 for a 1-Lipschitz critic).

  Returns:
    Scalar penalty.
  """
  x_hat = interpolates(real, fake, key)
  return jnp.mean(jnp.square(input_gradient_norms(critic_fn, x_hat) - target))


def r1_penalty(d_fn: Callable[[Array], Array], real: Array) -> Array:
  """The R1 regulariser ``E_{x ~ p_data}[||grad_x D(x)||^2]`` (Mescheder et al. 2018 eq. 9).

  ``D`` here is the discriminator's logit (pre-sigmoid output). The loss adds ``gamma / 2`` times
  this value to the discriminator's loss.

  Args:
    d_fn: ``d_fn(x [B, ...]) -> [B]`` logits (examples treated independently).
    real: [B, ...] data.

  Returns:
    Scalar penalty (>= 0).
  """
  return jnp.mean(jnp.square(input_gradient_norms(d_fn, real)))


# ----------------------------------------------------------------------------------------------
# One config choice.

LOSSES = ("saturating", "non_saturating", "lsgan", "hinge", "wgan_gp")


def get_loss_pair(name: str) -> tuple[Callable[[Array, Array], Array], Callable[[Array], Array]]:
  """``(d_loss(real_out, fake_out), g_loss(fake_out))`` for ``name`` in :data:`LOSSES`.

  * ``saturating``: :func:`discriminator_loss` and :func:`generator_loss_saturating` (the
    paper's minimax game, Algorithm 1 as written).
  * ``non_saturating``: :func:`discriminator_loss` and :func:`generator_loss_non_saturating`.
  * ``lsgan``, ``hinge``: the pairs above.
  * ``wgan_gp``: :func:`wasserstein_critic_loss` and :func:`wasserstein_generator_loss`; the
    caller adds ``gp_weight *`` :func:`gradient_penalty`.

  Raises:
    ValueError: an unknown name (the message lists the valid ones).
  """
  pairs = {
      "saturating": (discriminator_loss, generator_loss_saturating),
      "non_saturating": (discriminator_loss, generator_loss_non_saturating),
      "lsgan": (lsgan_discriminator_loss, lsgan_generator_loss),
      "hinge": (hinge_discriminator_loss, hinge_generator_loss),
      "wgan_gp": (wasserstein_critic_loss, wasserstein_generator_loss),
  }
  if name not in pairs:
    raise ValueError(f"Unknown GAN loss {name!r}; valid: {', '.join(LOSSES)} "
                     "(e.g. --config.gan.loss=non_saturating).")
  return pairs[name]


def is_probabilistic(name: str) -> bool:
  """Whether the loss reads the discriminator's output as a logit of ``D(x) = sigmoid(l)``."""
  return name in ("saturating", "non_saturating")
