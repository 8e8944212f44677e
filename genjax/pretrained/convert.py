"""The converter framework: an explicit, checked map between a checkpoint's tensors and a genjax
params pytree, in both directions.

A converter is a list of :class:`Rule` s, each naming one genjax parameter (a ``/``-joined
path into the Flax params tree), the checkpoint key(s) it comes from, and the layout transform
between them (:data:`CONV`: PyTorch ``OIHW`` <-> Flax ``HWIO``; :data:`LINEAR`: ``[out, in]``
<-> ``[in, out]``; :func:`fuse` for fused projections such as QKV; :data:`IDENTITY` for biases,
norm scales and embeddings). :func:`to_params` applies the rules and fails, naming the key, on

* a checkpoint key that no rule reads (an unknown key: another architecture, or a config that
  does not describe the weights),
* a key a rule needs that the checkpoint lacks (a missing key),
* a tensor whose shape is not the one the model built from the config expects,

and on a rule list that does not cover every parameter of the model. Nothing is silently
skipped: tensors a converter deliberately does not load (fixed buffers) are listed in its
``checks`` with a test of their value (:class:`Check`). :func:`to_state_dict` runs the same
rules backwards (the export), and ``to_params(to_state_dict(p)) == p`` bitwise.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from genjax.pretrained.io import PretrainedError

__all__ = ["CONV", "Check", "DENSE_FROM_CONV1X1", "IDENTITY", "LINEAR", "Layout", "Rule",
           "flatten", "fuse", "to_params", "to_state_dict", "unflatten"]


@dataclasses.dataclass(frozen=True)
class Layout:
  """A pair of inverse layout transforms: ``to_jax(list of source arrays) -> array`` and
  ``to_torch(array) -> list of source arrays``."""
  name: str
  to_jax: Callable[[list], np.ndarray]
  to_torch: Callable[[np.ndarray], list]


IDENTITY = Layout("identity", lambda a: a[0], lambda w: [w])
# nn.Conv2d weight [out, in, kh, kw] <-> flax Conv kernel [kh, kw, in, out].
CONV = Layout("conv OIHW->HWIO", lambda a: a[0].transpose(2, 3, 1, 0),
              lambda w: [w.transpose(3, 2, 0, 1)])
# nn.Linear weight [out, in] <-> flax Dense kernel [in, out].
LINEAR = Layout("linear [out,in]->[in,out]", lambda a: a[0].T, lambda w: [w.T])
# A 1x1 nn.Conv2d [out, in, 1, 1] <-> flax Dense kernel [in, out] (a "network in network" layer).
DENSE_FROM_CONV1X1 = Layout("conv1x1 OI11->[in,out]", lambda a: a[0][:, :, 0, 0].T,
                            lambda w: [w.T[:, :, None, None]])


def fuse(inner: Layout, n: int, axis: int = -1) -> Layout:
  """``n`` separate projections (e.g. diffusers' ``to_q, to_k, to_v``) <-> one fused genjax
  parameter (DiT's ``qkv``), concatenated along ``axis`` after ``inner``; and the split back."""
  def to_jax(arrays):
    return np.concatenate([inner.to_jax([a]) for a in arrays], axis=axis)

  def to_torch(w):
    return [inner.to_torch(part)[0] for part in np.split(w, n, axis=axis)]
  return Layout(f"fuse{n}({inner.name})", to_jax, to_torch)


@dataclasses.dataclass(frozen=True)
class Rule:
  """One genjax parameter and where it comes from.

  Attributes:
    target: ``/``-joined path in the Flax params tree (``down_0_block_0/conv1/kernel``).
    sources: the checkpoint key(s) it is made from.
    layout: the transform between them.
  """
  target: str
  sources: tuple[str, ...]
  layout: Layout = IDENTITY


@dataclasses.dataclass(frozen=True)
class Check:
  """A checkpoint tensor that no parameter is made of, with a test of its value (a fixed
  buffer such as DiT's ``pos_embed``, or a copy of another tensor such as the per-block
  condition embedders of diffusers' DiT). ``test(array, state_dict) -> None or a reason``."""
  key: str
  test: Callable[[np.ndarray, dict], "str | None"]
  export: Callable[[dict], np.ndarray]


def rule(target: str, source, layout: Layout = IDENTITY) -> Rule:
  """A :class:`Rule` from one source key or a sequence of them."""
  return Rule(target, (source,) if isinstance(source, str) else tuple(source), layout)


def flatten(tree, prefix: str = "") -> dict:
  """Nested dict -> ``{"a/b/c": leaf}``."""
  out = {}
  for k, v in tree.items():
    path = f"{prefix}/{k}" if prefix else str(k)
    if isinstance(v, dict) or hasattr(v, "items"):
      out.update(flatten(v, path))
    else:
      out[path] = v
  return out


def unflatten(flat: dict) -> dict:
  """``{"a/b/c": leaf}`` -> nested dict."""
  out: dict = {}
  for path, v in flat.items():
    node = out
    *head, last = path.split("/")
    for k in head:
      node = node.setdefault(k, {})
    node[last] = v
  return out


def _shape_str(shape) -> str:
  return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def to_params(rules: Sequence[Rule], state_dict: dict, expected, *, what: str,
              checks: Sequence[Check] = (), dtype=np.float32) -> dict:
  """Apply ``rules`` to a checkpoint; the genjax params (nested dict of numpy arrays).

  Args:
    rules: the converter's rules.
    state_dict: the checkpoint's tensors (numpy), by key.
    expected: the params tree (or its ``jax.eval_shape``) of the model built from the config:
      every leaf must be made by exactly one rule, with this shape.
    what: the checkpoint's name for messages (its file or folder).
    checks: tensors that are tested but not loaded.
    dtype: the parameters' dtype (float32; the file's own dtype may be float16/bfloat16).

  Raises:
    PretrainedError: an unknown key, a missing key or a shape mismatch, naming the key.
  """
  want = {k: tuple(v.shape) for k, v in flatten(expected).items()}
  targets = [r.target for r in rules]
  dup = {t for t in targets if targets.count(t) > 1}
  uncovered = sorted(set(want) - set(targets))
  extra = sorted(set(targets) - set(want))
  if dup or uncovered or extra:  # a converter bug, not a file problem
    raise AssertionError(f"converter rules do not match the model: duplicated {sorted(dup)[:3]}, "
                         f"uncovered {uncovered[:3]}, unknown {extra[:3]}")
  used = {s for r in rules for s in r.sources} | {c.key for c in checks}
  unknown = sorted(set(state_dict) - used)
  if unknown:
    raise PretrainedError(f"{what}: unknown key {unknown[0]!r} ({len(unknown)} unknown in all): "
                          "the checkpoint is of another architecture, or its config does not "
                          "describe its weights.")
  missing = sorted(used - set(state_dict))
  if missing:
    raise PretrainedError(f"{what}: missing key {missing[0]!r} ({len(missing)} missing in all), "
                          "which the model its config describes needs.")
  out = {}
  for r in rules:
    srcs = [np.asarray(state_dict[s]) for s in r.sources]
    exp_src = r.layout.to_torch(np.zeros(want[r.target], np.float32))
    for s, a, e in zip(r.sources, srcs, exp_src):
      if a.shape != e.shape:
        raise PretrainedError(f"{what}: {s!r} has shape {_shape_str(a.shape)}, the model its "
                              f"config describes expects {_shape_str(e.shape)}.")
    out[r.target] = np.ascontiguousarray(r.layout.to_jax(srcs)).astype(dtype)
  for c in checks:
    reason = c.test(np.asarray(state_dict[c.key]), state_dict)
    if reason:
      raise PretrainedError(f"{what}: {c.key!r} {reason}")
  return unflatten(out)


def to_state_dict(rules: Sequence[Rule], params, checks: Sequence[Check] = ()) -> dict:
  """The export: genjax params -> checkpoint tensors (numpy, contiguous), by the same rules."""
  flat = {k: np.asarray(v) for k, v in flatten(params).items()}
  missing = sorted(set(r.target for r in rules) - set(flat))
  if missing:
    raise PretrainedError(f"params lack {missing[0]!r}, which the export needs: the params are "
                          "not of the model this config describes.")
  out = {}
  for r in rules:
    for s, a in zip(r.sources, r.layout.to_torch(flat[r.target])):
      out[s] = np.ascontiguousarray(a)
  for c in checks:
    out[c.key] = np.ascontiguousarray(c.export(out))
  return out
