"""Fixtures: a small trained run shared by the tests that damage, resume or re-read a real
workdir; each test works on its own copy."""

import os
import shutil

import pytest

from tests.training.runs import leaves, tiny_2d_config


@pytest.fixture(scope="session")
def trained_2d(tmp_path_factory):
  """``(workdir, leaves of the final state)`` of a 4-step run with checkpoints at 2 and 4."""
  from genjax.training import run as run_lib
  wd = str(tmp_path_factory.mktemp("trained_2d") / "run")
  state = run_lib.train_and_evaluate(tiny_2d_config(), wd)
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["2", "4"]
  return wd, leaves(state)


@pytest.fixture
def trained_copy(trained_2d, tmp_path):
  """A fresh copy of the trained run's workdir: ``(workdir, leaves of its final state)``."""
  wd = str(tmp_path / "run")
  shutil.copytree(trained_2d[0], wd)
  return wd, trained_2d[1]
