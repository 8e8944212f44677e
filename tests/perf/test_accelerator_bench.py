"""benchmarks/accelerator.py: its flags are checked, and a tiny run works on the CPU."""

import json

import pytest


def test_bad_config_is_one_line(python):
  proc = python(["-m", "benchmarks.accelerator", "--configs=ddpm_imagenet", "--smoke"])
  assert proc.returncode != 0
  assert "unknown 'ddpm_imagenet'; valid: ddpm_cifar10, dit, dit_xl2" in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.slow  # compiles a U-Net and a DiT train step: minutes on a loaded 2-core machine
def test_smoke_on_cpu(python, tmp_path):
  out = tmp_path / "acc.json"
  proc = python(["-m", "benchmarks.accelerator", "--smoke", "--configs=ddpm_cifar10,dit_xl2",
                 "--compute_dtype=float32", f"--out={out}", "--peak_tflops=1"], check=True)
  rows = json.loads(out.read_text())["rows"]
  assert [r["config"] for r in rows] == ["ddpm_cifar10", "dit_xl2"]
  for r in rows:
    assert r["batch"] == 8 and r["img_per_s"] > 0 and r["tflops_per_step"] > 0
    assert 0 < r["mfu"] < 1
  assert "MFU" in proc.stdout
