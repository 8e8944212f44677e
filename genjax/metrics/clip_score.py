"""CLIP score: image-text agreement from the embeddings of a CLIP model.

Hessel et al. (2021), "CLIPScore: A Reference-free Evaluation Metric for Image Captioning",
eq. (1): CLIP-S(c, v) = w * max(cos(c, v), 0) with w = 2.5. Text-to-image papers (and
torchmetrics' ``CLIPScore``) report the same quantity with w = 100. The CLIP network itself is
not part of genjax's metrics: pass the image and text embeddings of whatever CLIP model
produced them (the same model for both), and say which model when reporting the number.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

HESSEL_W = 2.5
TORCHMETRICS_W = 100.0


def clip_score(image_embeds: jax.Array, text_embeds: jax.Array,
               w: float = TORCHMETRICS_W) -> jax.Array:
  """w * max(cos(image, text), 0) per pair, Hessel et al. (2021) eq. (1).

  Args:
    image_embeds: [..., D] CLIP image embeddings (any norm).
    text_embeds: [..., D] CLIP text embeddings of the matching prompts.
    w: the scale: 100 (torchmetrics, text-to-image papers) or 2.5 (Hessel et al.'s CLIP-S).

  Returns:
    [...] scores in [0, w], in the embeddings' floating dtype.

  Raises:
    ValueError: shapes differ.
  """
  a = jnp.asarray(image_embeds)
  b = jnp.asarray(text_embeds)
  if a.shape != b.shape or a.ndim < 1:
    raise ValueError(f"clip_score: image and text embeddings must have one shape [..., D], "
                     f"got {a.shape} and {b.shape}.")
  dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32) if not jnp.issubdtype(
      jnp.result_type(a, b), jnp.floating) else jnp.result_type(a, b)
  a, b = a.astype(dtype), b.astype(dtype)
  tiny = jnp.finfo(dtype).tiny
  cos = jnp.sum(a * b, axis=-1) / jnp.maximum(
      jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1), tiny)
  return jnp.asarray(w, dtype) * jnp.maximum(cos, 0.0)


def clip_score_images(encode_image, encode_text, images, tokens, w: float = TORCHMETRICS_W,
                      batch_size: int = 256):
  """Per-pair CLIP scores of images and their captions with a CLIP model's two towers.

  ``w * max(cos(E_img(x_i), E_txt(c_i)), 0)`` (Hessel et al. 2021, eq. 1), computed in batches
  of ``batch_size``; ``genjax.clip.score.load_clip`` gives the towers of a trained genjax CLIP.

  Args:
    encode_image: ``images [B, H, W, C] in [-1, 1] -> [B, D]``.
    encode_text: ``tokens int [B, L] -> [B, D]``.
    images: ``[N, H, W, C]``.
    tokens: ``int [N, L]``, the caption of each image.
    w: the scale (100: torchmetrics and text-to-image papers; 2.5: CLIP-S).
    batch_size: pairs per call.

  Returns:
    ``[N]`` float32 numpy scores.

  Raises:
    ValueError: unequal numbers of images and captions.
  """
  import numpy as np
  if len(images) != len(tokens):
    raise ValueError(f"clip_score_images: {len(images)} images but {len(tokens)} captions.")
  out = []
  for i in range(0, len(images), batch_size):
    out.append(np.asarray(clip_score(encode_image(images[i:i + batch_size]),
                                     encode_text(tokens[i:i + batch_size]), w), np.float32))
  return np.concatenate(out) if out else np.zeros((0,), np.float32)
