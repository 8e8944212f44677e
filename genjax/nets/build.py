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


def build_network(model_section: Any, spec: DataSpec, *, learned_variance: bool = False,
                  **overrides):
  """Returns the Linen module named by ``model_section["name"]`` with its other fields.

  Args:
    model_section: the config's ``model`` section: ``name`` plus the module's fields.
    spec: the data the network sees (used to fill ``num_classes`` if the section asks for -1).
    learned_variance: the network outputs 2C channels (a mean part and improved DDPM's
      variance part), through its ``out_channels`` or ``out_dim`` field.
    **overrides: other fields the method fixes.

  Raises:
    ValueError: an unknown network name, a field the module does not have, or a learned
      variance for a network without an output-width field.
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
  if learned_variance:
    width = [f for f in ("out_channels", "out_dim") if f in fields]
    if not width:
      raise ValueError(f"A learned variance needs a network with an out_channels/out_dim field "
                       f"(2C outputs); {name!r} has neither.")
    d[width[0]] = 2 * int(spec.shape[-1])
  d.update(overrides)
  if d.get("num_classes", 0) == -1:
    d["num_classes"] = spec.num_classes
  d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
  return cls(**d)
