"""The per-op profile tool: HLO metadata parsing, op classification, and a traced executable whose
thunk events map back to its HLO instructions."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks import trace, unet_profile


def test_classify_passes_and_layer_kinds():
  c = unet_profile.classify
  fwd = "jit(train_step)/jvp(UNet)/up_0_block_0/conv1/conv_general_dilated"
  bwd = "jit(train_step)/transpose(jvp(UNet))/up_0_block_0/conv1/conv_general_dilated"
  assert c(fwd, "f32[8,32,32,128]") == ("forward", "convolution, forward", "conv_general_dilated")
  assert c(bwd, "f32[128,3,3,128]")[:2] == ("backward", "convolution, kernel gradient")
  assert c(bwd, "f32[8,32,32,128]")[:2] == ("backward", "convolution, input gradient")
  assert c("jit(train_step)/jvp(UNet)/down_1_block_0/norm1/reduce_sum")[1] == "GroupNorm"
  assert c("jit(train_step)/jvp(UNet)/down_1_block_0/Dropout_0/jit(_bernoulli)/jit(_uniform)/"
           "while")[1].startswith("dropout")
  assert c("jit(train_step)/jvp(UNet)/down_1_attn_0/q/dot_general")[1].startswith("dense")
  assert c("jit(train_step)/jvp(UNet)/down_1_attn_0/reduce_max")[1].startswith("attention")
  assert c("jit(train_step)/add")[0].startswith("update")
  assert c("(no metadata)/copy")[1] == "not attributed"


def test_trace_maps_thunks_to_hlo_instructions():
  def f(x, w):
    y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.tanh(y).sum()

  x = jnp.ones((2, 16, 16, 8))
  w = jnp.ones((3, 3, 8, 8)) * 0.01
  compiled = jax.jit(jax.grad(f, argnums=1)).lower(x, w).compile()
  meta = trace.hlo_metadata(compiled.as_text())
  assert any(op.endswith("conv_general_dilated") for op, _ in meta.values())
  assert all(shape.startswith(("f32[", "s32[", "u32[", "pred[", "")) for _, shape in meta.values())
  names = trace.hlo_instruction_names(compiled.as_text())
  assert set(meta) <= names
  totals, wall = trace.trace_events(lambda: jax.block_until_ready(compiled(x, w)), 2,
                                           names)
  assert wall > 0 and totals
  # Most of the time counted is in this program's instructions (an executable restored from
  # the compilation cache may carry no op_name metadata, so names, not metadata, are checked).
  mapped = sum(ns for name, ns in totals.items() if name in names)
  assert mapped > 0.5 * sum(totals.values()), totals
  assert any("conv" in name for name in totals), totals
