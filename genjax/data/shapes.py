"""``shapes``: a procedural captioned dataset of coloured shapes, generated from an index.

Image ``i`` is a pure function of ``i`` and the :class:`ShapesConfig`: its attributes come from
``np.random.default_rng([SEED_WORD, i])``, so the dataset needs no file and no download, is as
large as wanted, and any example can be regenerated (a run resumes by its step alone). The
random draws of an index do not depend on the config (image size, object counts and rotation
only change how the same draws are used), so image ``i`` has the same layout at 32x32 and 64x64.

An image (RGB, 32x32 by default; any side >= 16) holds 1-3 objects, each in its own cell of a
3x3 grid (cell ``3 * row + col``, row 0 at the top), on a plain or lightly textured dark
background:

* shape: circle, square, triangle (apex up), diamond, cross (``shapes_grammar.SHAPES``);
* colour: red, green, blue, yellow, orange, purple, cyan, white (``COLOURS``, RGB in
  ``COLOUR_RGB``);
* size: small (radius 0.22 of a cell) or large (0.34); shapes other than the circle are
  scaled to a similar area;
* position: the cell, with a centre jitter of at most 0.035 of a cell;
* rotation: uniform in ``[-max_rotation, max_rotation]`` degrees (0 by default).

Objects are drawn as anti-aliased signed-distance shapes (coverage ``clip(0.5 - d, 0, 1)`` for
the signed distance ``d`` in pixels) and never overlap: the largest extent of a large shape
plus the jitter stays inside its cell even at +-45 degrees.

Per image, besides the image, (see :func:`generate` for the exact arrays):

* a caption in the grammar of :mod:`genjax.data.shapes_grammar` (absolute or relative
  placement, chosen per image) and its tokens;
* attribute labels: per object (fixed arrays of ``MAX_OBJECTS = 3``, padded with -1) shape,
  colour, size, cell and rotation, the object count, and what the caption requests
  (``caption_cell``: the cell where the caption places the object or -1; ``relation``);
* an instance segmentation mask (0 background, ``k + 1`` where object ``k`` covers at least
  half the pixel, i.e. ``d <= 0``);
* an edge map: 1 on the inner boundary of each instance (a pixel of the instance with a
  4-neighbour outside it), 0 elsewhere.

Splits: the test set is indices ``[0, num_test)``, the training set the next ``num_train``
indices, so they never share an image.

Example:
  >>> batch = generate(np.arange(4))
  >>> batch["x"].shape, batch["text"].shape, batch["mask"].shape
  ((4, 32, 32, 3), (4, 32), (4, 32, 32))
  >>> captions(np.arange(1))
  ['a large white triangle at the bottom right, ...']  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from genjax.data import shapes_grammar as grammar
from genjax.data.shapes_grammar import CaptionSpec

SHAPES = grammar.SHAPES
COLOURS = grammar.COLOURS
SIZES = grammar.SIZES
POSITIONS = grammar.POSITIONS
RELATIONS = grammar.RELATIONS
MAX_OBJECTS = grammar.MAX_OBJECTS
NUM_CELLS = grammar.GRID * grammar.GRID
COLOUR_RGB = np.array([
    (0.90, 0.12, 0.12),  # red
    (0.15, 0.75, 0.22),  # green
    (0.20, 0.35, 0.98),  # blue
    (0.97, 0.90, 0.12),  # yellow
    (1.00, 0.55, 0.08),  # orange
    (0.62, 0.22, 0.88),  # purple
    (0.12, 0.85, 0.90),  # cyan
    (0.96, 0.96, 0.96),  # white
], np.float32)
# Radius of the circle of each size, in cells; the other shapes are scaled to a similar area.
SIZE_RADIUS = (0.22, 0.34)
JITTER = 0.035  # largest centre offset, in cells
# Shape extents relative to the size radius r: square half-side, diamond half-diagonal,
# triangle circumradius, cross half-length / half-width.
SQUARE_HALF = 0.9
DIAMOND_HALF = 1.2
TRIANGLE_CIRCUMRADIUS = 1.25
CROSS_HALF, CROSS_WIDTH = 1.05, 0.45
SEED_WORD = 0x73686170  # "shap": the stream of the generator, independent of any run seed.
NUM_CLASSES = len(SHAPES)  # "label": the shape of the first object
DEFAULT_TEXT_LEN = 32
DEFAULT_NUM_TRAIN = 1_000_000
DEFAULT_NUM_TEST = 10_000


@dataclasses.dataclass(frozen=True)
class ShapesConfig:
  """How the images are drawn (not which: that is the index).

  Attributes:
    image_size: side in pixels (>= 16; 32 by default, 64 as the larger option).
    min_objects: fewest objects per image (1..3).
    max_objects: most objects per image (min_objects..3).
    max_rotation: objects are rotated uniformly in [-max_rotation, max_rotation] degrees.
    texture: probability that the background is textured (faint plaid) rather than plain.
    text_len: length L of the token rows (``genjax.text.tokenize``); >= 28 holds every caption.
  """

  image_size: int = 32
  min_objects: int = 1
  max_objects: int = 3
  max_rotation: float = 0.0
  texture: float = 0.5
  text_len: int = DEFAULT_TEXT_LEN

  def __post_init__(self):
    if not isinstance(self.image_size, (int, np.integer)) or self.image_size < 16:
      raise ValueError(f"shapes image_size must be an int >= 16; got {self.image_size!r}.")
    if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
      raise ValueError(f"shapes needs 1 <= min_objects <= max_objects <= {MAX_OBJECTS}; got "
                       f"min_objects={self.min_objects}, max_objects={self.max_objects}.")
    if not 0.0 <= self.max_rotation <= 180.0:
      raise ValueError(f"shapes max_rotation must lie in [0, 180] degrees; got {self.max_rotation}.")
    if not 0.0 <= self.texture <= 1.0:
      raise ValueError(f"shapes texture is a probability in [0, 1]; got {self.texture}.")
    if self.text_len < 2:
      raise ValueError(f"shapes text_len must be >= 2; got {self.text_len}.")


@dataclasses.dataclass(frozen=True)
class Scene:
  """The drawn attributes of one image (see :func:`scene`)."""

  index: int
  shape: tuple[int, ...]
  colour: tuple[int, ...]
  size: tuple[int, ...]
  cell: tuple[int, ...]
  rotation: tuple[float, ...]  # degrees
  offset: tuple[tuple[float, float], ...]  # (dy, dx) centre jitter, in cells
  relation: int  # -1: absolute caption
  background: tuple[float, float, float]
  texture: tuple[float, ...]  # () plain, else (amplitude, f1, angle1, phase1, f2, angle2, phase2)

  @property
  def num_objects(self) -> int:
    return len(self.shape)

  def caption_spec(self) -> CaptionSpec:
    """What the caption of this scene requests."""
    if self.relation >= 0:
      cells = (-1, -1) + self.cell[2:]
    else:
      cells = self.cell
    return CaptionSpec(self.shape, self.colour, self.size, cells, self.relation)

  def caption(self) -> str:
    return grammar.compose_caption(self.caption_spec())


def scene(index: int, cfg: ShapesConfig = ShapesConfig()) -> Scene:
  """The attributes of image ``index`` (a pure function of ``index`` and ``cfg``).

  The draws, in order, from ``np.random.default_rng([SEED_WORD, index])``: one uniform for
  the object count, a permutation of the 9 cells, 3 integers per object slot for shape,
  colour, size, 3 uniforms per slot for rotation and jitter, 2 uniforms for the caption form
  and relation, 4 for the background colour, 7 for its texture. All slots are drawn whatever
  the config, so the config changes only how the draws are used.
  """
  index = int(index)
  if index < 0:
    raise IndexError(f"shapes index must be >= 0; got {index}.")
  rng = np.random.default_rng([SEED_WORD, index])
  u_count = rng.random()
  cells = rng.permutation(NUM_CELLS)[:MAX_OBJECTS]
  ints = rng.integers(0, [len(SHAPES), len(COLOURS), len(SIZES)], size=(MAX_OBJECTS, 3))
  u_obj = rng.random((MAX_OBJECTS, 3))
  u_cap = rng.random(2)
  u_bg = rng.random(4)
  u_tex = rng.random(7)

  n = cfg.min_objects + int(u_count * (cfg.max_objects - cfg.min_objects + 1))
  cell = tuple(int(c) for c in cells[:n])
  relation = -1
  if n >= 2 and u_cap[0] < 0.5:
    options = grammar.true_relations(cell[0], cell[1])
    relation = options[int(u_cap[1] * len(options))]
  gray = 0.08 + 0.18 * u_bg[0]
  background = tuple(float(gray + 0.03 * (2 * u - 1)) for u in u_bg[1:])
  texture = ()
  if u_tex[0] < cfg.texture:
    texture = (0.035,
               2.0 + 4.0 * u_tex[1], np.pi * u_tex[2], 2 * np.pi * u_tex[3],
               2.0 + 4.0 * u_tex[4], np.pi * u_tex[5], 2 * np.pi * u_tex[6])
  return Scene(
      index=index,
      shape=tuple(int(v) for v in ints[:n, 0]),
      colour=tuple(int(v) for v in ints[:n, 1]),
      size=tuple(int(v) for v in ints[:n, 2]),
      cell=cell,
      rotation=tuple(float(cfg.max_rotation * (2 * u - 1)) for u in u_obj[:n, 0]),
      offset=tuple((float(JITTER * (2 * a - 1)), float(JITTER * (2 * b - 1)))
                   for a, b in u_obj[:n, 1:]),
      relation=relation,
      background=background,
      texture=tuple(float(t) for t in texture),
  )


# ----------------------------------------------------------------------------------------------
# Rendering: signed distances (in pixels, negative inside) of each shape, vectorised over objects.


def _sd_box(px: np.ndarray, py: np.ndarray, bx, by) -> np.ndarray:
  """Signed distance to an axis-aligned box of half-sides (bx, by) centred at 0."""
  qx, qy = np.abs(px) - bx, np.abs(py) - by
  outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
  return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _sd_triangle(px: np.ndarray, py: np.ndarray, half_side) -> np.ndarray:
  """Signed distance to an equilateral triangle, apex up (+y), centroid at 0 (Quilez's)."""
  k = np.sqrt(3.0)
  x = np.abs(px) - half_side
  y = py + half_side / k
  fold = x + k * y > 0.0
  x, y = np.where(fold, (x - k * y) / 2.0, x), np.where(fold, (-k * x - y) / 2.0, y)
  x = x - np.clip(x, -2.0 * half_side, 0.0)
  return -np.sqrt(x * x + y * y) * np.sign(y)


def _signed_distance(shape: np.ndarray, r: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
  """[m, H, W] signed distances of m objects; px, py [m, H, W] in the object's frame (y up)."""
  r = r[:, None, None]
  out = np.empty_like(px)
  for s in range(len(SHAPES)):
    sel = shape == s
    if not sel.any():
      continue
    x, y, rs = px[sel], py[sel], r[sel]
    name = SHAPES[s]
    if name == "circle":
      d = np.sqrt(x * x + y * y) - rs
    elif name == "square":
      d = _sd_box(x, y, SQUARE_HALF * rs, SQUARE_HALF * rs)
    elif name == "diamond":  # a square turned by 45 degrees
      c = np.sqrt(0.5)
      b = DIAMOND_HALF * rs * c
      d = _sd_box(c * (x - y), c * (x + y), b, b)
    elif name == "triangle":
      d = _sd_triangle(x, y, TRIANGLE_CIRCUMRADIUS * rs * np.sqrt(3.0) / 2.0)
    else:  # cross
      a, w = CROSS_HALF * rs, CROSS_WIDTH * rs
      d = np.minimum(_sd_box(x, y, a, w), _sd_box(x, y, w, a))
    out[sel] = d
  return out


def render(scenes: Sequence[Scene], image_size: int = 32
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Draws scenes.

  Returns:
    ``(images [n, S, S, 3] float32 in [0, 1], mask [n, S, S] int32, edges [n, S, S, 1]
    float32)``: see the module docstring.
  """
  n, s = len(scenes), int(image_size)
  cell_px = s / grammar.GRID
  coords = np.arange(s, dtype=np.float32) + 0.5
  # 1. Background: gray with a faint tint, optionally a plaid of two sinusoids.
  bg = np.array([sc.background for sc in scenes], np.float32).reshape(n, 1, 1, 3)
  images = np.broadcast_to(bg, (n, s, s, 3)).copy()
  tex_idx = [i for i, sc in enumerate(scenes) if sc.texture]
  if tex_idx:
    t = np.array([scenes[i].texture for i in tex_idx], np.float32)
    yy, xx = coords[None, :, None] / s, coords[None, None, :] / s
    pattern = np.zeros((len(tex_idx), s, s), np.float32)
    for f, a, ph in ((1, 2, 3), (4, 5, 6)):
      freq, ang, phase = (t[:, j, None, None] for j in (f, a, ph))
      pattern += np.sin(2 * np.pi * freq * (xx * np.cos(ang) + yy * np.sin(ang)) + phase)
    images[tex_idx] += (t[:, 0, None, None] * 0.5 * pattern)[..., None]
  # 2. Objects: one flat list over all images.
  img_of, shape, colour, radius, cy, cx, rot = [], [], [], [], [], [], []
  for i, sc in enumerate(scenes):
    for k in range(sc.num_objects):
      row, col = divmod(sc.cell[k], grammar.GRID)
      img_of.append(i)
      shape.append(sc.shape[k])
      colour.append(sc.colour[k])
      radius.append(SIZE_RADIUS[sc.size[k]] * cell_px)
      cy.append((row + 0.5 + sc.offset[k][0]) * cell_px)
      cx.append((col + 0.5 + sc.offset[k][1]) * cell_px)
      rot.append(np.deg2rad(sc.rotation[k]))
  mask = np.zeros((n, s, s), np.int32)
  if img_of:
    img_of = np.array(img_of)
    slot = np.concatenate([np.arange(sc.num_objects) for sc in scenes])
    shape, colour = np.array(shape), np.array(colour)
    radius, cy, cx, rot = (np.array(v, np.float32) for v in (radius, cy, cx, rot))
    # Each object (with its anti-aliased rim) lies inside its cell, so its signed distance is
    # computed on a patch of P x P pixels around the cell only.
    p = min(s, int(np.ceil(cell_px)) + 3)
    top = np.clip(np.floor((cy - 0.5 * cell_px)).astype(np.int64) - 1, 0, s - p)
    left = np.clip(np.floor((cx - 0.5 * cell_px)).astype(np.int64) - 1, 0, s - p)
    rows = top[:, None] + np.arange(p)  # [m, P]
    cols = left[:, None] + np.arange(p)
    dx = coords[cols][:, None, :] - cx[:, None, None]  # [m, 1, P]
    dy = cy[:, None, None] - coords[rows][:, :, None]  # [m, P, 1], y up
    cos, sin = np.cos(rot)[:, None, None], np.sin(rot)[:, None, None]
    px = cos * dx + sin * dy  # rotate the frame by -rotation (the shape turns anticlockwise)
    py = -sin * dx + cos * dy
    d = _signed_distance(shape, radius, px.astype(np.float32), py.astype(np.float32))
    alpha = np.clip(0.5 - d, 0.0, 1.0)[..., None]  # [m, P, P, 1]
    # Objects never overlap, so compositing them in any order gives the same image; one slot
    # at a time, each image has at most one object, so the scattered patches do not collide.
    for k in range(MAX_OBJECTS):
      sel = slot == k
      if not sel.any():
        continue
      at = (img_of[sel][:, None, None], rows[sel][:, :, None], cols[sel][:, None, :])
      a = alpha[sel]
      images[at] = images[at] * (1.0 - a) + a * COLOUR_RGB[colour[sel]][:, None, None, :]
      mask[at] = np.where(d[sel] <= 0.0, k + 1, mask[at])
  np.clip(images, 0.0, 1.0, out=images)
  edges = instance_edges(mask)
  return images, mask, edges


def instance_edges(mask: np.ndarray) -> np.ndarray:
  """[n, S, S, 1] float32: 1 where a pixel of an instance has a 4-neighbour outside it."""
  m = np.pad(mask, ((0, 0), (1, 1), (1, 1)), mode="edge")
  c = m[:, 1:-1, 1:-1]
  differs = ((m[:, :-2, 1:-1] != c) | (m[:, 2:, 1:-1] != c) | (m[:, 1:-1, :-2] != c)
             | (m[:, 1:-1, 2:] != c))
  return ((c > 0) & differs).astype(np.float32)[..., None]


def labels(scenes: Sequence[Scene]) -> dict[str, np.ndarray]:
  """Attribute labels of scenes as fixed-size arrays (objects padded with -1).

  Returns:
    ``num_objects [n]``, ``shape``, ``colour``, ``size``, ``cell``, ``caption_cell`` (the cell
    where the caption places the object, -1 if it does not) ``[n, 3]`` int32, ``rotation
    [n, 3]`` float32 degrees (0 for padding), ``relation [n]`` int32 (index into ``RELATIONS``
    of object 0 relative to object 1 in the caption, -1 for absolute captions) and ``label
    [n]`` int32 (the shape of the first object).
  """
  n = len(scenes)
  out = {k: np.full((n, MAX_OBJECTS), -1, np.int32)
         for k in ("shape", "colour", "size", "cell", "caption_cell")}
  out["rotation"] = np.zeros((n, MAX_OBJECTS), np.float32)
  out["num_objects"] = np.array([sc.num_objects for sc in scenes], np.int32)
  out["relation"] = np.array([sc.relation for sc in scenes], np.int32)
  for i, sc in enumerate(scenes):
    k = sc.num_objects
    out["shape"][i, :k] = sc.shape
    out["colour"][i, :k] = sc.colour
    out["size"][i, :k] = sc.size
    out["cell"][i, :k] = sc.cell
    out["caption_cell"][i, :k] = sc.caption_spec().cell
    out["rotation"][i, :k] = sc.rotation
  out["label"] = out["shape"][:, 0].copy()
  return out


def requests_from_specs(specs: Sequence[CaptionSpec]) -> dict[str, np.ndarray]:
  """What captions request, in the arrays of :func:`labels` (``shape``, ``colour``, ``size``,
  ``caption_cell`` [n, 3], ``num_objects``, ``relation`` [n]); e.g. from parsed prompts."""
  n = len(specs)
  out = {k: np.full((n, MAX_OBJECTS), -1, np.int32) for k in ("shape", "colour", "size",
                                                               "caption_cell")}
  out["num_objects"] = np.array([sp.num_objects for sp in specs], np.int32)
  out["relation"] = np.array([sp.relation for sp in specs], np.int32)
  for i, sp in enumerate(specs):
    k = sp.num_objects
    out["shape"][i, :k] = sp.shape
    out["colour"][i, :k] = sp.colour
    out["size"][i, :k] = sp.size
    out["caption_cell"][i, :k] = sp.cell
  return out


def parse_prompts(prompts: Sequence[str]) -> dict[str, np.ndarray]:
  """Requests of prompts in the shapes grammar (``requests_from_specs(parse_caption(p)...)``).

  Raises:
    shapes_grammar.CaptionParseError: a prompt outside the grammar (names the word).
  """
  return requests_from_specs([grammar.parse_caption(p) for p in prompts])


def _indices(indices) -> np.ndarray:
  idx = np.asarray(indices)
  if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
    raise ValueError(f"shapes indices must be a 1-D integer array; got shape {idx.shape} of "
                     f"{idx.dtype}.")
  if idx.size and idx.min() < 0:
    raise IndexError(f"shapes indices must be >= 0; got {idx.min()}.")
  return idx.astype(np.int64)


def scenes(indices, cfg: ShapesConfig = ShapesConfig()) -> list[Scene]:
  """``[scene(i, cfg) for i in indices]``."""
  return [scene(int(i), cfg) for i in _indices(indices)]


def captions(indices, cfg: ShapesConfig = ShapesConfig()) -> list[str]:
  """The captions of images ``indices``."""
  return [sc.caption() for sc in scenes(indices, cfg)]


def generate(indices, cfg: ShapesConfig = ShapesConfig()) -> dict[str, np.ndarray]:
  """The batch of images ``indices`` (global indices, >= 0).

  Returns:
    ``x`` [n, S, S, 3] float32 in [-1, 1]; ``text`` [n, L] int32 caption tokens
    (``genjax.text.tokenize``, L = ``cfg.text_len``); ``mask`` [n, S, S] int32 instance ids;
    ``edges`` [n, S, S, 1] float32 in {0, 1}; and the labels of :func:`labels` (``label``,
    ``num_objects``, ``shape``, ``colour``, ``size``, ``cell``, ``caption_cell``,
    ``rotation``, ``relation``).
  """
  from genjax.text import tokenizer  # pylint: disable=g-import-not-at-top

  sc = scenes(indices, cfg)
  images, mask, edges = render(sc, cfg.image_size)
  out = {"x": images * 2.0 - 1.0}
  out["text"] = tokenizer.tokenize([s.caption() for s in sc], cfg.text_len)
  out.update(mask=mask, edges=edges)
  out.update(labels(sc))
  return out


class ShapesSource:
  """A split of ``shapes``: ``len`` and ``get(indices)`` (the data pipeline's source protocol).

  Local index ``j`` is image ``start + j``.

  Args:
    cfg: how images are drawn.
    start: global index of the split's first image.
    length: number of images in the split.
  """

  def __init__(self, cfg: ShapesConfig, start: int, length: int):
    if start < 0 or length < 1:
      raise ValueError(f"ShapesSource needs start >= 0 and length >= 1; got {start}, {length}.")
    self.cfg, self.start, self.length = cfg, int(start), int(length)

  def __len__(self) -> int:
    return self.length

  def _global(self, indices) -> np.ndarray:
    idx = _indices(indices)
    if idx.size and idx.max() >= self.length:
      raise IndexError(f"indices must lie in [0, {self.length}); got max {idx.max()}.")
    return idx + self.start

  def get(self, indices) -> dict[str, np.ndarray]:
    """:func:`generate` of the split's images ``indices`` ([n] local indices)."""
    return generate(self._global(indices), self.cfg)

  def captions(self, indices) -> list[str]:
    """The captions of the split's images ``indices``."""
    return captions(self._global(indices), self.cfg)

  def scenes(self, indices) -> list[Scene]:
    return scenes(self._global(indices), self.cfg)

  def __repr__(self) -> str:
    return f"ShapesSource({self.cfg}, start={self.start}, length={self.length})"


def splits(cfg: ShapesConfig = ShapesConfig(), num_train: int = DEFAULT_NUM_TRAIN,
           num_test: int = DEFAULT_NUM_TEST) -> tuple[ShapesSource, ShapesSource]:
  """(train, test): test is indices ``[0, num_test)``, train the next ``num_train``."""
  return ShapesSource(cfg, num_test, num_train), ShapesSource(cfg, 0, num_test)
