"""Published weights in and out: diffusers / transformers / original checkpoints <-> genjax.

Modules:
  io         readers: safetensors (numpy, no torch), torch state dicts (weights_only), folders
  convert    the checked name/layout map between a checkpoint and a genjax params tree
  unet2d     diffusers UNet2DModel (Ho et al.'s DDPM checkpoints) <-> genjax.nets.unet.UNet
  scheduler  a diffusers scheduler_config.json -> genjax's DiffusionSchedule and sampling defaults
  dit        the original DiT checkpoints and diffusers' DiTTransformer2DModel -> genjax.nets.dit
  clip_text  transformers' CLIPTextModel and its BPE tokenizer -> genjax's TextEncoder
  vae        diffusers AutoencoderKL / VQModel <-> genjax.nets.first_stage.FirstStage
  sd         diffusers UNet2DConditionModel (Stable Diffusion 1.x) -> the cross-attention U-Net;
             whole SD 1.x pipeline folders and text_to_image
  pipeline   a model or pipeline folder -> a sampler (sample.py --pretrained)
  counts     parameter counts of the reference configurations (shapes only)

Nothing here needs torch, diffusers or transformers at run time; PyTorch ``.bin``/``.pt`` files
need torch and are read with ``weights_only=True``.
"""

from genjax.pretrained.io import PretrainedError  # noqa: F401
