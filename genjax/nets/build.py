"""Builds a network from the ``config.model`` section, checking its fields."""

from __future__ import annotations

import dataclasses
from typing import Any

from genjax.typed_config import to_dict
from genjax.types import DataSpec


def _registry():
  from genjax.nets.dit import DiT
  from genjax.nets.mlp import MLPDenoiser
  from genjax.nets.unet import UNet
  return {"unet": UNet, "mlp": MLPDenoiser, "dit": DiT}


def build_network(model_section: Any, spec: DataSpec, **overrides):
  """Returns the Linen module named by ``model_section["name"]`` with its other fields.

  Args:
    model_section: the config's ``model`` section: ``name`` plus the module's fields.
    spec: the data the network sees (used to fill ``num_classes`` if the section asks for -1).
    **overrides: fields the method fixes (e.g. ``out_channels`` for a learned variance).

  Raises:
    ValueError: an unknown network name or a field the module does not have.
  """
  d = dict(to_dict(model_section))
  name = d.pop("name", None)
  nets = _registry()
  if name not in nets:
    raise ValueError(f"Unknown config.model.name {name!r}; valid: {sorted(nets)}.")
  cls = nets[name]
  fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  unknown = sorted(set(d) - fields)
  if unknown:
    raise ValueError(f"Unknown field(s) {unknown} for config.model (network {name!r}); "
                     f"valid: {sorted(fields)}.")
  d.update(overrides)
  if d.get("num_classes", 0) == -1:
    d["num_classes"] = spec.num_classes
  d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
  return cls(**d)
