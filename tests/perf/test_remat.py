"""training.remat: nn.remat around each U-Net / DiT block keeps the parameter names and values
and gives bitwise the same gradients (it only recomputes activations in the backward pass)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nets.dit import DiT
from genjax.nets.unet import UNet

MAKE = {
    "unet": lambda r: UNet(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,),
                           dropout=0.1, remat=r),
    "dit": lambda r: DiT(patch_size=2, hidden_size=16, depth=2, num_heads=2, remat=r),
}


@pytest.mark.slow  # compiles two U-Net / DiT gradients: minutes on a loaded 2-core machine
@pytest.mark.parametrize("name", ["unet", "dit"])
def test_remat_same_params_and_gradients(name):
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  t = jnp.arange(2.0)
  p0 = MAKE[name](False).init(jax.random.key(1), x, t)["params"]
  p1 = MAKE[name](True).init(jax.random.key(1), x, t)["params"]
  assert jax.tree.structure(p0) == jax.tree.structure(p1)
  for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p1)):
    np.testing.assert_array_equal(a, b)

  def grad(remat):
    def loss(p):
      out = MAKE[name](remat).apply({"params": p}, x, t, train=True,
                                    rngs={"dropout": jax.random.key(3)})
      return jnp.sum(out ** 2)
    return jax.jit(jax.grad(loss)), loss

  g_plain, _ = grad(False)
  g_remat, loss_remat = grad(True)
  assert "remat" in str(jax.make_jaxpr(jax.grad(loss_remat))(p0))
  for a, b in zip(jax.tree.leaves(g_plain(p0)), jax.tree.leaves(g_remat(p0))):
    np.testing.assert_array_equal(a, b)
