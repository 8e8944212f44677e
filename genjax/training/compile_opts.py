"""XLA CPU compiler options, chosen per executable (the train step, sampling).

jaxlib 0.10 routes dots and convolutions on the CPU backend through YNNPACK by default
(``__ynn_fusion`` in the compiled program). ``jax.jit(..., compiler_options=...)`` sets
``xla_cpu_experimental_ynn_fusion_type`` for one executable: empty routes nothing through
YNNPACK, ``LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT`` only dots. Which is faster depends on the
executable (a convolution's kernel gradient was 2.5x slower through YNNPACK at 32x32x128), so
the trainer picks per executable, from the measurement in docs/scale.md
(``python -m benchmarks.compile_options``), and only on the CPU backend.

``xla_cpu_prefer_vector_width`` is the SIMD width XLA's own loops (the elementwise fusions: SiLU,
GroupNorm, the sampler update) are vectorised for. XLA picks 256 bits even on AVX-512 CPUs; at
512 the 2-D MLP's DDPM sampler ran 3-15% faster on the AVX-512 CPU of docs/scale.md
(``python -m benchmarks.sampler_speed --presets=auto,default``), with bitwise the same samples
(the same operations per lane). On CPUs without AVX-512 LLVM ignores it.

``training.xla_cpu_options``: ``"auto"`` (:data:`AUTO`), a preset for both executables, or
``"train=<preset>,sample=<preset>"``. A preset is a name of :data:`PRESETS` or several joined
by ``+`` (``"no_ynn+wide"``).
"""

from __future__ import annotations

from typing import Optional

_YNN = "xla_cpu_experimental_ynn_fusion_type"
PRESETS = {
    "default": {},                                          # XLA's own choice
    "no_ynn": {_YNN: ""},                                   # Eigen / XLA's emitters only
    "ynn_dot": {_YNN: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},  # YNNPACK for dots only
    "wide": {"xla_cpu_prefer_vector_width": 512},           # XLA's loops in 512-bit vectors
}
EXECUTABLES = ("train", "sample")
# The choice measured in docs/scale.md (the U-Net at the CIFAR-10 shape and the 2-D MLP's
# sampler, this jaxlib): XLA's own for the train step; 512-bit loops for sampling (3-15% off the
# MLP sampler's step, bitwise the same samples; neutral on the U-Net).
AUTO = {"train": "default", "sample": "wide"}


def options(preset: str) -> dict:
  """The XLA options of ``preset``: a name of :data:`PRESETS` or several joined by ``+``.

  Raises:
    ValueError: an unknown name (naming the valid ones).
  """
  out = {}
  for name in preset.split("+"):
    if name not in PRESETS:
      raise ValueError(f"unknown XLA CPU preset {name!r} in {preset!r}; choose from "
                       f"{sorted(PRESETS)}, joined by '+'.")
    out.update(PRESETS[name])
  return out


def parse(spec: str) -> dict:
  """``{"train": preset, "sample": preset}`` from a ``training.xla_cpu_options`` string.

  Raises:
    ValueError: an unknown preset or executable (naming the valid ones).
  """
  if spec == "auto":
    return dict(AUTO)
  if "=" not in spec and _valid(spec):
    return {e: spec for e in EXECUTABLES}
  out = dict(AUTO)
  for part in filter(None, (p.strip() for p in spec.split(","))):
    name, _, preset = part.partition("=")
    if name not in EXECUTABLES or not _valid(preset):
      raise ValueError(
          f"training.xla_cpu_options={spec!r}: expected 'auto', a preset, or "
          f"'train=<preset>,sample=<preset>' with executables {list(EXECUTABLES)} and presets "
          f"{sorted(PRESETS)} (joined by '+' to combine).")
    out[name] = preset
  return out


def _valid(preset: str) -> bool:
  try:
    options(preset)
  except ValueError:
    return False
  return True


def compiler_options(spec: str, executable: str, backend: Optional[str] = None) -> Optional[dict]:
  """The ``compiler_options`` for ``jax.jit`` of ``executable``; None off the CPU backend (the
  options are XLA:CPU's) or when the preset is XLA's default."""
  if backend is None:
    import jax
    backend = jax.default_backend()
  if backend != "cpu":
    return None
  return options(parse(spec)[executable]) or None
