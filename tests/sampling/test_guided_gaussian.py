"""Every sampler of the registry, unguided and guided, on Gaussian-mixture data with exact scores.

The data are a two-component mixture in 2-D with a shared full covariance, ``p(x) = 1/2 N(MU0, C)
+ 1/2 N(MU1, C)``. Every marginal of every process is a mixture of ``N(alpha MU_k, alpha^2 C +
sigma^2 I)``, so the exact noise prediction, the exact noisy classifier ``p_t(y | x_t)`` (Bayes'
rule) and the exact score of each component are closed forms. Each sampler runs through
:func:`genjax.sampling.run`, the path every family takes (process views, guidance transforms,
the deferred classifier gradient), and its samples must match the target's mean and covariance
to 5 standard errors plus the sampler's own discretization bias (``mean_tol`` in data units,
``cov_tol`` relative to the largest covariance entry):

* **unconditional**: the mixture;
* **classifier-free guidance** with weight w: the conditional branch is component y and the
  null branch a Gaussian ``N(MU_NULL, C)`` of the same covariance; the guided score
  ``(1 + w) s_y - w s_null`` is then exactly the score of every marginal of
  ``N((1 + w) MU_y - w MU_NULL, C)`` (the precisions agree at every t), so every sampler must
  land there;
* **classifier guidance** with the exact Bayes classifier at scale 1: ``s + grad log p_t(y |
  x_t)`` is the score of component y at every t, so every sampler must sample ``N(MU_y, C)``
  (ancestral DDPM through Dhariwal & Nichol's mean shift ``Sigma grad``, the others through
  ``eps - sigma grad``); and a log-linear likelihood ``p(y | x_0) ~ exp(b . x_0)`` on one
  Gaussian at scale 2, whose exact noisy gradient ``alpha P_t C b`` tilts ``N(MU0, C)`` to
  ``N(MU0 + 2 C b, C)`` for every sampler.

Consistency sampling needs the exact consistency function, known for a Gaussian (the
probability-flow map ``MU + (C + eps^2)^{1/2} (C + sigma^2)^{-1/2} (x - MU)``), so it samples
the Gaussian components. (Guidance at other scales is not exact for a mixture: ``p_t(x)
p_t(y | x)^s`` is not the family of marginals of any one process, and the ODE and SDE samplers
then disagree; that is a property of guidance, not of the samplers.)
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import sampling as gs
from tests.sampling.gaussian import C, LAM, U

N = 2000
MU0, MU1 = np.array([1.0, -0.5]), np.array([-1.0, 0.8])
MU_NULL = 0.5 * (MU0 + MU1)
MEAN_MIX = MU_NULL
COV_MIX = C + 0.25 * np.outer(MU0 - MU1, MU0 - MU1)
B = np.array([0.3, -0.4])  # the log-linear likelihood's direction


def _coeffs(process, t, x):
  """alpha_t, sigma_t as [B or 1, 1] (the continuous view for a discrete schedule's steps, so
  that fractional steps are exact too)."""
  if isinstance(process, gs.DiffusionSchedule):
    view = process.continuous()
    t = (jnp.asarray(t, jnp.float32) + 1.0) / process.num_timesteps
    process = view
  a = jnp.reshape(process.marginal_alpha(t), (-1, 1)).astype(x.dtype)
  s = jnp.reshape(process.marginal_std(t), (-1, 1)).astype(x.dtype)
  return a, s


def _component_logpdf_and_score(x, mu, a, s):
  """log N(x; a mu, a^2 C + s^2 I) and its score, via C's eigenbasis (per row)."""
  uj, lj = jnp.asarray(U, x.dtype), jnp.asarray(LAM, x.dtype)
  var = a**2 * lj + s**2                                     # [B, 2] eigen-variances
  z = (x - a * jnp.asarray(mu, x.dtype)) @ uj                 # [B, 2]
  logpdf = -0.5 * jnp.sum(z**2 / var + jnp.log(2 * jnp.pi * var), axis=-1)
  score = -(z / var) @ uj.T
  return logpdf, score


