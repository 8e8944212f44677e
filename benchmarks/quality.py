"""One sample-quality table across model families, on the embedded digits.

  python -m benchmarks.quality --budget_s 300 --num 500 --out runs/quality
  python -m benchmarks.quality --only "VAE,GAN" --budget_s 60      # a subset of rows
  python -m benchmarks.quality --smoke                            # a quick end-to-end check

Each row trains one model family with its config as shipped, stopped at ``--budget_s`` CPU
seconds of this process (``training.time_budget_s`` on the ``process`` clock: compilation
included, and a budget that other jobs on the machine do not eat; ``--clock wall`` for
wall-clock seconds) or at the config's ``num_steps``, whichever comes first; samples ``--num``
digits from the EMA params and scores them in the digits classifier's feature space
(``genjax.metrics.sample_quality``): FD and KID against the 270 test digits, the Inception-style
score of the classifier (IS, max 10), precision and recall (k=3), plus NFE
(network evaluations per sample) and the training and sampling times. Every row also gets the
Parzen-window test log-likelihood of Goodfellow et al. (Table 1; kernel density on the same
samples, bandwidth chosen on 500 train digits, [0, 1] pixels), and rows that list ``evals``
run those evaluators of their method too (``recon``, ``elbo``). The first row is the
real-against-real floor: digits-train images scored the same way (mean over random subsets of
``--num`` images).

Writes into ``--out``: ``quality.json``, ``quality.md`` (three tables for docs/benchmarks.md:
every family; the autoencoders' reconstruction / ELBO / IWAE; the Parzen figures) and
``samples/<row>.png`` (a grid of each row's first 64 samples).

Adding a model family is one line in ``ROWS``. Rows that share a ``workdir`` share one
training run (e.g. DDIM-50 and ancestral sampling of one DDPM); a row with a ``stage1`` trains
that first (e.g. the VQ-VAE before its PixelCNN prior), each stage with half the budget. A
finished run in ``--out`` with the same config is reused, with the training times recorded
when it was trained (``benchmarks.common.train_or_reuse``).

``--smoke`` checks every row end to end in a few minutes: 2 training steps per run, 16 samples,
the samplers cut to a few steps (ancestral DDPM on a respaced 10-step chain), into
``runs/quality_smoke`` unless ``--out`` is given. Its figures mean nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

from absl import flags
import numpy as np

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_float("budget_s", 300.0, "Training seconds per model (see --clock); each stage of "
                   "a two-stage row gets half.", lower_bound=0.0)
flags.DEFINE_enum("clock", "process", ["process", "wall"], "What --budget_s counts: CPU "
                  "seconds of this process, or wall-clock seconds.")
flags.DEFINE_integer("num", 500, "Samples per model.", lower_bound=2)
flags.DEFINE_integer("batch", 500, "Samples per jitted sampling call.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Training and sampling seed.", lower_bound=0)
flags.DEFINE_list("only", [], "Run only the rows whose names contain one of these substrings, "
                  "e.g. --only=VAE,GAN.")
flags.DEFINE_string("out", None, "Output directory: the table, the sample grids and one "
                    "workdir per training run (default runs/quality, or runs/quality_smoke "
                    "with --smoke).")
flags.DEFINE_bool("resume", False, "Keep the rows already in --out/quality.json (in the table, "
                  "whether --only selects them or not) and run only the missing selected ones.")
flags.DEFINE_bool("quiet", False, "No progress bars.")
flags.DEFINE_bool("smoke", False, "A quick end-to-end check: 2 training steps per run, 16 "
                  "samples, a few sampler steps; the figures mean nothing.")


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the table.

  Attributes:
    name: what the table shows, e.g. "DDPM (DDIM-50)".
    config: config file, relative to the repo root.
    nfe: network evaluations per sample.
    overrides: dotted config fields to set, e.g. {"sampling.sampler": "ddpm"}; a string value
      may name ``{out}``, the output directory.
    workdir: training-run name; rows with the same one train once. Default: the name.
    evals: the method's own evaluators to run too (``recon``, ``elbo``).
    stage1: ``(config, workdir)`` of a first stage trained before this row's own training
      (e.g. the VQ-VAE under a prior); each stage then gets half the budget.
  """

  name: str
  config: str
  nfe: int
  overrides: tuple[tuple[str, Any], ...] = ()
  workdir: Optional[str] = None
  evals: tuple[str, ...] = ()
  stage1: Optional[tuple[str, str]] = None


