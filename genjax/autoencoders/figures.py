"""The pictures of the autoencoder family, written as PNGs into a trained run's workdir.

  python -m genjax.autoencoders.figures --config=configs/vae.py --workdir=runs/vae

(the same config and overrides as for training). Depending on the model it writes:

* ``reconstructions.png``: test images beside their reconstructions;
* ``prior_samples.png``: samples from the prior (VAE: z ~ N(0, I); plain AE: decoded N(0, I) codes;
  VQ-VAE: uniform codes, or the learned PixelCNN prior for a ``vq_prior`` run);
* ``interpolations.png``: latent interpolation strips between pairs of test images (the two
  real images at the ends);
* ``manifold.png`` and ``latent_scatter.png`` for a 2-D latent: decoded ``z = Phi^{-1}(u)``
  over a grid of u in (0, 1)^2 (Kingma & Welling 2014, Fig. 4) and the test-set posterior
  means coloured by digit;
* ``codebook_usage.png`` for VQ models: how often each code is used on the test set;
* ``rollouts.png`` for TD-VAE: real sequences above the model's continuation of them.

The functions below take the model's pure functions (:class:`~genjax.autoencoders.common.
AutoencoderModel`) and params, so notebooks can call them without the CLI.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz


SAMPLE_TITLES = {
    "ae": "ae: decoded z ~ N(0, I) (a plain AE has no prior)",
    "vae": "vae: samples, mean of p(x|z), z ~ N(0, I)",
    "vqvae": "vqvae: uniform random codes (no learned prior)",
    "vqvae2": "vqvae2: uniform random codes (no learned prior)",
    "vq_prior": "VQ-VAE codes drawn from the PixelCNN prior",
}


def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _show(ax, images, nrow, title):
  grid = viz.make_grid(np.asarray(images), nrow=nrow)
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
            interpolation="nearest")
  ax.set_title(title, fontsize=10)
  ax.axis("off")


def reconstruction_figure(x: np.ndarray, x_hat: np.ndarray, path: str, nrow: int = 8,
                          title: str = "") -> str:
  """Inputs (left) beside their reconstructions (right), the same positions in both grids."""
  plt = _plt()
  fig, axes = plt.subplots(1, 2, figsize=(9, 9 * len(x) / nrow / nrow / 2 + 1.0))
  _show(axes[0], x, nrow, "test input")
  _show(axes[1], x_hat, nrow, "reconstruction")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def image_figure(images: np.ndarray, path: str, nrow: int, title: str) -> str:
  """A titled grid of images."""
  plt = _plt()
  n = len(images)
  rows = -(-n // nrow)
  fig, ax = plt.subplots(figsize=(0.6 * nrow + 0.5, 0.6 * rows + 0.8))
  _show(ax, images, nrow, title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def interpolate(encode: Callable, decode: Callable, params, x_a, x_b, steps: int = 10):
  """Decoded ``(1 - a) E(x_a) + a E(x_b)`` for ``a`` in linspace(0, 1, steps).

  Args:
    encode: ``(params, x [B, ...]) -> latent`` (any pytree of [B, ...] arrays).
    decode: ``(params, latent) -> x``.
    x_a, x_b: [B, H, W, C] endpoints.

  Returns:
    [B, steps, H, W, C].
  """
  za, zb = encode(params, x_a), encode(params, x_b)
  alphas = jnp.linspace(0.0, 1.0, steps)

  def at(a):
    z = jax.tree.map(lambda u, v: (1.0 - a) * u + a * v, za, zb)
    return decode(params, z)

  return jnp.swapaxes(jax.vmap(at)(alphas), 0, 1)


def manifold_images(decode: Callable, params, n: int = 20) -> np.ndarray:
  """Decoded ``z = Phi^{-1}(u)`` on an n x n grid of u in (0, 1)^2 (K&W 2014, Fig. 4):
  [n * n, H, W, C], row-major with z_2 decreasing down the rows and z_1 increasing along them."""
  u = np.linspace(0.5 / n, 1.0 - 0.5 / n, n)
  z = jax.scipy.stats.norm.ppf(jnp.asarray(u))
  z1, z2 = jnp.meshgrid(z, z[::-1], indexing="xy")
  zz = jnp.stack([z1.reshape(-1), z2.reshape(-1)], axis=-1)
  return np.asarray(decode(params, zz))


def codebook_usage_figure(counts: dict, path: str) -> str:
  """Bar chart of code usage counts per level, with perplexity and codes used in the title."""
  plt = _plt()
  fig, axes = plt.subplots(len(counts), 1, figsize=(9, 2.6 * len(counts)), squeeze=False)
  for ax, (lvl, cnt) in zip(axes[:, 0], counts.items()):
    cnt = np.asarray(cnt, np.float64)
    p = cnt / max(cnt.sum(), 1.0)
    nz = p[p > 0]
    perp = float(np.exp(-np.sum(nz * np.log(nz))))
    ax.bar(np.arange(len(cnt)), cnt, width=1.0, color="tab:blue")
    ax.set_xlim(-0.5, len(cnt) - 0.5)
    ax.set_xlabel("code index")
    ax.set_ylabel("uses on test set")
    ax.set_title(f"codebook '{lvl}': {int((cnt > 0).sum())}/{len(cnt)} codes used, "
                 f"perplexity {perp:.1f}", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def latent_scatter_figure(z: np.ndarray, labels: np.ndarray, path: str, title: str = "") -> str:
  """2-D posterior means of the test set, coloured by class."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 5))
  sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=10, vmin=-0.5, vmax=9.5)
  fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
  ax.set_xlabel("z_1")
  ax.set_ylabel("z_2")
  ax.set_title(title or "test-set posterior means", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def write_figures(model, params, dataset, out_dir: str, key: Optional[jax.Array] = None,
                  num: int = 64) -> dict:
  """Writes every figure that ``model`` supports into ``out_dir``; returns ``{name: path}``.

  Args:
    model: the run's :class:`~genjax.autoencoders.common.AutoencoderModel`.
    params: the params to show (the trainer's EMA params).
    dataset: the run's dataset (test images and labels are used).
    out_dir: where the PNGs go.
    key: PRNG key of the samples.
    num: number of samples / test images shown.
  """
  os.makedirs(out_dir, exist_ok=True)
  key = jax.random.key(0) if key is None else key
  k_sample, k_roll = jax.random.split(key)
  n_test = len(dataset.test)
  test = dataset.test.get(np.arange(min(n_test, 512)))
  x_all, labels = np.asarray(test["x"]), np.asarray(test["label"])
  if model.view_input is not None:  # what the model sees (e.g. binarized digits)
    x_all = np.asarray(jax.jit(model.view_input)(jnp.asarray(x_all)))
  x = jnp.asarray(x_all[:min(num, 32)])
  paths = {}
  name = model.name

  if model.rollout is None:
    x_hat = np.asarray(jax.jit(model.reconstruct)(params, x))
    paths["reconstructions"] = reconstruction_figure(
        np.asarray(x), x_hat, os.path.join(out_dir, "reconstructions.png"),
        title=f"{name}: reconstructions")
    samples = np.asarray(jax.jit(model.sample, static_argnums=2)(params, k_sample, num))
    paths["samples"] = image_figure(samples, os.path.join(out_dir, "prior_samples.png"), 8,
                                    SAMPLE_TITLES.get(name, f"{name}: samples"))

  if model.encode is not None and model.decode is not None:
    # Pairs of test images of different classes.
    a_idx, b_idx = [], []
    for i in range(len(labels)):
      j = (i * 7 + 3) % len(labels)
      if labels[i] != labels[j]:
        a_idx.append(i), b_idx.append(j)
      if len(a_idx) == 8:
        break
    xa, xb = jnp.asarray(x_all[a_idx]), jnp.asarray(x_all[b_idx])
    strips = np.asarray(jax.jit(lambda p, u, v: interpolate(model.encode, model.decode, p, u, v))(
        params, xa, xb))
    rows = np.concatenate([np.asarray(xa)[:, None], strips, np.asarray(xb)[:, None]], axis=1)
    paths["interpolations"] = image_figure(
        rows.reshape(-1, *rows.shape[2:]), os.path.join(out_dir, "interpolations.png"),
        rows.shape[1], f"{name}: latent interpolations (real images at both ends)")

  if model.latent_dim == 2 and model.decode is not None:
    n = 20
    imgs = manifold_images(model.decode, params, n)
    paths["manifold"] = image_figure(imgs, os.path.join(out_dir, "manifold.png"), n,
                                     f"{name}: learned 2-D manifold, z = Phi^-1(u)")
    z = np.asarray(jax.jit(model.encode)(params, jnp.asarray(x_all)))
    paths["latent_scatter"] = latent_scatter_figure(
        z, labels, os.path.join(out_dir, "latent_scatter.png"),
        f"{name}: test-set latent means")

  if model.codes is not None:
    codes = jax.jit(model.codes)(params, jnp.asarray(x_all))
    counts = {lvl: np.bincount(np.asarray(c).reshape(-1), minlength=model.num_codes[lvl])
              for lvl, c in codes.items()}
    paths["codebook_usage"] = codebook_usage_figure(counts, os.path.join(out_dir,
                                                                          "codebook_usage.png"))

  if model.rollout is not None and model.sequence is not None:
    n_seq = 8
    context = 3
    seq = model.sequence(jax.random.key(2), jnp.asarray(x_all[:n_seq]))
    pred = np.asarray(jax.jit(model.rollout, static_argnums=3)(params, k_roll, seq, context))
    t = seq.shape[1]
    rows = []
    for i in range(n_seq):
      rows.append(np.asarray(seq[i]))
      blank = -np.ones_like(np.asarray(seq[i, :context]))
      rows.append(np.concatenate([blank, pred[i]], axis=0))
    imgs = np.concatenate(rows, axis=0)
    paths["rollouts"] = image_figure(
        imgs, os.path.join(out_dir, "rollouts.png"), t,
        f"{name}: real (upper rows), imagined after {context} frames (lower)")
    samples = np.asarray(jax.jit(model.sample, static_argnums=2)(params, k_sample, num))
    paths["samples"] = image_figure(samples, os.path.join(out_dir, "prior_samples.png"), t,
                                    f"{name}: {context} observed frames, then imagined")
  return paths


def model_builders() -> dict:
  """``config.method -> build(config, spec) -> AutoencoderModel``."""
  from genjax.autoencoders import ae_method, prior_method, tdvae_method, vae_method, vq_method
  return {
      "ae": lambda c, s: ae_method.build_ae_model(c, s)[0],
      "vae": lambda c, s: vae_method.build_vae_model(c, s)[0],
      "vqvae": lambda c, s: vq_method.build_vq_model(c, s, hierarchical=False)[0],
      "vqvae2": lambda c, s: vq_method.build_vq_model(c, s, hierarchical=True)[0],
      "vq_prior": lambda c, s: prior_method.build_prior_model(c, s)[0],
      "tdvae": lambda c, s: tdvae_method.build_tdvae_model(c, s)[0],
  }


def figures_for_run(config, workdir: str, out: Optional[str] = None, seed: int = 0,
                    num: int = 64, step: Optional[int] = None) -> dict:
  """Restores ``workdir`` (latest checkpoint, or ``step``) and writes its figures into ``out``
  (default: the workdir)."""
  from genjax.training import run as run_lib
  builders = model_builders()
  if config.method not in builders:
    raise ValueError(f"No autoencoder figures for method {config.method!r}; valid: "
                     f"{sorted(builders)}.")
  run, state = run_lib.restore(config, workdir, step)
  model = builders[config.method](config, run.dataset.spec)
  return write_figures(model, state.ema_params, run.dataset, out or workdir,
                       jax.random.key(seed), num)


def main() -> None:
  """``python -m genjax.autoencoders.figures --config=... --workdir=... [--out=...]``."""
  from absl import app, flags
  from ml_collections import config_flags

  flags_ = flags.FLAGS
  config_flags.DEFINE_config_file("config", None, "The config the run was trained with.",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "The training run's workdir.")
  flags.DEFINE_string("out", None, "Output directory (default: --workdir).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_integer("num", 64, "Samples and test images shown.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
  flags.mark_flags_as_required(["config", "workdir"])

  def run(argv):
    del argv
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)
    from genjax.training.checkpoint import CheckpointError
    try:
      paths = figures_for_run(flags_.config, flags_.workdir, flags_.out, flags_.seed,
                              flags_.num, flags_.step)
    except (CheckpointError, ValueError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)
    print("Wrote " + ", ".join(paths.values()))

  app.run(run)


if __name__ == "__main__":
  main()