def mixture_model_fn(process):
  """eps of the mixture (cond None), of component y (cond in {0, 1}), or of N(MU_NULL, C)
  (cond = 2, the null label)."""

  def fn(x, t, cond=None):
    a, s = _coeffs(process, t, x)
    l0, s0 = _component_logpdf_and_score(x, MU0, a, s)
    l1, s1 = _component_logpdf_and_score(x, MU1, a, s)
    r = jax.nn.softmax(jnp.stack([l0, l1]), axis=0)[..., None]
    score = r[0] * s0 + r[1] * s1
    if cond is not None:
      _, s_null = _component_logpdf_and_score(x, MU_NULL, a, s)
      y = cond[:, None]
      score = jnp.where(y == 0, s0, jnp.where(y == 1, s1, s_null))
    return -s * score

  return fn


def bayes_classifier_grad(process):
  """grad_x log p_t(y | x) of the mixture, through jax.grad of the exact logits."""

  def logits(x, t):
    a, s = _coeffs(process, t, x)
    return jnp.stack([_component_logpdf_and_score(x, mu, a, s)[0] for mu in (MU0, MU1)], -1)

  return gs.classifier_log_prob_grad(logits)


def gaussian_model_fn(process, mu=MU0):
  """eps of N(mu, C) (cond ignored): the one-Gaussian data of the log-linear case."""

  def fn(x, t, cond=None):
    a, s = _coeffs(process, t, x)
    return -s * _component_logpdf_and_score(x, mu, a, s)[1]

  return fn


def loglinear_grad(process):
  """The exact noisy gradient of p(y | x_0) ~ exp(b . x_0) under N(MU0, C): alpha P_t C b."""

  def grad(x, t, cond):
    a, s = _coeffs(process, t, x)
    cb = jnp.asarray(C @ B, x.dtype)
    uj, lj = jnp.asarray(U, x.dtype), jnp.asarray(LAM, x.dtype)
    return a * (((cb @ uj) / (a**2 * lj + s**2)) @ uj.T) * jnp.ones_like(x)

  return grad


def _check(x, mean, cov, mean_tol, cov_tol, what):
  x = np.asarray(x, np.float64)
  n = len(x)
  m, c = x.mean(0), np.cov(x.T)
  se_m = np.sqrt(np.diag(cov) / n)
  se_c = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
  assert np.all(np.isfinite(x)), what
  assert np.all(np.abs(m - mean) <= 5 * se_m + mean_tol), (what, m, mean)
  assert np.all(np.abs(c - cov) <= 5 * se_c + cov_tol * np.abs(cov).max()), (what, c, cov)


SCHED = gs.get_schedule("linear", 1000)
VP = gs.VPSDE()
EDM = gs.EDMProcess(sigma_min=0.002, sigma_max=80.0)
NCSN = gs.EDMProcess(sigma_min=0.01, sigma_max=5.0)

