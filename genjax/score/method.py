"""Score-based models as trainer :class:`~genjax.training.method.Method` s.

Three families share one network wrapper (``config.model``: a U-Net for images, an MLP for
2-D points) whose output is read as eps (score_sde's convention, ``s = -eps / sigma_t``):

  * ``method = "sde"`` (``config.sde``): VP / sub-VP / VE SDE, continuous DSM loss
    (Song et al. 2021). The network sees ``999 t`` (for VE, ``t`` is affine in
    ``log sigma(t)``: log-sigma noise conditioning up to scale).
  * ``method = "ncsn"`` (``config.ncsn``): geometric sigmas, DSM with ``lambda = sigma^2``,
    annealed Langevin (Song & Ermon 2019), on :class:`~genjax.sampling.processes.EDMProcess`.
  * ``method = "edm"`` (``config.edm``): Karras et al. 2022 preconditioning and loss; the
    network ``F(c_in x, c_noise)`` sees ``c_noise = ln(sigma) / 4`` through the affine
    :meth:`~genjax.sampling.processes.EDMProcess.noise_label`.

Sampling is the sampling floor's (:mod:`genjax.sampling.registry`; ``config.sampling``,
``sample.py --sampler``): every sampler the process supports (``sample.py --help`` lists them),
classifier-free guidance for class-conditional models, and inpainting / colorization / SDEdit.
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
from genjax.nets.build import build_network
from genjax.sampling import registry
from genjax.sampling.convert import denoiser, score_fn_of, score_from_eps
from genjax.sampling.langevin import geometric_sigmas
from genjax.sampling.processes import EDMProcess, get_sde
from genjax.score import edm, likelihood, losses, ncsn
from genjax.typed_config import from_section
from genjax.training.method import Method
from genjax.types import DataSpec

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

  The Karras schedule's exponent is a sampler setting, ``sampling.rho``.
  """
  sigma_data: float = 0.5
  p_mean: float = -1.2
  p_std: float = 1.2
  sigma_min: float = 0.002
  sigma_max: float = 80.0


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

  def eval_fn(self, params):
    """``f(x, net_time, cond)``: the network in eval mode; ``cond`` is the labels (or None)."""
    return lambda x, label, y: self.net.apply({"params": params}, x, label,
                                              y=y if self.num_classes else None, train=False)

  def sample_fn(self, sampling, model_of, spec):
    """The Method's ``sample``; class-conditional models cycle the classes or take
    ``sampling.label``."""
    k = self.num_classes
    registry.class_labels(1, k, sampling.label)  # a bad label fails here, before work
    if sampling.label >= 0 and not k:
      raise ValueError("sampling.label needs a class-conditional network: set "
                       "config.model.num_classes (-1 takes it from the data).")
    cond_of = (lambda num: registry.class_labels(num, k, sampling.label)) if k else None
    return registry.make_sample_fn(sampling, model_of, spec.shape, cond_of)


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


def build_sde_model(config, spec: DataSpec) -> Method:
  """The score-SDE method from ``config.sde``, ``config.model``, ``config.sampling`` and
  ``config.likelihood``."""
  cfg = from_section(SDEConfig, config.sde, where="sde")
  lcfg = from_section(LikelihoodConfig, config.get("likelihood", {}), where="likelihood")
  sampling = registry.from_config(config.get("sampling"), default="pc")
  sde = get_sde(cfg.name, beta_min=cfg.beta_min, beta_max=cfg.beta_max,
                sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, num_scales=cfg.num_scales,
                sampling_eps=cfg.sampling_eps)
  net = _Net(config, spec)

  def eps_model(params, x, t, key, y=None):  # training: network output read as eps
    return net.net.apply({"params": params}, x, 999.0 * t, y=y, train=True,
                         rngs={"dropout": key})

  def score_model_for(y):
    def score_model(params, x, t, key):
      return score_from_eps(eps_model(params, x, t, key, y), sde.marginal_std(t))
    return score_model

  def loss(params, batch, key):
    y = batch["label"] if net.num_classes else None
    fn = losses.make_sde_loss(score_model_for(y), sde, reduce_mean=cfg.reduce_mean,
                              likelihood_weighting=cfg.likelihood_weighting, eps=cfg.train_eps)
    return fn(params, batch, key)

  def model_of(params) -> registry.Model:
    f = net.eval_fn(params)
    return registry.Model(process=sde, model_fn=lambda x, t, y: f(x, 999.0 * t, y))

  def score_fn_of_params(params):
    m = model_of(params)
    return score_fn_of(denoiser(m.model_fn, sde), sde)

  evaluators = {}
  if not net.num_classes:
    evaluators["nll"] = make_nll_evaluator(sde, score_fn_of_params, lcfg)
  sample = net.sample_fn(sampling, model_of, spec)
  return Method(name=f"sde_{cfg.name}", init=net.init, loss=loss, sample=sample,
                plot_samples=_plot_fn(spec, f"{cfg.name} ({sampling.sampler})",
                                      sampling.sampler == "pc+ode"),
                evaluators=evaluators, sample_tag=registry.tag(sampling, model_of(None)),
                modes=registry.MODES)