def _o(**kw) -> tuple[tuple[str, Any], ...]:
  return tuple((k.replace("__", "."), v) for k, v in kw.items())


_AE = ("recon",)
_VAE = ("recon", "elbo")
_PRIOR = "{out}/%s/stage1"

# One line per model family and sampler: DDPM with DDIM-50 and ancestral sampling; the score
# SDEs and fast samplers; the autoencoders, VAE, beta-VAE, VQ-VAE with its prior; the GANs.
# TD-VAE is absent: it models sequences, and its samples are rollouts, not digits.
ROWS: list[Row] = [
    Row("DDPM (DDIM-50, eta=0)", "configs/ddpm.py", 50,
        _o(sampling__sampler="ddim", sampling__steps=50, sampling__eta=0.0), workdir="ddpm"),
    Row("DDPM (DDIM-50, eta=1)", "configs/ddpm.py", 50,
        _o(sampling__sampler="ddim", sampling__steps=50, sampling__eta=1.0), workdir="ddpm"),
    Row("DDPM (ancestral, T=1000)", "configs/ddpm.py", 1000,
        _o(sampling__sampler="ddpm"), workdir="ddpm"),
    Row("DDPM, a two-level 32/64 U-Net baseline (DDIM-50)", "configs/ddpm.py", 50,
        _o(model__ch=32, model__ch_mult=(1, 2), model__num_res_blocks=2, model__attn_resolutions=(),
           model__dropout=0.0, optim__learning_rate=2e-4, optim__warmup_steps=0,
           optim__schedule="constant", training__num_steps=1_000_000,
           sampling__sampler="ddim", sampling__steps=50, sampling__eta=0.0),
        workdir="ddpm_baseline"),
    Row("DDPM (DPM-Solver-2 multistep, logSNR)", "configs/ddpm.py", 20,
        _o(sampling__sampler="dpm-solver-2", sampling__steps=20, sampling__dpm_method="multistep",
           sampling__dpm_skip_type="logSNR"), workdir="ddpm"),
    Row("improved DDPM (cosine, learned variance, L_hybrid; DDIM-50)", "configs/iddpm.py", 50,
        _o(sampling__sampler="ddim", sampling__steps=50, sampling__eta=0.0)),
    Row("NCSN (annealed Langevin, 10 levels x 100)", "configs/ncsn.py", 1000, workdir="ncsn"),
    Row("VP SDE (PC, 250 steps)", "configs/sde_vp.py", 500, _o(sampling__steps=250),
        workdir="sde_vp"),
    Row("VP SDE (probability-flow ODE, Heun 50)", "configs/sde_vp.py", 100,
        _o(sampling__sampler="ode-heun", sampling__steps=50, sampling__denoise=False),
        workdir="sde_vp"),
    Row("VP SDE (DPM-Solver-3 multistep)", "configs/sde_vp.py", 20,
        _o(sampling__sampler="dpm-solver-3", sampling__steps=20), workdir="sde_vp"),
    Row("sub-VP SDE (probability-flow ODE, Heun 50)", "configs/sde_subvp.py", 100,
        _o(sampling__sampler="ode-heun", sampling__steps=50, sampling__denoise=False)),
    Row("VE SDE (PC, 250 steps)", "configs/sde_ve.py", 500, _o(sampling__steps=250)),
    Row("EDM (Heun, 18 sigmas)", "configs/edm.py", 35),
    Row("AE (decoder of N(0, I) codes)", "configs/ae.py", 1, evals=_AE),
    Row("denoising AE", "configs/dae.py", 1, evals=_AE),
    Row("sparse AE (KL penalty)", "configs/sparse_ae.py", 1, evals=_AE),
    Row("k-sparse AE", "configs/ksparse_ae.py", 1, evals=_AE),
    Row("contractive AE", "configs/cae.py", 1, evals=_AE),
    Row("VAE (Bernoulli, binarized)", "configs/vae.py", 1, evals=_VAE),
    Row("beta-VAE", "configs/beta_vae.py", 1, evals=_VAE),
    Row("VQ-VAE + PixelCNN prior (4x4 codes)", "configs/vqvae_prior.py", 17,
        _o(prior__vqvae_workdir=_PRIOR % "vqvae_prior"),
        stage1=("configs/vqvae.py", "vqvae_prior/stage1")),
    Row("VQ-VAE-2 + PixelCNN priors (2x2 + 4x4 codes)", "configs/vqvae2_prior.py", 21,
        _o(prior__vqvae_workdir=_PRIOR % "vqvae2_prior"),
        stage1=("configs/vqvae2.py", "vqvae2_prior/stage1")),
    Row("GAN (MLP, non-saturating)", "configs/gan.py", 1),
    Row("GAN (MLP, saturating minimax)", "configs/gan.py", 1, _o(gan__loss="saturating")),
    Row("DCGAN (non-saturating)", "configs/dcgan.py", 1),
    Row("DCGAN (hinge)", "configs/dcgan.py", 1, _o(gan__loss="hinge")),
    Row("LSGAN", "configs/lsgan.py", 1),
    Row("WGAN-GP (k=5)", "configs/wgan_gp.py", 1),
]