# (id, process, SamplingConfig fields, Model fields, mean_tol, cov_tol). Steps are enough for
# each sampler's discretization bias to stay below the tolerances.
CASES = [
    ("ddpm", SCHED, dict(sampler="ddpm"), {}, 0.02, 0.05),
    ("ddpm_small_respaced", SCHED, dict(sampler="ddpm", respacing="100"),
     dict(var_type="fixed_small"), 0.02, 0.1),
    ("ddim_eta0", SCHED, dict(sampler="ddim", steps=100), {}, 0.02, 0.06),
    ("ddim_eta1", SCHED, dict(sampler="ddim", steps=100, eta=1.0), {}, 0.02, 0.1),
    ("pc", VP, dict(sampler="pc", steps=500, snr=0.01), {}, 0.03, 0.08),
    ("ode_euler", VP, dict(sampler="ode-euler", steps=200), {}, 0.02, 0.06),
    ("ode_heun", VP, dict(sampler="ode-heun", steps=60), {}, 0.02, 0.04),
    ("ode_adaptive", VP, dict(sampler="ode-adaptive", rtol=1e-4, atol=1e-4), {}, 0.02, 0.04),
    ("dpm_solver_1", SCHED, dict(sampler="dpm-solver-1", steps=100), {}, 0.02, 0.06),
    ("dpm_solver_2", SCHED, dict(sampler="dpm-solver-2", steps=40), {}, 0.02, 0.04),
    ("dpm_solver_3_vp", VP, dict(sampler="dpm-solver-3", steps=30, dpm_method="singlestep"), {},
     0.02, 0.04),
    ("edm_heun_churn", EDM, dict(sampler="edm-heun", steps=64, s_churn=10.0), {}, 0.02, 0.05),
    ("langevin_ncsn", NCSN, dict(sampler="langevin", steps=100),
     dict(levels=gs.geometric_sigmas(5.0, 0.01, 10)), 0.03, 0.08),
]

MODES = {
    "uncond": (dict(), None, MEAN_MIX, COV_MIX),
    "cfg": (dict(guidance_scale=1.5), "cfg", 2.5 * MU1 - 1.5 * MU_NULL, C),
    "classifier": (dict(classifier_scale=1.0), "classifier", MU1, C),
}


def _run(process, cfg_kw, model_kw, mode, key):
  cfg_extra, kind, _, _ = MODES[mode]
  cfg = gs.SamplingConfig(**cfg_kw, **cfg_extra)
  model_kw = dict(model_kw)
  model_fn = mixture_model_fn(process)
  if kind == "cfg":
    model_kw["null_cond"] = 2
  if kind == "classifier":  # the unconditional model, guided towards class 1
    model_kw["classifier_grad"] = bayes_classifier_grad(process)
    model_fn = functools.partial(lambda f, x, t, c: f(x, t, None), model_fn)
  model = gs.Model(process=process, model_fn=model_fn, **model_kw)
  gs.registry.validate(cfg, model)
  cond = None if kind is None else jnp.ones((N,), jnp.int32)  # class 1
  return jax.jit(lambda k: gs.run(model, cfg, k, (N, 2), cond=cond))(key)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_sampler_unguided_and_guided_reaches_its_target(case, mode):
  name, process, cfg_kw, model_kw, mean_tol, cov_tol = case
  if name == "langevin_ncsn" and mode == "classifier":
    cov_tol = 0.12  # annealed Langevin's own bias grows with the score's curvature
  x = _run(process, cfg_kw, model_kw, mode, jax.random.key(hash((name, mode)) % 2**31))
  _, _, mean, cov = MODES[mode]
  _check(x, mean, cov, mean_tol, cov_tol, (name, mode))


@pytest.mark.parametrize("sampler,process,kw", [
    ("ddpm", SCHED, {}), ("ddim", SCHED, dict(steps=100)),
    ("dpm-solver-2", SCHED, dict(steps=40)), ("edm-heun", EDM, dict(steps=64)),
    ("pc", VP, dict(steps=500, snr=0.01))])
def test_loglinear_classifier_guidance_tilts_a_gaussian(sampler, process, kw):
  """Scale 2 on p(y | x_0) ~ exp(b . x_0): N(MU0, C) becomes N(MU0 + 2 C b, C) exactly."""
  model = gs.Model(process=process, model_fn=gaussian_model_fn(process),
                   classifier_grad=loglinear_grad(process))
  cfg = gs.SamplingConfig(sampler=sampler, classifier_scale=2.0, **kw)
  x = jax.jit(lambda k: gs.run(model, cfg, k, (N, 2), cond=jnp.zeros((N,), jnp.int32)))(
      jax.random.key(7))
  _check(x, MU0 + 2.0 * C @ B, C, 0.02, 0.06, sampler)


