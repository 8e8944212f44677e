"""Bad input to train.py and sample.py: one line naming the problem, a non-zero exit, no traceback.

The table runs every case as its own process (the script run as ``__main__``, as ``python
train.py`` runs it), forked from one driver that has already imported absl, ml_collections and
numpy: the cases cost a fork each instead of an interpreter start, and all but one fail before
JAX is imported. A few cases also run as plain ``python train.py`` / ``python sample.py``.
"""

import json
import os
import subprocess
import textwrap

import pytest

from tests.conftest import run_python
from tests.training.runs import TINY_2D_ARGS, hold_lock, tiny_2d_config

DRIVER = textwrap.dedent(r"""
    import json, os, runpy, sys, traceback
    import absl.flags, ml_collections, numpy  # imported once, before forking
    from ml_collections import config_flags
    import genjax.data, genjax.training.config
    cases, out_dir = json.load(open(sys.argv[1])), sys.argv[2]
    results = []
    for i, case in enumerate(cases):
      out = os.path.join(out_dir, f"{i}.txt")
      pid = os.fork()
      if pid == 0:
        code = 99
        try:
          fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
          os.dup2(fd, 1)
          os.dup2(fd, 2)
          sys.argv = [case["script"], *case["args"]]
          runpy.run_path(case["script"], run_name="__main__")
          code = 0
        except SystemExit as e:
          code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
          traceback.print_exc()
        finally:
          sys.stdout.flush()
          sys.stderr.flush()
          os._exit(code)
      _, status = os.waitpid(pid, 0)
      results.append({"code": os.waitstatus_to_exitcode(status), "output": open(out).read()})
    print(json.dumps(results))
""")


def run_table(cases, tmp_path):
  """Runs ``cases`` (dicts with script and args) in one driver; returns their results."""
  path = tmp_path / "cases.json"
  path.write_text(json.dumps(cases))
  out = tmp_path / "out"
  out.mkdir()
  proc = run_python(["-c", DRIVER, str(path), str(out)], check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def read_only_dir(tmp_path):
  """A directory that cannot be written (a read-only tmpfs as root, else chmod), or None where
  this platform offers neither."""
  path = str(tmp_path / "read_only")
  os.makedirs(path)
  mounted = False
  if os.geteuid() == 0:
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", path],
                             capture_output=True).returncode == 0
  else:
    os.chmod(path, 0o555)
  yield path if not os.access(path, os.W_OK) else None
  if mounted:
    subprocess.run(["umount", path], capture_output=True)
  os.chmod(path, 0o755)


TRAIN = TINY_2D_ARGS  # were a check to let a case through, it would train for seconds only


