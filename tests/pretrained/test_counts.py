"""The reference configurations convert to modules with the published parameter counts
(shapes only, no memory)."""

import pytest

from genjax.pretrained import counts


@pytest.mark.slow  # test_reference_layouts.py checks the same counts against the real layouts
def test_reference_parameter_counts_equal_the_published_ones():
  got = counts.reference_counts()
  for name in ("ddpm_cifar10", "dit_xl_2", "clip_text_l14"):
    assert got[name] == counts.REFERENCE[name], name
  assert round(got["ddpm_cifar10"] / 1e6, 1) == 35.7
  assert round(got["dit_xl_2"] / 1e6, 1) == 675.1
  assert round(got["clip_text_l14"] / 1e6, 1) == 123.1
  for name in ("sd1_unet", "sd1_vae"):  # when the genjax modules for them exist
    if name in got:
      assert got[name] == counts.REFERENCE[name], name
