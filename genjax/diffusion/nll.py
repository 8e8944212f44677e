"""Test-set negative log-likelihood of a DDPM in bits/dim, from the full variational bound.

``NLL <= L_vlb = L_T + sum_{t>0} L_t + L_0`` (Ho et al. 2020, eq. 5; seed 003 eq. 24-26;
Nichol & Dhariwal 2021, Sec. 3 report it in bits/dim), every term evaluated (T network calls
per example, :func:`genjax.diffusion.vlb.full_vlb_bpd`), batched and jitted.

The decoder ``L_0`` integrates ``p(x_0 | x_1)`` over the bin of each pixel value, and the bins
are a convention that has to be stated (see :mod:`genjax.metrics.likelihood` for the
continuous-density side of the same question):

* ``num_bins = 256`` (the default and the headline ``bpd``): the papers' convention for 8-bit
  images, bins of width ``2/255`` centred on the value (improved-diffusion's
  ``discretized_gaussian_log_likelihood``). On 8-bit data it is the exact discrete NLL bound.
* Data with fewer levels, such as scikit-learn's digits (17 grey levels ``v/8 - 1``,
  ``v = 0..16``), are not on the 256-level grid. With 256 bins each value still gets a
  width-``2/255`` bin around it: the bound is that of a model that spreads its mass over a
  256-level grid, comparable with the papers' numbers but not the likelihood of the
  17-level data. ``extra_bins=(17,)`` also reports ``bpd_17bins``: ``L_0`` on the data's own
  17 levels (bins of width ``2/16`` tiling ``[-1, 1]``, the outer ones open), the bound on the
  actual discrete distribution of the digits (``log2(17) = 4.09`` bits/dim is a uniform
  guess). Only ``L_0`` changes; the KL terms and ``L_T`` are shared, from the same ``x_t``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax.diffusion.vlb import decoder_nll_bpd, full_vlb_bpd
from genjax.sampling.posterior import ClipRange
from genjax.sampling.schedules import DiffusionSchedule

__all__ = ["make_nll_fn", "nll_bpd"]


def make_nll_fn(eps_fn_of: Callable, sched: DiffusionSchedule, *, var_type: str,
                clip_x0: ClipRange = None, num_bins: int = 256,
                extra_bins: Sequence[int] = ()) -> Callable:
  """A jittable ``nll_fn(params, x [B, ...], y [B] or None, key) -> dict of [B] arrays``.

  Args:
    eps_fn_of: ``eps_fn_of(params) -> eps_fn(x, t, cond)``, a denoiser (returning
      ``Prediction(eps, var_values)`` for a learned variance).
    sched: the schedule.
    var_type: the reverse variance type.
    clip_x0: clip the predicted ``x_0`` (improved-diffusion's ``image_nll.py`` default).
    num_bins: levels of the decoder grid for ``bpd``.
    extra_bins: more grids, each reported as ``bpd_{k}bins``.

  Returns:
    ``nll_fn`` giving ``bpd``, ``prior_bpd``, ``decoder_bpd``, ``kl_bpd`` (the sum of the
    ``t > 0`` terms) and ``bpd_{k}bins`` for each extra grid, per example.
  """

  def nll_fn(params, x, y, key):
    out = full_vlb_bpd(eps_fn_of(params), sched, x, key, var_type, clip_x0, cond=y,
                       num_bins=num_bins)
    decoder = out["terms_bpd"][:, 0]
    res = {"bpd": out["total_bpd"], "prior_bpd": out["prior_bpd"], "decoder_bpd": decoder,
           "kl_bpd": out["terms_bpd"][:, 1:].sum(axis=1)}
    for k in extra_bins:
      dec_k = decoder_nll_bpd(x, out["decoder_mean"], out["decoder_log_var"], num_bins=int(k))
      res[f"bpd_{int(k)}bins"] = out["total_bpd"] - decoder + dec_k
    return res

  return nll_fn


def nll_bpd(nll_fn: Callable, params, x: np.ndarray, y: Optional[np.ndarray], key: jax.Array, *,
            batch_size: int = 128, progress: bool = True, desc: str = "nll") -> dict:
  """Runs ``nll_fn`` over ``x`` in equal jitted batches and summarises it.

  The last batch is padded (with copies of the first examples) to keep one compiled shape; the
  padding is dropped. Batch ``i`` uses ``fold_in(key, i)``.

  Returns:
    ``{name: mean, name + "_stderr": standard error, ..., "num_examples": n}`` for every
    quantity ``nll_fn`` returns.
  """
  n = int(x.shape[0])
  if n < 1:
    raise ValueError("nll_bpd: no examples to evaluate.")
  batch_size = max(1, min(int(batch_size), n))
  fn = jax.jit(nll_fn)
  num_batches = -(-n // batch_size)
  pad = num_batches * batch_size - n
  idx = np.concatenate([np.arange(n), np.arange(pad) % n])
  it = range(num_batches)
  if progress:
    from tqdm.auto import tqdm
    it = tqdm(it, desc=desc, unit="batch", dynamic_ncols=True)
  chunks = []
  for i in it:
    sel = idx[i * batch_size:(i + 1) * batch_size]
    yb = None if y is None else jnp.asarray(y[sel])
    out = fn(params, jnp.asarray(x[sel]), yb, jax.random.fold_in(key, i))
    chunks.append(jax.tree.map(np.asarray, jax.device_get(out)))
  per_example = {k: np.concatenate([c[k] for c in chunks])[:n] for k in chunks[0]}
  summary = {}
  for k, v in per_example.items():
    summary[k] = float(np.mean(v))
    summary[k + "_stderr"] = float(np.std(v) / math.sqrt(n)) if n > 1 else 0.0
  summary["num_examples"] = n
  return summary