def cases(tmp, read_only=None):
  """``(script, args, exit code, texts the message must contain)`` for each bad input."""
  afile = os.path.join(tmp, "afile")
  open(afile, "w").close()
  syntax = os.path.join(tmp, "syntax_cfg.py")
  with open(syntax, "w") as f:
    f.write("import ml_collections\ndef get_config(:\n  pass\n")
  name_err = os.path.join(tmp, "name_cfg.py")
  with open(name_err, "w") as f:
    f.write("import ml_collections\n\ndef get_config():\n  return undefined_name\n")
  empty = os.path.join(tmp, "empty")
  os.makedirs(empty)
  fresh = lambda: f"--workdir={os.path.join(tmp, 'fresh')}"  # never created: every case fails
  resumable = os.path.join(tmp, "resumable")  # "trained" with TRAIN's config, step 4 saved
  os.makedirs(os.path.join(resumable, "checkpoints", "4"))
  with open(os.path.join(resumable, "config.json"), "w") as f:
    f.write(tiny_2d_config().to_json_best_effort())
  busy = os.path.join(tmp, "busy")
  t = [
      ([*TRAIN, "--config.training.batch_sizee=8", fresh()], 2,
       ["--config.training.batch_sizee", "did you mean --config.training.batch_size?"]),
      ([*TRAIN, "--config.trainingg.num_steps=3", fresh()], 2,
       ["config has no field 'trainingg'", "--config.training.num_steps"]),
      ([*TRAIN, "--config.training.foo=1", fresh()], 2,
       ["config.training has no field 'foo'", "valid fields: allow_config_change"]),
      (["--config=configs/nope.py", fresh()], 2, ["config file configs/nope.py does not exist"]),
      (["--config=configs/nope.py", "--config.training.num_steps=3", fresh()], 2,
       ["configs/nope.py does not exist"]),
      ([f"--config={syntax}", fresh()], 2, [f"config file {syntax}, line 2: syntax error"]),
      ([f"--config={name_err}", fresh()], 2,
       [f"config file {name_err}, line 4: NameError", "undefined_name"]),
      ([*TRAIN, "--config.training.num_steps=abc", fresh()], 2,
       ["--config.training.num_steps=abc", "invalid literal for int()"]),
      ([fresh()], 2, ["--config is required"]),
      ([*TRAIN, "--workdri=x"], 2, ["Unknown command line flag 'workdri'"]),
      ([*TRAIN, "--config.training.log_every=0", fresh()], 1,
       ["config.training.log_every must be a positive integer, got 0."]),
      ([*TRAIN, "--config.training.ckpt_every=0", fresh()], 1, ["config.training.ckpt_every"]),
      ([*TRAIN, "--config.training.ckpt_every=-1", fresh()], 1, ["ckpt_every", "got -1"]),
      ([*TRAIN, "--config.training.keep_checkpoints=0", fresh()], 1, ["keep_checkpoints"]),
      ([*TRAIN, "--config.training.num_steps=0", fresh()], 1, ["config.training.num_steps"]),
      ([*TRAIN, "--config.training.num_steps=-5", fresh()], 1, ["num_steps", "got -5"]),
      ([*TRAIN, "--config.training.ema_decay=1.5", fresh()], 1, ["ema_decay", "in [0, 1]"]),
      ([*TRAIN, "--config.training.time_budget_clock=cpu", fresh()], 1,
       ["time_budget_clock must be one of 'wall', 'process'"]),
      ([*TRAIN, "--config.optim.learning_rate=-0.1", fresh()], 1,
       ["config.optim.learning_rate must be a positive number"]),
      ([*TRAIN, "--config.optim.name=sgd", fresh()], 1, ["optim.name must be one of 'adam'"]),
      ([*TRAIN, "--config.optim.schedule=linear", fresh()], 1, ["optim.schedule"]),
      ([*TRAIN, "--config.data.dataset=imagenet_typo", fresh()], 1,
       ["imagenet_typo", "swiss_roll"]),
      ([*TRAIN, "--config.data.test_fraction=1.0", fresh()], 1, ["config.data.test_fraction"]),
      ([*TRAIN, "--config.data.seed=-1", fresh()], 1, ["config.data.seed"]),
      ([*TRAIN, f"--workdir={afile}"], 2, [f"workdir {afile} is a file"]),
      ([*TRAIN, f"--workdir={afile}/run"], 2, [f"cannot create workdir {afile}/run"]),
      ([*TRAIN, f"--workdir={busy}"], 1, ["is in use by another training run (pid"]),
      ([*TRAIN, "--config.optim.learning_rate=0.01", f"--workdir={resumable}"], 1,
       ["optim.learning_rate 0.001 -> 0.01", "allow_config_change=True"]),
      ([*TRAIN, "--config.training.num_steps=2", "--config.training.allow_config_change=True",
        f"--workdir={resumable}"], 1, ["num_steps=2 is below step 4"]),
  ]
  if read_only:
    t += [([*TRAIN, f"--workdir={read_only}"], 2, [f"cannot write in workdir {read_only}"]),
          ([*TRAIN, f"--workdir={read_only}/run"], 2, [f"cannot create workdir {read_only}/run"])]
  out = [("train.py", a, c, m) for a, c, m in t]
  missing = os.path.join(tmp, "typo", "run")
  s = [
      ([f"--workdir={empty}", "--num=0"], 2, ["--num=0", "not a positive integer"]),
      ([f"--workdir={empty}", "--batch=0"], 2, ["--batch=0"]),
      ([f"--workdir={empty}", "--step=-1"], 2, ["--step=-1"]),
      ([f"--workdir={missing}"], 2, [f"--workdir={missing} does not exist"]),
      ([f"--workdir={afile}"], 2, [f"--workdir={afile} is a file"]),
      ([f"--workdir={empty}", f"--out={afile}"], 2, [f"--out={afile} is a file"]),
      ([], 2, ["--workdir is required"]),
      ([f"--workdir={empty}", "--config.sampling.stepss=3"], 2,
       ["did you mean --config.sampling.steps?"]),
      ([f"--workdir={empty}"], 1, ["No checkpoint in", "Train first"]),  # imports JAX
  ]
  out += [("sample.py", ["--config=configs/ddpm_2d.py", *a], c, m) for a, c, m in s]
  return out, busy, missing


def test_bad_inputs_get_one_line_and_an_exit_status(tmp_path, read_only_dir):
  table, busy, missing = cases(str(tmp_path), read_only_dir)
  assert len(table) >= 30
  holder = hold_lock(busy)
  try:
    results = run_table([{"script": s, "args": a} for s, a, _, _ in table], tmp_path)
  finally:
    holder.kill()
    holder.wait()
  failures = []
  for (script, args, code, texts), r in zip(table, results):
    out = r["output"].strip()
    ok = (r["code"] == code and "Traceback" not in out and len(out.splitlines()) == 1
          and out.startswith("error: ") and all(t in out for t in texts))
    if not ok:
      failures.append(f"{script} {' '.join(args)}\n  exit {r['code']} (want {code}):\n"
                      f"  {out[-1500:]}")
  assert not failures, "\n".join(failures)
  assert not os.path.exists(os.path.join(str(tmp_path), "fresh"))  # failed before creating it
  assert not os.path.exists(os.path.dirname(missing))  # reading never creates a workdir


def test_readme_override_with_a_typo_as_a_plain_command(tmp_path):
  proc = run_python(["train.py", "--config=configs/ddpm.py", "--config.training.batch_szie=128",
                     "--config.optim.learning_rate=5e-4", f"--workdir={tmp_path / 'run'}"])
  assert proc.returncode == 2
  assert proc.stderr.strip() == (
      "error: --config.training.batch_szie: config.training has no field 'batch_szie'; did you "
      "mean --config.training.batch_size?")
  assert not (tmp_path / "run").exists()


def test_sample_py_flag_out_of_range_as_a_plain_command(tmp_path):
  proc = run_python(["sample.py", *TINY_2D_ARGS, f"--workdir={tmp_path}", "--num=0"])
  assert proc.returncode == 2
  assert proc.stderr.strip() == "error: --num=0: 0 is not a positive integer"
