"""The samplers' catalog and the typed sampling config: what users see, without JAX.

Every sampler of :mod:`genjax.sampling` has one entry in :data:`SAMPLERS`: its name, what it
does, what ``steps`` means for it, which :class:`SamplingConfig` fields it reads, which
processes and kinds of model it samples, and how its output files are named. ``sample.py``
builds its flags and ``--help`` from this module (it imports no JAX, so the command line
answers at once); :mod:`genjax.sampling.registry` runs the entries.

Processes are named by their ``kind``: ``discrete`` (a DDPM schedule), ``vp``, ``subvp``,
``ve``, ``cosine``, ``discrete_view`` (a DDPM schedule in continuous time) and ``edm``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional

from genjax.typed_config import field

__all__ = ["MODES", "MODEL_KINDS", "PROCESS_KINDS", "SAMPLERS", "Sampler", "SamplingConfig",
           "help_by_method", "help_text", "resolve_steps", "sampler_names", "tag",
           "validate_config"]

MODES = ("sample", "inpaint", "colorize", "img2img")
MODEL_KINDS = ("denoiser", "consistency", "student")
PROCESS_KINDS = ("discrete", "vp", "subvp", "ve", "cosine", "discrete_view", "edm")


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """The ``config.sampling`` section (``sample.py --<field>`` overrides any field).

  Which fields a sampler reads is listed in :data:`SAMPLERS` (``sample.py --help``).

  Attributes:
    sampler: the sampler's name; "" is the method's default.
    steps: the sampler's step count (its meaning and default differ per sampler); 0 is the
      sampler's default.
    eta: DDIM's stochasticity (0: deterministic; 1: ancestral with beta-tilde); euler-ancestral's
      ancestral fraction (0 reads as 1, k-diffusion's default; edm-euler is the eta = 0 one).
    spacing: the discrete grid of DDIM and PNDM (and of the DPM-Solver family with
      ``dpm_skip_type=discrete``): uniform | quadratic (the DDIM paper's code) | leading |
      linspace | trailing (diffusers' ``timestep_spacing``; trailing starts at the last step, Lin
      et al. 2024 Sec. 3.3) | optimal (Watson et al. 2021's dynamic-programming path, from
      ``analytic_moments``).
    set_alpha_to_one: DDIM's last step lands on clean data (True) or on the first level
      (diffusers' ``set_alpha_to_one=False``).
    steps_offset: diffusers' scheduler field: added to every step of the ``leading`` discrete
      grid (ddim, pndm, the DPM-Solver family with ``dpm_skip_type=discrete``); Stable
      Diffusion 1.x uses 1.
    respacing: ancestral DDPM's kept steps: "" (all), "N", "n1,n2,..." or "ddimN" (Nichol &
      Dhariwal 2021 Sec. 4).
    dpm_method: DPM-Solver singlestep | multistep.
    dpm_skip_type: the DPM-Solver family's grid: time_uniform | logSNR | time_quadratic |
      karras (Karras et al. 2022 eq. 5 in sigma = exp(-lambda), exponent ``rho``) | discrete
      (the discrete chain's steps of ``spacing``, ending with one x0 step on clean data, as
      diffusers' schedulers).
    dpm_denoise: end DPM-Solver with an x0-prediction step (one more NFE).
    lower_order_final: the multistep solvers' last steps use lower orders (diffusers'
      ``lower_order_final``; stabler below 15 steps).
    unipc_variant: UniPC's B(h): bh1 (h) | bh2 (e^h - 1) (Zhao et al. 2023, Sec. 3.3).
    unic: add the UniC corrector (Zhao et al. 2023, Alg. 1) after each DPM-Solver++ or DEIS step
      (UniPC always corrects).
    deis_basis: DEIS's polynomial variable: t (tAB-DEIS, Zhang & Chen 2023 eq. 14) | log_rho
      (diffusers' DEISMultistepScheduler).
    thresholding: the predicted x0 of every sampler: model (the model's own clip, as before) |
      none | static (clip to [-1, 1]) | dynamic (Imagen, Saharia et al. 2022 Sec. 2.3).
    threshold_percentile: dynamic thresholding's percentile p of |x0|.
    threshold_max: an upper bound on dynamic thresholding's s (0: none, as Imagen).
    analytic_moments: an ``analytic_moments.npz`` (``python -m benchmarks.analytic_moments``):
      with it, DDIM adds Analytic-DPM's optimal reverse variance (Bao et al. 2022, Thm. 1-2;
      eta = 0: Analytic-DDIM, eta = 1: Analytic-DDPM), and ``spacing=optimal`` reads its
      L_vlb cost table.
    predictor: PC predictor: euler_maruyama | reverse_diffusion | ancestral_sampling | none.
    corrector: PC corrector: langevin | ald | none.
    snr: the corrector's signal-to-noise ratio (score_sde: 0.16 VE, 0.01 VP / sub-VP).
    n_corrector_steps: corrector steps per predictor step.
    probability_flow: PC predictor on the probability-flow ODE.
    denoise: a final noise-removal step (pc, ode, langevin).
    rtol: ode-adaptive relative tolerance.
    atol: ode-adaptive absolute tolerance.
    step_lr: annealed Langevin's epsilon (Song & Ermon 2019).
    rho: the Karras schedule's exponent (edm-heun).
    s_churn: edm-heun churn (0: deterministic Algorithm 1).
    s_noise: edm-heun S_noise.
    s_tmin: edm-heun churn range start.
    s_tmax: edm-heun churn range end (0: no upper limit).
    taus: consistency sampling's intermediate levels (() = a Karras rule).
    guidance_scale: classifier-free guidance weight w (Ho & Salimans 2022, eq. 6): the model
      must have learned the null condition (diffusion.cond_drop_prob > 0).
    label: the class to sample (class-conditional or classifier-guided); -1 cycles the classes.
    classifier_workdir: classifier guidance (Dhariwal & Nichol 2021): a trained
      ``noisy_classifier`` run on the same forward process.
    classifier_scale: its gradient scale s.
    mode: sample | inpaint | colorize | img2img (training-free conditional sampling).
    input: inpaint / colorize / img2img: an image file, a folder of images, or a dataset split
      (``test`` or ``train``).
    mask: inpaint: the region to fill in, the left | right | top | bottom half, the center
      square or a random half of the pixels; or a mask image (white = kept).
    strength: img2img: how far into the noise the input is pushed, in (0, 1] (SDEdit's t_0).
    repaint_jump: RePaint's jump length (ddpm sampler, inpaint / colorize).
    repaint_resample: RePaint's resamplings per jump (1: plain replacement).
  """
  sampler: str = ""
  steps: int = field(0, ge=0)
  eta: float = field(0.0, ge=0.0)
  spacing: str = field("uniform", choices=("uniform", "quadratic", "leading", "linspace",
                                           "trailing", "optimal"))
  set_alpha_to_one: bool = True
  steps_offset: int = field(0, ge=0)
  respacing: str = ""
  dpm_method: str = field("multistep", choices=("singlestep", "multistep"))
  dpm_skip_type: str = field("logSNR", choices=("time_uniform", "logSNR", "time_quadratic",
                                                 "karras", "discrete"))
  dpm_denoise: bool = False
  lower_order_final: bool = True
  unipc_variant: str = field("bh2", choices=("bh1", "bh2"))
  unic: bool = False
  deis_basis: str = field("t", choices=("t", "log_rho"))
  thresholding: str = field("model", choices=("model", "none", "static", "dynamic"))
  threshold_percentile: float = field(0.995, gt=0.0, le=1.0)
  threshold_max: float = field(0.0, ge=0.0)
  analytic_moments: str = ""
  predictor: str = field("reverse_diffusion", choices=(
      "euler_maruyama", "reverse_diffusion", "ancestral_sampling", "none"))
  corrector: str = field("langevin", choices=("langevin", "ald", "none"))
  snr: float = field(0.16, ge=0.0)
  n_corrector_steps: int = field(1, ge=1)
  probability_flow: bool = False
  denoise: bool = True
  rtol: float = field(1e-5, gt=0.0)
  atol: float = field(1e-5, gt=0.0)
  step_lr: float = field(2e-5, gt=0.0)
  rho: float = field(7.0, gt=0.0)
  s_churn: float = field(0.0, ge=0.0)
  s_noise: float = field(1.0, gt=0.0)
  s_tmin: float = field(0.0, ge=0.0)
  s_tmax: float = field(0.0, ge=0.0)
  taus: tuple[float, ...] = ()
  guidance_scale: float = 0.0
  label: int = field(-1, ge=-1)
  classifier_workdir: str = ""
  classifier_scale: float = 1.0
  mode: str = field("sample", choices=MODES)
  input: str = ""
  mask: str = "center"
  strength: float = field(0.5, gt=0.0, le=1.0)
  repaint_jump: int = field(1, ge=1)
  repaint_resample: int = field(1, ge=1)

  def __post_init__(self):
    from genjax import typed_config
    typed_config.validate(self, "sampling")


@dataclasses.dataclass(frozen=True)
class Sampler:
  """A catalog entry.

  Attributes:
    name: what ``config.sampling.sampler`` / ``--sampler`` says.
    summary: one line for ``--help``.
    steps_help: what ``steps`` means for it, and its default.
    view: the process it runs on: "discrete" (a discrete VP chain), "continuous" (a
      continuous-time process; a discrete schedule is seen in continuous time) or "native"
      (the model's own).
    options: the :class:`SamplingConfig` fields it reads (besides ``steps``).
    kinds: the model kinds it samples (:data:`MODEL_KINDS`).
    processes: the process kinds it samples (:data:`PROCESS_KINDS`).
    constraint: it supports inpainting and colorization.
    start: it supports a start time (img2img).
    default_steps: ``default_steps(model) -> int``, the ``steps`` of ``steps = 0``.
    tag: ``tag(cfg, steps) -> str``, the output file stem.
  """
  name: str
  summary: str
  steps_help: str
  view: str
  options: tuple
  kinds: tuple = ("denoiser",)
  processes: tuple = PROCESS_KINDS
  constraint: bool = True
  start: bool = True
  default_steps: Callable[[Any], int] = lambda m: 0
  tag: Optional[Callable[[SamplingConfig, Any], str]] = None


def _steps_tag(name):
  return lambda cfg, steps: f"{name}_{steps}"


def _ddim_tag(cfg, steps):
  out = f"ddim{steps}_eta{cfg.eta}"
  return out if cfg.set_alpha_to_one else out + "_lastabar0"


def _ddpm_tag(cfg, steps):
  out = f"ddpm_respaced{cfg.respacing}" if cfg.respacing else "ddpm"
  if cfg.repaint_resample > 1:
    out += f"_repaint{cfg.repaint_jump}x{cfg.repaint_resample}"
  return out


def _process_n(model) -> int:
  return int(getattr(model.process, "N", 1000))


_PC_OPTS = ("predictor", "corrector", "snr", "n_corrector_steps", "probability_flow", "denoise")
_DPM_OPTS = ("dpm_method", "dpm_skip_type", "dpm_denoise", "spacing")

SAMPLERS: dict[str, Sampler] = {s.name: s for s in [
    Sampler("ddpm", "ancestral sampling (Ho et al. 2020 Alg. 2; respaced: Nichol & Dhariwal "
            "Sec. 4; RePaint when inpainting)", "unused: every step of the (respaced) chain",
            "discrete", ("respacing", "repaint_jump", "repaint_resample"),
            processes=("discrete", "vp"), tag=_ddpm_tag),
    Sampler("ddim", "DDIM (Song et al. 2021 eq. 12, 16); a distilled student's sampler",
            "grid steps (default 50; a student: its own)", "native",
            ("eta", "spacing", "set_alpha_to_one"), kinds=("denoiser", "student"),
            default_steps=lambda m: m.student_steps if m.kind == "student" else 50,
            tag=_ddim_tag),
    Sampler("pc", "predictor-corrector (Song et al. 2021 Alg. 1; score_sde)",
            "levels N (default: the process's N)", "continuous", _PC_OPTS,
            default_steps=_process_n, tag=_steps_tag("pc")),
    Sampler("langevin", "annealed Langevin dynamics (Song & Ermon 2019 Alg. 1 on an NCSN's "
            "levels; otherwise corrector-only PC)",
            "updates per level (NCSN, default 100) or levels N", "continuous",
            ("step_lr", "corrector", "snr", "n_corrector_steps", "denoise"), start=False,
            default_steps=lambda m: 100 if m.levels is not None else _process_n(m),
            tag=_steps_tag("langevin")),
    Sampler("ode-euler", "probability-flow ODE, Euler (Song et al. 2021 eq. 13)",
            "steps (default 100)", "continuous", ("denoise",), default_steps=lambda m: 100,
            tag=_steps_tag("ode-euler")),
    Sampler("ode-heun", "probability-flow ODE, Heun", "steps (default 100)", "continuous",
            ("denoise",), default_steps=lambda m: 100, tag=_steps_tag("ode-heun")),
    Sampler("ode-adaptive", "probability-flow ODE, adaptive Dormand-Prince (score_sde's RK45)",
            "unused (rtol, atol)", "continuous", ("rtol", "atol", "denoise"), constraint=False,
            tag=lambda cfg, steps: f"ode-adaptive_{cfg.rtol:g}"),
    Sampler("pc+ode", "half PC, half ODE-Heun (2-D scatter plots)",
            "PC levels (the ODE: half as many)", "continuous", _PC_OPTS, constraint=False,
            start=False, default_steps=_process_n, tag=_steps_tag("pc+ode")),
    *[Sampler(f"dpm-solver-{k}", f"DPM-Solver-{k} (Lu et al. 2022; multistep: 2022b)",
              "network evaluations (default 20)", "continuous", _DPM_OPTS,
              default_steps=lambda m: 20, tag=_steps_tag(f"dpm-solver-{k}")) for k in (1, 2, 3)],
    *[Sampler(f"dpm-solver++-{v}", f"DPM-Solver++({v.upper()}) (Lu et al. 2022b, "
              f"{'Alg. 1' if v == '2s' else 'Alg. 2 / App. B'}): data prediction, stable under "
              "large guidance", "network evaluations (default 20)", "continuous",
              ("dpm_skip_type", "dpm_denoise", "lower_order_final", "unic", "spacing"),
              default_steps=lambda m: 20, tag=_steps_tag(f"dpm-solver++-{v}"))
      for v in ("2s", "2m", "3m")],
    *[Sampler(f"unipc-{k}", f"UniPC-{k} (Zhao et al. 2023): UniP predictor + UniC corrector",
              "network evaluations (default 10)", "continuous",
              ("dpm_skip_type", "dpm_denoise", "lower_order_final", "unipc_variant", "spacing"),
              default_steps=lambda m: 10, tag=_steps_tag(f"unipc-{k}")) for k in (1, 2, 3)],
    *[Sampler(f"deis-{k}", f"DEIS-{k} (Zhang & Chen 2023): exponential integrator, polynomial "
              "extrapolation of eps (AB)", "network evaluations (default 20)", "continuous",
              ("dpm_skip_type", "dpm_denoise", "lower_order_final", "deis_basis", "unic",
               "spacing"), default_steps=lambda m: 20, tag=_steps_tag(f"deis-{k}"))
      for k in (1, 2, 3)],
    Sampler("pndm", "PNDM (Liu et al. 2022): pseudo Runge-Kutta warm-up, then pseudo linear "
            "multistep (diffusers' PNDMScheduler)", "grid steps (default 50; steps + 9 "
            "evaluations)", "discrete", ("spacing", "set_alpha_to_one"),
            processes=("discrete", "vp"), constraint=False, start=False,
            default_steps=lambda m: 50, tag=_steps_tag("pndm")),
    Sampler("edm-heun", "Heun on Karras sigmas, with churn (Karras et al. 2022 Alg. 1-2)",
            "Karras levels (default 18; 2N-1 evaluations)", "continuous",
            ("rho", "s_churn", "s_noise", "s_tmin", "s_tmax"), default_steps=lambda m: 18,
            tag=_steps_tag("edm-heun")),
    Sampler("edm-euler", "Euler on Karras sigmas, with churn (Karras et al. 2022 Alg. 2 with "
            "Euler steps)", "Karras levels (default 35; N evaluations)", "continuous",
            ("rho", "s_churn", "s_noise", "s_tmin", "s_tmax"), default_steps=lambda m: 35,
            tag=_steps_tag("edm-euler")),
    Sampler("euler-ancestral", "Euler ancestral in sigma space (k-diffusion; diffusers' "
            "EulerAncestralDiscreteScheduler) on Karras sigmas", "Karras levels (default 35; "
            "N evaluations)", "continuous", ("eta", "rho", "s_noise"), start=False,
            default_steps=lambda m: 35, tag=_steps_tag("euler-ancestral")),
    Sampler("consistency", "consistency sampling (Song et al. 2023 Alg. 1)",
            "network evaluations (default 1)", "native", ("taus", "rho"),
            kinds=("consistency",), processes=("edm",), start=False,
            default_steps=lambda m: 1, tag=_steps_tag("consistency")),
]}
_X0_OPTS = ("thresholding", "threshold_percentile", "threshold_max")
for _name, _s in SAMPLERS.items():  # every denoiser's sampler forms x0: thresholding applies
  if "denoiser" in _s.kinds:
    extra = _X0_OPTS + (("analytic_moments",) if _name == "ddim" else ())
    SAMPLERS[_name] = dataclasses.replace(_s, options=_s.options + extra)


def sampler_names(process_kind: Optional[str] = None, kind: str = "denoiser") -> list[str]:
  """The samplers that sample a model of ``kind`` on a process of ``process_kind``."""
  return [s.name for s in SAMPLERS.values() if kind in s.kinds
          and (process_kind is None or process_kind in s.processes)]


def resolve_steps(cfg: SamplingConfig, model) -> int:
  """``cfg.steps``, or the sampler's default for ``model`` when it is 0."""
  if cfg.steps:
    return int(cfg.steps)
  return int(SAMPLERS[cfg.sampler].default_steps(model))


def on_discrete_grid(cfg: SamplingConfig) -> bool:
  """Whether ``cfg``'s sampler steps on the discrete grid of ``spacing`` that ``steps_offset``
  shifts: ddim, pndm, the DPM-Solver family with ``dpm_skip_type=discrete``."""
  return cfg.sampler in ("ddim", "pndm") or (
      cfg.sampler.startswith(("dpm", "unipc", "deis")) and cfg.dpm_skip_type == "discrete")


def tag(cfg: SamplingConfig, model=None) -> str:
  """The output file stem naming the sampler and its settings, so that runs with different
  settings do not overwrite each other: ``ddim50_eta1.0``, ``ddpm``, ``pc_1000``,
  ``dpm-solver-2_20``, ``ddpm_respaced50``, ``ddim50_eta1.0_w2.0_label3``,
  ``ddim50_eta1.0_inpaint``, ``ddim50_eta0.0_leading_offset1`` (a grid other than uniform, and
  diffusers' ``steps_offset``)."""
  s = SAMPLERS.get(cfg.sampler)
  if s is None:
    return cfg.sampler or "samples"
  steps = cfg.steps if (cfg.steps or model is None) else resolve_steps(cfg, model)
  out = s.tag(cfg, steps or "default")
  if on_discrete_grid(cfg) and cfg.spacing not in ("uniform", "optimal"):  # optimal: below
    out += f"_{cfg.spacing}"
  if cfg.steps_offset:
    out += f"_offset{cfg.steps_offset}"
  if cfg.thresholding != "model":
    out += f"_x0{cfg.thresholding}"
  if cfg.analytic_moments and cfg.sampler == "ddim":
    out += "_analytic" if cfg.spacing != "optimal" else "_analytic_optimal"
  if cfg.guidance_scale:
    out += f"_w{cfg.guidance_scale}"
  if cfg.classifier_workdir:
    out += f"_cls{cfg.classifier_scale}"
  if cfg.label >= 0:
    out += f"_label{cfg.label}"
  if cfg.mode != "sample":
    out += f"_{cfg.mode}" + (f"{cfg.strength}" if cfg.mode == "img2img" else "")
  return out


def validate_config(cfg: SamplingConfig) -> None:
  """The checks that need no model: a known sampler, finite scales, a mode the sampler has.

  Raises:
    ValueError: naming the field and what it accepts.
  """
  if cfg.sampler not in SAMPLERS:
    raise ValueError(f"Unknown sampling.sampler {cfg.sampler!r}; valid: "
                     f"{', '.join(SAMPLERS)}.")
  for name in ("guidance_scale", "classifier_scale"):
    if not math.isfinite(getattr(cfg, name)):
      raise ValueError(f"sampling.{name} must be a finite number, got {getattr(cfg, name)!r}.")
  s = SAMPLERS[cfg.sampler]
  if cfg.mode in ("inpaint", "colorize") and not s.constraint:
    raise ValueError(f"sampler {cfg.sampler!r} cannot inpaint or colorize; use one of "
                     f"{', '.join(n for n, e in SAMPLERS.items() if e.constraint)}.")
  if cfg.mode == "img2img" and not s.start:
    raise ValueError(f"sampler {cfg.sampler!r} has no start time for img2img; use one of "
                     f"{', '.join(n for n, e in SAMPLERS.items() if e.start)}.")
  if (cfg.repaint_resample > 1 or cfg.repaint_jump > 1) and (
      cfg.sampler != "ddpm" or cfg.mode not in ("inpaint", "colorize")):
    raise ValueError("sampling.repaint_resample / repaint_jump are RePaint's: use them with "
                     "sampler=ddpm and mode=inpaint or colorize.")
  if (cfg.repaint_resample > 1 or cfg.repaint_jump > 1) and cfg.respacing:
    raise ValueError("RePaint runs on the full chain: set sampling.respacing=''.")
  if cfg.spacing == "optimal" and not cfg.analytic_moments:
    raise ValueError("sampling.spacing=optimal needs sampling.analytic_moments (the stored "
                     "moments: python -m benchmarks.analytic_moments --config=... --workdir=W "
                     "writes W/analytic_moments.npz).")
  if cfg.taus and cfg.sampler == "consistency" and cfg.steps and len(cfg.taus) != cfg.steps - 1:
    raise ValueError(f"sampling.taus must hold steps - 1 = {cfg.steps - 1} levels, got "
                     f"{len(cfg.taus)}.")


def help_text() -> str:
  """What ``steps`` means for each sampler, its default, and the fields it reads
  (``sample.py --steps``'s help)."""
  return "; ".join(f"{s.name}: {s.steps_help} (reads {', '.join(s.options) or 'no option'})"
                   for s in SAMPLERS.values())


def help_by_method(methods: dict) -> str:
  """``--sampler``'s help: the samplers of each method, from ``{method: (kind, process
  kinds)}``."""
  lines = []
  for method, (kind, processes) in methods.items():
    names = []
    for p in processes:
      names += [n for n in sampler_names(p, kind) if n not in names]
    only = lambda n: [p for p in processes if p in SAMPLERS[n].processes]
    shown = [n if len(only(n)) == len(processes) else f"{n} ({'/'.join(only(n))})"
             for n in names]
    lines.append(f"{method}: {', '.join(shown)}")
  return "; ".join(lines)
