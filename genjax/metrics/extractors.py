"""Feature extractors for FD/FID, KID, IS and precision/recall, and batched extraction.

An :class:`Extractor` is a pure function ``apply(params, images) -> (features, probs)`` with
its params and what identifies it: a name, the checksum of its weights and its input/resize
convention. Reference statistics store the last two and are refused when they differ, so a
number is never computed against statistics made by another network or another resize.

Two extractors:
  * ``"digits"``: the small CNN trained on the embedded digits (shipped with genjax);
  * ``"inception"``: Inception-v3 as pytorch-fid uses it (FID, IS), from a weights file the
    user supplies (:mod:`genjax.metrics.inception`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

EXTRACTORS = ("digits", "inception")


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A feature network as pure function plus identity.

  Attributes:
    name: "digits_classifier" or "inception_v3_fid".
    apply: ``apply(params, x [B, H, W, C] in [-1, 1]) -> (features [B, D], probs [B, K])``;
      jit-able, applied batch by batch.
    params: its weights (a pytree of arrays).
    checksum: sha256 of the weights (:func:`genjax.metrics.weights.params_checksum`).
    resize: the input convention (how images are resized/scaled/quantized before the net).
    feature_dim: D.
    batch_size: default images per call.
  """

  name: str
  apply: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
  params: Any
  checksum: str
  resize: str
  feature_dim: int
  batch_size: int = 500

  def describe(self) -> dict:
    """JSON-able identity of the extractor (recorded in eval.json and reference stats)."""
    return {"extractor": self.name, "extractor_checksum": self.checksum,
            "resize": self.resize, "feature_dim": self.feature_dim}


def digits_extractor(path: Optional[str] = None) -> Extractor:
  """The shipped digits classifier (or the weights at ``path``) as an :class:`Extractor`."""
  from genjax.metrics import digits_classifier as dc

  params, _, checksum = dc.load_classifier_params(path)
  return Extractor(dc.NAME, dc.apply_classifier, params, checksum, dc.RESIZE_CONVENTION,
                   dc.FEATURE_DIM)


def inception_extractor(path: Optional[str] = None) -> Extractor:
  """Inception-v3 (pytorch-fid's FID network) from a .pth or converted .npz weights file."""
  from genjax.metrics import inception

  params, checksum = inception.load_inception_params(path)
  return Extractor(inception.NAME, inception.fid_features_and_probs, params, checksum, inception.RESIZE_CONVENTION,
                   inception.FEATURE_DIM, batch_size=50)


def get_extractor(extractor: "str | Extractor", weights: Optional[str] = None) -> Extractor:
  """An :class:`Extractor` from its name ("digits" | "inception") or as given.

  Args:
    extractor: a name in ``EXTRACTORS`` or an :class:`Extractor`.
    weights: optional weights file (the digits classifier defaults to the shipped one;
      Inception needs it, or ``$GENJAX_INCEPTION_WEIGHTS``).
  """
  if isinstance(extractor, Extractor):
    return extractor
  if extractor in ("digits", "digits_classifier"):
    return digits_extractor(weights)
  if extractor in ("inception", "inception_v3_fid"):
    return inception_extractor(weights)
  raise ValueError(f"Unknown feature extractor {extractor!r}; valid: {EXTRACTORS}.")


def extract(extractor: Extractor, images, batch_size: Optional[int] = None,
            progress: bool = False, desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
  """Features and class probabilities of ``images``, batch by batch, sharded over devices.

  Each batch is padded to a fixed size (one compilation), divided over all local devices on
  a ``P('data')`` mesh axis, and brought back to the host.

  Args:
    extractor: the network.
    images: [N, H, W, C] in [-1, 1] (NumPy or JAX).
    batch_size: images per call (rounded up to a multiple of the device count); default
      ``extractor.batch_size``.
    progress: show a tqdm progress bar.
    desc: its label.

  Returns:
    (features [N, D] float32, probs [N, K] float32), NumPy.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"extract takes images [N, H, W, C], got shape {images.shape}.")
  if not np.all(np.isfinite(images)):
    raise ValueError("images contain NaN or Inf; the sampler diverged, so there is nothing "
                     "to evaluate.")
  n = images.shape[0]
  devices = jax.devices()
  mesh = jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,), devices=devices)
  bs = min(batch_size or extractor.batch_size, max(n, 1))
  bs = -(-bs // len(devices)) * len(devices)
  data_sharding = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  fn = jax.jit(extractor.apply, in_shardings=(replicated, data_sharding),
               out_shardings=(data_sharding, data_sharding))
  params = jax.device_put(extractor.params, replicated)
  it = range(0, n, bs)
  if progress:
    from tqdm.auto import tqdm
    it = tqdm(it, desc=desc, unit="batch", dynamic_ncols=True)
  feats, probs = [], []
  for i in it:
    chunk = images[i:i + bs].astype(np.float32)
    m = chunk.shape[0]
    if m < bs:
      chunk = np.concatenate([chunk, np.zeros((bs - m,) + chunk.shape[1:], chunk.dtype)])
    f, p = fn(params, jax.device_put(chunk, data_sharding))
    feats.append(np.asarray(f)[:m])
    probs.append(np.asarray(p)[:m])
  return np.concatenate(feats), np.concatenate(probs)
