"""GANs as a trainer :class:`~genjax.training.method.Method` (Goodfellow et al. 2014 and successors).

One method covers the MLP GAN of the paper, DCGAN, LSGAN, hinge and WGAN-GP: the config picks
the two networks (``config.generator``, ``config.discriminator``), the game (``config.gan.loss``)
and ``k`` (``config.gan.k``). It plugs into the one generic trainer through ``train_step``:

* ``params = {"g": ..., "d": ...}``; ``opt_state = {"g": ..., "d": ...}``;
  ``tx = GANOptimizers(g, d)``: two optimizers, from the shared ``config.optim`` section
  overridden per player by ``config.optim_g`` / ``config.optim_d`` (each must give its
  ``learning_rate``; ``config.optim`` must not, so that no learning rate is silently ignored).
* ``batches_per_step = k + 1``: k discriminator minibatches and one for the generator step
  (see :mod:`genjax.gan.algorithm`).
* ``ema_filter = params["g"]``: the trainer keeps an EMA of the generator only, and samples
  (the fixed-noise grids, ``sample.py``, the evaluations) come from it.
* ``plot_samples`` (2-D data): samples over the data with the discriminator's decision surface
  as filled contours (``D(x)`` for the original GAN's losses, the raw output otherwise).
* ``evaluators``: ``modes`` on ``8gaussians`` (the Parzen window of Goodfellow et al. Table 1 is
  ``sample.py --eval=parzen``, available to every method: :mod:`genjax.training.sampling`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax.gan import algorithm, diagnostics, losses as L
from genjax.training import optim as optim_lib
from genjax.training.config import OptimConfig
from genjax.typed_config import from_section, to_dict
from genjax.training.method import Method
from genjax.types import DataSpec

# The reference noise batch of batch-normalized generators at sampling time is drawn from this
# fixed key (see genjax.nets.dcgan): a constant of the sampler, like its architecture.
REFERENCE_NOISE_SEED = 0x5EED


@dataclasses.dataclass(frozen=True)
class GANConfig:
  """The ``config.gan`` section.

  Attributes:
    loss: "saturating" | "non_saturating" | "lsgan" | "hinge" | "wgan_gp"
      (:data:`genjax.gan.losses.LOSSES`).
    k: discriminator steps per generator step (Algorithm 2's k; the paper used 1, WGAN-GP 5).
    z_dim: dimension of the noise z.
    noise: prior p_z: "normal" (N(0, I)) or "uniform" (U[-1, 1]^Z).
    gp_weight: WGAN-GP's lambda (loss "wgan_gp").
    r1_gamma: R1 penalty weight gamma (0: off).
    bn_ref_size: size of the fixed reference noise batch that gives a batch-normalized
      generator its statistics when sampling.
    mode_num_std: 8-Gaussians protocol: a sample is high quality within this many standard
      deviations of its nearest mode.
    mode_min_fraction: 8-Gaussians protocol: a mode is covered with at least this fraction of
      its fair share N / 8 of high-quality samples (0.2: PacGAN's; 0: at least one sample).
    mode_eval_samples: samples drawn by ``sample.py --eval=modes`` (VEEGAN: 2,500).
  """
  loss: str = "non_saturating"
  k: int = 1
  z_dim: int = 100
  noise: str = "normal"
  gp_weight: float = 10.0
  r1_gamma: float = 0.0
  bn_ref_size: int = 256
  mode_num_std: float = 3.0
  mode_min_fraction: float = 0.2
  mode_eval_samples: int = 2500


def _generator_registry():
  from genjax.nets.dcgan import DCGANGenerator
  from genjax.nets.gan_mlp import MLPGenerator
  return {"mlp": MLPGenerator, "dcgan": DCGANGenerator}


def _discriminator_registry():
  from genjax.nets.dcgan import DCGANDiscriminator
  from genjax.nets.gan_mlp import MLPDiscriminator
  return {"mlp": MLPDiscriminator, "dcgan": DCGANDiscriminator}


def build_gan_network(section: Any, registry: dict, where: str, **fixed):
  """The Linen module named by ``section["name"]``, with the section's other fields.

  Raises:
    ValueError: an unknown name or field (the message lists the valid ones).
  """
  d = dict(to_dict(section))
  name = d.pop("name", None)
  if name not in registry:
    raise ValueError(f"Unknown config.{where}.name {name!r}; valid: {sorted(registry)}.")
  cls = registry[name]
  fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"} - set(fixed)
  unknown = sorted(set(d) - fields)
  if unknown:
    raise ValueError(f"Unknown field(s) {unknown} for config.{where} (network {name!r}); "
                     f"valid: {sorted(fields)}.")
  d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
  return cls(**d, **fixed)


def player_optim_configs(config) -> tuple[dict, dict]:
  """The per-player overrides ``config.optim_g`` / ``config.optim_d``, checked.

  Raises:
    ValueError: ``config.optim`` sets a learning rate, a player has none, or a field is unknown.
  """
  shared = to_dict(config.optim) if "optim" in config else {}
  if "learning_rate" in shared:
    raise ValueError(
        "A GAN has one learning rate per player: set config.optim_g.learning_rate and "
        "config.optim_d.learning_rate (e.g. --config.optim_d.learning_rate=4e-4) and remove "
        "learning_rate from config.optim, whose other fields both players share.")
  names = {f.name for f in dataclasses.fields(OptimConfig)}
  out = []
  for player in ("optim_g", "optim_d"):
    if player not in config:
      raise ValueError(f"A GAN config needs a config.{player} section with its learning_rate.")
    d = to_dict(config[player])
    unknown = sorted(set(d) - names)
    if unknown:
      raise ValueError(f"Unknown field(s) {unknown} in config.{player}; valid: {sorted(names)}.")
    if "learning_rate" not in d:
      raise ValueError(f"config.{player}.learning_rate is required (each player has its own).")
    out.append({k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
  return out[0], out[1]


def make_prior(z_dim: int, noise: str):
  """``prior(key, num) -> z [num, z_dim]`` for ``noise`` "normal" or "uniform" (U[-1, 1])."""
  if noise == "normal":
    return lambda key, num: jax.random.normal(key, (num, z_dim))
  if noise == "uniform":
    return lambda key, num: jax.random.uniform(key, (num, z_dim), minval=-1.0, maxval=1.0)
  raise ValueError(f"gan.noise must be 'normal' or 'uniform'; got {noise!r}.")


def _mode_setup(config, spec: DataSpec) -> Optional[tuple[np.ndarray, float]]:
  """(centers, sigma) of the 8-Gaussians data, or None for other data."""
  if spec.kind != "points" or config.data.dataset != "8gaussians":
    return None
  from genjax.data import toy2d
  noise = config.data.get("toy_noise", None)
  noise = toy2d.DEFAULT_NOISE["8gaussians"] if noise is None else float(noise)
  return toy2d.eight_gaussians_centers(), noise / 1.414  # toy2d's literal sqrt(2)


@dataclasses.dataclass(frozen=True)
class GANModel:
  """The pure pieces of a configured GAN (what :func:`build_gan` wires into a Method).

  Attributes:
    cfg: the ``config.gan`` section.
    generator, discriminator: the Linen modules.
    prior: ``prior(key, num) -> z [num, z_dim]``.
    generate: ``generate(g_params, z, train, ref_size=None) -> x``.
    discriminate: ``discriminate(d_params, x, key, train) -> [B]`` raw outputs.
    init: ``init(key, batch) -> ({"g", "d"} params, {})``.
    sample: ``sample(g_params, key, num) -> [num, *data_shape]``.
    d_loss_fn, g_loss_fn: ``loss_fn(params, batch, key) -> (loss, metrics)`` of each player.
    modes: ``(centers [8, 2], sigma)`` on 8-Gaussians data, else None.
  """
  cfg: GANConfig
  generator: Any
  discriminator: Any
  prior: Callable
  generate: Callable
  discriminate: Callable
  init: Callable
  sample: Callable
  d_loss_fn: Callable
  g_loss_fn: Callable
  modes: Optional[tuple]


def build_gan_model(config, spec: DataSpec) -> GANModel:
  """Builds the networks, the prior and both players' losses from ``config.gan``,
  ``config.generator`` and ``config.discriminator``."""
  cfg = from_section(GANConfig, config.gan, where="gan")
  loss_cfg = algorithm.GANLossConfig(cfg.loss, cfg.gp_weight, cfg.r1_gamma)
  if cfg.k < 1:
    raise ValueError(f"gan.k must be >= 1 (discriminator steps per generator step); got {cfg.k}.")
  if cfg.z_dim < 1 or cfg.bn_ref_size < 2:
    raise ValueError(f"gan.z_dim must be >= 1 and gan.bn_ref_size >= 2; got {cfg.z_dim}, "
                     f"{cfg.bn_ref_size}.")
  gen = build_gan_network(config.generator, _generator_registry(), "generator",
                          out_shape=tuple(spec.shape))
  disc = build_gan_network(config.discriminator, _discriminator_registry(), "discriminator")
  if getattr(disc, "norm", "none") == "batch" and (cfg.loss == "wgan_gp" or cfg.r1_gamma > 0):
    raise ValueError(
        "WGAN-GP and R1 penalise each example's input gradient, which batch normalization in the "
        "discriminator couples across the batch; set --config.discriminator.norm=layer (the "
        "WGAN-GP paper's choice) or none.")
  g_batch_norm = getattr(gen, "norm", "none") == "batch"
  prior = make_prior(cfg.z_dim, cfg.noise)

  def generate(g_params, z, train, ref_size=None):
    return gen.apply({"params": g_params}, z, train, ref_size=ref_size)

  def discriminate(d_params, x, key, train):
    rngs = {"dropout": key} if (train and key is not None) else {}
    return disc.apply({"params": d_params}, x, train, rngs=rngs)

  def init(key, batch):
    kg, kd, kz, kdrop = jax.random.split(key, 4)
    x = batch["x"][:2]
    g_params = gen.init({"params": kg}, prior(kz, 2), False)["params"]
    d_params = disc.init({"params": kd, "dropout": kdrop}, x, False)["params"]
    return {"g": g_params, "d": d_params}, {}

  def sample(g_params, key, num):
    """``num`` samples from G (the EMA generator when the trainer calls it)."""
    z = prior(key, num)
    if not g_batch_norm:
      return generate(g_params, z, False)
    ref = prior(jax.random.key(REFERENCE_NOISE_SEED), cfg.bn_ref_size)
    return generate(g_params, jnp.concatenate([ref, z]), False, cfg.bn_ref_size)[cfg.bn_ref_size:]

  modes = _mode_setup(config, spec)
  sample_metrics = None
  if modes is not None:
    centers, sigma = modes

    def mode_metrics(fake):
      stats = diagnostics.mode_statistics(fake, centers, sigma, cfg.mode_num_std,
                                          cfg.mode_min_fraction)
      return {"modes_covered": stats["modes_covered"], "hq_fraction": stats["hq_fraction"]}

    sample_metrics = mode_metrics

  return GANModel(
      cfg=cfg, generator=gen, discriminator=disc, prior=prior, generate=generate,
      discriminate=discriminate, init=init, sample=sample,
      d_loss_fn=algorithm.make_discriminator_loss(generate, discriminate, prior, loss_cfg),
      g_loss_fn=algorithm.make_generator_loss(generate, discriminate, prior, loss_cfg,
                                              sample_metrics),
      modes=modes)


def build_gan(config, spec: DataSpec) -> Method:
  """Builds the GAN method from ``config.gan``, ``config.generator``, ``config.discriminator``,
  ``config.optim`` / ``optim_g`` / ``optim_d``."""
  model = build_gan_model(config, spec)
  cfg = model.cfg
  overrides_g, overrides_d = player_optim_configs(config)
  sample = model.sample

  def make_optimizer(optim_cfg: OptimConfig, num_steps: int) -> algorithm.GANOptimizers:
    return algorithm.GANOptimizers(
        g=optim_lib.make_optimizer(dataclasses.replace(optim_cfg, **overrides_g), num_steps),
        d=optim_lib.make_optimizer(dataclasses.replace(optim_cfg, **overrides_d), num_steps))

  evaluators = {}
  if model.modes is not None:
    centers, sigma = model.modes

    def eval_modes(state, dataset, key, num):
      """The 8-Gaussians protocol on ``gan.mode_eval_samples`` EMA-G samples."""
      from genjax.training.sampling import generate  # the one sharded sampling loop
      samples = generate(method, state.ema_params, key, cfg.mode_eval_samples, 1000,
                         progress=False)
      stats = diagnostics.mode_statistics(samples, centers, sigma, cfg.mode_num_std,
                                          cfg.mode_min_fraction)
      return {"modes_covered": int(stats["modes_covered"]),
              "hq_fraction": float(stats["hq_fraction"]),
              "mode_counts": [int(c) for c in np.asarray(stats["mode_counts"])],
              "num_samples": cfg.mode_eval_samples, "num_std": cfg.mode_num_std,
              "min_fraction": cfg.mode_min_fraction}

    evaluators["modes"] = eval_modes

  plot = None
  if spec.kind == "points":
    plot = _make_plot(model.discriminate, cfg.loss, model.modes, cfg)

  method = Method(
      name="gan", init=model.init, sample=sample,
      train_step=algorithm.make_train_step(model.d_loss_fn, model.g_loss_fn, cfg.k),
      make_optimizer=make_optimizer, init_opt_state=algorithm.init_opt_state,
      batches_per_step=cfg.k + 1, ema_filter=lambda params: params["g"],
      plot_samples=plot, evaluators=evaluators)
  return method


def _make_plot(discriminate, loss: str, modes, cfg: GANConfig):
  """``plot(samples, data, path, state=None)``: samples over data, D's surface as contours."""
  probabilistic = L.is_probabilistic(loss)
  d_eval = jax.jit(lambda p, x: discriminate(p, x, None, False))

  def plot(samples, data, path, state=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    samples = np.asarray(samples)
    data = None if data is None else np.asarray(data)
    ref = data if data is not None else samples
    lim = 1.15 * float(np.percentile(np.abs(ref), 99.5))
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    if state is not None:
      n = 160
      g = np.linspace(-lim, lim, n, dtype=np.float32)
      xx, yy = np.meshgrid(g, g)
      grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
      out = np.asarray(jax.device_get(d_eval(state.params["d"], jnp.asarray(grid))))
      if probabilistic:
        surface, levels, label = 1.0 / (1.0 + np.exp(-out)), np.linspace(0, 1, 11), "D(x)"
      else:
        surface, levels, label = out, 12, "D(x) (raw)"
      cs = ax.contourf(xx, yy, surface.reshape(n, n), levels=levels, cmap="RdBu_r", alpha=0.55)
      fig.colorbar(cs, ax=ax, label=label)
      if probabilistic:
        ax.contour(xx, yy, surface.reshape(n, n), levels=[0.5], colors="k", linewidths=0.8)
    if data is not None:
      ax.scatter(data[:, 0], data[:, 1], s=2, c="0.35", alpha=0.5, label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:orange", label="G(z), EMA")
    title = f"GAN ({loss})"
    if state is not None:
      title += f" step {int(jax.device_get(state.step))}"
    if modes is not None:
      st = diagnostics.mode_statistics(samples, modes[0], modes[1], cfg.mode_num_std,
                                       cfg.mode_min_fraction)
      title += (f"\nmodes {int(st['modes_covered'])}/{len(modes[0])}, "
                f"high quality {float(st['hq_fraction']):.2f}")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

  return plot
