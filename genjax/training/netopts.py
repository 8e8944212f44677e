"""Trainer options that reach the networks through their own attributes.

``training.compute_dtype`` (mixed precision) and ``training.remat`` (rematerialisation per
block) are trainer settings, but a Flax network fixes its compute dtype and its blocks when it is
built. :func:`apply_network_options` therefore writes them into the network section(s) of a copy
of the config (``dtype`` / ``remat`` fields of ``config.model``, or a GAN's
``config.generator`` and ``config.discriminator``) before the family builds its method. The
networks keep float32 parameters (``param_dtype``) and cast their output back to the input's
dtype, so with ``compute_dtype="bfloat16"`` the activations and matmuls are bfloat16 while the
master params, the gradients, the optimizer state, the EMA and the loss stay float32 (mixed
precision in the sense of Micikevicius et al. 2018, "Mixed Precision Training"; bfloat16 needs no
loss scaling, having float32's exponent range).

Nothing here imports JAX at import time.
"""

from __future__ import annotations

from typing import Any

# config.method -> the sections that name its networks. Every network these sections can name
# (genjax.nets: UNet, DiT, MLPDenoiser, NoisyClassifier, the DCGAN and MLP GAN players) has a
# ``dtype`` attribute; the autoencoder families' networks have none and are not listed.
NETWORK_SECTIONS = {
    "ddpm": ("model",), "sde": ("model",), "ncsn": ("model",), "edm": ("model",),
    "consistency_distill": ("model",), "consistency_training": ("model",),
    "progressive_distill": ("model",), "noisy_classifier": ("model",),
    "gan": ("generator", "discriminator"),
}
# Networks (config.model.name) whose blocks can be rematerialised (a ``remat`` attribute).
REMAT_NETWORKS = ("unet", "dit")


def apply_network_options(config, compute_dtype: str = "float32", remat: bool = False):
  """A copy of ``config`` whose network sections carry ``dtype`` and ``remat``.

  Args:
    config: the run's ml_collections config (not modified).
    compute_dtype: ``"float32"`` (nothing changes) or ``"bfloat16"``.
    remat: rematerialise each block in the backward pass (``jax.checkpoint``).

  Returns:
    ``config`` itself when there is nothing to apply, else a modified copy.

  Raises:
    ValueError: the method's networks have no compute dtype, or the network has no blocks to
      rematerialise.
  """
  if compute_dtype == "float32" and not remat:
    return config
  method = config.get("method")
  sections = NETWORK_SECTIONS.get(method)
  if sections is None:
    raise ValueError(
        f"training.compute_dtype={compute_dtype!r} / training.remat={remat} need networks with a "
        f"compute dtype; config.method {method!r} has none. They work with: "
        f"{', '.join(sorted(NETWORK_SECTIONS))}. Leave training.compute_dtype='float32' and "
        f"training.remat=False for {method!r}.")
  if remat:
    name = config.get("model", {}).get("name") if "model" in sections else None
    if name not in REMAT_NETWORKS:
      raise ValueError(
          f"training.remat=True rematerialises the blocks of a U-Net or DiT "
          f"(config.model.name in {list(REMAT_NETWORKS)}); this run's network is {name!r}. "
          f"Set training.remat=False.")
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for s in sections:
      sec = config.get(s)
      if sec is None:
        continue
      if compute_dtype != "float32" and sec.get("dtype") is None:
        sec.dtype = _dtype(compute_dtype)
      if remat:
        sec.remat = True
  return config


def _dtype(name: str) -> Any:
  import jax.numpy as jnp
  return {"bfloat16": jnp.bfloat16, "float16": jnp.float16, "float32": jnp.float32}[name]
