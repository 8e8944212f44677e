"""Feature extractors for FD/FID, KID, IS and precision/recall, and batched extraction.

An :class:`Extractor` is a pure function ``apply(params, images) -> (features, probs)`` with
its params and what identifies it: a name, the checksum of its weights and its input/resize
convention. Reference statistics store the last two and are refused when they differ, so a
number is never computed against statistics made by another network or another resize.

Extractors, each named by its feature space (the suffix of every metric key: ``fd_digits``,
``fid_inception``, ``kid_inception_clean``, ...):
  * ``"digits"``: the small CNN trained on the embedded digits (shipped with genjax);
  * ``"shapes"``: the per-cell attribute CNN trained on the procedural shapes (shipped);
  * ``"inception"``: Inception-v3 as pytorch-fid uses it (FID, IS), from a weights file the
    user supplies (:mod:`genjax.metrics.inception`), with pytorch-fid's bilinear resize;
  * ``"inception_clean"``: the same network with clean-fid's antialiased bicubic resize.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from genjax.metrics.checks import check_images

EXTRACTORS = ("digits", "inception", "inception_clean", "shapes")


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A feature network as pure function plus identity.

  Attributes:
    name: "digits_classifier", "shapes_classifier" or "inception_v3_fid".
    apply: ``apply(params, x [B, H, W, C] in [-1, 1]) -> (features [B, D], probs [B, K])``;
      jit-able, applied batch by batch.
    params: its weights (a pytree of arrays).
    checksum: sha256 of the weights (:func:`genjax.metrics.weights.params_checksum`).
    resize: the input convention (how images are resized/scaled/quantized before the net).
    feature_dim: D.
    batch_size: default images per call.
    space: the feature space's short name, the suffix of the metric keys ("digits",
      "inception", "inception_clean").
    channels: the image channel counts it takes.
    source_sha256: sha256 of the file the weights were converted from ("" if unknown);
      statistics files of other projects are accepted only for the official Inception weights.
  """

  name: str
  apply: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
  params: Any
  checksum: str
  resize: str
  feature_dim: int
  batch_size: int = 500
  space: str = ""
  channels: tuple[int, ...] = (1, 3)
  source_sha256: str = ""

  def describe(self) -> dict:
    """JSON-able identity of the extractor (recorded in eval.json and reference stats)."""
    return {"extractor": self.name, "extractor_checksum": self.checksum,
            "resize": self.resize, "feature_dim": self.feature_dim,
            "feature_space": self.space}


def digits_extractor(path: Optional[str] = None) -> Extractor:
  """The shipped digits classifier (or the weights at ``path``) as an :class:`Extractor`."""
  from genjax.metrics import digits_classifier as dc

  params, _, checksum = dc.load_classifier_params(path)
  return Extractor(dc.NAME, dc.apply_classifier, params, checksum, dc.RESIZE_CONVENTION,
                   dc.FEATURE_DIM, space="digits", channels=(1,))


def shapes_extractor(path: Optional[str] = None) -> Extractor:
  """The shipped shapes classifier (or the weights at ``path``) as an :class:`Extractor`."""
  from genjax.metrics import shapes_classifier as sc

  params, _, checksum = sc.load_classifier_params(path)
  return Extractor(sc.NAME, sc.apply_classifier, params, checksum, sc.RESIZE_CONVENTION,
                   sc.FEATURE_DIM, space="shapes", channels=(3,))


def inception_extractor(path: Optional[str] = None, resize: str = "pytorch-fid",
                        logits_bias: bool = False) -> Extractor:
  """Inception-v3 (pytorch-fid's FID network) from a .pth or converted .npz weights file.

  Args:
    path: the weights (default ``$GENJAX_INCEPTION_WEIGHTS``).
    resize: "pytorch-fid" (bilinear, pytorch-fid and TTUR-compatible) or "clean" (clean-fid).
    logits_bias: Inception Score from the biased logits (not comparable with published IS).
  """
  from genjax.metrics import inception

  inception._check_resize(resize)  # pylint: disable=protected-access
  params, checksum, source_sha256 = inception.load_inception(path)
  apply = functools.partial(inception.fid_features_and_probs, resize=resize,
                            logits_bias=logits_bias)
  space = "inception" if resize == "pytorch-fid" else "inception_clean"
  return Extractor(inception.NAME, apply, params, checksum, inception.RESIZES[resize],
                   inception.FEATURE_DIM, batch_size=50, space=space,
                   source_sha256=source_sha256)


