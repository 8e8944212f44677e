"""Typed, frozen views of the ml_collections config (DESIGN.md item 9), checked in one place.

Library code never reads ``config.a.b.c``: each section becomes a frozen dataclass at the
boundary, and an unknown key fails with a message naming it. Every package (networks, families,
the trainer) converts its sections with these helpers.

Each field declares what it accepts, so that a setting that cannot work fails before anything
is built or compiled, with one message that names the field, the allowed values and the value
given::

    import dataclasses
    from typing import Optional
    from genjax import typed_config
    from genjax.typed_config import field

    @dataclasses.dataclass(frozen=True)
    class SamplingConfig:
      sampler: str = field("ddim", choices=("ddpm", "ddim"))
      steps: int = field(50, gt=0)
      eta: float = field(0.0, ge=0.0, le=1.0)
      label: Optional[int] = field(None, ge=-1)   # None or an int >= -1
      respacing: Optional[str] = None              # a plain default: its type is still checked

      def __post_init__(self):   # optional: also check instances built directly in code
        typed_config.validate(self, "sampling")

    cfg = typed_config.from_section(SamplingConfig, config.sampling, where="sampling")
    # ValueError: config.sampling.steps must be a positive integer, got 0.

The checks:

* **types**, from the annotations: ``int`` (not ``bool``), ``float`` (an int is accepted),
  ``bool``, ``str``, ``Optional[X]`` (``None`` or ``X``), ``tuple[X, ...]`` (a list or tuple
  of ``X``); other annotations (``Any``, callables, nested dataclasses) are not checked;
* **ranges**, from :func:`field`: ``gt``, ``ge``, ``lt``, ``le`` bounds (NaN fails every
  bound) and ``choices``, a tuple of allowed values;
* **rules across fields** stay in the dataclass's ``__post_init__``, after the call to
  :func:`validate`.

:func:`from_section` runs the checks with the section's name (``where``); :func:`validate` runs
them on an instance.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing
from typing import Any, Optional, Sequence, Type, TypeVar

T = TypeVar("T")

_CHECK = "genjax.check"


@dataclasses.dataclass(frozen=True)
class Check:
  """What a field accepts besides its type: bounds and/or a set of choices."""
  gt: Optional[float] = None
  ge: Optional[float] = None
  lt: Optional[float] = None
  le: Optional[float] = None
  choices: Optional[tuple] = None

  def ok(self, value: Any) -> bool:
    """Whether ``value`` (already of the field's type, not None) is allowed."""
    if self.choices is not None and value not in self.choices:
      return False
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
      v = float(value)
      if math.isnan(v):
        return not any(b is not None for b in (self.gt, self.ge, self.lt, self.le))
      if self.gt is not None and not v > self.gt:
        return False
      if self.ge is not None and not v >= self.ge:
        return False
      if self.lt is not None and not v < self.lt:
        return False
      if self.le is not None and not v <= self.le:
        return False
    return True

  def describe_range(self) -> str:
    """``positive``, ``non-negative``, ``in [0, 1]``, ``>= 2``, ... ('' without bounds)."""
    lo = (f"({_num(self.gt)}" if self.gt is not None else
          f"[{_num(self.ge)}" if self.ge is not None else None)
    hi = (f"{_num(self.lt)})" if self.lt is not None else
          f"{_num(self.le)}]" if self.le is not None else None)
    if lo and hi:
      return f"in {lo}, {hi}"
    if self.gt == 0 and hi is None:
      return "positive"
    if self.ge == 0 and hi is None:
      return "non-negative"
    if lo:
      return (">" if self.gt is not None else ">=") + " " + lo[1:]
    if hi:
      return ("<" if self.lt is not None else "<=") + " " + hi[:-1]
    return ""


def _num(x: float) -> str:
  return str(int(x)) if float(x).is_integer() else repr(x)


def field(default: Any = dataclasses.MISSING, *, gt: Optional[float] = None,
          ge: Optional[float] = None, lt: Optional[float] = None, le: Optional[float] = None,
          choices: Optional[Sequence[Any]] = None) -> Any:
  """A dataclass field whose value :func:`from_section` / :func:`validate` check.

  Args:
    default: the default value (immutable: a number, string, tuple or None).
    gt, ge, lt, le: bounds on a number (greater than, at least, less than, at most).
    choices: the allowed values.

  Returns:
    A ``dataclasses.field`` carrying the check in its metadata.

  Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...   every: int = field(100, gt=0)
    >>> from_section(C, {"every": 0}, where="training")
    Traceback (most recent call last):
    ValueError: config.training.every must be a positive integer, got 0.
  """
  check = Check(gt=gt, ge=ge, lt=lt, le=le, choices=tuple(choices) if choices is not None else None)
  return dataclasses.field(default=default, metadata={_CHECK: check})


def to_dict(section: Any) -> dict:
  """A ConfigDict / FrozenConfigDict / Mapping section as a plain dict."""
  if section is None:
    return {}
  if hasattr(section, "to_dict"):
    return section.to_dict()
  return dict(section)


def from_section(cls: Type[T], section: Any, *, where: str = "") -> T:
  """Builds dataclass ``cls`` from a config section, rejecting unknown keys and bad values.

  Tuples stay tuples (ml_collections may hand back lists).

  Args:
    cls: a dataclass whose fields may carry checks (:func:`field`).
    section: a ConfigDict, a Mapping or None (all defaults).
    where: the section's name in the config (``"training"``), used in messages.

  Raises:
    ValueError: an unknown key (with the closest valid name), or a value of the wrong type or
      out of range (naming ``config.<where>.<field>``, the allowed values and the value given).
  """
  d = to_dict(section)
  names = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(set(d) - set(names))
  if unknown:
    hints = [f"{u!r} (did you mean {close[0]!r}?)" if close else repr(u)
             for u in unknown for close in [difflib.get_close_matches(u, names, n=1)]]
    raise ValueError(
        f"Unknown config field(s) {', '.join(hints)} in section {where or cls.__name__!r}; "
        f"valid fields are {sorted(names)}.")
  kwargs = {}
  for k, v in d.items():
    if isinstance(v, list):
      v = tuple(v)
    kwargs[k] = v
  hints = _hints(cls)
  for f in dataclasses.fields(cls):
    if f.name in kwargs:
      _check_value(f, hints.get(f.name), kwargs[f.name], where or cls.__name__)
  return cls(**kwargs)


def validate(obj: Any, where: str = "") -> None:
  """Checks every field of dataclass instance ``obj`` (types and :func:`field` ranges).

  Call it first in a section's ``__post_init__`` so that instances built in code are checked
  as well as those built by :func:`from_section`.

  Raises:
    ValueError: naming ``config.<where>.<field>``, what it accepts and the value given.
  """
  hints = _hints(type(obj))
  for f in dataclasses.fields(obj):
    _check_value(f, hints.get(f.name), getattr(obj, f.name), where or type(obj).__name__)


def _hints(cls) -> dict:
  try:
    return typing.get_type_hints(cls)
  except Exception:  # an annotation that cannot be resolved: check ranges only
    return {}


def _check_value(f: dataclasses.Field, hint: Any, value: Any, where: str) -> None:
  check: Optional[Check] = f.metadata.get(_CHECK)
  optional, base = _unwrap_optional(hint)
  if value is None:
    if optional or hint is None or base is None:
      return
    raise ValueError(f"config.{where}.{f.name} must be {_describe(base, check, False)}, "
                     f"got None.")
  type_ok = _type_ok(base, value)
  if not type_ok or (check is not None and not check.ok(value)):
    raise ValueError(f"config.{where}.{f.name} must be {_describe(base, check, optional)}, "
                     f"got {value!r}.")


def _unwrap_optional(hint: Any) -> tuple[bool, Any]:
  """``(optional, base)``: ``Optional[int]`` -> ``(True, int)``; ``Any`` -> ``(False, None)``."""
  if hint is None or hint is Any:
    return False, None
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = len(args) < len(typing.get_args(hint))
    return optional, (args[0] if len(args) == 1 else None)
  return False, hint


_TYPE_WORDS = {int: "integer", float: "number", bool: "boolean (True or False)", str: "string"}


def _type_ok(base: Any, value: Any) -> bool:
  if base is None:
    return True
  if base is bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"
  if base is int:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
  if base is float:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
  if base is str:
    return isinstance(value, str)
  origin = typing.get_origin(base)
  if base is tuple or origin is tuple:
    if not isinstance(value, (tuple, list)):
      return False
    args = typing.get_args(base)
    if len(args) == 2 and args[1] is Ellipsis:
      return all(_type_ok(args[0], v) for v in value)
    return True
  return True  # an annotation this module does not check


def _describe(base: Any, check: Optional[Check], optional: bool) -> str:
  """``a positive integer``, ``one of 'adam', 'adamw'``, ``a number in [0, 1] or None``."""
  if check is not None and check.choices is not None:
    text = "one of " + ", ".join(repr(c) for c in check.choices)
  else:
    if base in _TYPE_WORDS:
      noun = _TYPE_WORDS[base]
    elif base is tuple or typing.get_origin(base) is tuple:
      args = typing.get_args(base)
      noun = (f"tuple of {_TYPE_WORDS.get(args[0], 'value')}s"
              if len(args) == 2 and args[1] is Ellipsis else "tuple")
    else:
      noun = "value"
    rng = check.describe_range() if check is not None else ""
    if rng.startswith(("in ", ">", "<")):
      text = f"{noun} {rng}"
    elif rng:
      text = f"{rng} {noun}"
    else:
      text = noun
    text = ("an " if text[0] in "aeiou" else "a ") + text
  return text + (" or None" if optional else "")
