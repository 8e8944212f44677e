"""Typed, frozen views of the ml_collections config (DESIGN.md item 9).

Library code never reads ``config.a.b.c``: each section becomes a frozen dataclass at the
boundary, and an unknown key fails with a message naming it. Every package (networks, families,
the trainer) converts its sections with these helpers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Type, TypeVar

T = TypeVar("T")


def to_dict(section: Any) -> dict:
  """A ConfigDict / FrozenConfigDict / Mapping section as a plain dict."""
  if section is None:
    return {}
  if hasattr(section, "to_dict"):
    return section.to_dict()
  return dict(section)


def from_section(cls: Type[T], section: Any, *, where: str = "") -> T:
  """Builds dataclass ``cls`` from a config section, rejecting unknown keys.

  Tuples stay tuples (ml_collections may hand back lists).
  """
  d = to_dict(section)
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - names)
  if unknown:
    raise ValueError(
        f"Unknown config field(s) {unknown} in section {where or cls.__name__!r}; "
        f"valid fields are {sorted(names)}.")
  kwargs = {}
  for k, v in d.items():
    if isinstance(v, list):
      v = tuple(v)
    kwargs[k] = v
  return cls(**kwargs)

