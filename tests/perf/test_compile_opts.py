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


def test_presets_change_the_compiled_program():
  """The presets are valid for this jaxlib and route dots through YNNPACK or not."""
  a = jnp.ones((128, 128))
  texts = {}
  for name, opts in compile_opts.PRESETS.items():
    c = jax.jit(lambda a: jnp.tanh(a @ a), compiler_options=opts or None).lower(a).compile()
    texts[name] = c.as_text()
  assert "ynn" not in texts["no_ynn"]
  assert "ynn" in texts["ynn_dot"]
