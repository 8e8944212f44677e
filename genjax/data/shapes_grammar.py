"""The caption grammar of the ``shapes`` dataset: attribute names, templates, and a parser.

Pure Python (no numpy), so that the tokenizer (``genjax.text``) can build its vocabulary from
it without importing the image generator.

An object is ``(size, colour, shape)`` at one of the nine cells of a 3x3 grid (cell
``3 * row + col``, row 0 at the top). A caption names every object's size, colour and shape,
and places objects in one of two ways:

* **absolute**: each object's cell, e.g. ``"a small red circle at the top left"``;
* **relative**: one spatial relation between the first two objects, e.g.
  ``"a small red circle above a large blue square"`` (a third object, if any, is placed
  absolutely: ``"... and a large green cross at the bottom right"``).

Grammar (``OBJ = a SIZE COLOUR SHAPE``, ``AT = PREP the POSITION``)::

  1 object:   OBJ AT
  2 objects:  OBJ AT and OBJ AT                 | OBJ REL OBJ
  3 objects:  OBJ AT , OBJ AT and OBJ AT        | OBJ REL OBJ and OBJ AT

``PREP`` is ``in`` for ``center`` and ``at`` otherwise. ``REL`` is one of ``above``,
``below``, ``left of``, ``right of`` and is true of the two objects' cells (``above``: a
smaller row; ``left of``: a smaller column). The empty caption ``""`` requests nothing (the
condition dropped for classifier-free guidance).

:func:`parse_caption` inverts :func:`compose_caption` exactly; it also parses user prompts in
this grammar (e.g. for ``sample.py --prompt``) into the requested attributes that caption
adherence checks.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "cyan", "white")
SIZES = ("small", "large")
# Cell 3 * row + col, row 0 at the top.
POSITIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left",
             "bottom", "bottom right")
RELATIONS = ("above", "below", "left of", "right of")
MAX_OBJECTS = 3
GRID = 3

_FUNCTION_WORDS = ("a", "the", "at", "in", "and", "of", ",")


def vocabulary_words() -> tuple[str, ...]:
  """Every word the grammar can produce, sorted (the tokenizer's word list)."""
  words = set(_FUNCTION_WORDS) | set(SHAPES) | set(COLOURS) | set(SIZES)
  for phrase in POSITIONS + RELATIONS:
    words.update(phrase.split())
  return tuple(sorted(words))


def relation_holds(relation: int, cell_a: int, cell_b: int) -> bool:
  """Whether ``RELATIONS[relation]`` holds of an object at ``cell_a`` and one at ``cell_b``."""
  ra, ca = divmod(cell_a, GRID)
  rb, cb = divmod(cell_b, GRID)
  return (ra < rb, ra > rb, ca < cb, ca > cb)[relation]


def true_relations(cell_a: int, cell_b: int) -> list[int]:
  """Indices of the relations that hold of objects at ``cell_a`` and ``cell_b``."""
  return [r for r in range(len(RELATIONS)) if relation_holds(r, cell_a, cell_b)]


@dataclasses.dataclass(frozen=True)
class CaptionSpec:
  """What a caption requests.

  Attributes:
    shape, colour, size: per object, indices into ``SHAPES``, ``COLOURS``, ``SIZES``.
    cell: per object, its cell 0..8 when the caption places it absolutely, else -1.
    relation: index into ``RELATIONS`` relating object 0 to object 1, or -1 (absolute
      captions).
  """

  shape: tuple[int, ...] = ()
  colour: tuple[int, ...] = ()
  size: tuple[int, ...] = ()
  cell: tuple[int, ...] = ()
  relation: int = -1

  @property
  def num_objects(self) -> int:
    return len(self.shape)


def _object_words(size: int, colour: int, shape: int) -> str:
  return f"a {SIZES[size]} {COLOURS[colour]} {SHAPES[shape]}"


def _at(cell: int) -> str:
  pos = POSITIONS[cell]
  return f"in the {pos}" if pos == "center" else f"at the {pos}"


def compose_caption(spec: CaptionSpec) -> str:
  """The caption of ``spec`` (see the module docstring for the grammar).

  Raises:
    ValueError: an inconsistent spec (a relative caption with fewer than 2 objects, a missing
      cell, more than 3 objects).
  """
  n = spec.num_objects
  if n == 0:
    return ""
  if not (len(spec.colour) == len(spec.size) == len(spec.cell) == n) or n > MAX_OBJECTS:
    raise ValueError(f"inconsistent CaptionSpec {spec}.")
  objs = [_object_words(spec.size[i], spec.colour[i], spec.shape[i]) for i in range(n)]
  if spec.relation >= 0:
    if n < 2:
      raise ValueError("a relative caption needs at least 2 objects.")
    text = f"{objs[0]} {RELATIONS[spec.relation]} {objs[1]}"
    if n == 3:
      if spec.cell[2] < 0:
        raise ValueError("the third object of a relative caption needs a cell.")
      text += f" and {objs[2]} {_at(spec.cell[2])}"
    return text
  if min(spec.cell) < 0:
    raise ValueError(f"an absolute caption needs every cell; got {spec.cell}.")
  parts = [f"{objs[i]} {_at(spec.cell[i])}" for i in range(n)]
  if n == 1:
    return parts[0]
  return ", ".join(parts[:-1]) + " and " + parts[-1]


class CaptionParseError(ValueError):
  """A caption that is not in the shapes grammar."""


def _parse_object(words: list[str], i: int, caption: str) -> tuple[tuple[int, int, int], int]:
  def expect(options: Sequence[str], j: int, what: str) -> int:
    if j >= len(words) or words[j] not in options:
      got = words[j] if j < len(words) else "the end"
      raise CaptionParseError(f"caption {caption!r}: expected {what} ({', '.join(options)}) at "
                              f"word {j + 1}, got {got!r}.")
    return options.index(words[j])

  expect(("a",), i, "'a'")
  size = expect(SIZES, i + 1, "a size")
  colour = expect(COLOURS, i + 2, "a colour")
  shape = expect(SHAPES, i + 3, "a shape")
  return (size, colour, shape), i + 4


def _parse_at(words: list[str], i: int, caption: str) -> tuple[Optional[int], int]:
  """Parses ``at the POS`` / ``in the center`` at word i; (None, i) if not there."""
  if i + 2 > len(words) or words[i] not in ("at", "in") or words[i + 1] != "the":
    return None, i
  for n in (2, 1):  # Longest match first ("top left" before "top").
    phrase = " ".join(words[i + 2:i + 2 + n])
    if len(words[i + 2:i + 2 + n]) == n and phrase in POSITIONS:
      cell = POSITIONS.index(phrase)
      if (words[i] == "in") != (phrase == "center"):
        raise CaptionParseError(f"caption {caption!r}: say 'in the center' and 'at the "
                                f"{POSITIONS[0]}' (etc.), got {words[i]!r} the {phrase!r}.")
      return cell, i + 2 + n
  raise CaptionParseError(f"caption {caption!r}: expected a position ({', '.join(POSITIONS)}) "
                          f"after {words[i]!r} the.")


def _tokens(caption: str) -> list[str]:
  return caption.replace(",", " , ").split()


def parse_caption(caption: str) -> CaptionSpec:
  """The requests of a caption in the shapes grammar (the inverse of :func:`compose_caption`).

  Raises:
    CaptionParseError: naming the first word that does not fit the grammar.

  Example:
    >>> parse_caption("a small red circle above a large blue square")
    CaptionSpec(shape=(0, 1), colour=(0, 2), size=(0, 1), cell=(-1, -1), relation=0)
  """
  words = _tokens(caption.strip().lower())
  if not words:
    return CaptionSpec()
  objs, cells, relation = [], [], -1
  obj, i = _parse_object(words, 0, caption)
  objs.append(obj)
  cell, i = _parse_at(words, i, caption)
  if cell is None:
    # Relative: OBJ REL OBJ [and OBJ AT].
    for rel in RELATIONS:
      k = len(rel.split())
      if words[i:i + k] == rel.split():
        relation, i = RELATIONS.index(rel), i + k
        break
    else:
      got = words[i] if i < len(words) else "the end"
      raise CaptionParseError(f"caption {caption!r}: expected a position ('at the ...') or a "
                              f"relation ({', '.join(RELATIONS)}) after the first object, got "
                              f"{got!r}.")
    obj, i = _parse_object(words, i, caption)
    objs.append(obj)
    cells = [-1, -1]
    if i < len(words):
      if words[i] != "and":
        raise CaptionParseError(f"caption {caption!r}: expected 'and' or the end, got {words[i]!r}.")
      obj, i = _parse_object(words, i + 1, caption)
      cell, i = _parse_at(words, i, caption)
      if cell is None:
        raise CaptionParseError(f"caption {caption!r}: the third object needs a position "
                                "('at the ...').")
      objs.append(obj)
      cells.append(cell)
  else:
    cells.append(cell)
    sep = None
    while i < len(words):
      sep = words[i]
      if sep not in (",", "and"):
        raise CaptionParseError(f"caption {caption!r}: expected ',' or 'and', got {sep!r}.")
      obj, i = _parse_object(words, i + 1, caption)
      cell, i = _parse_at(words, i, caption)
      if cell is None:
        raise CaptionParseError(f"caption {caption!r}: object {len(objs) + 1} needs a position "
                                "('at the ...'), as the first one has.")
      objs.append(obj)
      cells.append(cell)
      if sep == "and" and i < len(words):
        raise CaptionParseError(f"caption {caption!r}: 'and' must join the last object.")
    if sep == ",":
      raise CaptionParseError(f"caption {caption!r}: join the last object with 'and'.")
  if i != len(words):
    raise CaptionParseError(f"caption {caption!r}: unexpected words after the end: "
                            f"{' '.join(words[i:])!r}.")
  if len(objs) > MAX_OBJECTS:
    raise CaptionParseError(f"caption {caption!r}: at most {MAX_OBJECTS} objects.")
  if relation < 0 and len(set(cells)) != len(cells):
    raise CaptionParseError(f"caption {caption!r}: two objects in one cell.")
  return CaptionSpec(shape=tuple(o[2] for o in objs), colour=tuple(o[1] for o in objs),
                     size=tuple(o[0] for o in objs), cell=tuple(cells), relation=relation)
