"""L_simple (Ho et al. 2020 eq. 14; seed eq. 30) for the eps, x0 and v parameterizations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import diffusion as d
from genjax import sampling as gs

T = 100
C = 0.37  # every data point equals C, so the exact targets are computable from (x_t, t)


@pytest.fixture(scope="module")
def sched():
  return d.get_schedule("linear", T)


def _oracle(sched, parameterization, offset=None):
  """A 'network' that knows x_0 = C and outputs the exact target (+ an optional t offset)."""

  def model_fn(params, xt, t, y, key):
    x0 = jnp.full_like(xt, C)
    eps = gs.predict_eps_from_x0(sched, xt, t, x0)
    out = {"eps": eps, "x0": x0, "v": gs.predict_v(sched, x0, t, eps)}[parameterization]
    if offset is not None:
      out = out + offset(t)[:, None, None, None]
    return out * params

  return model_fn


@pytest.mark.parametrize("parameterization", ["eps", "x0", "v"])
def test_exact_target_gives_zero_loss_and_gradients_are_finite(sched, parameterization):
  loss_fn = d.make_ddpm_loss(_oracle(sched, parameterization), sched, parameterization)
  batch = {"x": jnp.full((16, 4, 4, 1), C)}
  loss, metrics = jax.jit(loss_fn)(1.0, batch, jax.random.key(0))
  assert float(loss) < 1e-6
  assert set(metrics) == {"loss", "loss_q0", "loss_q1", "loss_q2", "loss_q3"}
  g = jax.jit(jax.grad(lambda p: loss_fn(p, batch, jax.random.key(1))[0]))(1.3)
  assert np.isfinite(g) and g > 0  # p > 1 overshoots the target


def test_loss_is_mse_over_all_dims_and_quartiles_follow_t(sched):
  # Output = exact eps + t/T, so each example's loss is (t/T)^2 exactly.
  model_fn = _oracle(sched, "eps", offset=lambda t: t / T)
  loss_fn = jax.jit(d.make_ddpm_loss(model_fn, sched, "eps"))
  loss, m = loss_fn(1.0, {"x": jnp.full((256, 2, 2, 3), C)}, jax.random.key(2))
  for q in range(4):
    assert (q / 4) ** 2 - 1e-5 <= float(m[f"loss_q{q}"]) <= ((q + 1) / 4) ** 2
  # t ~ Uniform{0..T-1}: E[(t/T)^2] = (T-1)(2T-1) / (6 T^2); sd of the batch mean ~ 0.3/16.
  expected = (T - 1) * (2 * T - 1) / (6 * T**2)
  assert abs(float(loss) - expected) < 5 * 0.3 / 16
  assert float(m["loss"]) == float(loss)


def test_noise_target_statistics(sched):
  # A network that outputs 0: the eps loss estimates E eps^2 = 1, the x0 loss is C^2 exactly.
  zero = lambda p, x, t, y, k: jnp.zeros_like(x)
  batch = {"x": jnp.full((512, 8), C)}
  l_eps, _ = jax.jit(d.make_ddpm_loss(zero, sched, "eps"))(None, batch, jax.random.key(3))
  l_x0, _ = jax.jit(d.make_ddpm_loss(zero, sched, "x0"))(None, batch, jax.random.key(3))
  assert abs(float(l_eps) - 1.0) < 5 * np.sqrt(2 / (512 * 8))
  assert float(l_x0) == pytest.approx(C**2, rel=1e-6)


def test_labels_keys_and_bad_input(sched):
  seen = {}

  def model_fn(params, xt, t, y, key):
    seen["y"], seen["t"], seen["key"] = y, t, key
    return xt * params

  loss_fn = d.make_ddpm_loss(model_fn, sched)
  loss_fn(1.0, {"x": jnp.zeros((3, 2)), "label": jnp.array([0, 1, 2])}, jax.random.key(0))
  np.testing.assert_array_equal(seen["y"], [0, 1, 2])
  assert seen["t"].dtype == jnp.int32 and seen["t"].shape == (3,)
  assert jnp.issubdtype(seen["key"].dtype, jax.dtypes.prng_key)
  loss_fn(1.0, {"x": jnp.zeros((3, 2))}, jax.random.key(0))
  assert seen["y"] is None
  with pytest.raises(ValueError, match="'x'"):
    loss_fn(1.0, {"image": jnp.zeros((3, 2))}, jax.random.key(0))
  with pytest.raises(ValueError, match="eps, x0, v"):
    d.make_ddpm_loss(model_fn, sched, "score")
  with pytest.raises(ValueError, match="simple"):
    d.make_ddpm_loss(model_fn, sched, loss_type="hybrid")
  bad = d.make_ddpm_loss(lambda p, x, t, y, k: x[:, :1], sched)
  with pytest.raises(ValueError, match="shape"):
    bad(None, {"x": jnp.zeros((3, 2))}, jax.random.key(0))
