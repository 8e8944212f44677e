"""Bits per dimension, with the dequantization offset written out.

Image likelihoods are reported in bits/dim of the *discrete* 8-bit data. Models that put a
continuous density on rescaled pixels (normalizing flows, the probability-flow ODE of score
SDEs, VAEs with Gaussian decoders) must add the log-volume of one quantization bin, and that
bin's width depends on how pixels were rescaled. This module is the one place where the
offset is derived; the likelihood code of every model family calls it.

Derivation. Let pixels k in {0, ..., L-1} (L = 256 levels for 8 bits) be mapped to y in the
model's space, and let each k own a bin of width Delta in y (one per dimension, D
dimensions). If a model has a continuous density p(y), the probability it gives the discrete
image is, for uniform dequantization exactly (Theis et al. 2016, "A note on the evaluation of
generative models", Sec. 3.1: the discrete log-likelihood is bounded below by the
dequantized continuous one), and in the small-bin limit otherwise,

    P(k) ~= p(y) * Delta^D   =>   -log2 P(k) / D = (-log p(y) / D + log(1 / Delta)) / ln 2.

So ``bpd = nats_to_bpd(nll_continuous + D * log(1 / Delta), D)``, and the offset per
dimension is log(1 / Delta) nats. Delta depends on the convention:

* ``"dequantized"``: y = lo + (hi - lo) (k + u) / L, u ~ U[0, 1) (RealNVP, Glow, Flow++,
  score_sde). The bins tile [lo, hi] exactly: Delta = (hi - lo) / L.
    - [0, 1]:  Delta = 1/256, offset log(256) nats = 8 bits/dim.
    - [-1, 1]: Delta = 2/256, offset log(128) nats = 7 bits/dim (score_sde's
      ``offset = 7 - inverse_scaler(-1)`` in ``likelihood.py``).
* ``"centered"``: y = lo + (hi - lo) k / (L - 1), so that k=0 and k=L-1 sit exactly on lo and
  hi (DDPM's x / 127.5 - 1, genjax's images): neighbouring levels are (hi - lo) / (L - 1)
  apart, which is the bin width, Delta = (hi - lo) / (L - 1).
    - [-1, 1]: Delta = 2/255, offset log(127.5) nats = 6.994 bits/dim.
    - [0, 1]:  Delta = 1/255, offset log(255) nats = 7.994 bits/dim.

DDPM's own L_0 (Ho et al. 2020, eq. (13)) integrates its Gaussian decoder over these
"centered" bins, so it already returns a discrete probability and needs *no* offset: do not
add one to a discretized-Gaussian NLL. The 0.006 bits/dim between the two conventions on
[-1, 1] is larger than many published improvements; the convention must be stated.
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp

_CONVENTIONS = ("dequantized", "centered")


def nats_to_bpd(nll_nats: jax.Array, num_dims: int) -> jax.Array:
  """Negative log-likelihood of a whole example in nats -> bits per dimension.

  bpd = nll / (D ln 2).

  Args:
    nll_nats: [...] NLL of each example, summed over its D dimensions, in nats.
    num_dims: D, e.g. H * W * C.

  Returns:
    [...] bits/dim.
  """
  if num_dims <= 0:
    raise ValueError(f"nats_to_bpd: num_dims must be positive, got {num_dims}.")
  return jnp.asarray(nll_nats) / (num_dims * math.log(2.0))


def dequantization_offset(data_range: tuple[float, float] = (-1.0, 1.0), num_bits: int = 8,
                          convention: str = "dequantized",
                          num_levels: Optional[int] = None) -> float:
  """log(1 / Delta): nats per dimension to add to a continuous NLL (see the module docstring).

  Args:
    data_range: (lo, hi) of the model's pixel space, (-1, 1) in genjax.
    num_bits: bits per pixel value; L = 2**num_bits levels.
    num_levels: L directly, for data whose level count is not a power of two (the sklearn
      digits: 17); overrides ``num_bits``.
    convention: ``"dequantized"`` (y = lo + (hi-lo)(k+u)/L; Delta = (hi-lo)/L) or
      ``"centered"`` (y = lo + (hi-lo)k/(L-1); Delta = (hi-lo)/(L-1)).

  Returns:
    The offset in nats per dimension: log 128 for ((-1, 1), 8, "dequantized"), log 256 for
    ((0, 1), 8, "dequantized"), log 127.5 for ((-1, 1), 8, "centered").
  """
  lo, hi = data_range
  if not hi > lo:
    raise ValueError(f"dequantization_offset: data_range must be (lo, hi) with hi > lo, "
                     f"got {data_range}.")
  if convention not in _CONVENTIONS:
    raise ValueError(f"dequantization_offset: convention must be one of {_CONVENTIONS}, got "
                     f"{convention!r}.")
  levels = 2 ** num_bits if num_levels is None else int(num_levels)
  if levels < 2:
    raise ValueError(f"dequantization_offset: need at least 2 levels, got {levels}.")
  delta = (hi - lo) / (levels if convention == "dequantized" else levels - 1)
  return -math.log(delta)


def bpd_with_dequantization_offset(nll_nats: jax.Array, num_dims: int,
                                   data_range: tuple[float, float] = (-1.0, 1.0),
                                   num_bits: int = 8,
                                   convention: str = "dequantized",
                                   num_levels: Optional[int] = None) -> jax.Array:
  """Bits/dim of the discrete data from a continuous NLL on rescaled pixels.

  bpd = (nll + D log(1 / Delta)) / (D ln 2); Delta from :func:`dequantization_offset`.

  Args:
    nll_nats: [...] continuous NLL -log p(y) of each example in nats, summed over dimensions.
    num_dims: D.
    data_range: (lo, hi) of the model's pixel space.
    num_bits: bits per pixel value.
    convention: ``"dequantized"`` or ``"centered"``.
    num_levels: L directly (overrides ``num_bits``).

  Returns:
    [...] bits/dim. Example: nll = 0 on [-1, 1], "dequantized" -> 7.0.
  """
  off = dequantization_offset(data_range, num_bits, convention, num_levels)
  return nats_to_bpd(jnp.asarray(nll_nats) + num_dims * off, num_dims)
