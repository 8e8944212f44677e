"""benchmarks/sampler_speed.py: its presets are checked, and a smoke run profiles the step."""

import json


def test_bad_preset_is_one_line(python):
  proc = python(["-m", "benchmarks.sampler_speed", "--smoke", "--presets=auto,fast"])
  assert proc.returncode != 0
  assert "unknown XLA CPU preset 'fast'" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_smoke_profiles_the_step(python, tmp_path):
  out = tmp_path / "speed.json"
  proc = python(["-m", "benchmarks.sampler_speed", "--smoke", "--profile",
                 "--presets=auto,default", f"--out={out}"], check=True)
  result = json.loads(out.read_text())
  assert result["xla_cpu_options"] == {"auto": {"xla_cpu_prefer_vector_width": 512},
                                       "default": None}
  (row,) = result["rows"]
  assert row["batch"] == 16 and row["scan_us_per_step"] > 0 and row["scan@default_us_per_step"] > 0
  parts = row["profile_us_per_step"]
  # The MLP's 3 residual blocks: 6 hidden dots and 7 SiLUs per step, found by their model lines.
  assert parts["hidden dots"] > 0 and parts["SiLU"] > 0 and parts["other dots"] > 0
  assert "hidden dots" in proc.stdout
