"""bits/dim helpers against closed forms."""

import math

import numpy as np
import pytest

from genjax import metrics


def test_nats_to_bpd():
  np.testing.assert_allclose(metrics.nats_to_bpd(np.array([math.log(2.0) * 10]), 10), [1.0])
  with pytest.raises(ValueError):
    metrics.nats_to_bpd(1.0, 0)


@pytest.mark.parametrize("data_range,convention,bits", [
    ((-1.0, 1.0), "dequantized", 7.0),                # log2(256 / 2): score_sde's offset 7
    ((0.0, 1.0), "dequantized", 8.0),                 # log2(256)
    ((-1.0, 1.0), "centered", math.log2(127.5)),      # DDPM's x / 127.5 - 1 spacing
    ((0.0, 1.0), "centered", math.log2(255.0)),
])
def test_dequantization_offset(data_range, convention, bits):
  off = metrics.dequantization_offset(data_range, 8, convention)
  assert off / math.log(2.0) == pytest.approx(bits, rel=1e-12)
  # A zero continuous NLL leaves just the offset.
  assert float(metrics.bpd_with_dequantization_offset(0.0, 3072, data_range, 8, convention)) == \
      pytest.approx(bits, rel=1e-6)


def test_dequantization_offset_with_any_level_count():
  # The sklearn digits: 17 levels (0..16) on [-1, 1], "centered" -> Delta = 2/16.
  off = metrics.dequantization_offset((-1.0, 1.0), convention="centered", num_levels=17)
  assert off == pytest.approx(math.log(8.0), rel=1e-12)
  # The uniform distribution over the 17 levels has exactly log2(17) bits/dim: its dequantized
  # density on [-1 - Delta/2, 1 + Delta/2] is 1 / (17 Delta), an NLL of log(17 Delta) per dim.
  d, delta = 64, 2.0 / 16
  bpd = metrics.bpd_with_dequantization_offset(d * math.log(17 * delta), d, convention="centered",
                                               num_levels=17)
  assert float(bpd) == pytest.approx(math.log2(17), rel=1e-6)
  # num_levels = 2**bits agrees with num_bits.
  assert metrics.dequantization_offset(num_levels=256) == metrics.dequantization_offset(num_bits=8)
  with pytest.raises(ValueError, match="at least 2 levels"):
    metrics.dequantization_offset(num_levels=1)


def test_uniform_density_gives_8_bits():
  # The uniform density on [-1, 1]^D has NLL D log 2; dequantized it is the uniform
  # distribution over 256 levels: exactly 8 bits/dim. On [0, 1] its NLL is 0: again 8.
  d = 64
  assert float(metrics.bpd_with_dequantization_offset(d * math.log(2.0), d)) == pytest.approx(8.0)
  assert float(metrics.bpd_with_dequantization_offset(0.0, d, (0.0, 1.0))) == pytest.approx(8.0)
  # And with fewer bits: 5-bit data (32 levels) -> 5 bits/dim.
  assert float(metrics.bpd_with_dequantization_offset(d * math.log(2.0), d, num_bits=5)) == \
      pytest.approx(5.0)


def test_offset_errors():
  with pytest.raises(ValueError, match="convention"):
    metrics.dequantization_offset(convention="edges")
  with pytest.raises(ValueError, match="hi > lo"):
    metrics.dequantization_offset((1.0, -1.0))
