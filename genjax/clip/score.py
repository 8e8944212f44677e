"""A trained genjax CLIP restored from its workdir, as the two towers other code needs: the
CLIP score of generated images (:func:`genjax.metrics.clip_score_images`), unCLIP's prior and
decoder, and Imagen's frozen text encoder.

Example:
  >>> clip = load_clip("runs/clip")
  >>> scores = metrics.clip_score_images(clip.encode_image, clip.encode_text, images,
  ...                                    text.tokenize(captions, clip.text_len))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

__all__ = ["ClipTowers", "load_clip"]


@dataclasses.dataclass(frozen=True)
class ClipTowers:
  """A trained CLIP's jitted, L2-normalised towers (EMA params).

  Attributes:
    encode_image: ``images [B, H, W, C] in [-1, 1] -> [B, E]``, unit norm.
    encode_text: ``tokens int [B, L] -> [B, E]``, unit norm.
    text_hidden: ``tokens -> [B, L, D]``, the text transformer's last hidden states.
    params: the EMA params; ``model``: the Flax module (pure ``apply`` with them).
    image_shape: the images it was trained on; ``text_len``: its caption length.
    embed_dim: E.
  """
  encode_image: Callable
  encode_text: Callable
  text_hidden: Callable
  params: Any
  model: Any
  image_shape: tuple
  text_len: int
  embed_dim: int


def load_clip(workdir: str) -> ClipTowers:
  """Restores the CLIP run in ``workdir`` (its own config record).

  Raises:
    CheckpointError: no trained run there.
    ValueError: the run is not a CLIP.
  """
  from genjax.clip.losses import l2_normalize
  from genjax.clip.method import ClipConfig, build_clip_model
  from genjax.clip.model import CLIP
  from genjax.training import run as run_lib
  from genjax.typed_config import from_section
  config, run, state = run_lib.load_trained(workdir)
  if config.get("method") != "clip":
    raise ValueError(f"{workdir!r} holds a {config.get('method')!r} run, not a CLIP "
                     "(config.method='clip').")
  cfg = from_section(ClipConfig, config.clip, where="clip")
  text_len = int(config.data.get("text_len", 32) or 32)
  model = build_clip_model(cfg, text_len)
  params = state.ema_params
  img = jax.jit(lambda x: l2_normalize(model.apply({"params": params}, x,
                                                   method=CLIP.encode_image)))
  txt = jax.jit(lambda t: l2_normalize(model.apply({"params": params}, t,
                                                   method=CLIP.encode_text)))
  hid = jax.jit(lambda t: model.apply({"params": params}, t, method=CLIP.text_hidden))
  return ClipTowers(img, txt, hid, params, model, tuple(run.dataset.spec.shape), text_len,
                    cfg.embed_dim)
