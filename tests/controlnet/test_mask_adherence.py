"""Mask adherence: the shapes' masks recomputed from images (coverage at least one half), and the
sampling CLI's image loader naming the flag its images came from."""

import types

import jax.numpy as jnp
import numpy as np
import pytest

from genjax.controlnet import conditions as C


def test_coverage_mask_of_an_antialiased_disc_is_its_half_coverage_set():
  s = 24
  yy, xx = np.mgrid[0:s, 0:s] + 0.5
  d = np.hypot(yy - 11.3, xx - 12.6) - 5.2             # signed distance in pixels
  alpha = np.clip(0.5 - d, 0, 1)[..., None]
  bg, fg = np.array([-0.6, -0.5, -0.55]), np.array([0.9, -0.8, 0.2])
  img = (bg * (1 - alpha) + fg * alpha).astype(np.float32)[None]
  got = np.asarray(C.coverage_mask(jnp.asarray(img)))[0, ..., 0]
  np.testing.assert_array_equal(got > 0, d <= 0)
  # the plain difference threshold also takes the anti-aliased rim
  assert np.sum(np.asarray(C.foreground_mask(jnp.asarray(img)))) > np.sum(d <= 0)
  assert C.coverage_mask(jnp.asarray(img, jnp.bfloat16)).dtype == jnp.bfloat16  # keeps the dtype


def test_mask_recomputed_from_real_shapes_matches_their_masks():
  """The adherence metric's ceiling: real images (textured backgrounds included) score ~1."""
  shapes = pytest.importorskip("genjax.data.shapes")
  batch = shapes.generate(np.arange(300), shapes.ShapesConfig())
  ref = C.compute_condition("mask", batch)
  rec = C.get_condition("mask").recompute(jnp.asarray(batch["x"]))
  iou = np.asarray(C.mask_iou(ref, rec))
  assert iou.mean() > 0.98 and np.median(iou) == 1.0, iou.mean()
  chance = float(np.mean(C.mask_iou(ref, jnp.roll(ref, 1, axis=0))))
  assert chance < 0.2


def test_load_inputs_names_the_flag_the_images_came_from(tmp_path):
  from genjax.training.sampling import load_inputs
  ds = types.SimpleNamespace(spec=types.SimpleNamespace(kind="image", shape=(8, 8, 1)))
  missing = str(tmp_path / "nope.png")
  with pytest.raises(ValueError, match=r"^--control_image '.*nope.png' is neither"):
    load_inputs(missing, ds, 2, flag="--control_image", use="ControlNet control images")
  with pytest.raises(ValueError, match=r"^--input '.*nope.png' is neither"):
    load_inputs(missing, ds, 2)
  with pytest.raises(ValueError, match=r"^mode inpaint / colorize / img2img needs --input: an "
                     r"image file, a folder of images"):
    load_inputs("", ds, 2)
  points = types.SimpleNamespace(spec=types.SimpleNamespace(kind="points", shape=(2,)))
  with pytest.raises(ValueError, match="^ControlNet control images need image data"):
    load_inputs("x.png", points, 2, flag="--control_image", use="ControlNet control images")