def check_extractor_name(extractor) -> None:
  """Raises ValueError unless ``extractor`` is an :class:`Extractor` or a known name."""
  if not isinstance(extractor, Extractor) and extractor not in EXTRACTORS + (
      "digits_classifier", "shapes_classifier", "inception_v3_fid"):
    raise ValueError(f"Unknown feature extractor {extractor!r}; valid: {EXTRACTORS}.")


def get_extractor(extractor: "str | Extractor", weights: Optional[str] = None, *,
                  logits_bias: bool = False) -> Extractor:
  """An :class:`Extractor` from its name (one of ``EXTRACTORS``) or as given.

  Args:
    extractor: a name in ``EXTRACTORS`` or an :class:`Extractor`.
    weights: optional weights file (the digits and shapes classifiers default to the shipped ones;
      Inception needs it, or ``$GENJAX_INCEPTION_WEIGHTS``).
    logits_bias: Inception only: IS probabilities from the biased logits.
  """
  check_extractor_name(extractor)
  if isinstance(extractor, Extractor):
    return extractor
  if extractor in ("digits", "digits_classifier"):
    return digits_extractor(weights)
  if extractor in ("shapes", "shapes_classifier"):
    return shapes_extractor(weights)
  resize = "clean" if extractor == "inception_clean" else "pytorch-fid"
  return inception_extractor(weights, resize, logits_bias)


class BatchExtractor:
  """``extractor`` jitted once over all local devices, applied to batches of any size.

  Each call pads its images to a multiple of a fixed batch (one compilation), divides them
  over the devices on a ``P('data')`` mesh axis and brings the results back to the host. The
  params are put on the devices once, so a stream of batches (:class:`~genjax.metrics.
  evaluate.Evaluator`) costs no recompilation and no copies of the weights.

  Args:
    extractor: the network.
    batch_size: images per device call (rounded up to a multiple of the device count).
  """

  def __init__(self, extractor: Extractor, batch_size: int):
    self.extractor = extractor
    devices = jax.devices()
    mesh = jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,),
                         devices=devices)
    self.batch_size = -(-max(int(batch_size), 1) // len(devices)) * len(devices)
    self._data = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    self._fn = jax.jit(extractor.apply, in_shardings=(replicated, self._data),
                       out_shardings=(self._data, self._data))
    self._params = jax.device_put(extractor.params, replicated)

  def __call__(self, images, progress: bool = False,
               desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D] float32, probs [N, K] float32) of images [N, H, W, C] in [-1, 1]."""
    ext = self.extractor
    images = np.asarray(check_images(images, f"{ext.space or ext.name} features",
                                     channels=ext.channels))
    n, bs = images.shape[0], self.batch_size
    it = range(0, n, bs)
    if progress:
      from tqdm.auto import tqdm
      it = tqdm(it, desc=desc, unit="batch", dynamic_ncols=True)
    feats, probs = [], []
    for i in it:
      chunk = np.clip(images[i:i + bs].astype(np.float32), -1.0, 1.0)
      m = chunk.shape[0]
      if m < bs:
        chunk = np.concatenate([chunk, np.zeros((bs - m,) + chunk.shape[1:], chunk.dtype)])
      f, p = self._fn(self._params, jax.device_put(chunk, self._data))
      feats.append(np.asarray(f)[:m])
      probs.append(np.asarray(p)[:m])
    if not feats:
      return (np.zeros((0, ext.feature_dim), np.float32), np.zeros((0, 0), np.float32))
    return np.concatenate(feats), np.concatenate(probs)


def extract(extractor: Extractor, images, batch_size: Optional[int] = None,
            progress: bool = False, desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
  """Features and class probabilities of ``images``, batch by batch, sharded over devices.

  Each batch is padded to a fixed size (one compilation), divided over all local devices on
  a ``P('data')`` mesh axis, and brought back to the host (:class:`BatchExtractor`).

  Args:
    extractor: the network.
    images: [N, H, W, C] in [-1, 1] (NumPy or JAX); checked first
      (:func:`~genjax.metrics.checks.check_images`), then clipped to [-1, 1].
    batch_size: images per call (rounded up to a multiple of the device count); default
      ``extractor.batch_size``.
    progress: show a tqdm progress bar.
    desc: its label.

  Returns:
    (features [N, D] float32, probs [N, K] float32), NumPy.
  """
  check_images(images, f"{extractor.space or extractor.name} features",
               channels=extractor.channels)
  n = np.shape(images)[0]
  bs = min(batch_size or extractor.batch_size, max(n, 1))
  return BatchExtractor(extractor, bs)(images, progress, desc)
