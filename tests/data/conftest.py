"""Fixtures for the genjax.data tests: no network, TFDS pointed at temporary directories.

Besides ``tfds.testing.mock_data`` (random examples, no files), some tests read real ArrayRecord
files: tiny TFDS datasets written by the fake builders of ``genjax_data_fakes.py``.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("PIL.Image")

import genjax_data_fakes as fakes  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_tfds(tmp_path, monkeypatch):
  """Every test sees an empty default TFDS data dir (never ~/tensorflow_datasets)."""
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "default_tfds"))


@pytest.fixture(scope="session")
def fake_tfds_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding a fake "mnist" and "genjax_fake_rgb", both as ArrayRecord."""
  data_dir = tmp_path_factory.mktemp("fake_tfds")
  fakes.prepare(fakes.FakeMnist, data_dir)
  fakes.prepare(fakes.GenjaxFakeRgb, data_dir)
  return str(data_dir)


@pytest.fixture()
def tfrecord_tfds_dir(fake_tfds_dir, tmp_path) -> str:
  """A copy of the fake MNIST whose metadata says it was prepared as TFRecord."""
  src = os.path.join(fake_tfds_dir, "mnist")
  dst = tmp_path / "tfrecord_tfds"
  shutil.copytree(src, dst / "mnist")
  info_path = dst / "mnist" / "3.0.1" / "dataset_info.json"
  info = json.loads(info_path.read_text())
  info["fileFormat"] = "tfrecord"
  info_path.write_text(json.dumps(info))
  return str(dst)
