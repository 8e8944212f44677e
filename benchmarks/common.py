"""Timing helpers shared by the benchmarks: medians after warm-up, and the machine's matmul rate."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp


def time_fn(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
  """Median wall-clock seconds of ``fn()`` (its result blocked on) after ``warmup`` calls."""
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
  """GFLOP/s of a jitted n x n float32 matmul (2 n^3 flops) on the default device."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(jnp.matmul)
  sec = time_fn(lambda: f(a, b), repeats=repeats, warmup=2)
  return 2 * n ** 3 / sec / 1e9


def xla_flops(jitted, *args) -> float:
  """FLOPs of one call, from XLA's own cost analysis of the compiled executable."""
  cost = jitted.lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get("flops", float("nan")))