_SMOKE_STEPS = 4  # sampler steps under --smoke


def _smoke_overrides(config) -> tuple[tuple[str, Any], ...]:
  """Under --smoke: 2 training steps, and the row's sampler cut to a few steps."""
  out = [("training.num_steps", 2)]
  sampling = config.get("sampling")
  if sampling is not None and "sampler" in sampling:  # the diffusion-style families
    if sampling.sampler == "ddpm":
      out.append(("sampling.respacing", "10"))
    else:
      out.append(("sampling.steps", _SMOKE_STEPS))
  return tuple(out)


def _config(path: str, overrides) -> Any:
  config = common.load_config(path, overrides)
  if FLAGS.smoke:
    config = common.with_fields(config, _smoke_overrides(config))
  return config


def _train(config_path: str, overrides, workdir: str, budget_s: float) -> common.TrainedRun:
  """Trains one run (stopped at ``budget_s``), or reuses it when ``workdir`` holds it."""
  config = _config(config_path, tuple(overrides) + (("seed", FLAGS.seed),))
  return common.train_or_reuse(config, workdir, budget_s=budget_s, clock=FLAGS.clock,
                               progress=not FLAGS.quiet)


def _seconds(runs) -> np.ndarray:
  """Summed (wall, CPU) training seconds of a row's runs (NaN where one is not known)."""
  return np.array([sum(np.nan if r.train_s is None else r.train_s for r in runs),
                   sum(np.nan if r.train_cpu_s is None else r.train_cpu_s for r in runs)])


