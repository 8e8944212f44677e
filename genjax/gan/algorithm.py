"""Algorithm 2 of the seed (Goodfellow et al. 2014 Algorithm 1): k discriminator steps, then one
generator step, each player with its own optimizer, inside one jitted train step.

The pieces are pure:

* :func:`make_discriminator_loss` and :func:`make_generator_loss` are loss factories in the
  library's shape (DESIGN.md item 5): ``loss_fn(params, batch, key) -> (loss, metrics)`` with
  ``params = {"g": ..., "d": ...}``. Each loss holds the *other* player's parameters under
  ``stop_gradient``, so its gradient with respect to them is exactly zero.
* :func:`make_train_step` is the trainer's ``train_step(state, batch, key)``: the batch carries
  ``k + 1`` minibatches on a leading axis; a ``lax.scan`` over the first ``k`` takes the
  discriminator steps (fresh data and fresh noise each), then the generator takes one step on
  fresh noise. Minibatch ``k`` gives the real-data side of the diagnostics of that step (``D(x)``
  measured on data the discriminator has not just trained on) and is there for generator losses
  that need data.

Algorithm (seed 000 Algorithm 2; the paper ascends V for D, the seed's text says "descent"):

  for each train step:
    for i in 1..k:                                        (lax.scan)
      z ~ p_z (m draws), x ~ p_data (minibatch i)
      theta_d <- update_d(grad_theta_d d_loss)            (d_loss = -V for the original GAN)
    z ~ p_z (m draws)
    theta_g <- update_g(grad_theta_g g_loss)              (log(1 - D(G(z))) or -log D(G(z)))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from genjax.gan import losses as L

Array = jax.Array
PyTree = Any
# generate(g_params, z [B, Z], train) -> x [B, ...]
GenerateFn = Callable[[PyTree, Array, bool], Array]
# discriminate(d_params, x [B, ...], key or None, train) -> [B] raw outputs (logits)
DiscriminateFn = Callable[[PyTree, Array, Optional[jax.Array], bool], Array]
# prior(key, num) -> z [num, Z]
PriorFn = Callable[[jax.Array, int], Array]


@dataclasses.dataclass(frozen=True)
class GANLossConfig:
  """Which game the players play.

  Attributes:
    loss: one of :data:`genjax.gan.losses.LOSSES`: "saturating" (the minimax game as written),
      "non_saturating" (Goodfellow et al. sec. 3), "lsgan", "hinge", "wgan_gp".
    gp_weight: lambda of the WGAN-GP gradient penalty (used by "wgan_gp"; 10 in the paper).
    r1_gamma: gamma of the R1 penalty ``gamma / 2 E||grad D(x)||^2`` on data (0: off).
  """
  loss: str = "non_saturating"
  gp_weight: float = 10.0
  r1_gamma: float = 0.0

  def __post_init__(self):
    L.get_loss_pair(self.loss)  # raises on an unknown name
    if self.gp_weight < 0 or self.r1_gamma < 0:
      raise ValueError(f"gan.gp_weight and gan.r1_gamma must be >= 0; got {self.gp_weight}, "
                       f"{self.r1_gamma}.")


def _probability(out: Array, probabilistic: bool) -> Array:
  return jax.nn.sigmoid(out) if probabilistic else out


def make_discriminator_loss(generate: GenerateFn, discriminate: DiscriminateFn, prior: PriorFn,
                            cfg: GANLossConfig) -> Callable[..., tuple[Array, dict]]:
  """The discriminator's loss for one minibatch (Algorithm 2, steps 3-5).

  Args:
    generate: ``generate(g_params, z, train) -> x``.
    discriminate: ``discriminate(d_params, x, key, train) -> [B]`` raw outputs.
    prior: ``prior(key, num) -> z``.
    cfg: the loss choice.

  Returns:
    ``loss_fn(params, batch, key) -> (loss, metrics)``; ``params = {"g", "d"}`` (G's enter
    under ``stop_gradient``), ``batch = {"x": [B, ...]}``. Metrics: ``d_loss`` (the loss
    without penalties), ``gp``, ``r1`` (the unweighted penalties, when used).
  """
  d_loss_pair, _ = L.get_loss_pair(cfg.loss)

  def loss_fn(params, batch, key):
    real = batch["x"]
    k_z, k_real, k_fake, k_gp = jax.random.split(key, 4)
    g_params = jax.lax.stop_gradient(params["g"])
    d_params = params["d"]
    # 1. Fresh noise and the generator's samples (no gradient to G).
    fake = jax.lax.stop_gradient(generate(g_params, prior(k_z, real.shape[0]), True))
    # 2. D on the data and on the samples, as two batches (batch statistics of each).
    real_out = discriminate(d_params, real, k_real, True)
    fake_out = discriminate(d_params, fake, k_fake, True)
    d_loss = d_loss_pair(real_out, fake_out)
    loss, metrics = d_loss, {"d_loss": d_loss}
    # 3. Penalties on the input gradients (per example: the critic must not use batch norm).
    if cfg.loss == "wgan_gp":
      gp = L.gradient_penalty(lambda x: discriminate(d_params, x, k_gp, True), real, fake,
                              jax.random.fold_in(k_gp, 1))
      loss = loss + cfg.gp_weight * gp
      metrics["gp"] = gp
    if cfg.r1_gamma > 0:
      r1 = L.r1_penalty(lambda x: discriminate(d_params, x, k_real, True), real)
      loss = loss + 0.5 * cfg.r1_gamma * r1
      metrics["r1"] = r1
    return loss, metrics

  return loss_fn


def make_generator_loss(generate: GenerateFn, discriminate: DiscriminateFn, prior: PriorFn,
                        cfg: GANLossConfig,
                        sample_metrics: Optional[Callable[[Array], dict]] = None
                        ) -> Callable[..., tuple[Array, dict]]:
  """The generator's loss for one minibatch of noise (Algorithm 2, steps 7-8), with diagnostics.

  Args:
    generate, discriminate, prior: as for :func:`make_discriminator_loss`.
    cfg: the loss choice ("saturating" minimises ``E log(1 - D(G(z)))``, "non_saturating"
      minimises ``-E log D(G(z))``, ...).
    sample_metrics: optional ``fn(samples [B, ...]) -> {name: scalar}`` computed on the
      generated minibatch (e.g. modes covered on 2-D mixtures).

  Returns:
    ``loss_fn(params, batch, key) -> (loss, metrics)``; D's params enter under
    ``stop_gradient``. ``batch["x"]`` is only used for the diagnostics (and the batch size).
    Metrics: ``g_loss``; ``d_real`` and ``d_fake``, the means of ``D(x)`` and ``D(G(z))``
    (probabilities for the original GAN's losses, raw outputs otherwise); ``value``, the
    minibatch estimate of ``V(D, G)`` (original GAN losses only); plus ``sample_metrics``.
  """
  _, g_loss_pair = L.get_loss_pair(cfg.loss)
  probabilistic = L.is_probabilistic(cfg.loss)

  def loss_fn(params, batch, key):
    real = batch["x"]
    k_z, k_real, k_fake = jax.random.split(key, 3)
    d_params = jax.lax.stop_gradient(params["d"])
    # 1. Fresh noise through G (gradient flows to G only).
    fake = generate(params["g"], prior(k_z, real.shape[0]), True)
    fake_out = discriminate(d_params, fake, k_fake, True)
    g_loss = g_loss_pair(fake_out)
    # 2. Diagnostics: D on a fresh data minibatch, with the same D.
    real_out = jax.lax.stop_gradient(discriminate(d_params, real, k_real, True))
    fake_sg = jax.lax.stop_gradient(fake_out)
    metrics = {
        "g_loss": g_loss,
        "d_real": jnp.mean(_probability(real_out, probabilistic)),
        "d_fake": jnp.mean(_probability(fake_sg, probabilistic)),
    }
    if probabilistic:
      metrics["value"] = L.value_function(real_out, fake_sg)
    if sample_metrics is not None:
      metrics.update(sample_metrics(jax.lax.stop_gradient(fake)))
    return g_loss, metrics

  return loss_fn


class GANOptimizers(NamedTuple):
  """One optax transformation per player (hashable, so it can be ``TrainState.tx``)."""
  g: optax.GradientTransformation
  d: optax.GradientTransformation


def init_opt_state(tx: GANOptimizers, params: PyTree) -> dict:
  """``{"g": tx.g.init(params["g"]), "d": tx.d.init(params["d"])}``."""
  return {"g": tx.g.init(params["g"]), "d": tx.d.init(params["d"])}


def make_train_step(d_loss_fn: Callable, g_loss_fn: Callable, k: int) -> Callable:
  """Algorithm 2 as one ``train_step(state, batch, key) -> (state, metrics)`` for the trainer.

  Args:
    d_loss_fn: from :func:`make_discriminator_loss`.
    g_loss_fn: from :func:`make_generator_loss`.
    k: discriminator steps per generator step (>= 1).

  Returns:
    The step. ``state.params = {"g", "d"}``, ``state.opt_state = {"g", "d"}``,
    ``state.tx = GANOptimizers``; ``batch`` leaves have a leading axis of ``k + 1`` minibatches
    (``Method.batches_per_step = k + 1``). The discriminator's optimizer is updated exactly ``k``
    times and the generator's once. Metrics: the D-step metrics averaged over the ``k`` steps,
    ``d_grad_norm`` (their mean global gradient norm), the G-step metrics, ``g_grad_norm``, and
    ``loss = d_loss + g_loss`` (what the trainer's non-finite guard watches).

    Keys: ``key_d, key_g = split(key)``; discriminator step ``i`` uses ``split(key_d, k)[i]``
    (for its noise, dropout and penalty draws) and the generator step uses ``key_g``.
  """
  if int(k) < 1:
    raise ValueError(f"gan.k (discriminator steps per generator step) must be >= 1; got {k}.")
  k = int(k)

  def train_step(state, batch, key):
    lead = {a.shape[0] for a in jax.tree.leaves(batch)}
    if lead != {k + 1}:
      raise ValueError(f"GAN train_step with k={k} needs batches with a leading axis of k + 1 = "
                       f"{k + 1} minibatches; got leading sizes {sorted(lead)}.")
    tx: GANOptimizers = state.tx
    g_params = state.params["g"]
    key_d, key_g = jax.random.split(key)

    # 1. k discriminator steps, each on its own minibatch of data and fresh noise.
    def d_step(carry, inputs):
      d_params, d_opt = carry
      minibatch, k_i = inputs
      grad_fn = jax.value_and_grad(
          lambda d: d_loss_fn({"g": g_params, "d": d}, minibatch, k_i), has_aux=True)
      (_, metrics), grads = grad_fn(d_params)
      updates, d_opt = tx.d.update(grads, d_opt, d_params)
      metrics = dict(metrics, d_grad_norm=optax.global_norm(grads))
      return (optax.apply_updates(d_params, updates), d_opt), metrics

    d_batches = jax.tree.map(lambda a: a[:k], batch)
    (d_params, d_opt), d_metrics = jax.lax.scan(
        d_step, (state.params["d"], state.opt_state["d"]), (d_batches, jax.random.split(key_d, k)))
    d_metrics = jax.tree.map(lambda v: jnp.mean(v, axis=0), d_metrics)

    # 2. One generator step on fresh noise, against the updated discriminator.
    g_batch = jax.tree.map(lambda a: a[k], batch)
    grad_fn = jax.value_and_grad(
        lambda g: g_loss_fn({"g": g, "d": d_params}, g_batch, key_g), has_aux=True)
    (g_loss, g_metrics), g_grads = grad_fn(g_params)
    updates, g_opt = tx.g.update(g_grads, state.opt_state["g"], g_params)
    new_g = optax.apply_updates(g_params, updates)

    metrics = dict(d_metrics, **g_metrics, g_grad_norm=optax.global_norm(g_grads),
                   loss=d_metrics["d_loss"] + g_loss)
    new = state.replace(params={"g": new_g, "d": d_params}, opt_state={"g": g_opt, "d": d_opt})
    return new, metrics

  return train_step
