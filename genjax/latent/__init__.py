"""Latent diffusion (Rombach et al. 2022): first-stage autoencoders (KL and VQ-regularized,
:mod:`genjax.latent.autoencoder`), their losses (:mod:`genjax.latent.losses`), and diffusion on
their latents with class, text (cross-attention) and concatenated spatial conditions
(:mod:`genjax.latent.ldm`)."""