def run_row(row: Row, out: str, trained: dict) -> dict:
  """Trains (once per workdir), samples and scores one row."""
  import jax
  from genjax import viz
  from genjax.metrics import parzen
  from genjax.metrics import sample_quality
  from genjax.training import run as run_lib
  from genjax.typed_config import from_section

  workdir = _workdir(row, out)
  overrides = tuple((k, v.format(out=out) if isinstance(v, str) else v)
                    for k, v in row.overrides)
  if workdir not in trained:
    budget = FLAGS.budget_s / (2 if row.stage1 else 1)
    runs = []
    if row.stage1:
      runs.append(_train(row.stage1[0], (), os.path.join(out, row.stage1[1]), budget))
    runs.append(_train(row.config, overrides, workdir, budget))
    trained[workdir] = _seconds(runs)
  config = _config(row.config, overrides)
  run, state = run_lib.restore(config, workdir)
  s = common.sample(run.method, state.ema_params, FLAGS.num, seed=FLAGS.seed, batch=FLAGS.batch,
                    progress=not FLAGS.quiet)
  viz.save_image_grid(s.x[:64], os.path.join(out, "samples", _slug(row.name) + ".png"))
  samples = s.as_images()  # as written to PNG
  q = sample_quality(samples, baseline=False)
  pz = parzen.parzen_on_dataset(samples, run.dataset,
                                from_section(parzen.ParzenConfig, config.parzen, where="parzen"),
                                num=10_000, image=run.dataset.spec.kind == "image")
  result = {"name": row.name, "config": row.config, "sampler": s.tag, "nfe": row.nfe,
            "train_steps": int(jax.device_get(state.step)),
            "train_s": _num(trained[workdir][0]), "train_cpu_s": _num(trained[workdir][1]),
            "sample_s": s.seconds, "finite": s.finite, **{k: q[k] for k in _METRICS},
            "parzen": pz["log_likelihood"], "parzen_se": pz["stderr"], "parzen_sigma": pz["sigma"]}
  eval_num = 16 if FLAGS.smoke else 10_000
  for i, name in enumerate(row.evals):
    result[name] = run.method.evaluators[name](state, run.dataset,
                                               jax.random.key(FLAGS.seed + i), eval_num)
  return result


def _num(x) -> Optional[float]:
  return None if x is None or not np.isfinite(x) else float(x)


def _workdir(row: Row, out: str) -> str:
  return os.path.join(out, row.workdir or row.name.replace(" ", "_"))


def _slug(name: str) -> str:
  return "".join(c if c.isalnum() else "_" for c in name).strip("_")


_METRICS = ("fd_digits", "kid_digits", "kid_digits_std", "is_digits", "precision_digits",
            "recall_digits")


def baseline_row(num: int) -> dict:
  """The real-against-real floor: digits-train images as if they were samples."""
  from genjax.metrics import reference, sample_quality

  train = reference.dataset_images("digits", "train")
  q = sample_quality(train[np.random.default_rng(0).permutation(len(train))[:num]])
  b = q["baseline"]
  return {"name": f"real digits (train vs test; {b['repeats']} subsets)", "config": "-",
          "nfe": 0, "train_steps": 0, "train_s": 0.0, "train_cpu_s": 0.0, "sample_s": 0.0,
          **{k: b[k] for k in _METRICS if k in b}, "kid_digits_std": q["kid_digits_std"],
          "fd_digits_std": b["fd_digits_std"]}


