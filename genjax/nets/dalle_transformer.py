"""DALL-E's transformer (Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation", Sec. 2.2 and
Appendix B.1) as a Flax Linen module: a decoder-only transformer over the concatenation of
caption tokens and image tokens.

* **Embeddings**: a text token table and an image token table; a learned position embedding for
  each text position and, for the image, a row embedding plus a column embedding
  (Appendix B.1).
* **Blocks**: pre-LayerNorm, multi-head self-attention under a per-layer boolean mask, GELU MLP.
* **Masks** (:func:`attention_mask`, Appendix B.1 and Fig. 11): text attends causally to text;
  every image token attends to all text tokens; image-to-image attention is causal and, per
  layer, ``"dense"``, ``"row"`` (the previous ``w`` image tokens in raster order and itself,
  so the farthest is the same column of the previous row), ``"column"`` (earlier tokens of
  the same column) or ``"conv"`` (a causal ``k x k`` neighbourhood; the paper wraps around the
  row edge, this mask does not). The paper's pattern is ``(row, column, row, row)`` repeated,
  with a convolutional last layer.
* **Heads**: one linear head to text logits and one to image logits; position ``p`` predicts
  token ``p + 1``.
* **Key-value cache**: :meth:`DalleTransformer.step` runs one position against a cache of the
  keys and values of the earlier ones, which makes sampling one ``lax.scan`` of O(T) steps
  (:func:`genjax.dalle.sampling.sample_image_tokens`).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

ATTENTION_KINDS = ("dense", "row", "column", "conv")


def attention_mask(kind: str, text_len: int, grid: tuple[int, int], kernel: int = 3) -> np.ndarray:
  """The boolean [T, T] attention mask (True: query row may attend key column) over the
  sequence ``[text (text_len); image (h * w, raster order)]`` (Ramesh et al. 2021, Fig. 11).

  Args:
    kind: "dense" | "row" | "column" | "conv" (the image-to-image pattern).
    text_len: L, caption tokens.
    grid: (h, w) image tokens.
    kernel: odd side of the ``"conv"`` neighbourhood.

  Returns:
    [L + h w, L + h w] bool, lower triangular.
  """
  if kind not in ATTENTION_KINDS:
    raise ValueError(f"attention kind must be one of {ATTENTION_KINDS}, got {kind!r}.")
  h, w = grid
  n = h * w
  t = text_len + n
  causal = np.tril(np.ones((t, t), bool))
  if kind == "dense":
    return causal
  a = np.arange(n)[:, None]  # query image index
  b = np.arange(n)[None, :]  # key image index
  if kind == "row":
    img = (a - b >= 0) & (a - b <= w)
  elif kind == "column":
    img = (a - b >= 0) & ((a - b) % w == 0)
  else:
    if kernel % 2 != 1:
      raise ValueError(f"conv attention kernel must be odd, got {kernel}.")
    r = kernel // 2
    ra, ca, rb, cb = a // w, a % w, b // w, b % w
    img = (a >= b) & (np.abs(ra - rb) <= r) & (np.abs(ca - cb) <= r)
  mask = causal.copy()
  mask[text_len:, text_len:] = img
  return mask


class DalleTransformer(nn.Module):
  """Decoder-only transformer over ``[caption; image tokens]``.

  Attributes:
    text_vocab: caption vocabulary size.
    image_vocab: K, the dVAE's codebook size.
    text_len: L.
    grid: (h, w) image token grid.
    dim: width.
    depth: number of blocks.
    num_heads: attention heads.
    attention: per-layer mask kinds, cycled over the layers (e.g. ("row", "column", "row",
      "row")).
    last_attention: mask of the last layer (None: keep the cycle; "conv" in the paper).
    conv_kernel: side of the "conv" mask.
    mlp_ratio: MLP width over ``dim``.
  """

  text_vocab: int
  image_vocab: int
  text_len: int
  grid: tuple[int, int]
  dim: int = 128
  depth: int = 4
  num_heads: int = 4
  attention: Sequence[str] = ("dense",)
  last_attention: str | None = None
  conv_kernel: int = 3
  mlp_ratio: float = 4.0

  @property
  def seq_len(self) -> int:
    return self.text_len + self.grid[0] * self.grid[1]

  def layer_kinds(self) -> tuple[str, ...]:
    kinds = [self.attention[i % len(self.attention)] for i in range(self.depth)]
    if self.last_attention is not None:
      kinds[-1] = self.last_attention
    return tuple(kinds)

  def masks(self) -> np.ndarray:
    """[depth, T, T] bool, one mask per layer."""
    return np.stack([attention_mask(k, self.text_len, self.grid, self.conv_kernel)
                     for k in self.layer_kinds()])

  def setup(self):
    d, init = self.dim, nn.initializers.normal(0.02)
    if d % self.num_heads:
      raise ValueError(f"dim {d} is not divisible by num_heads {self.num_heads}.")
    self.text_embed = nn.Embed(self.text_vocab, d, embedding_init=init)
    self.image_embed = nn.Embed(self.image_vocab, d, embedding_init=init)
    self.text_pos = self.param("text_pos", init, (self.text_len, d))
    self.row_pos = self.param("row_pos", init, (self.grid[0], d))
    self.col_pos = self.param("col_pos", init, (self.grid[1], d))
    dense = lambda f, name: nn.Dense(f, kernel_init=nn.initializers.xavier_uniform(), name=name)
    self.qkv = [dense(3 * d, f"qkv{i}") for i in range(self.depth)]
    self.proj = [dense(d, f"proj{i}") for i in range(self.depth)]
    self.fc1 = [dense(int(d * self.mlp_ratio), f"fc1_{i}") for i in range(self.depth)]
    self.fc2 = [dense(d, f"fc2_{i}") for i in range(self.depth)]
    self.ln1 = [nn.LayerNorm(1e-5, name=f"ln1_{i}") for i in range(self.depth)]
    self.ln2 = [nn.LayerNorm(1e-5, name=f"ln2_{i}") for i in range(self.depth)]
    self.ln_f = nn.LayerNorm(1e-5)
    self.text_head = dense(self.text_vocab, "text_head")
    self.image_head = dense(self.image_vocab, "image_head")

  def _positions(self) -> Array:
    """[T, D] position embeddings of every sequence position."""
    h, w = self.grid
    img = (self.row_pos[:, None, :] + self.col_pos[None, :, :]).reshape(h * w, self.dim)
    return jnp.concatenate([self.text_pos, img], axis=0)

  def _embed(self, tokens: Array, pos: Array) -> Array:
    """tokens [B, n] at sequence positions pos [n] -> [B, n, D]; an image token id is its code."""
    is_text = pos < self.text_len
    te = self.text_embed(jnp.where(is_text, tokens, 0))
    ie = self.image_embed(jnp.where(is_text, 0, tokens))
    return jnp.where(is_text[None, :, None], te, ie) + self._positions()[pos][None]

  def _split_heads(self, qkv: Array):
    b, n, _ = qkv.shape
    hd = self.dim // self.num_heads
    q, k, v = jnp.split(qkv.reshape(b, n, 3, self.num_heads, hd), 3, axis=2)
    return q[:, :, 0], k[:, :, 0], v[:, :, 0]   # [B, n, H, hd]

  def _attend(self, q, k, v, mask):
    hd = self.dim // self.num_heads
    logits = jnp.einsum("bnhd,bmhd->bhnm", q, k) / np.sqrt(hd).astype(q.dtype)
    logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    out = jnp.einsum("bhnm,bmhd->bnhd", jax.nn.softmax(logits, axis=-1), v)
    return out.reshape(out.shape[0], out.shape[1], self.dim)

  def _mlp(self, i, x):
    return self.fc2[i](nn.gelu(self.fc1[i](self.ln2[i](x)), approximate=False))

  def _heads(self, x):
    x = self.ln_f(x)
    return self.text_head(x), self.image_head(x)

  def __call__(self, tokens: Array):
    """Logits of the next token at every position.

    Args:
      tokens: [B, n] int, the first n <= T tokens of ``[caption; image codes]``.

    Returns:
      ``(text_logits [B, n, text_vocab], image_logits [B, n, image_vocab])``; position p
      predicts token p + 1 (a text token for p + 1 < L, an image token otherwise).
    """
    n = tokens.shape[1]
    if n > self.seq_len:
      raise ValueError(f"DalleTransformer: {n} tokens exceed the sequence length {self.seq_len}.")
    masks = jnp.asarray(self.masks()[:, :n, :n])
    x = self._embed(tokens, jnp.arange(n))
    for i in range(self.depth):
      q, k, v = self._split_heads(self.qkv[i](self.ln1[i](x)))
      x = x + self.proj[i](self._attend(q, k, v, masks[i][None, None]))
      x = x + self._mlp(i, x)
    return self._heads(x)

  def init_cache(self, batch: int, dtype=jnp.float32) -> dict:
    """Empty key/value cache: ``{"k", "v": [depth, B, T, H, hd]}``."""
    hd = self.dim // self.num_heads
    shape = (self.depth, batch, self.seq_len, self.num_heads, hd)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}

  def step(self, token: Array, pos: Array, cache: dict):
    """One position with a key-value cache.

    Args:
      token: [B] int, the token at sequence position ``pos``.
      pos: scalar int position (may be traced).
      cache: from :meth:`init_cache`, holding the keys and values of positions < pos.

    Returns:
      ``((text_logits [B, text_vocab], image_logits [B, image_vocab]), cache)``: the logits of
      the token at ``pos + 1`` and the cache with position ``pos`` written.
    """
    masks = jnp.asarray(self.masks())
    x = self._embed(token[:, None], pos[None])
    ks, vs = cache["k"], cache["v"]
    for i in range(self.depth):
      q, k, v = self._split_heads(self.qkv[i](self.ln1[i](x)))
      ks = ks.at[i].set(jax.lax.dynamic_update_slice_in_dim(ks[i], k, pos, axis=1))
      vs = vs.at[i].set(jax.lax.dynamic_update_slice_in_dim(vs[i], v, pos, axis=1))
      row = jax.lax.dynamic_index_in_dim(masks[i], pos, axis=0, keepdims=False)   # [T]
      x = x + self.proj[i](self._attend(q, ks[i], vs[i], row[None, None, None, :]))
      x = x + self._mlp(i, x)
    lt, li = self._heads(x)
    return (lt[:, 0], li[:, 0]), {"k": ks, "v": vs}
