"""Settings are checked in one place, before anything is built or compiled: each field's type and
range, named in the message with the allowed values and the value given."""

import dataclasses
import glob
import importlib
import os
from typing import Optional

import pytest

from genjax import typed_config
from genjax.data import DataConfig
from genjax.training import run as run_lib
from genjax.training.config import OptimConfig, TrainConfig, validate_sections
from genjax.typed_config import field
from tests.conftest import ROOT
from tests.training.runs import tiny_2d_config


@pytest.mark.parametrize("section, overrides, message", [
    ("training", {"log_every": 0}, "config.training.log_every must be a positive integer, got 0."),
    ("training", {"ckpt_every": 0}, "config.training.ckpt_every must be a positive integer, got 0."),
    ("training", {"ckpt_every": -1}, "ckpt_every must be a positive integer, got -1."),
    ("training", {"keep_checkpoints": 0}, "keep_checkpoints must be a positive integer, got 0."),
    ("training", {"num_steps": 0}, "num_steps must be a positive integer, got 0."),
    ("training", {"num_steps": -5}, "num_steps must be a positive integer, got -5."),
    ("training", {"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5."),
    ("training", {"sample_every": -1}, "sample_every must be a non-negative integer, got -1."),
    ("training", {"ema_decay": 1.5}, "ema_decay must be a number in [0, 1], got 1.5."),
    ("training", {"progress": 1}, "progress must be a boolean (True or False), got 1."),
    ("training", {"time_budget_s": -1.0},
     "time_budget_s must be a non-negative number or None, got -1.0."),
    ("training", {"time_budget_clock": "cpu"},
     "time_budget_clock must be one of 'wall', 'process', got 'cpu'."),
    ("optim", {"learning_rate": float("nan")},
     "config.optim.learning_rate must be a positive number, got nan."),
    ("optim", {"name": "sgd"}, "config.optim.name must be one of 'adam', 'adamw', got 'sgd'."),
    ("optim", {"beta2": 1.0}, "config.optim.beta2 must be a number in [0, 1), got 1.0."),
    ("optim", {"decay_steps": 0}, "decay_steps must be a positive integer or None, got 0."),
    ("optim", {"schedule": "linear"}, "schedule must be one of 'constant', 'cosine'"),
    ("data", {"test_fraction": 1.0}, "config.data.test_fraction must be a number in (0, 1), got 1.0."),
    ("data", {"seed": -1}, "config.data.seed must be a non-negative integer, got -1."),
    ("data", {"num_points": True}, "config.data.num_points must be a positive integer, got True."),
])
def test_a_bad_setting_names_the_field_the_range_and_the_value(section, overrides, message):
  d = dict(typed_config.to_dict(tiny_2d_config()[section]), **overrides)
  cls = {"training": TrainConfig, "optim": OptimConfig, "data": DataConfig}[section]
  with pytest.raises(ValueError) as e:
    typed_config.from_section(cls, d, where=section)
  assert message in str(e.value)


def test_sections_built_in_code_are_checked_too():
  with pytest.raises(ValueError, match="config.training.log_every must be a positive integer"):
    TrainConfig(log_every=0)
  with pytest.raises(ValueError, match="config.optim.grad_clip must be a non-negative number"):
    OptimConfig(grad_clip=-1.0)
  with pytest.raises(ValueError, match="config.data.image_size must be a positive integer or None"):
    DataConfig(image_size=0)
  assert TrainConfig(time_budget_s=0, ema_decay=1).time_budget_s == 0  # ints pass as floats


def test_the_mechanism_for_any_section():
  """What a family's section declares: bounds, choices, Optional, tuples; unknown keys."""

  @dataclasses.dataclass(frozen=True)
  class Sampling:
    sampler: str = field("ddim", choices=("ddpm", "ddim"))
    steps: int = field(50, gt=0)
    eta: float = field(0.0, ge=0.0, le=1.0)
    label: Optional[int] = field(None, ge=-1)
    taus: tuple[float, ...] = ()
    note: str = "free"

  def err(**kw):
    with pytest.raises(ValueError) as e:
      typed_config.from_section(Sampling, kw, where="sampling")
    return str(e.value)

  assert typed_config.from_section(Sampling, {"taus": [1.0, 2]}, where="sampling").taus == (1.0, 2)
  assert typed_config.from_section(Sampling, None) == Sampling()
  assert err(steps=0) == "config.sampling.steps must be a positive integer, got 0."
  assert err(eta=1.5) == "config.sampling.eta must be a number in [0, 1], got 1.5."
  assert err(label=-5) == "config.sampling.label must be an integer >= -1 or None, got -5."
  assert err(sampler="pc") == "config.sampling.sampler must be one of 'ddpm', 'ddim', got 'pc'."
  assert err(taus=(1.0, "x")) == ("config.sampling.taus must be a tuple of numbers, "
                                  "got (1.0, 'x').")
  assert err(note=None) == "config.sampling.note must be a string, got None."
  assert "'stpes' (did you mean 'steps'?)" in err(stpes=3)
  typed_config.validate(Sampling(label=None), "sampling")
  with pytest.raises(ValueError, match="config.sampling.steps must be a positive integer"):
    typed_config.validate(Sampling(steps=-1), "sampling")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))),
                         ids=os.path.basename)
def test_every_shipped_config_is_valid(path):
  module = importlib.import_module(f"configs.{os.path.basename(path)[:-3]}")
  if not hasattr(module, "get_config"):
    pytest.skip("not a config")
  config = module.get_config()
  validate_sections(config)
  assert config.training.allow_config_change is False


@pytest.mark.parametrize("overrides", [
    {"log_every": 0}, {"ckpt_every": 0}, {"ckpt_every": -1}, {"keep_checkpoints": 0},
    {"num_steps": 0}, {"num_steps": -3}])
def test_a_setting_that_cannot_work_fails_before_anything_is_built(overrides, tmp_path,
                                                                    monkeypatch):
  def build_run(config):
    raise AssertionError("the run was built before its settings were checked")
  monkeypatch.setattr(run_lib, "build_run", build_run)
  config = tiny_2d_config()
  for k, v in overrides.items():
    config.training[k] = v
  with pytest.raises(ValueError, match=f"config.training.{next(iter(overrides))} must be"):
    run_lib.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
