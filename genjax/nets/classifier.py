"""The noise-conditional classifier ``p_phi(y | x_t, t)`` of classifier guidance (Dhariwal &
Nichol 2021, Sec. 4 and Appendix: "the downsampling trunk of the UNet model with an attention
pool at the 8x8 layer"), as a Flax Linen module.

Here: the genjax U-Net's encoder (time embedding, ResBlocks, self-attention at the chosen
resolutions, downsampling) and its middle block, then GroupNorm, SiLU and a global average
pool before the class logits (mean pooling instead of the paper's attention pool, which needs
a fixed spatial size; at 8x8 digits the difference is small).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nets.layers import (AttnBlock, Downsample, GroupNorm, ResBlock, _conv, _dense,
                                timestep_embedding)

Array = jax.Array


class NoisyClassifier(nn.Module):
  """Class logits of noisy images: ``logits(x_t, t)`` ``[B, num_classes]``.

  Attributes:
    num_classes: number of classes.
    ch, ch_mult, num_res_blocks, attn_resolutions, dropout: as the U-Net's encoder.
    dtype: compute dtype.
  """

  num_classes: int = 10
  ch: int = 32
  ch_mult: Sequence[int] = (1, 2)
  num_res_blocks: int = 1
  attn_resolutions: Sequence[int] = ()
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, t: Array, train: bool = False) -> Array:
    """Args: x [B, H, W, C] noisy images; t [B] or scalar zero-based timesteps; train enables
    dropout. Returns: [B, num_classes] logits (float32)."""
    if x.ndim != 4:
      raise ValueError(f"NoisyClassifier: x must be [B, H, W, C], got {x.shape}.")
    if self.num_classes < 2:
      raise ValueError(f"NoisyClassifier: num_classes must be >= 2, got {self.num_classes}.")
    b = x.shape[0]
    if jnp.ndim(t) > 1 or (jnp.ndim(t) == 1 and jnp.shape(t)[0] != b):
      raise ValueError(f"NoisyClassifier: t must be a scalar or [B] = [{b}], got {jnp.shape(t)}.")
    t = jnp.reshape(jnp.asarray(t), (-1,))  # a scalar t is embedded once
    dt = self.dtype
    temb = timestep_embedding(t, self.ch)
    temb = _dense(4 * self.ch, dtype=dt, name="temb_dense0")(temb)
    temb = _dense(4 * self.ch, dtype=dt, name="temb_dense1")(nn.silu(temb))
    h = _conv(self.ch, dtype=dt, name="conv_in")(x.astype(dt))
    for i, mult in enumerate(self.ch_mult):
      for j in range(self.num_res_blocks):
        h = ResBlock(self.ch * mult, dropout=self.dropout, dtype=dt,
                     name=f"down_{i}_block_{j}")(h, temb, train)
        if h.shape[1] in self.attn_resolutions:
          h = AttnBlock(dtype=dt, name=f"down_{i}_attn_{j}")(h)
      if i != len(self.ch_mult) - 1:
        h = Downsample(True, dtype=dt, name=f"down_{i}_downsample")(h)
    h = ResBlock(None, dropout=self.dropout, dtype=dt, name="mid_block_1")(h, temb, train)
    h = nn.silu(GroupNorm(dtype=dt, name="norm_out")(h))
    h = jnp.mean(h, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=dt, name="logits")(h).astype(jnp.float32)
