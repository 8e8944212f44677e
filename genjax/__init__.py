"""genjax: generative image models as pure JAX/Flax functions.

Subpackages:
  diffusion     discrete-time Gaussian diffusion (DDPM, DDIM, improved DDPM)
  score         score-based models and SDEs
  autoencoders  AE / VAE / VQ-VAE family
  gan           generative adversarial networks
  nets          Flax (Linen) modules only
  metrics       evaluation metrics
  data          datasets and deterministic, resumable batching
  training      the one generic trainer
"""

__version__ = "0.1.0"
