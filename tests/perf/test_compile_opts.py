"""Per-executable XLA CPU compiler options: parsing, CPU-only, and that they reach XLA."""

import jax
import jax.numpy as jnp
import pytest

from genjax.training import compile_opts
from genjax.training.config import TrainConfig


def test_parse_and_backend():
  assert compile_opts.parse("auto") == compile_opts.AUTO
  assert compile_opts.parse("no_ynn") == {"train": "no_ynn", "sample": "no_ynn"}
  assert compile_opts.parse("train=ynn_dot")["train"] == "ynn_dot"
  assert compile_opts.compiler_options("train=no_ynn", "train", "cpu") == {
      "xla_cpu_experimental_ynn_fusion_type": ""}
  assert compile_opts.compiler_options("no_ynn", "train", "gpu") is None  # CPU only
  assert compile_opts.compiler_options("default", "sample", "cpu") is None
  with pytest.raises(ValueError, match="training.xla_cpu_options='train=fast'"):
    TrainConfig(xla_cpu_options="train=fast")


def test_presets_combine_with_plus():
  assert compile_opts.options("no_ynn+wide") == {
      "xla_cpu_experimental_ynn_fusion_type": "", "xla_cpu_prefer_vector_width": 512}
  assert compile_opts.parse("no_ynn+wide") == {"train": "no_ynn+wide", "sample": "no_ynn+wide"}
  assert compile_opts.parse("sample=ynn_dot+wide")["sample"] == "ynn_dot+wide"
  assert compile_opts.compiler_options("train=wide", "train", "cpu") == {
      "xla_cpu_prefer_vector_width": 512}
  with pytest.raises(ValueError, match="unknown XLA CPU preset 'fast' in 'wide\\+fast'"):
    compile_opts.options("wide+fast")
  with pytest.raises(ValueError, match="training.xla_cpu_options='sample=wide\\+'"):
    TrainConfig(xla_cpu_options="sample=wide+")


def test_wide_vectors_leave_results_bitwise():
  """512-bit vectors run the same operations per lane: an exp-based SiLU and the sampler-style
  update agree bitwise with XLA's default width (and the option is valid for this jaxlib)."""
  x = jax.random.normal(jax.random.key(0), (64, 130))  # a ragged tail beyond the vector width
  f = lambda x: 0.98 * (x - 0.1 * jax.nn.silu(x)) + 0.02 * jnp.tanh(x)
  wide = compile_opts.options("wide")
  a = jax.jit(f)(x)
  b = jax.jit(f, compiler_options=wide).lower(x).compile()(x)
  assert jnp.array_equal(a, b)


def test_presets_change_the_compiled_program():
  """The presets are valid for this jaxlib and route dots through YNNPACK or not."""
  a = jnp.ones((128, 128))
  texts = {}
  for name, opts in compile_opts.PRESETS.items():
    c = jax.jit(lambda a: jnp.tanh(a @ a), compiler_options=opts or None).lower(a).compile()
    texts[name] = c.as_text()
  assert "ynn" not in texts["no_ynn"]
  assert "ynn" in texts["ynn_dot"]