def to_markdown(rows: list[dict]) -> str:
  """Three tables: every family; the autoencoders' own figures; the Parzen log-likelihoods."""
  unit = "CPU" if FLAGS.clock == "process" else "wall-clock"
  lines = [f"Digits, {FLAGS.num} samples per model, {FLAGS.budget_s:.0f} {unit} seconds of "
           "training per model (compilation included) or the config's num_steps; "
           "features of the genjax digits classifier; reference: the 270 test digits.", "",
           "| model | NFE | fd_digits | kid_digits x 1e3 | is_digits | precision_digits | "
           "recall_digits | steps | train CPU s / "
           "wall s | sample s |", "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    fd = f"{r['fd_digits']:.3f}" + (f" ± {r['fd_digits_std']:.3f}" if "fd_digits_std" in r
                                    else "")
    lines.append(
        f"| {r['name']} | {r['nfe']} | {fd} | {1e3 * r['kid_digits']:.2f} ± "
        f"{1e3 * r['kid_digits_std']:.2f} | "
        f"{r['is_digits']:.2f} | {r['precision_digits']:.3f} | {r['recall_digits']:.3f} | "
        f"{r['train_steps']} | {common.fmt(r.get('train_cpu_s'))} / "
        f"{common.fmt(r.get('train_s'))} | {r['sample_s']:.1f} |")

  ae = [r for r in rows if "recon" in r]
  if ae:
    lines += ["", "Autoencoders on the test digits: squared error per image (the VAE: against "
              "the binarized image its Bernoulli decoder models), negative ELBO and IWAE bound "
              "(nats per image; k from the config), and FD of decoded N(0, I) (or prior) "
              "samples.", "",
              "| model | test squared error / image | -ELBO | -IWAE (k) | fd_digits |",
              "|---|---|---|---|---|"]
    for r in ae:
      e = r.get("elbo")
      elbo = f"{e['neg_elbo_nats']:.2f}" if e else "—"
      iwae = f"{e['neg_iwae_nats']:.2f} ({e['iwae_k']})" if e else "—"
      lines.append(f"| {r['name']} | {r['recon']['test_sq_error_per_image']:.3f} | {elbo} | "
                   f"{iwae} | {r['fd_digits']:.3f} |")

  pz = [r for r in rows if "parzen" in r]
  if pz:
    lines += ["", "Parzen-window log-likelihood of the test digits (Goodfellow et al. Table 1): "
              f"a Gaussian kernel density on each model's {FLAGS.num} samples, in [0, 1] "
              "pixels, bandwidth chosen on 500 train digits; nats per image, mean ± standard "
              "error. (The paper fits 10,000 samples; fewer centres give lower figures.)", "",
              "| model | Parzen log-likelihood | sigma |", "|---|---|---|"]
    for r in sorted(pz, key=lambda r: -r["parzen"]):
      lines.append(f"| {r['name']} | {r['parzen']:.1f} ± {r['parzen_se']:.1f} | "
                   f"{r['parzen_sigma']:.3f} |")
  return "\n".join(lines) + "\n"


def write_outputs(rows: list[dict], out: str) -> str:
  table = to_markdown(rows)
  common.write_json(os.path.join(out, "quality.json"),
                    {"budget_s": FLAGS.budget_s, "clock": FLAGS.clock, "num": FLAGS.num,
                     "seed": FLAGS.seed, "smoke": FLAGS.smoke, "rows": rows})
  with open(os.path.join(out, "quality.md"), "w") as f:
    f.write(table)
  return table


def main(argv) -> None:
  del argv
  out = FLAGS.out or os.path.join("runs", "quality_smoke" if FLAGS.smoke else "quality")
  if FLAGS.smoke:
    FLAGS.num = min(FLAGS.num, 16)
  os.makedirs(out, exist_ok=True)

  done = {}
  path = os.path.join(out, "quality.json")
  if FLAGS.resume and os.path.exists(path):
    with open(path) as f:
      done = {r["name"]: r for r in json.load(f)["rows"]}
  rows = [baseline_row(FLAGS.num)]
  trained: dict = {}  # workdir -> (wall s, CPU s) of its training; kept rows' runs are reused
  for row in ROWS:
    if row.name in done:
      trained[_workdir(row, out)] = np.array(
          [np.nan if done[row.name]["train_s"] is None else done[row.name]["train_s"],
           np.nan if done[row.name]["train_cpu_s"] is None else done[row.name]["train_cpu_s"]])
  selected = {r.name for r in ROWS
              if not FLAGS.only or any(sub in r.name for sub in FLAGS.only)}
  for row in ROWS:
    if row.name in done:  # only with --resume
      rows.append(done[row.name])
    elif row.name in selected:
      rows.append(run_row(row, out, trained))
      print(json.dumps(rows[-1], default=float), flush=True)
    else:
      continue
    write_outputs(rows, out)  # a partial table survives an interruption
  print(write_outputs(rows, out))


if __name__ == "__main__":
  from genjax import cli
  cli.run(main)