def _consistency_fn(mu):
  """The exact consistency function of N(mu, C) on EDM's process: its probability-flow map to
  sigma_min, mu + (C + eps^2)^{1/2} (C + sigma^2)^{-1/2} (x - mu)."""

  def f(x, sigma, cond=None):
    uj, lj = jnp.asarray(U, x.dtype), jnp.asarray(LAM, x.dtype)
    sig = jnp.reshape(sigma, (-1, 1))
    gain = jnp.sqrt((lj + EDM.sigma_min**2) / (lj + sig**2))
    return jnp.asarray(mu, x.dtype) + (((x - jnp.asarray(mu, x.dtype)) @ uj) * gain) @ uj.T

  return f


@pytest.mark.parametrize("mode", ["uncond", "cfg", "classifier"])
@pytest.mark.parametrize("steps", [1, 3])
def test_consistency_sampling_unguided_and_guided(mode, steps):
  """Consistency models of the Gaussian components: one step (and three) gives N(MU, C), CFG of
  two exact consistency functions of one covariance gives the tilted Gaussian exactly, and the
  log-linear classifier (applied in eps form at sigma = T = 80) gives N(MU0 + 2 C b, C) up to
  its O(C / T^2) error."""

  def fn(x, sigma, cond=None):
    if cond is None or mode == "classifier":
      return _consistency_fn(MU0)(x, sigma)
    y = cond[:, None]
    return jnp.where(y == 0, _consistency_fn(MU0)(x, sigma), _consistency_fn(MU_NULL)(x, sigma))

  kw = dict(kind="consistency", prediction="x0")
  target = (MU0, C)
  cfg_kw = dict(sampler="consistency", steps=steps)
  if mode == "cfg":
    kw["null_cond"] = 1
    cfg_kw["guidance_scale"] = 1.5
    target = (2.5 * MU0 - 1.5 * MU_NULL, C)
  if mode == "classifier":
    kw["classifier_grad"] = loglinear_grad(EDM)
    cfg_kw["classifier_scale"] = 2.0
    target = (MU0 + 2.0 * C @ B, C)
  model = gs.Model(process=EDM, model_fn=fn, **kw)
  cond = None if mode == "uncond" else jnp.zeros((N,), jnp.int32)
  cfg = gs.SamplingConfig(**cfg_kw)
  x = jax.jit(lambda k: gs.run(model, cfg, k, (N, 2), cond=cond))(jax.random.key(steps))
  _check(x, *target, 0.02, 0.04, (mode, steps))


@pytest.mark.parametrize("mode", list(MODES))
def test_a_progressive_distillation_students_sampler(mode):
  """A student samples with DDIM on its grid i / N of the discrete schedule's continuous view;
  fed the exact x0 of the data (the ideal student of many steps) it reaches every target."""
  view = SCHED.continuous()
  eps = mixture_model_fn(view)
  x0_fn = lambda x, t, c: (x - _coeffs(view, t, x)[1] * eps(x, t, c)) / _coeffs(view, t, x)[0]
  cfg_extra, kind, mean, cov = MODES[mode]
  kw = dict(kind="student", student_steps=128, prediction="x0")
  if kind == "cfg":
    kw["null_cond"] = 2
  if kind == "classifier":
    kw["classifier_grad"] = bayes_classifier_grad(view)
    x0_fn = functools.partial(lambda f, x, t, c: f(x, t, None), x0_fn)
  model = gs.Model(process=view, model_fn=x0_fn, **kw)
  cfg = gs.SamplingConfig(sampler="ddim", **cfg_extra)
  cond = None if kind is None else jnp.ones((N,), jnp.int32)
  x = jax.jit(lambda k: gs.run(model, cfg, k, (N, 2), cond=cond))(jax.random.key(11))
  _check(x, mean, cov, 0.02, 0.05, mode)
