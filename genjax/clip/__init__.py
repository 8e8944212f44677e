"""CLIP (Radford et al. 2021): a contrastive image-text model, and unCLIP's prior and decoder
(Ramesh et al. 2022; seed 003 Sec. 2.6.2, eq. 49) built on it.

Modules:
  losses   symmetric InfoNCE with the learned, clipped temperature
  model    the image encoder (small ResNet), the CLIP towers and projections
  prior, prior_method      unCLIP's diffusion prior P(z_i | y) (config.method="unclip_prior")
  decoder, decoder_method  unCLIP's decoder P(x | z_i, y), text -> prior -> decoder and image
                           variations (config.method="unclip_decoder")
"""

from genjax.clip.losses import (INIT_LOGIT_SCALE, MAX_LOGIT_SCALE, clamp_logit_scale,
                                clip_logits, infonce_loss, l2_normalize)

__all__ = ["INIT_LOGIT_SCALE", "MAX_LOGIT_SCALE", "clamp_logit_scale", "clip_logits",
           "infonce_loss", "l2_normalize"]
