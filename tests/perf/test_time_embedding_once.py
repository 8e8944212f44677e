"""Networks embed a scalar t once per call; the result is the per-row t's to float32 rounding.

Samplers pass one scalar t per step (``tests/sampling/test_registry.py`` checks that). The MLP,
the U-Net and DiT then compute the sinusoid and the time MLP (and the MLP's ``temb_proj`` and
DiT's adaLN regressions) on one row and broadcast it, instead of on B identical rows.

The outputs are not always bitwise those of B identical rows: XLA:CPU may pick another dot
kernel for a 1-row matrix than for a B-row one, whose sums round differently in the last bit
(seen here for the U-Net and DiT at every optimisation level, and for the MLP at the test
suite's fast-compile level). So the tests bound the difference by a few float32 ulps per call and
by float32 rounding over a whole DDPM ancestral chain.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import sampling
from genjax.nets.dit import DiT
from genjax.nets.mlp import MLPDenoiser
from genjax.nets.unet import UNet

NETS = {
    "mlp": (lambda k: MLPDenoiser(hidden=32, depth=2, time_dim=16, num_classes=k), (2,)),
    "unet": (lambda k: UNet(ch=8, ch_mult=(1, 2), attn_resolutions=(4,), dropout=0.0,
                            num_classes=k), (8, 8, 1)),
    "dit": (lambda k: DiT(patch_size=2, hidden_size=16, depth=2, num_heads=2, num_classes=k),
            (8, 8, 1)),
}


# The U-Net and DiT take 20-35 s to compile on a loaded 2-core machine; the fast suite's
# tests/sampling/test_registry.py already compares them at rtol 1e-5.
@pytest.mark.parametrize("name,num_classes", [
    ("mlp", 0), pytest.param("unet", 0, marks=pytest.mark.slow),
    pytest.param("dit", 3, marks=pytest.mark.slow)])
def test_scalar_t_matches_the_per_row_t(name, num_classes):
  make, shape = NETS[name]
  net = make(num_classes)
  b = 6
  x = jax.random.normal(jax.random.key(0), (b,) + shape)
  y = jnp.arange(b) % (num_classes + 1) if num_classes else None
  params = net.init(jax.random.key(1), x, jnp.zeros((b,)), y=y)["params"]
  # Perturb the zero-initialized layers (DiT's adaLN, the U-Net's conv_out), so that the time
  # embedding reaches the output.
  params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(2), p.shape),
                        params)
  f = jax.jit(lambda p, x, t: net.apply({"params": p}, x, t, y=y))
  for t in (0.0, 37.0, 999.0):
    one = np.asarray(f(params, x, jnp.float32(t)))
    rows = np.asarray(f(params, x, jnp.full((b,), t, jnp.float32)))
    # A few float32 ulps of the output's scale: rounding, not a different function.
    np.testing.assert_allclose(one, rows, rtol=0, atol=8 * np.finfo(np.float32).eps
                               * max(np.abs(rows).max(), 1.0))
  # And t does reach the output (the comparison above is not vacuous).
  assert not np.array_equal(f(params, x, jnp.float32(0.0)), f(params, x, jnp.float32(999.0)))


def test_ddpm_chain_matches_the_per_row_t():
  """A whole ancestral chain (T = 50) with the scalar t against one that broadcasts t to [B]."""
  net = MLPDenoiser(hidden=32, depth=2, time_dim=16)
  x = jnp.zeros((64, 2))
  params = net.init(jax.random.key(1), x, jnp.zeros((64,)))["params"]
  sched = sampling.get_schedule("linear", 50)
  seen = []

  def model(params, x, t):
    seen.append(jnp.shape(t))
    return net.apply({"params": params}, x, t)

  scalar = sampling.denoiser(lambda x, t, c: model(params, x, t), sched, "eps")
  rows = sampling.denoiser(
      lambda x, t, c: model(params, x, jnp.broadcast_to(t, x.shape[:1])), sched, "eps")
  run = lambda fn: jax.jit(lambda k: sampling.ddpm_sample(fn, sched, k, (64, 2)))(
      jax.random.key(3))
  a, b = np.asarray(run(scalar)), np.asarray(run(rows))
  assert seen[0] == ()  # the sampler passes one scalar t
  # Rounding differences of one step are amplified by the chain (an untrained net's samples
  # reach |x| ~ 50), but stay float32 rounding.
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
