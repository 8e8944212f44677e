"""The procedural shapes dataset: determinism, captions against labels, masks, edges, pipeline."""

import numpy as np
import pytest

from genjax import data, text
from genjax.data import shapes
from genjax.data import shapes_grammar as grammar


def test_deterministic_per_index_and_batch_independent():
  a = shapes.generate(np.arange(10, 30))
  b = shapes.generate(np.arange(10, 30))
  c = shapes.generate(np.array([25, 12]))
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a[k][[15, 2]], c[k])
  d = shapes.generate(np.arange(30, 50))
  assert not np.array_equal(a["x"], d["x"])


def test_layout_does_not_depend_on_image_size_or_rotation():
  idx = np.arange(40)
  small = shapes.generate(idx)
  big = shapes.generate(idx, shapes.ShapesConfig(image_size=64, max_rotation=30.0))
  for k in ("shape", "colour", "size", "cell", "relation", "num_objects", "text"):
    np.testing.assert_array_equal(small[k], big[k])
  assert big["x"].shape == (40, 64, 64, 3)
  assert np.abs(big["rotation"]).max() <= 30.0 and np.abs(big["rotation"]).max() > 10.0
  assert (small["rotation"] == 0).all()


def test_captions_parse_back_to_the_labels():
  idx = np.arange(600)
  caps = shapes.captions(idx)
  lab = shapes.generate(idx)
  req = shapes.parse_prompts(caps)
  for k in ("shape", "colour", "size", "caption_cell", "relation", "num_objects"):
    np.testing.assert_array_equal(req[k], lab[k], err_msg=k)
  rel = lab["relation"]
  assert 0.3 < (rel >= 0).mean() < 0.5  # half of the multi-object captions are relative
  for i in np.nonzero(rel >= 0)[0]:
    assert grammar.relation_holds(rel[i], lab["cell"][i, 0], lab["cell"][i, 1])
    assert (lab["caption_cell"][i, :2] == -1).all()
  placed = lab["caption_cell"] >= 0
  np.testing.assert_array_equal(lab["caption_cell"][placed], lab["cell"][placed])
  np.testing.assert_array_equal(text.detokenize(lab["text"]), caps)
  # Every attribute value occurs.
  n = lab["num_objects"]
  assert set(np.unique(n)) == {1, 2, 3}
  for k, m in (("shape", 5), ("colour", 8), ("size", 2), ("cell", 9)):
    assert set(np.unique(lab[k][lab[k] >= 0])) == set(range(m)), k


def test_parser_rejects_text_outside_the_grammar():
  for bad, match in (("a red circle", "expected a size"),
                     ("a small circle", "expected a colour"),
                     ("a small red circle at the middle", "expected a position"),
                     ("a small red circle in the top", "in the center"),
                     ("a small red circle near a large blue square", "relation"),
                     ("a small red circle at the top , a large red circle at the left", "'and'")):
    with pytest.raises(grammar.CaptionParseError, match=match):
      grammar.parse_caption(bad)
  assert grammar.parse_caption("").num_objects == 0


@pytest.mark.parametrize("size", [32, 64])
def test_masks_and_edges_agree_with_the_image(size):
  cfg = shapes.ShapesConfig(image_size=size, max_rotation=45.0 if size == 64 else 0.0)
  idx = np.arange(60)
  b = shapes.generate(idx, cfg)
  img = (b["x"] + 1) / 2
  cell_px = size / 3
  ys, xs = np.mgrid[0:size, 0:size] + 0.5
  for i in range(len(idx)):
    mask = b["mask"][i]
    n = b["num_objects"][i]
    assert set(np.unique(mask)) == set(range(n + 1))
    for k in range(n):
      inside = mask == k + 1
      # The object's pixels have its colour (anti-aliasing touches only the rim).
      core = inside & (b["edges"][i, ..., 0] == 0)
      err = np.abs(img[i][core] - shapes.COLOUR_RGB[b["colour"][i, k]]).max(-1)
      assert err.min() < 0.01 and np.median(err) < 0.05, (i, k, err)
      # ... and lie in its cell.
      row, col = divmod(b["cell"][i, k], 3)
      assert (ys[inside] > row * cell_px).all() and (ys[inside] < (row + 1) * cell_px).all()
      assert (xs[inside] > col * cell_px).all() and (xs[inside] < (col + 1) * cell_px).all()
    # Background pixels away from objects are dark gray.
    near = np.pad(mask > 0, 2)
    near = np.max([near[2 + dy:size + 2 + dy, 2 + dx:size + 2 + dx]
                   for dy in range(-2, 3) for dx in range(-2, 3)], axis=0)
    bgp = img[i][~near]
    assert bgp.max() < 0.33 and bgp.min() > 0.01
    # Edges: exactly the instance pixels with a 4-neighbour outside the instance.
    e = b["edges"][i, ..., 0]
    assert set(np.unique(e)) <= {0.0, 1.0} and (mask[e == 1] > 0).all()
    for k in range(n):
      m = mask == k + 1
      interior = m.copy()
      interior[1:] &= m[:-1]
      interior[:-1] &= m[1:]
      interior[:, 1:] &= m[:, :-1]
      interior[:, :-1] &= m[:, 1:]
      np.testing.assert_array_equal(e[m] == 1, ~interior[m])
  # Large objects cover more pixels than small ones.
  areas = {0: [], 1: []}
  for i in range(len(idx)):
    for k in range(b["num_objects"][i]):
      areas[b["size"][i, k]].append((b["mask"][i] == k + 1).sum())
  assert min(areas[1]) > np.mean(areas[0])


def test_pipeline_registration_and_splits():
  cfg = data.DataConfig(dataset="shapes", shapes_num_train=500, shapes_num_test=100,
                        shapes_max_objects=2, text_len=24)
  ds = data.load_dataset(cfg)
  assert ds.spec.shape == (32, 32, 3) and ds.spec.num_classes == 5 and ds.spec.kind == "image"
  assert len(ds.train) == 500 and len(ds.test) == 100
  assert ds.train.start == 100  # test = images [0, 100), train = [100, 600)
  it = data.make_train_iterator(ds, cfg, 16)
  b = it.batch_at(2)
  assert b["x"].shape == (16, 32, 32, 3) and b["x"].dtype == np.float32
  assert -1.0 <= b["x"].min() and b["x"].max() <= 1.0
  assert b["text"].shape == (16, 24) and b["text"].dtype == np.int32
  assert b["num_objects"].max() <= 2 and b["label"].shape == (16,)
  np.testing.assert_array_equal(b["label"], b["shape"][:, 0])
  again = data.make_train_iterator(ds, cfg, 16).batch_at(2)
  np.testing.assert_array_equal(b["x"], again["x"])
  assert ds.test.captions([0]) == shapes.captions([0])
  with pytest.raises(IndexError):
    ds.test.get(np.array([100]))
  big = data.load_dataset(data.DataConfig(dataset="shapes", image_size=64))
  assert big.spec.shape == (64, 64, 3)


def test_config_errors():
  with pytest.raises(ValueError, match="random_flip"):
    data.DataConfig(dataset="shapes", random_flip=True)
  with pytest.raises(ValueError, match="exceeds"):
    data.DataConfig(dataset="shapes", shapes_min_objects=3, shapes_max_objects=2)
  with pytest.raises(ValueError):
    data.DataConfig(dataset="shapes", shapes_max_objects=4)
  with pytest.raises(ValueError, match=">= 16"):
    data.DataConfig(dataset="shapes", image_size=8)
  assert "shapes" in data.valid_dataset_names()
