"""Guidance against a closed form: a 2-class Gaussian mixture, where every eps is exact.

Data: y in {0, 1} equally likely, x_0 | y ~ N(mu_y, s^2 I). Then x_t | y ~ N(sqrt(abar) mu_y,
v I) with v = abar s^2 + 1 - abar, so eps(x_t, t, y) = sqrt(1 - abar) (x_t - sqrt(abar) mu_y) / v
(seed 003 eq. 33), eps(x_t, t) = -sqrt(1 - abar) grad log p(x_t) of the mixture, and
grad log p(y | x_t) comes from Bayes' rule with jax.grad.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import diffusion
from genjax import sampling as gs
from genjax.sampling import guidance

MU = jnp.array([[1.5, -0.5, 0.0], [-1.0, 1.0, 0.5]])  # [2 classes, D=3]
S = 0.3


def _log_p_cond(x, y, abar):
  v = abar * S ** 2 + 1.0 - abar
  d = x - jnp.sqrt(abar) * MU[y]
  return -0.5 * jnp.sum(d ** 2) / v - 0.5 * x.shape[-1] * jnp.log(2 * jnp.pi * v)


def _log_p(x, abar):
  return jax.nn.logsumexp(jnp.stack([_log_p_cond(x, 0, abar), _log_p_cond(x, 1, abar)])) - jnp.log(2.0)


def _log_p_y_given_x(x, y, abar):
  return _log_p_cond(x, y, abar) + jnp.log(0.5) - _log_p(x, abar)


def _exact(abar, y, key):
  x = jax.random.normal(key, (16, 3)) * 1.3
  s1 = jnp.sqrt(1.0 - abar)
  eps_c = jax.vmap(lambda xi: -s1 * jax.grad(_log_p_cond)(xi, y, abar))(x)
  eps_u = jax.vmap(lambda xi: -s1 * jax.grad(_log_p)(xi, abar))(x)
  grad_y = jax.vmap(lambda xi: jax.grad(_log_p_y_given_x)(xi, y, abar))(x)
  return x, s1, eps_c, eps_u, grad_y


@pytest.mark.parametrize("t", [0, 100, 500, 999])
@pytest.mark.parametrize("y", [0, 1])
def test_implicit_classifier_gradient_is_bayes(t, y):
  """Seed eq. 39: -(eps_c - eps_u) / sqrt(1 - abar) is grad log p(y | x_t) by Bayes' rule."""
  sched = diffusion.get_schedule("linear", 1000)
  abar = sched.alphas_cumprod[t]
  x, s1, eps_c, eps_u, grad_y = _exact(abar, y, jax.random.key(t + y))
  # The conditional eps is the closed form of the module docstring.
  v = abar * S ** 2 + 1.0 - abar
  np.testing.assert_allclose(eps_c, s1 * (x - jnp.sqrt(abar) * MU[y]) / v, rtol=1e-5, atol=1e-6)
  got = guidance.implicit_classifier_grad(eps_c, eps_u, s1)
  np.testing.assert_allclose(got, grad_y, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("w", [0.0, 0.5, 3.0])
def test_classifier_free_equals_classifier_guidance_with_the_implicit_classifier(w):
  """Seed eq. 40: eps_c - w sqrt(1-abar) grad log p(y|x_t) = (1 + w) eps_c - w eps_u, and it is
  the unconditional eps guided with scale 1 + w (Dhariwal & Nichol 2021, Algorithm 2)."""
  abar = diffusion.get_schedule("linear", 1000).alphas_cumprod[300]
  x, s1, eps_c, eps_u, grad_y = _exact(abar, 1, jax.random.key(7))
  cfg = guidance.classifier_free_eps(eps_c, eps_u, w)
  np.testing.assert_allclose(cfg, (1 + w) * eps_c - w * eps_u, rtol=1e-6)
  np.testing.assert_allclose(guidance.classifier_guided_eps(eps_c, grad_y, s1, w), cfg,
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(guidance.classifier_guided_eps(eps_u, grad_y, s1, 1 + w), cfg,
                             rtol=1e-4, atol=1e-4)
  # The guided eps is -sqrt(1-abar) times the score of p(x_t) p(y | x_t)^(1 + w).
  tilted = jax.vmap(jax.grad(lambda xi: _log_p(xi, abar) + (1 + w) * _log_p_y_given_x(xi, 1, abar)))(x)
  np.testing.assert_allclose(cfg, -s1 * tilted, rtol=1e-4, atol=1e-4)


def test_limits_broadcasting_and_jit():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  eps_c = jax.random.normal(k1, (4, 8, 8, 1))
  eps_u = jax.random.normal(k2, (4, 8, 8, 1))
  grad = jax.random.normal(k3, (4, 8, 8, 1))
  np.testing.assert_allclose(guidance.classifier_free_eps(eps_c, eps_u, 0.0), eps_c)
  np.testing.assert_allclose(guidance.classifier_free_eps(eps_c, eps_u, -1.0), eps_u, atol=1e-6)
  np.testing.assert_allclose(guidance.classifier_guided_eps(eps_u, grad, 0.5, 0.0), eps_u)
  # Per-example weights and sqrt(1 - abar_t) gathered at zero-based t, under jit.
  sched = diffusion.get_schedule("cosine", 1000)
  t = jnp.array([0, 10, 500, 999])
  s1 = diffusion.extract(sched.sqrt_one_minus_alphas_cumprod, t, eps_c.shape)
  w = jnp.array([0.0, 1.0, 2.0, 4.0]).reshape(4, 1, 1, 1)
  out = jax.jit(guidance.classifier_free_eps)(eps_c, eps_u, w)
  np.testing.assert_allclose(out, eps_c + w * (eps_c - eps_u), rtol=1e-5, atol=1e-6)
  g = jax.jit(guidance.implicit_classifier_grad)(eps_c, eps_u, s1)
  np.testing.assert_allclose(guidance.classifier_guided_eps(eps_c, g, s1, w), out,
                             rtol=1e-4, atol=1e-4)


def test_drop_condition_rate_and_values():
  """Ho & Salimans Algorithm 1: each condition is the null one with probability p_uncond; every
  leaf of a pytree condition drops the same examples."""
  y = jnp.arange(20000) % 10
  out = np.asarray(guidance.drop_condition(jax.random.key(0), y, 10, 0.1))
  dropped = out == 10
  assert abs(dropped.mean() - 0.1) < 0.01
  np.testing.assert_array_equal(out[~dropped], np.asarray(y)[~dropped])
  np.testing.assert_array_equal(guidance.drop_condition(jax.random.key(0), y, 10, 0.0), y)
  cond = {"label": y, "text": jnp.ones((20000, 3, 2))}
  out = guidance.drop_condition(jax.random.key(0), cond, {"label": 10, "text": 0.0}, 0.1)
  text_dropped = np.asarray(out["text"]).sum(axis=(1, 2)) == 0
  np.testing.assert_array_equal(text_dropped, np.asarray(out["label"]) == 10)


def test_classifier_free_guidance_is_eq6_in_one_call():
  """One call on [x; x], [y; null] gives (1 + w) out(y) - w out(null), for a scalar or per-row t;
  with a learned variance the variance is the conditional branch's, and a classifier-guidance
  gradient inside is combined like eps."""
  calls = []

  def eps_fn(x, t, y):  # depends on the label, time and input
    calls.append((x.shape[0], jnp.shape(t)))
    return 0.3 * x + (y[:, None] + 1.0) * jnp.cos(jnp.reshape(t, (-1, 1)) + x)

  x = jax.random.normal(jax.random.key(1), (4, 6))
  t, y = jnp.arange(4), jnp.array([0, 1, 2, 1])
  w = 2.5
  guided = guidance.classifier_free_guidance(eps_fn, w, null_cond=lambda c: jnp.full_like(c, 3))
  out = guided(x, t, y)
  assert calls == [(8, (8,))]
  expect = (1 + w) * eps_fn(x, t, y) - w * eps_fn(x, t, jnp.full((4,), 3))
  np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-6)
  calls.clear()
  scalar = guided(x, jnp.asarray(7), y)  # samplers pass one t: it is not duplicated
  assert calls == [(8, ())]
  np.testing.assert_allclose(scalar, (1 + w) * eps_fn(x, 7, y) - w * eps_fn(x, 7, 3 + 0 * y),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(guidance.classifier_free_guidance(eps_fn, 0.0, 3)(x, t, y),
                             eps_fn(x, t, y), rtol=1e-6)
  learned = lambda x, t, y: gs.Prediction(eps_fn(x, t, y), 0.1 * y[:, None] + 0 * x,
                                          jnp.sin(x) * y[:, None])
  p = guidance.classifier_free_guidance(learned, w, 3)(x, t, y)
  np.testing.assert_allclose(p.eps, expect, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(p.var_values, 0.1 * y[:, None] + 0 * x)
  np.testing.assert_allclose(p.log_p_grad, (1 + w) * jnp.sin(x) * y[:, None] - w * 3 * jnp.sin(x),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="condition"):
    guided(x, t, None)


def test_classifier_guidance_defers_its_gradient_to_the_sampler():
  """classifier_guidance adds s grad log p(y | x_t) as Prediction.log_p_grad (summed with an
  earlier one); eps_of applies it in eps form, eps - sigma_t s grad (seed eq. 38)."""
  x = jax.random.normal(jax.random.key(2), (3, 4))
  eps_fn = lambda x, t, c: 0.5 * x
  grad_fn = lambda x, t, c: jnp.cos(x) * c[:, None]
  y = jnp.array([1.0, 2.0, 3.0])
  once = guidance.classifier_guidance(eps_fn, grad_fn, 2.0)
  p = once(x, 5, y)
  np.testing.assert_allclose(p.log_p_grad, 2.0 * jnp.cos(x) * y[:, None], rtol=1e-6)
  twice = guidance.classifier_guidance(once, grad_fn, 0.5)(x, 5, y)
  np.testing.assert_allclose(twice.log_p_grad, 2.5 * jnp.cos(x) * y[:, None], rtol=1e-6)
  np.testing.assert_allclose(gs.eps_of(p, 0.3), 0.5 * x - 0.3 * 2.0 * jnp.cos(x) * y[:, None],
                             rtol=1e-6)


def test_cfg_of_exact_models_samples_the_tilted_class():
  """DDIM with classifier-free guidance of the *exact* eps of the two-class mixture: w = 0 gives
  class y's distribution, and w > 0 pushes samples away from the other class (the implicit
  classifier's p(y | x)^w tilt), so the sample mean moves past mu_y, away from mu_{1-y}."""
  sched = diffusion.get_schedule("linear", 200)
  abar = sched.alphas_cumprod

  def eps_exact(x, t, y):  # eps of the class (y in {0, 1}) or of the mixture (y = 2)
    a = abar[t]
    cond = jax.vmap(lambda xi, yi: -jnp.sqrt(1 - a) * jax.grad(_log_p_cond)(
        xi, jnp.minimum(yi, 1), a))(x, y)
    marg = jax.vmap(lambda xi: -jnp.sqrt(1 - a) * jax.grad(_log_p)(xi, a))(x)
    return jnp.where((y == 2)[:, None], marg, cond)

  n = 4000
  y = jnp.zeros((n,), jnp.int32)
  means = {}
  for w in (0.0, 3.0):
    eps_fn = guidance.classifier_free_guidance(eps_exact, w, null_cond=2)
    x = gs.ddim_sample(eps_fn, sched, jax.random.key(0), (n, 3), cond=y, num_steps=50)
    means[w] = np.asarray(x).mean(0)
  np.testing.assert_allclose(means[0.0], MU[0], atol=0.03)
  direction = np.asarray(MU[0] - MU[1])
  assert float((means[3.0] - means[0.0]) @ direction) > 0.05
