"""The masked autoencoder (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners")
as a trainer :class:`~genjax.training.method.Method`, ``"mae"``.

One training step, per batch::

  1. patchify x into N patches of p x p x C pixels
  2. per example, keep a uniformly random N_vis = int(N (1 - r)) of them   (random_masking)
  3. encode the visible patches only (ViT + [CLS])                          (MAEEncoder)
  4. decode the encoded visible tokens + one mask token per masked patch   (MAEDecoder)
  5. L = mean over masked patches of the per-patch MSE to the (per-patch normalised) pixels

The encoder is what MAE is for: ``sample.py --eval=probe`` scores a linear probe on its frozen
features (all patches visible, tokens mean-pooled) against the same encoder at its random
initialisation and against raw pixels; ``--eval=recon`` reports the test loss and writes
``mae_recon.png`` (input | mask | reconstruction with the visible patches pasted in).
``benchmarks/mae_probe.py`` adds the denoising autoencoder's encoder to the table.

MAE is not a generative model: ``sample`` returns what the decoder predicts with every patch
masked (the encoder sees only its [CLS] token), i.e. the model's unconditional mean image; it
exists for the trainer's grids and says nothing about sample quality.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz
from genjax.autoencoders import common
from genjax.mae import masking
from genjax.mae import probe as probe_lib
from genjax.nets.dit import patchify, unpatchify
from genjax.nets.vit import MAEDecoder, MAEEncoder
from genjax.training.method import Method
from genjax.typed_config import field, from_section, validate
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class MAEConfig:
  """The ``config.mae`` section.

  Attributes:
    patch_size: p; patches are p x p x C pixels and p must divide the image size.
    mask_ratio: r, the fraction of patches masked in every example (0.75 in the paper).
    norm_pix_loss: targets are each patch's pixels normalised by that patch's mean and std.
    enc_dim / enc_depth / enc_heads: encoder width, blocks and heads.
    dec_dim / dec_depth / dec_heads: the lightweight decoder's width, blocks and heads.
    mlp_ratio: MLP width over the token width (both networks).
    probe_pool: features for the linear probe: "mean" of the patch tokens or the "cls" token.
    probe_l2: inverse L2 strength of the probe's logistic regression.
  """
  patch_size: int = field(2, gt=0)
  mask_ratio: float = field(0.75, ge=0.0, lt=1.0)
  norm_pix_loss: bool = True
  enc_dim: int = field(64, gt=0)
  enc_depth: int = field(4, gt=0)
  enc_heads: int = field(4, gt=0)
  dec_dim: int = field(32, gt=0)
  dec_depth: int = field(2, ge=0)
  dec_heads: int = field(4, gt=0)
  mlp_ratio: float = field(4.0, gt=0.0)
  probe_pool: str = field("mean", choices=("mean", "cls"))
  probe_l2: float = field(1.0, gt=0.0)

  def __post_init__(self):
    validate(self, "mae")
    for w, h in (("enc", self.enc_heads), ("dec", self.dec_heads)):
      if getattr(self, f"{w}_dim") % h:
        raise ValueError(f"mae.{w}_dim must be divisible by mae.{w}_heads.")
      if getattr(self, f"{w}_dim") % 4:
        raise ValueError(f"mae.{w}_dim must be a multiple of 4 (2-D sine-cosine embedding).")


@dataclasses.dataclass(frozen=True)
class MAEModel:
  """The pure functions of an MAE.

  Attributes:
    forward: ``(params, x, key) -> (pred [B, N, P], target [B, N, P], mask [B, N])``.
    loss: ``(params, x, key) -> scalar`` (step 5).
    features: ``(params, x) -> [B, D]`` frozen features (no masking) for probing.
    reconstruct: ``(params, x, key) -> (x_masked, x_rec)`` in [-1, 1]: the input with the
      masked patches blanked, and the reconstruction with the visible patches pasted in.
    init: ``(key, x) -> params``.
    num_patches: N.
    mean_image: ``(params, num) -> [num, H, W, C]``: the decoder's prediction with every patch
      masked (the encoder sees only [CLS]), in [-1, 1].
  """
  forward: object
  loss: object
  features: object
  reconstruct: object
  init: object
  num_patches: int
  mean_image: object


def make_mae_model(cfg: MAEConfig, spec: DataSpec) -> MAEModel:
  h, w, c = spec.shape
  p = cfg.patch_size
  if h % p or w % p:
    raise ValueError(f"mae.patch_size={p} must divide the image size {h}x{w}.")
  grid = (h // p, w // p)
  n = grid[0] * grid[1]
  enc = MAEEncoder(grid, cfg.enc_dim, cfg.enc_depth, cfg.enc_heads, cfg.mlp_ratio)
  dec = MAEDecoder(grid, p * p * c, cfg.dec_dim, cfg.dec_depth, cfg.dec_heads, cfg.mlp_ratio)

  def forward(params, x, key):
    patches = patchify(x, p)                                                # 1.
    ids_keep, mask, ids_restore = masking.random_masking(key, x.shape[0], n,  # 2.
                                                         cfg.mask_ratio)
    latent = enc.apply({"params": params["encoder"]}, patches, ids_keep)    # 3.
    pred = dec.apply({"params": params["decoder"]}, latent, ids_restore)    # 4.
    target = masking.normalize_patch_targets(patches) if cfg.norm_pix_loss else patches
    return pred, target, mask

  def loss(params, x, key):
    pred, target, mask = forward(params, x, key)
    return masking.masked_patch_loss(pred, target, mask)                    # 5.

  def features(params, x):
    tok = enc.apply({"params": params["encoder"]}, patchify(x, p))
    return tok[:, 0] if cfg.probe_pool == "cls" else jnp.mean(tok[:, 1:], axis=1)

  def reconstruct(params, x, key):
    patches = patchify(x, p)
    pred, _, mask = forward(params, x, key)
    if cfg.norm_pix_loss:  # back to pixels with each patch's own statistics (the authors' demo)
      mean = jnp.mean(patches, -1, keepdims=True)
      std = jnp.sqrt(jnp.var(patches, -1, keepdims=True) * patches.shape[-1]
                     / (patches.shape[-1] - 1) + 1e-6)
      pred = pred * std + mean
    m = mask[..., None]
    blank = jnp.full_like(patches, -1.0)
    x_masked = unpatchify(patches * (1 - m) + blank * m, p, h, w)
    x_rec = unpatchify(patches * (1 - m) + pred * m, p, h, w)
    return x_masked, jnp.clip(x_rec, -1.0, 1.0)

  def init(key, x):
    k1, k2, k3 = jax.random.split(key, 3)
    patches = patchify(x, p)
    ids_keep, _, ids_restore = masking.random_masking(k3, x.shape[0], n, cfg.mask_ratio)
    pe = enc.init(k1, patches, ids_keep)["params"]
    latent = enc.apply({"params": pe}, patches, ids_keep)
    pd = dec.init(k2, latent, ids_restore)["params"]
    return {"encoder": pe, "decoder": pd}

  def mean_image(params, num):
    patches = jnp.zeros((num, n, p * p * c))
    latent = enc.apply({"params": params["encoder"]}, patches, jnp.zeros((num, 0), jnp.int32))
    ids_restore = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (num, n))
    pred = dec.apply({"params": params["decoder"]}, latent, ids_restore)
    return jnp.clip(unpatchify(pred, p, h, w), -1.0, 1.0)

  return MAEModel(forward, loss, features, reconstruct, init, n, mean_image)


def build_mae_model(config, spec: DataSpec):
  """``(MAEModel, Method, MAEConfig)`` from ``config.mae``."""
  common.check_image_spec(spec, "mae")
  cfg = from_section(MAEConfig, config.mae, where="mae")
  model = make_mae_model(cfg, spec)

  def init(key, batch):
    return model.init(key, batch["x"][:2]), {}

  def loss(params, batch, key):
    value = model.loss(params, batch["x"], key)
    return value, {"masked_patch_mse": value}

  def sample(params, key, num):
    del key
    return model.mean_image(params, num)

  def eval_recon(state, dataset, key, num, out: Optional[str] = None):
    """Test loss (masked patches, the training objective) and the pixel MSE of the masked
    patches; writes ``mae_recon.png`` (rows of input | masked input | reconstruction)."""
    fn = jax.jit(lambda prm, x, k: (model.loss(prm, x, k), model.reconstruct(prm, x, k)))
    losses, sq, first = [], [], None
    for i, b in enumerate(common.iter_test_batches(dataset, num)):
      x = jnp.asarray(b["x"])
      l, (xm, xr) = fn(state.ema_params, x, jax.random.fold_in(key, i))
      losses.append(float(l) * len(x))
      sq.append(np.asarray(jnp.sum(jnp.square(xr - x), axis=(1, 2, 3))))
      if first is None:
        first = (np.asarray(x), np.asarray(xm), np.asarray(xr))
    n_ex = sum(len(s) for s in sq)
    masked_dims = (model.num_patches - masking.num_visible(model.num_patches, cfg.mask_ratio)) \
        * cfg.patch_size ** 2 * spec.shape[-1]
    result = {"test_loss": float(np.sum(losses) / n_ex),
              "test_mse_per_masked_dim": float(np.mean(np.concatenate(sq)) / masked_dims),
              "mask_ratio": cfg.mask_ratio, "num_examples": int(n_ex)}
    if out is not None and first is not None:
      path = os.path.join(out, "mae_recon.png")
      result["figure"] = recon_grid(*first, path)
    return result

  def eval_probe(state, dataset, key, num):
    """Linear-probe test accuracy of the trained encoder's frozen features, of the same
    encoder at a random initialisation, and of raw pixels (``num`` is ignored: all data)."""
    del num
    x0 = jnp.asarray(dataset.train.get(np.arange(2))["x"])
    random_params = model.init(key, x0)
    feat = jax.jit(model.features)
    fns = {"mae": lambda x: feat(state.ema_params, jnp.asarray(x)),
           "random_init": lambda x: feat(random_params, jnp.asarray(x)),
           "pixels": lambda x: np.asarray(x).reshape(len(x), -1)}
    return probe_lib.probe_table(fns, dataset, l2=cfg.probe_l2)

  method = Method(name="mae", init=init, loss=loss, sample=sample,
                  evaluators={"recon": eval_recon, "probe": eval_probe})
  return model, method, cfg


def recon_grid(x: np.ndarray, x_masked: np.ndarray, x_rec: np.ndarray, path: str,
               rows: int = 16) -> str:
  """A PNG of ``rows`` examples, each row: input | masked input | reconstruction."""
  k = min(rows, len(x))
  trip = np.stack([x[:k], x_masked[:k], x_rec[:k]], axis=1).reshape(3 * k, *x.shape[1:])
  return viz.save_image_grid(trip, path, nrow=3) or path


def build_mae(config, spec: DataSpec) -> Method:
  """Registry entry: ``"mae"``."""
  return build_mae_model(config, spec)[1]
