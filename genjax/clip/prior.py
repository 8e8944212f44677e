"""unCLIP's diffusion prior P(z_i | y) (Ramesh et al. 2022, "Hierarchical Text-Conditional
Image Generation with CLIP Latents", Sec. 2.1; seed 003 Sec. 2.6.2, eq. 49).

A Gaussian diffusion over CLIP image embeddings ``z_i`` conditioned on the CLIP text embedding
``y``. As in the paper, the network predicts the unnoised ``z_i`` directly ("we find it
better to train our model to predict the unnoised z_i directly, and use a mean-squared error
loss on this prediction": ``L = E || f(z_i^(t), t, y) - z_i ||^2``), which is the DDPM
family's loss with ``parameterization="x0"``; classifier-free guidance comes from dropping the
text condition 10% of the time during training (Sec. 2.1) and is the sampling core's transform.
Here the network is a residual MLP over ``[z_t, y, embed(t)]`` (the paper uses a decoder-only
Transformer over the same inputs plus the caption's tokens). The null condition is the zero
vector, which no unit-norm CLIP embedding equals.

The prediction is preconditioned as in EDM (Karras et al. 2022, eq. 7 and Table 1, written for
``z_t = alpha z_0 + sigma eps``): ``z_0 = c_skip z_t + c_out F(c_in z_t, t, y)`` with
``c_skip = alpha sigma_d^2 / (alpha^2 sigma_d^2 + sigma^2)``, ``c_out = sigma sigma_d /
sqrt(alpha^2 sigma_d^2 + sigma^2)``, ``c_in = 1 / sqrt(alpha^2 sigma_d^2 + sigma^2)``: still a
direct prediction of ``z_0`` trained with the same MSE, but at low noise the identity is
built in (an unconditioned MLP shrinks its predictions toward the mean there, and the samples'
spread collapses).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import timestep_embedding

__all__ = ["PriorMLP", "drop_text", "preconditioned"]


class PriorMLP(nn.Module):
  """``f(z_t [B, E], t [B] or scalar, y [B, D]) -> z_0 prediction [B, E]``.

  Attributes:
    width: hidden width.
    depth: residual blocks (LayerNorm, dense, SiLU, dense).
  """
  width: int = 256
  depth: int = 3

  @nn.compact
  def __call__(self, z: jax.Array, t: jax.Array, y: jax.Array) -> jax.Array:
    if z.ndim != 2 or y.ndim != 2 or y.shape[0] != z.shape[0]:
      raise ValueError(f"PriorMLP: z must be [B, E] and y [B, D], got {z.shape} and {y.shape}.")
    b, e = z.shape
    t = jnp.broadcast_to(jnp.reshape(jnp.asarray(t), (-1,)), (b,))
    temb = timestep_embedding(t, self.width).astype(z.dtype)
    h = nn.Dense(self.width)(jnp.concatenate([z, y.astype(z.dtype)], axis=-1)) + nn.Dense(
        self.width)(temb)
    for _ in range(self.depth):
      r = nn.Dense(self.width)(nn.silu(nn.Dense(self.width)(nn.LayerNorm()(h))))
      h = h + r
    return nn.Dense(e)(nn.silu(nn.LayerNorm()(h))).astype(z.dtype)


def drop_text(key: jax.Array, y: jax.Array, p: float) -> jax.Array:
  """Replaces each row of ``y`` [B, D] by the null (zero) condition with probability ``p``
  (classifier-free guidance's training, Ho & Salimans 2022, Algorithm 1)."""
  keep = jax.random.uniform(key, y.shape[:1]) >= p
  return jnp.where(keep[:, None], y, jnp.zeros_like(y))


def preconditioned(apply_fn, sched, sigma_data: float = 1.0):
  """``fn(params, z_t, t, y) -> z_0`` from ``apply_fn(params, z, t, y) -> F`` on a discrete
  schedule (zero-based int ``t``), with EDM's ``c_skip``, ``c_out``, ``c_in`` (Karras et al.
  2022, eq. 7; see the module docstring)."""
  alphas = jnp.asarray(sched.sqrt_alphas_cumprod, jnp.float32)
  sigmas = jnp.asarray(sched.sqrt_one_minus_alphas_cumprod, jnp.float32)
  sd2 = float(sigma_data) ** 2

  def fn(params, z, t, y):
    t = jnp.broadcast_to(jnp.reshape(jnp.asarray(t, jnp.int32), (-1,)), z.shape[:1])
    a = alphas[t][:, None].astype(z.dtype)
    s = sigmas[t][:, None].astype(z.dtype)
    norm = jnp.sqrt(a * a * sd2 + s * s)
    c_skip = a * sd2 / (norm * norm)
    c_out = s * float(sigma_data) / norm
    return c_skip * z + c_out * apply_fn(params, z / norm, t, y)

  return fn
