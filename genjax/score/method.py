"""Score-based models as trainer :class:`~genjax.training.method.Method` s.

Three families share one network wrapper (``config.model``: a U-Net for images, an MLP for
2-D points), whose output is read as eps and turned into a score by
:func:`genjax.score.convert.score_from_eps` (score_sde's convention):

  * ``method = "sde"`` (``config.sde``): VP / sub-VP / VE SDE, continuous DSM loss
    (Song et al. 2021). The network sees ``999 t`` (for VE, ``t`` is affine in
    ``log sigma(t)``: log-sigma noise conditioning up to scale).
  * ``method = "ncsn"`` (``config.ncsn``): geometric sigmas, DSM with ``lambda = sigma^2``,
    annealed Langevin (Song & Ermon 2019). The network sees
    ``999 log(sigma / sigma_L) / log(sigma_1 / sigma_L)``.
  * ``method = "edm"`` (``config.edm``): Karras et al. 2022 preconditioning, loss and Heun
    sampler. The network ``F(c_in x, c_noise)`` sees ``c_noise = ln(sigma) / 4`` mapped
    affinely to ``999 (ln sigma - ln sigma_min) / (ln sigma_max - ln sigma_min)`` so that a
    sinusoidal embedding resolves it.

Samplers (``config.sampling.sampler``, sample.py's ``--sampler`` / ``--steps``):

  ========================  ===========================================================
  ``pc``                    predictor-corrector (sde), ``steps`` = N
  ``langevin``              sde: corrector-only PC (Langevin at each of N levels);
                            ncsn: annealed Langevin, ``steps`` updates per level
  ``ode-euler``/``ode-heun``  probability-flow ODE, fixed steps (sde)
  ``ode-adaptive``          probability-flow ODE, Dormand-Prince, rtol/atol (sde)
  ``pc+ode``                half PC, half ODE-Heun samples, for the 2-D scatter (sde)
  ``edm-heun``              Karras sigmas + Heun (edm; VE sde and ncsn: VE-style models)
  ``dpm-solver-{1,2,3}``    DPM-Solver, ``steps`` = NFE (VP sde only)
  ``ddpm``/``ddim``         the discrete DDPM / DDIM samplers on the N-step chain (VP sde)
  ========================  ===========================================================

``sample.py --eval=nll`` (sde) gives probability-flow bits/dim on the test set.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz
from genjax.score import convert, edm, likelihood, losses, ncsn, samplers
from genjax.score.sde import VESDE, VPSDE, get_sde
from genjax.nets.build import build_network
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec

SDE_SAMPLERS = ("pc", "langevin", "ode-euler", "ode-heun", "ode-adaptive", "pc+ode", "edm-heun",
                "dpm-solver-1", "dpm-solver-2", "dpm-solver-3", "ddpm", "ddim")
NCSN_SAMPLERS = ("langevin", "edm-heun")
EDM_SAMPLERS = ("edm-heun",)


@dataclasses.dataclass(frozen=True)
class SDEConfig:
  """The ``config.sde`` section (score_sde's defaults).

  Attributes:
    name: vpsde | subvpsde | vesde.
    beta_min: VP / sub-VP beta(0).
    beta_max: VP / sub-VP beta(1).
    sigma_min: VE sigma(0).
    sigma_max: VE sigma(1).
    num_scales: N, steps of the discretization (PC, ancestral, ddpm).
    reduce_mean: DSM loss: mean over dimensions (True) or half the sum (False).
    likelihood_weighting: DSM weight g(t)^2 instead of std(t)^2.
    train_eps: training draws t ~ U[train_eps, 1].
    sampling_eps: the samplers' last time; None: 1e-3 for VP / sub-VP, 1e-5 for VE (score_sde).
  """
  name: str = "vpsde"
  beta_min: float = 0.1
  beta_max: float = 20.0
  sigma_min: float = 0.01
  sigma_max: float = 50.0
  num_scales: int = 1000
  reduce_mean: bool = False
  likelihood_weighting: bool = False
  train_eps: float = 1e-5
  sampling_eps: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class NCSNConfig:
  """The ``config.ncsn`` section (Song & Ermon 2019).

  Attributes:
    sigma_max: sigma_1 (the paper: 1 for data in [0, 1]).
    sigma_min: sigma_L (0.01).
    num_scales: L (10).
    reduce_mean: loss mean over dimensions instead of half the sum.
  """
  sigma_max: float = 1.0
  sigma_min: float = 0.01
  num_scales: int = 10
  reduce_mean: bool = False


@dataclasses.dataclass(frozen=True)
class EDMConfig:
  """The ``config.edm`` section (Karras et al. 2022, Table 1).

  Attributes:
    sigma_data: sd, the data's std.
    p_mean: mean of ln sigma in training.
    p_std: std of ln sigma in training.
    sigma_min: smallest sampling sigma (0.002).
    sigma_max: largest sampling sigma (80).
    rho: Karras schedule exponent (7).
  """
  sigma_data: float = 0.5
  p_mean: float = -1.2
  p_std: float = 1.2
  sigma_min: float = 0.002
  sigma_max: float = 80.0
  rho: float = 7.0


@dataclasses.dataclass(frozen=True)
class ScoreSamplingConfig:
  """The ``config.sampling`` section of the score families (also set by sample.py's flags).

  Attributes:
    sampler: see the module docstring.
    steps: pc / langevin(sde): N; ode-*: steps; edm-heun: Karras sigmas; dpm-solver: NFE;
      ncsn langevin: updates per level; ddim: steps.
    predictor: euler_maruyama | reverse_diffusion | ancestral_sampling | none.
    corrector: langevin | ald | none.
    snr: corrector signal-to-noise ratio (score_sde: 0.16 VE, 0.01 VP / sub-VP).
    n_corrector_steps: corrector steps per predictor step.
    probability_flow: PC predictor on the probability-flow ODE.
    denoise: final noise-removal step (pc, ode, ncsn langevin).
    rtol: ode-adaptive relative tolerance.
    atol: ode-adaptive absolute tolerance.
    eta: ddim stochasticity.
    dpm_method: DPM-Solver singlestep | multistep.
    dpm_skip_type: DPM-Solver time_uniform | logSNR | time_quadratic.
    step_lr: ncsn annealed Langevin epsilon.
    s_churn: edm-heun churn (0: deterministic Algorithm 1).
    s_noise: edm-heun S_noise.
  """
  sampler: str = "pc"
  steps: int = 1000
  predictor: str = "reverse_diffusion"
  corrector: str = "langevin"
  snr: float = 0.16
  n_corrector_steps: int = 1
  probability_flow: bool = False
  denoise: bool = True
  rtol: float = 1e-5
  atol: float = 1e-5
  eta: float = 0.0
  dpm_method: str = "multistep"
  dpm_skip_type: str = "logSNR"
  step_lr: float = 2e-5
  s_churn: float = 0.0
  s_noise: float = 1.0


@dataclasses.dataclass(frozen=True)
class LikelihoodConfig:
  """The ``config.likelihood`` section (``sample.py --eval=nll``).

  Attributes:
    hutchinson: rademacher | gaussian | exact (small D only).
    method: dopri5 | euler | heun | rk4.
    rtol: dopri5 relative tolerance (score_sde: 1e-5).
    atol: dopri5 absolute tolerance (1e-5).
    steps: steps of a fixed-step method.
    eps: the ODE's starting time (1e-5).
    num_levels: levels per pixel for dequantization; 0: 17 for digits, 256 for other images,
      none (continuous bits/dim) for 2-D points.
    batch: examples per jitted call.
  """
  hutchinson: str = "rademacher"
  method: str = "dopri5"
  rtol: float = 1e-5
  atol: float = 1e-5
  steps: int = 100
  eps: float = 1e-5
  num_levels: int = 0
  batch: int = 128


def log_sigma_label(sigma, sigma_min: float, sigma_max: float):
  """``999 (ln sigma - ln sigma_min) / (ln sigma_max - ln sigma_min)``: the network's noise
  input for sigma-conditioned models (affine in log sigma, on DDPM's 0..999 range)."""
  return 999.0 * (jnp.log(sigma) - math.log(sigma_min)) / math.log(sigma_max / sigma_min)


def vp_time_of_abar(sde, abar):
  """The continuous time t with ``alpha(t)^2 = abar`` for a VP SDE (inverse of eq. 29)."""
  b0, b1 = sde.beta_min, sde.beta_max
  return (-b0 + jnp.sqrt(b0**2 - 2.0 * (b1 - b0) * jnp.log(abar))) / (b1 - b0)


class _Net:
  """The network, its init and its eval / train application (closures over the module)."""

  def __init__(self, config, spec: DataSpec):
    self.net = build_network(config.model, spec)
    self.num_classes = getattr(self.net, "num_classes", 0)
    self.spec = spec

  def init(self, key, batch):
    x = batch["x"][:1]
    y = batch["label"][:1] if self.num_classes else None
    k1, k2 = jax.random.split(key)
    variables = self.net.init({"params": k1, "dropout": k2}, x, jnp.zeros((1,), jnp.float32), y=y)
    return variables["params"], {}

  def eval_fn(self, params, y=None):
    return lambda x, label: self.net.apply({"params": params}, x, label, y=y, train=False)

  def labels(self, num):
    return (jnp.arange(num) % self.num_classes) if self.num_classes else None


def _plot_fn(spec, title, split=False):
  if spec.kind != "points":
    return None
  if split:
    def plot(samples, data, path):
      h = len(samples) // 2
      viz.scatter_2d(samples[:h], data, path, title="",
                     extra={"PF-ODE (Heun)": samples[h:]})
    return plot
  return functools.partial(lambda s, d, p, title: viz.scatter_2d(s, d, p, title=title),
                           title=title)


def _default_num_levels(dataset) -> Optional[int]:
  if dataset.spec.kind == "points":
    return None
  return 17 if dataset.name == "digits" else 256


def make_nll_evaluator(sde, score_fn_of_params, lcfg: LikelihoodConfig):
  """``fn(state, dataset, key, num) -> dict``: probability-flow bits/dim on the test set."""

  def evaluate(state, dataset, key, num):
    n = min(int(num), len(dataset.test))
    x = np.asarray(dataset.test.get(np.arange(n))["x"])
    levels = lcfg.num_levels or _default_num_levels(dataset)
    bs = min(lcfg.batch, n)

    @jax.jit
    def run(params, xb, k):
      bpd, res = likelihood.bits_per_dim(
          sde, score_fn_of_params(params), xb, k, num_levels=levels,
          hutchinson=lcfg.hutchinson, method=lcfg.method, rtol=lcfg.rtol, atol=lcfg.atol,
          steps=lcfg.steps, eps=lcfg.eps)
      d = math.prod(xb.shape[1:])
      return bpd, -res.logp / d, res.nfe

    bpds, npd, nfes = [], [], []
    for i, start in enumerate(range(0, n, bs)):
      xb = x[start:start + bs]
      m = len(xb)
      if m < bs:  # pad the last batch (no recompilation); the padding is dropped
        xb = np.concatenate([xb, np.repeat(xb[:1], bs - m, axis=0)])
      b, c, f = jax.device_get(run(state.ema_params, jnp.asarray(xb), jax.random.fold_in(key, i)))
      bpds.append(np.asarray(b)[:m])
      npd.append(np.asarray(c)[:m])
      nfes.append(int(f))
    bpds = np.concatenate(bpds)
    return {
        "bpd": float(bpds.mean()),
        "bpd_sem": float(bpds.std(ddof=1) / np.sqrt(len(bpds))) if len(bpds) > 1 else 0.0,
        "continuous_nats_per_dim": float(np.concatenate(npd).mean()),
        "num_examples": int(n),
        "num_levels": levels,
        "dequantization": "uniform, centered bins" if levels else "none (continuous data)",
        "hutchinson": lcfg.hutchinson,
        "ode_method": lcfg.method,
        "mean_nfe": float(np.mean(nfes)),
    }

  return evaluate


# ----------------------------------------------------------------------------------------------
# Score SDEs.
# ----------------------------------------------------------------------------------------------


def _check_sampler(name, valid, family):
  if name not in valid:
    raise ValueError(f"Unknown sampling.sampler {name!r} for method {family!r}; valid: "
                     f"{', '.join(valid)}.")


def sample_sde(sde, eps_fn, key, shape, s: ScoreSamplingConfig, eps: float):
  """Dispatches a score-SDE sampler by name. ``eps_fn(x, t [B] float)`` is the network.

  Returns:
    ``[*shape]`` samples.
  """
  score_fn = convert.score_fn_from_eps_fn(eps_fn, sde.marginal_std)
  name = s.sampler
  if name in ("pc", "langevin"):
    pred = s.predictor if name == "pc" else "none"
    corr = s.corrector if name == "pc" else "langevin"
    return samplers.pc_sample(sde, score_fn, key, shape, predictor=pred, corrector=corr,
                              snr=s.snr, n_corrector_steps=s.n_corrector_steps,
                              probability_flow=s.probability_flow, steps=s.steps, eps=eps,
                              denoise=s.denoise)
  if name in ("ode-euler", "ode-heun"):
    return samplers.ode_sample(sde, score_fn, key, shape, method=name[4:], steps=s.steps,
                               eps=eps, denoise=s.denoise)
  if name == "ode-adaptive":
    return samplers.ode_sample_adaptive(sde, score_fn, key, shape, rtol=s.rtol, atol=s.atol,
                                        eps=eps, denoise=s.denoise)[0]
  if name == "pc+ode":
    h = shape[0] // 2
    k1, k2 = jax.random.split(key)
    a = sample_sde(sde, eps_fn, k1, (h,) + tuple(shape[1:]), dataclasses.replace(s, sampler="pc"),
                   eps)
    b = sample_sde(sde, eps_fn, k2, (shape[0] - h,) + tuple(shape[1:]),
                   dataclasses.replace(s, sampler="ode-heun", steps=max(s.steps // 2, 1)), eps)
    return jnp.concatenate([a, b])
  if name == "edm-heun":
    if not isinstance(sde, VESDE):
      raise ValueError("edm-heun needs a VE-style model (Karras et al.'s x + sigma n): use it "
                       "with sde.name=vesde, method=ncsn or method=edm; for VP models use "
                       "ode-heun or dpm-solver-{1,2,3}.")
    score_sigma = lambda x, sigma: score_fn(x, sde.t_of_sigma(sigma))
    sigmas = edm.karras_sigmas(s.steps, sde.sigma_min, sde.sigma_max, 7.0)
    return edm.edm_heun_sample(convert.denoiser_from_score_fn(score_sigma), sigmas, key, shape,
                               s_churn=s.s_churn, s_noise=s.s_noise)
  if name.startswith("dpm-solver-"):
    if not isinstance(sde, VPSDE):
      raise ValueError(
          f"{name} needs a VP model (a VP noise schedule alpha_t, sigma_t = sqrt(1 - alpha_t^2)); "
          f"{type(sde).__name__} is not one. Use pc or ode-heun, or train with sde.name=vpsde.")
    from genjax.score.dpm_solver import dpm_solver_sample
    from genjax.score.noise_schedules import VPNoiseSchedule
    ns = VPNoiseSchedule.linear(sde.beta_min, sde.beta_max)
    return dpm_solver_sample(eps_fn, ns, key, shape, steps=s.steps, order=int(name[-1]),
                             method=s.dpm_method, skip_type=s.dpm_skip_type, t_end=eps)
  if name in ("ddpm", "ddim"):
    if not isinstance(sde, VPSDE):
      raise ValueError(f"{name} needs a VP model (DDPM's chain); {type(sde).__name__} is not one.")
    from genjax.diffusion import samplers as dsamplers
    from genjax.diffusion.schedules import make_schedule
    sched = make_schedule(sde.discrete_betas)
    t_of_step = vp_time_of_abar(sde, jnp.asarray(np.cumprod(1 - sde.discrete_betas), jnp.float32))

    def eps_discrete(x, t):  # zero-based step t -> the continuous time with the same abar
      return eps_fn(x, t_of_step[t])

    if name == "ddpm":
      return dsamplers.ddpm_sample(eps_discrete, sched, key, shape, var_type="fixed_large")
    return dsamplers.ddim_sample(eps_discrete, sched, key, shape, num_steps=s.steps, eta=s.eta)
  raise ValueError(f"Unknown sampler {name!r}; valid: {', '.join(SDE_SAMPLERS)}.")


def build_sde_model(config, spec: DataSpec) -> Method:
  """The score-SDE method from ``config.sde``, ``config.model``, ``config.sampling`` and
  ``config.likelihood``."""
  cfg = from_section(SDEConfig, config.sde, where="sde")
  s = from_section(ScoreSamplingConfig, config.sampling, where="sampling")
  lcfg = from_section(LikelihoodConfig, config.get("likelihood", {}), where="likelihood")
  _check_sampler(s.sampler, SDE_SAMPLERS, "sde")
  sde = get_sde(cfg.name, beta_min=cfg.beta_min, beta_max=cfg.beta_max,
                sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, num_scales=cfg.num_scales)
  if (s.sampler.startswith("dpm-solver-") or s.sampler in ("ddpm", "ddim")) and not isinstance(
      sde, VPSDE):
    raise ValueError(f"sampling.sampler={s.sampler} needs a VP model (VP noise schedule / DDPM "
                     f"chain), not sde.name={cfg.name!r}; use pc, ode-heun or ode-adaptive.")
  if s.sampler == "edm-heun" and not isinstance(sde, VESDE):
    raise ValueError(f"sampling.sampler=edm-heun needs a VE-style model (sde.name=vesde, "
                     f"method=ncsn or method=edm), not sde.name={cfg.name!r}.")
  eps = cfg.sampling_eps if cfg.sampling_eps is not None else (
      1e-5 if isinstance(sde, VESDE) else 1e-3)
  net = _Net(config, spec)

  def eps_model(params, x, t, key, y=None):  # training: network output read as eps
    return net.net.apply({"params": params}, x, 999.0 * t, y=y, train=True,
                         rngs={"dropout": key})

  def score_model_for(y):
    def score_model(params, x, t, key):
      return convert.score_from_eps(eps_model(params, x, t, key, y), sde.marginal_std(t))
    return score_model

  def loss(params, batch, key):
    y = batch["label"] if net.num_classes else None
    fn = losses.make_sde_loss(score_model_for(y), sde, reduce_mean=cfg.reduce_mean,
                              likelihood_weighting=cfg.likelihood_weighting, eps=cfg.train_eps)
    return fn(params, batch, key)

  def eps_fn_of(params, y=None):
    f = net.eval_fn(params, y)
    return lambda x, t: f(x, 999.0 * t)

  def sample(params, key, num):
    return sample_sde(sde, eps_fn_of(params, net.labels(num)), key, (num, *spec.shape), s, eps)

  def score_fn_of_params(params):
    return convert.score_fn_from_eps_fn(eps_fn_of(params), sde.marginal_std)

  evaluators = {}
  if not net.num_classes:
    evaluators["nll"] = make_nll_evaluator(sde, score_fn_of_params, lcfg)
  return Method(name=f"sde_{cfg.name}", init=net.init, loss=loss, sample=sample,
                plot_samples=_plot_fn(spec, f"{cfg.name} ({s.sampler})", s.sampler == "pc+ode"),
                evaluators=evaluators)


# ----------------------------------------------------------------------------------------------
# NCSN.
# ----------------------------------------------------------------------------------------------


def build_ncsn(config, spec: DataSpec) -> Method:
  """NCSN (Song & Ermon 2019) from ``config.ncsn``, ``config.model``, ``config.sampling``."""
  cfg = from_section(NCSNConfig, config.ncsn, where="ncsn")
  s = from_section(ScoreSamplingConfig, config.sampling, where="sampling")
  _check_sampler(s.sampler, NCSN_SAMPLERS, "ncsn")
  sigmas = ncsn.geometric_sigmas(cfg.sigma_max, cfg.sigma_min, cfg.num_scales)
  net = _Net(config, spec)
  label = functools.partial(log_sigma_label, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)

  def loss(params, batch, key):
    y = batch["label"] if net.num_classes else None

    def score_model(params, x, sigma, k):
      out = net.net.apply({"params": params}, x, label(sigma), y=y, train=True,
                          rngs={"dropout": k})
      return convert.score_from_eps(out, sigma)

    return ncsn.make_ncsn_loss(score_model, sigmas, reduce_mean=cfg.reduce_mean)(params, batch, key)

  def sample(params, key, num):
    f = net.eval_fn(params, net.labels(num))
    score_fn = lambda x, sigma: convert.score_from_eps(f(x, label(sigma)), sigma)
    shape = (num, *spec.shape)
    if s.sampler == "langevin":
      lim = (-1.0, 1.0) if spec.kind == "image" else (-4.0, 4.0)
      return ncsn.annealed_langevin_sample(score_fn, sigmas, key, shape, n_steps_each=s.steps,
                                           step_lr=s.step_lr, denoise=s.denoise, init_range=lim)
    ks = edm.karras_sigmas(s.steps, cfg.sigma_min, cfg.sigma_max, 7.0)
    return edm.edm_heun_sample(convert.denoiser_from_score_fn(score_fn), ks, key, shape,
                               s_churn=s.s_churn, s_noise=s.s_noise)

  return Method(name="ncsn", init=net.init, loss=loss, sample=sample,
                plot_samples=_plot_fn(spec, f"NCSN ({s.sampler})"))


# ----------------------------------------------------------------------------------------------
# EDM.
# ----------------------------------------------------------------------------------------------


def edm_denoiser(config, spec: DataSpec):
  """The preconditioned EDM denoiser of an ``edm`` config, as a pure function of params.

  Returns ``(net, denoise)`` with ``denoise(params, x, sigma [B], y=None, key=None)``:
  ``D = c_skip x + c_out F(c_in x, c_noise)`` (Karras et al. 2022 Table 1), where the network
  sees ``c_noise`` through :func:`log_sigma_label`. With ``key`` the network runs in training
  mode (dropout). Used by :func:`build_edm` and by anything that needs a trained EDM model as
  a teacher (``genjax.distill``).
  """
  cfg = from_section(EDMConfig, config.edm, where="edm")
  net = _Net(config, spec)
  # c_noise = ln(sigma)/4 -> the affine label 999 (ln sigma - ln smin) / ln(smax / smin).
  label = lambda c_noise: log_sigma_label(jnp.exp(4.0 * c_noise), cfg.sigma_min, cfg.sigma_max)

  def denoise(params, x, sigma, y=None, key=None):
    kw = dict(train=False) if key is None else dict(train=True, rngs={"dropout": key})
    f = lambda x_in, c_noise: net.net.apply({"params": params}, x_in, label(c_noise), y=y, **kw)
    return edm.make_edm_denoiser(f, cfg.sigma_data)(x, sigma)

  return net, denoise


def build_edm(config, spec: DataSpec) -> Method:
  """EDM (Karras et al. 2022) from ``config.edm``, ``config.model``, ``config.sampling``."""
  cfg = from_section(EDMConfig, config.edm, where="edm")
  s = from_section(ScoreSamplingConfig, config.sampling, where="sampling")
  _check_sampler(s.sampler, EDM_SAMPLERS, "edm")
  net, denoise = edm_denoiser(config, spec)

  def loss(params, batch, key):
    y = batch["label"] if net.num_classes else None
    denoise_model = lambda params, x, sigma, k: denoise(params, x, sigma, y, k)
    return edm.make_edm_loss(denoise_model, sigma_data=cfg.sigma_data, p_mean=cfg.p_mean,
                             p_std=cfg.p_std)(params, batch, key)

  def sample(params, key, num):
    y = net.labels(num)
    denoise_fn = lambda x, sigma: denoise(params, x, sigma, y)
    sig = edm.karras_sigmas(s.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    return edm.edm_heun_sample(denoise_fn, sig, key, (num, *spec.shape), s_churn=s.s_churn,
                               s_noise=s.s_noise)

  return Method(name="edm", init=net.init, loss=loss, sample=sample,
                plot_samples=_plot_fn(spec, f"EDM ({s.sampler}, {s.steps} steps)"))
