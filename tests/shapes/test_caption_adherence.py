"""Caption adherence, on exact readouts (no network) and with the shipped shapes classifier."""

import numpy as np
import pytest

from genjax.data import shapes
from genjax.metrics import adherence as ca
from genjax.metrics import shapes_classifier as sc


def perfect_readout(labels, noise_cells=()):
  """The readout of a classifier that is always right: one-hot per cell."""
  t = sc.cell_targets(labels)
  n = len(t["occupied"])
  read = {"occupied": t["occupied"].astype(float)}
  for k, m in (("colour", 8), ("shape", 5), ("size", 2)):
    read[k] = np.eye(m)[np.maximum(t[k], 0)].reshape(n, 9, m)
  return read


def test_adherence_is_one_for_a_perfect_reader_and_lower_for_other_captions():
  lab = shapes.generate(np.arange(300))
  read = perfect_readout(lab)
  out = ca.adherence_from_readout(read, lab)
  assert out["adherence"] == 1.0 and out["exact"] == 1.0 and out["num_images"] == 300
  for k in ca.KINDS:
    assert out[k] == 1.0, k
  other = {k: np.roll(v, 1, axis=0) for k, v in lab.items()}
  mis = ca.adherence_from_readout(read, other)
  assert 0.2 < mis["adherence"] < 0.6 and mis["exact"] < 0.05


def test_hand_made_relation_and_position():
  req = shapes.parse_prompts(["a small red circle above a large blue square",
                              "a large green cross in the center", ""])
  lab = {"cell": np.array([[1, 7, -1], [4, -1, -1], [-1, -1, -1]]),
         "colour": np.array([[0, 2, -1], [1, -1, -1], [-1, -1, -1]]),
         "shape": np.array([[0, 1, -1], [4, -1, -1], [-1, -1, -1]]),
         "size": np.array([[0, 1, -1], [1, -1, -1], [-1, -1, -1]])}
  out = ca.adherence_from_readout(perfect_readout(lab), req)
  np.testing.assert_allclose(out["per_image"][:2], [1.0, 1.0])
  assert np.isnan(out["per_image"][2]) and out["num_images"] == 2
  # The two objects swapped: everything but the relation holds (6 of 7 attributes).
  swapped = dict(lab, cell=np.array([[7, 1, -1], [3, -1, -1], [-1, -1, -1]]))
  out = ca.adherence_from_readout(perfect_readout(swapped), req)
  np.testing.assert_allclose(out["per_image"][:2], [6 / 7, 3 / 4])  # cross at the left
  assert out["relation"] == 0.0 and out["position"] == 0.0 and out["colour"] == 1.0
  # A missing object fails its attributes.
  one = dict(lab, cell=np.array([[1, -1, -1], [4, -1, -1], [-1, -1, -1]]))
  out = ca.adherence_from_readout(perfect_readout(one), req)
  np.testing.assert_allclose(out["per_image"][0], 3 / 7)
  assert out["count"] == 0.5
  # An extra, unrequested object counts as a failed attribute: 4 / (4 + 1).
  extra = dict(lab, cell=np.array([[1, 7, -1], [4, 0, -1], [-1, -1, -1]]),
               colour=np.array([[0, 2, -1], [1, 3, -1], [-1, -1, -1]]),
               shape=np.array([[0, 1, -1], [4, 2, -1], [-1, -1, -1]]),
               size=np.array([[0, 1, -1], [1, 0, -1], [-1, -1, -1]]))
  out = ca.adherence_from_readout(perfect_readout(extra), req)
  np.testing.assert_allclose(out["per_image"][:2], [1.0, 4 / 5])
  assert out["spurious"] == 0.5 and out["exact"] == 0.5


@pytest.fixture(scope="module")
def reader():
  return sc.shapes_reader()


def test_shipped_classifier_accuracy_on_held_out_real_images(reader):
  meta = reader.metadata
  assert meta["command"] == sc.COMMAND and meta["feature_dim"] == sc.FEATURE_DIM
  lab = shapes.generate(np.arange(5000, 5400))  # test split, outside the metadata's eval set
  acc = sc.accuracies_of(reader(lab["x"]), lab)
  assert acc["occupied"] > 0.99 and acc["colour"] > 0.97 and acc["size"] > 0.95, acc
  assert acc["shape"] > 0.9, acc
  big = shapes.generate(np.arange(5000, 5200), shapes.ShapesConfig(image_size=64))
  acc64 = sc.accuracies_of(reader(big["x"]), big)
  assert acc64["object"] > acc["object"] - 0.05, (acc, acc64)


def test_adherence_ceiling_on_real_images_and_chance_on_noise(reader):
  lab = shapes.generate(np.arange(6000, 6400))
  real = ca.caption_adherence(lab["x"], lab)
  assert real["adherence"] > 0.98 and real["exact"] > 0.95, real
  # Chance: real images scored against another image's caption.
  shuffled = {k: np.roll(v, 1, axis=0) for k, v in lab.items()}
  chance = ca.caption_adherence(lab["x"], shuffled)["adherence"]
  assert 0.15 < chance < 0.4, chance
  noise = np.random.default_rng(0).uniform(-1, 1, lab["x"].shape).astype(np.float32)
  assert ca.caption_adherence(noise, lab)["adherence"] < chance
  blank = np.full_like(lab["x"], -0.7)
  assert ca.caption_adherence(blank, lab)["adherence"] == 0.0
  caps = shapes.captions(np.arange(6000, 6010))
  np.testing.assert_allclose(ca.prompt_adherence(lab["x"][:10], caps)["per_image"],
                             real["per_image"][:10])


def test_fd_in_the_shapes_feature_space():
  from genjax import metrics
  from genjax.metrics import reference as ref_lib
  ext = metrics.get_extractor("shapes")
  assert ext.space == "shapes" and ext.feature_dim == 128
  ref = ref_lib.compute_ref_stats(ext, shapes.generate(np.arange(800))["x"], dataset="shapes",
                                  split="test")
  real = metrics.evaluate(shapes.generate(np.arange(20000, 20400))["x"], ("fd",), "shapes", ref)
  blur = shapes.generate(np.arange(20000, 20400))["x"]
  blur = (blur + np.roll(blur, 1, 1) + np.roll(blur, 1, 2) + np.roll(blur, (1, 1), (1, 2))) / 4
  worse = metrics.evaluate(blur, ("fd",), "shapes", ref)
  assert real["fd_shapes"] < 0.5 * worse["fd_shapes"], (real, worse)
  with pytest.raises(ValueError, match="C in"):
    metrics.evaluate(np.zeros((4, 32, 32, 1), np.float32), ("fd",), "shapes", ref)
