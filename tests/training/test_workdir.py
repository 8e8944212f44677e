"""One run per workdir (an flock the kernel releases), and a config record that stays true: a
resumed config that changes training is refused with a diff, or accepted and saved beside the
old one."""

import json
import os
import socket
import subprocess
import sys

import pytest

from genjax.training import run as run_lib
from genjax.training import workdir as workdir_lib
from genjax.training.workdir import ConfigDriftError, WorkdirBusyError
from tests.conftest import ROOT, run_python
from tests.training.runs import TINY_2D_ARGS, hold_lock, tiny_2d_config

def test_a_second_run_fails_at_once_and_sigkill_releases_the_lock(tmp_path):
  wd = str(tmp_path / "run")
  holder = hold_lock(wd)
  try:
    expected = f"pid {holder.pid} on host {socket.gethostname()}"
    with pytest.raises(WorkdirBusyError, match=expected):
      with workdir_lib.lock(wd):
        pass
    proc = run_python(["train.py", *TINY_2D_ARGS, f"--workdir={wd}"])  # before JAX is imported
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert expected in proc.stderr and "another --workdir" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(wd)) == ["train.lock"]  # nothing else was written
  finally:
    holder.kill()  # SIGKILL: the process cannot release anything itself
    holder.wait()
  with workdir_lib.lock(wd):  # the kernel released it: a new run starts
    with workdir_lib.lock(wd):  # and re-entering in one process is allowed
      pass
  assert json.load(open(os.path.join(wd, "train.lock")))["pid"] == os.getpid()


@pytest.mark.slow  # two real trainings (~15 s); the lock itself is tested above
def test_two_train_py_runs_on_one_workdir(tmp_path):
  wd = str(tmp_path / "run")
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  args = [*TINY_2D_ARGS, "--config.training.num_steps=3000", "--config.training.ckpt_every=1000"]
  first = subprocess.Popen([sys.executable, "train.py", *args, f"--workdir={wd}"], cwd=ROOT,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    import time
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(os.path.join(wd, "config.json")):
      time.sleep(0.05)
    second = run_python(["train.py", *args, f"--workdir={wd}"])
    assert second.returncode == 1 and f"pid {first.pid}" in second.stderr
  finally:
    out, err = first.communicate(timeout=600)
  assert first.returncode == 0, err[-2000:]
  rows = [json.loads(l)["step"] for l in open(os.path.join(wd, "metrics.jsonl"))]
  assert rows == sorted(set(rows))


def _fake_resumable(wd, config, step=4):
  """A workdir whose checkpoints (step ``step``) were trained with ``config``."""
  os.makedirs(os.path.join(wd, "checkpoints", str(step)))
  with open(os.path.join(wd, "config.json"), "w") as f:
    f.write(config.to_json_best_effort())


def _resume(config, wd):
  with workdir_lib.open_for_training(config, wd):
    pass


def test_a_change_that_alters_training_is_refused_with_the_diff(trained_copy):
  wd, _ = trained_copy
  before = open(os.path.join(wd, "config.json")).read()
  config = tiny_2d_config()
  config.optim.learning_rate = 1e-2
  config.training.num_steps = 8
  with pytest.raises(ConfigDriftError) as e:
    run_lib.train_and_evaluate(config, wd)
  message = str(e.value)
  assert "optim.learning_rate 0.001 -> 0.01" in message
  assert "training.num_steps 4 -> 8" in message
  assert "--config.training.allow_config_change=True" in message
  assert open(os.path.join(wd, "config.json")).read() == before
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["2", "4"]


@pytest.mark.parametrize("key, value", [
    ("model.hidden", 32), ("data.dataset", "moons"), ("seed", 1), ("training.batch_size", 16),
    ("optim.warmup_steps", 7), ("diffusion.num_timesteps", 10)])
def test_fields_that_change_training(tmp_path, key, value):
  wd = str(tmp_path / "run")
  _fake_resumable(wd, tiny_2d_config())
  config = tiny_2d_config()
  *section, name = key.split(".")
  (config[section[0]] if section else config)[name] = value
  with pytest.raises(ConfigDriftError, match=key.replace(".", r"\.")):
    _resume(config, wd)


def test_harmless_fields_change_freely(tmp_path):
  wd = str(tmp_path / "run")
  _fake_resumable(wd, tiny_2d_config())
  before = open(os.path.join(wd, "config.json")).read()
  config = tiny_2d_config()
  t = config.training
  t.log_every, t.sample_every, t.ckpt_every, t.keep_checkpoints = 7, 3, 5, 9
  t.progress, t.tensorboard, t.time_budget_s, t.time_budget_clock = True, True, 60.0, "process"
  config.sampling.steps = 7
  config.parzen.num_samples = 10
  _resume(config, wd)
  assert open(os.path.join(wd, "config.json")).read() == before
  assert workdir_lib.current_config_path(wd) == os.path.join(wd, "config.json")


def test_an_accepted_change_is_saved_beside_the_old_config(trained_copy, caplog):
  wd, _ = trained_copy
  before = open(os.path.join(wd, "config.json")).read()
  config = tiny_2d_config()
  config.optim.learning_rate = 1e-2
  config.training.num_steps = 6
  config.training.allow_config_change = True
  with caplog.at_level("WARNING"):
    state = run_lib.train_and_evaluate(config, wd)
  assert int(state.step) == 6
  assert "no longer exactly reproducible" in caplog.text
  assert open(os.path.join(wd, "config.json")).read() == before  # never overwritten
  record = os.path.join(wd, "config.step4.json")
  assert workdir_lib.current_config_path(wd) == record
  assert json.load(open(record))["optim"]["learning_rate"] == 1e-2
  loaded, _, restored = run_lib.load_trained(wd)  # the record of the latest checkpoints
  assert loaded.optim.learning_rate == 1e-2 and int(restored.step) == 6
  _resume(config, wd)  # the same config again: nothing new to record
  assert sorted(n for n in os.listdir(wd) if n.startswith("config")) == [
      "config.json", "config.step4.json"]


def test_num_steps_below_the_saved_step_is_refused(tmp_path):
  wd = str(tmp_path / "run")
  _fake_resumable(wd, tiny_2d_config(), step=8)
  config = tiny_2d_config()
  config.training.num_steps = 4
  config.training.allow_config_change = True
  with pytest.raises(ValueError, match=r"num_steps=4 is below step 8, already saved in .*"
                                       r"--config.training.num_steps=8 or more"):
    _resume(config, wd)


def test_a_fresh_start_records_its_config(tmp_path):
  wd = str(tmp_path / "run")
  os.makedirs(wd)
  for stale in ("config.json", "config.step6.json"):  # from an attempt without checkpoints
    with open(os.path.join(wd, stale), "w") as f:
      f.write("{}")
  config = tiny_2d_config()
  _resume(config, wd)
  assert sorted(n for n in os.listdir(wd) if n.startswith("config")) == ["config.json"]
  assert json.load(open(os.path.join(wd, "config.json"))) == json.loads(
      config.to_json_best_effort())