# ----------------------------------------------------------------------------------------------
# NCSN.
# ----------------------------------------------------------------------------------------------


def build_ncsn(config, spec: DataSpec) -> Method:
  """NCSN (Song & Ermon 2019) from ``config.ncsn``, ``config.model``, ``config.sampling``.

  The levels live on :class:`~genjax.sampling.processes.EDMProcess` (time = sigma, between
  sigma_L and sigma_1); ``langevin`` is annealed Langevin on them, and the continuous samplers
  (``edm-heun``, ...) treat the score network as one of sigma.
  """
  cfg = from_section(NCSNConfig, config.ncsn, where="ncsn")
  sampling = registry.from_config(config.get("sampling"), default="langevin")
  sigmas = geometric_sigmas(cfg.sigma_max, cfg.sigma_min, cfg.num_scales)
  process = EDMProcess(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
  net = _Net(config, spec)

  def loss(params, batch, key):
    y = batch["label"] if net.num_classes else None

    def score_model(params, x, sigma, k):
      out = net.net.apply({"params": params}, x, process.noise_label(sigma), y=y, train=True,
                          rngs={"dropout": k})
      return score_from_eps(out, sigma)

    return ncsn.make_ncsn_loss(score_model, sigmas, reduce_mean=cfg.reduce_mean)(params, batch, key)

  def model_of(params) -> registry.Model:
    f = net.eval_fn(params)
    return registry.Model(process=process, model_fn=lambda x, s, y: f(x, process.noise_label(s), y),
                          levels=sigmas)

  return Method(name="ncsn", init=net.init, loss=loss,
                sample=net.sample_fn(sampling, model_of, spec),
                plot_samples=_plot_fn(spec, f"NCSN ({sampling.sampler})"),
                sample_tag=registry.tag(sampling, model_of(None)), modes=registry.MODES)


# ----------------------------------------------------------------------------------------------
# EDM.
# ----------------------------------------------------------------------------------------------


def edm_denoiser(config, spec: DataSpec):
  """The preconditioned EDM denoiser of an ``edm`` config, as a pure function of params.

  Returns ``(net, process, denoise)`` with ``denoise(params, x, sigma, y=None, key=None)``:
  ``D = c_skip x + c_out F(c_in x, c_noise)`` (Karras et al. 2022 Table 1), where the network
  sees ``c_noise`` through :meth:`EDMProcess.noise_label`. With ``key`` the network runs in
  training mode (dropout). Used by :func:`build_edm` and by anything that needs a trained EDM
  model as a teacher (``genjax.distill``).
  """
  cfg = from_section(EDMConfig, config.edm, where="edm")
  net = _Net(config, spec)
  process = EDMProcess(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
  # c_noise = ln(sigma)/4 -> the affine label 999 (ln sigma - ln smin) / ln(smax / smin).
  label = lambda c_noise: process.noise_label(jnp.exp(4.0 * c_noise))

  def denoise(params, x, sigma, y=None, key=None):
    kw = dict(train=False) if key is None else dict(train=True, rngs={"dropout": key})
    y = y if net.num_classes else None
    f = lambda x_in, c_noise: net.net.apply({"params": params}, x_in, label(c_noise), y=y, **kw)
    return edm.make_edm_denoiser(f, cfg.sigma_data)(x, sigma)

  return net, process, denoise


def build_edm(config, spec: DataSpec) -> Method:
  """EDM (Karras et al. 2022) from ``config.edm``, ``config.model``, ``config.sampling``."""
  cfg = from_section(EDMConfig, config.edm, where="edm")
  sampling = registry.from_config(config.get("sampling"), default="edm-heun")
  net, process, denoise = edm_denoiser(config, spec)

  def loss(params, batch, key):
    y = batch["label"] if net.num_classes else None
    denoise_model = lambda params, x, sigma, k: denoise(params, x, sigma, y, k)
    return edm.make_edm_loss(denoise_model, sigma_data=cfg.sigma_data, p_mean=cfg.p_mean,
                             p_std=cfg.p_std)(params, batch, key)

  def model_of(params) -> registry.Model:
    return registry.Model(process=process, prediction="x0",
                          model_fn=lambda x, sigma, y: denoise(params, x, sigma, y))

  return Method(name="edm", init=net.init, loss=loss,
                sample=net.sample_fn(sampling, model_of, spec),
                plot_samples=_plot_fn(spec, f"EDM ({sampling.sampler}, "
                                            f"{registry.resolve_steps(sampling, model_of(None))} "
                                            f"steps)"),
                sample_tag=registry.tag(sampling, model_of(None)), modes=registry.MODES)
