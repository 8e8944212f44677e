"""The registry of model families: ``config.method`` -> a builder of a trainer ``Method``.

A builder is ``build(config, spec: DataSpec) -> Method``; it converts the config sections it
reads into typed dataclasses. Entries are imported lazily, so one family's dependencies never
slow down another's start (and this module imports no JAX).

:data:`SAMPLING` says what each diffusion-style method hands the sampling floor: the kind of
model and the kinds of process it may be trained on; ``sample.py --help`` lists each method's
samplers from it (:func:`genjax.sampling.catalog.help_by_method`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  from genjax.training.method import Method
  from genjax.types import DataSpec

METHODS = {
    "ddpm": "genjax.diffusion.method:build_ddpm",
    "sde": "genjax.score.method:build_sde_model",
    "ncsn": "genjax.score.method:build_ncsn",
    "edm": "genjax.score.method:build_edm",
    "ae": "genjax.autoencoders.ae_method:build_ae",
    "vae": "genjax.autoencoders.vae_method:build_vae",
    "vqvae": "genjax.autoencoders.vq_method:build_vqvae",
    "vqvae2": "genjax.autoencoders.vq_method:build_vqvae2",
    "vq_prior": "genjax.autoencoders.prior_method:build_vq_prior",
    "tdvae": "genjax.autoencoders.tdvae_method:build_tdvae",
    "gan": "genjax.gan.method:build_gan",
    "consistency_distill": "genjax.distill.method:build_consistency_distill",
    "consistency_training": "genjax.distill.method:build_consistency_training",
    "progressive_distill": "genjax.distill.method:build_progressive_distill",
    "noisy_classifier": "genjax.diffusion.classifier:build_noisy_classifier",
    "autoencoder_kl": "genjax.latent.autoencoder:build_autoencoder_kl",
    "vqgan": "genjax.latent.autoencoder:build_vqgan",
    "ldm": "genjax.latent.ldm:build_ldm",
    "mae": "genjax.mae.method:build_mae",
    "dvae": "genjax.dalle.dvae:build_dvae",
    "dalle": "genjax.dalle.method:build_dalle",
    "cascade": "genjax.cascade.method:build_cascade",
    "clip": "genjax.clip.method:build_clip",
    "unclip_prior": "genjax.clip.prior_method:build_unclip_prior",
    "unclip_decoder": "genjax.clip.decoder_method:build_unclip_decoder",
    "controlnet": "genjax.controlnet.method:build_controlnet",
}


# method -> (model kind, process kinds) of genjax.sampling.catalog.
SAMPLING = {
    "ddpm": ("denoiser", ("discrete",)),
    "sde": ("denoiser", ("vp", "subvp", "ve")),
    "ncsn": ("denoiser", ("edm",)),
    "edm": ("denoiser", ("edm",)),
    "consistency_distill": ("consistency", ("edm",)),
    "consistency_training": ("consistency", ("edm",)),
    "progressive_distill": ("student", ("discrete_view",)),
    "ldm": ("denoiser", ("discrete",)),
    "cascade": ("denoiser", ("discrete",)),
    "controlnet": ("denoiser", ("discrete",)),
    "unclip_decoder": ("denoiser", ("discrete",)),
}


def build_method(config, spec: DataSpec) -> Method:
  name = config.method
  if name not in METHODS:
    raise ValueError(f"Unknown config.method {name!r}; valid: {sorted(METHODS)}.")
  module, fn = METHODS[name].split(":")
  return getattr(importlib.import_module(module), fn)(config, spec)
