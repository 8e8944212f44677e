"""The U-Net options added for published checkpoints leave the reference network unchanged: the
default call passes none of them (so parameters and outputs are those of the reference), and each
option set to the value equivalent to the reference gives bitwise the same outputs; set
otherwise, it changes them."""

import jax
import jax.numpy as jnp
import numpy as np

from genjax.nets.unet import UNet

KW = dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)


def test_unet_options_at_reference_values_are_bitwise_the_reference():
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  t = jnp.array([3, 700])
  net = UNet(**KW)
  params = net.init(jax.random.key(0), x, t)["params"]
  params = jax.tree.map(lambda p: p + 0.02 * jax.random.normal(jax.random.key(2), p.shape),
                        params)
  ref = net.apply({"params": params}, x, t)
  same = UNet(**KW, norm_groups=None, norm_eps=1e-6, downsample_padding="same", attn_head_dim=32,
              temb_flip_sin_to_cos=False, temb_freq_shift=1.0)
  assert jax.tree.structure(same.init(jax.random.key(0), x, t)["params"]) == \
      jax.tree.structure(params)
  np.testing.assert_array_equal(np.asarray(same.apply({"params": params}, x, t)), np.asarray(ref))
  # (norm_groups, norm_eps and temb_flip_sin_to_cos are exercised by the diffusers parity tests)
  for change in (dict(downsample_padding="symmetric"), dict(attn_head_dim=16),
                 dict(temb_freq_shift=0.0)):
    out = UNet(**KW, **change).apply({"params": params}, x, t)
    assert np.abs(np.asarray(out) - np.asarray(ref)).max() > 1e-6, change
