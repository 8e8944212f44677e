"""ControlNet (Zhang et al. 2023): spatial control of a frozen diffusion model.

* :mod:`genjax.controlnet.conditions`: control maps computed in JAX (Sobel, Canny, scribbles,
  blur, low resolution, masks), one registry of condition types and the adherence metrics.
"""
