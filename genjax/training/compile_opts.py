"""XLA CPU compiler options, chosen per executable (the train step, sampling).

jaxlib 0.10 routes dots and convolutions on the CPU backend through YNNPACK by default
(``__ynn_fusion`` in the compiled program). ``jax.jit(..., compiler_options=...)`` sets
``xla_cpu_experimental_ynn_fusion_type`` for one executable: empty routes nothing through
YNNPACK, ``LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT`` only dots. Which is faster depends on the
executable (a convolution's kernel gradient was 2.5x slower through YNNPACK at 32x32x128), so
the trainer picks per executable, from the measurement in docs/scale.md
(``python -m benchmarks.compile_options``), and only on the CPU backend.

``training.xla_cpu_options``: ``"auto"`` (:data:`AUTO`), ``"default"`` (XLA's own for both),
or ``"train=<preset>,sample=<preset>"`` with presets of :data:`PRESETS`.
"""

from __future__ import annotations

from typing import Optional

_YNN = "xla_cpu_experimental_ynn_fusion_type"
PRESETS = {
    "default": {},                                          # XLA's own choice
    "no_ynn": {_YNN: ""},                                   # Eigen / XLA's emitters only
    "ynn_dot": {_YNN: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},  # YNNPACK for dots only
}
EXECUTABLES = ("train", "sample")
# The choice measured in docs/scale.md (U-Net, CIFAR-10 shape, this jaxlib).
AUTO = {"train": "default", "sample": "default"}


def parse(spec: str) -> dict:
  """``{"train": preset, "sample": preset}`` from a ``training.xla_cpu_options`` string.

  Raises:
    ValueError: an unknown preset or executable (naming the valid ones).
  """
  if spec == "auto":
    return dict(AUTO)
  if spec in PRESETS:
    return {e: spec for e in EXECUTABLES}
  out = dict(AUTO)
  for part in filter(None, (p.strip() for p in spec.split(","))):
    name, _, preset = part.partition("=")
    if name not in EXECUTABLES or preset not in PRESETS:
      raise ValueError(
          f"training.xla_cpu_options={spec!r}: expected 'auto', a preset, or "
          f"'train=<preset>,sample=<preset>' with executables {list(EXECUTABLES)} and presets "
          f"{sorted(PRESETS)}.")
    out[name] = preset
  return out


def compiler_options(spec: str, executable: str, backend: Optional[str] = None) -> Optional[dict]:
  """The ``compiler_options`` for ``jax.jit`` of ``executable``; None off the CPU backend (the
  options are XLA:CPU's) or when the preset is XLA's default."""
  if backend is None:
    import jax
    backend = jax.default_backend()
  if backend != "cpu":
    return None
  return dict(PRESETS[parse(spec)[executable]]) or None
