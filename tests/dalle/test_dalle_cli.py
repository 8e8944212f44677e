"""DALL-E end to end through the CLI on a tiny config: dVAE, then the transformer over its
codes, then sample.py; a workdir that does not hold a dVAE is refused with one line; the loss
weights text and image cross-entropies 1/8 and 7/8."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DVAE_SMALL = ["--config.model.channels=(16,)", "--config.model.num_res_blocks=0",
              "--config.dvae.num_codes=16", "--config.dvae.embedding_dim=8"]
DALLE_SMALL = ["--config.dalle.dim=16", "--config.dalle.depth=2", "--config.dalle.num_heads=2"]


def _run(args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable] + args, cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dvae_workdir(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("dalle") / "dvae")
  r = _run(["train.py", "--config=configs/dvae_digits.py", f"--workdir={wd}",
            "--config.training.num_steps=2", "--config.training.ckpt_every=2",
            "--config.training.sample_every=0", "--config.training.batch_size=16",
            "--config.training.progress=False"] + DVAE_SMALL)
  assert r.returncode == 0, r.stderr[-2000:]
  return wd


@pytest.mark.slow
def test_dalle_trains_and_samples_through_the_cli(dvae_workdir, tmp_path):
  wd = str(tmp_path / "dalle")
  common = ["--config=configs/dalle_digits.py", f"--config.dalle.dvae_workdir={dvae_workdir}"]
  r = _run(["train.py", f"--workdir={wd}"] + common + ["--config.training.num_steps=2",
            "--config.training.ckpt_every=2", "--config.training.sample_every=2",
            "--config.training.num_sample_images=4", "--config.training.batch_size=8",
            "--config.training.progress=False"] + DALLE_SMALL)
  assert r.returncode == 0, r.stderr[-2000:]
  rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
  assert {"text_ce", "image_ce"} <= set(rows[-1])
  r = _run(["sample.py", f"--workdir={wd}"] + common + ["--num=4"] + DALLE_SMALL)
  assert r.returncode == 0, r.stderr[-2000:]
  samples = np.load(os.path.join(wd, "dalle_t1.npz"))["samples"]
  assert samples.shape == (4, 8, 8, 1) and np.all(np.abs(samples) <= 1)


def test_a_workdir_without_a_dvae_is_refused_with_one_line(tmp_path):
  # a dalle run pointed at a workdir that holds something else (here: nothing, then a
  # non-dvae run) stops before any work with one line naming the setting
  bad = str(tmp_path / "empty")
  os.makedirs(bad)
  wd = str(tmp_path / "dalle_bad")
  r = _run(["train.py", "--config=configs/dalle_digits.py", f"--workdir={wd}",
            f"--config.dalle.dvae_workdir={bad}"] + DALLE_SMALL)
  assert r.returncode != 0
  lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1 and "dalle.dvae_workdir" in lines[0], r.stderr[-2000:]
  assert "Traceback" not in r.stderr
  from configs import mae as mae_config
  os.makedirs(str(tmp_path / "mae"))
  with open(str(tmp_path / "mae" / "config.json"), "w") as f:
    f.write(mae_config.get_config().to_json_best_effort())
  r = _run(["train.py", "--config=configs/dalle_digits.py", f"--workdir={wd}",
            f"--config.dalle.dvae_workdir={tmp_path / 'mae'}"] + DALLE_SMALL)
  lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
  assert r.returncode != 0 and len(lines) == 1 and "'mae' run, not a dvae" in lines[0]


def test_loss_weights_text_one_eighth_image_seven_eighths(monkeypatch):
  from configs import dalle_digits, dvae_digits
  from genjax.dalle import method as dalle_method
  from genjax.dalle.dvae import make_dvae_model
  from genjax.dalle.method import build_dalle_model, label_text
  from genjax.types import DataSpec
  spec = DataSpec((8, 8, 1), 10)
  dcfg = dvae_digits.get_config()
  dcfg.model.channels, dcfg.model.num_res_blocks, dcfg.dvae.num_codes = (16,), 0, 16
  dvae, _ = make_dvae_model(dcfg, spec)
  dvae_params = dvae.init(jax.random.key(5), jnp.zeros((2, 8, 8, 1)))
  monkeypatch.setattr(dalle_method, "load_dvae", lambda cfg, spec, name=None: (dvae, dvae_params))
  config = dalle_digits.get_config()
  config.dalle.dim, config.dalle.depth, config.dalle.num_heads = 16, 2, 2
  model, method = build_dalle_model(config, spec)
  x = jax.random.uniform(jax.random.key(0), (3, 8, 8, 1), minval=-1, maxval=1)
  batch = {"x": x, "label": jnp.array([1, 4, 7])}
  params, _ = method.init(jax.random.key(1), batch)
  loss, metrics = method.loss(params, batch, jax.random.key(2))
  # reference: the cross-entropies by hand from the full logits
  text = label_text(batch["label"], 4)
  codes = model.image_tokens(x)
  seq = jnp.concatenate([text, codes], 1)
  lt, li = model.net.apply({"params": params}, seq[:, :-1])
  lp_t = jax.nn.log_softmax(lt, -1)
  lp_i = jax.nn.log_softmax(li, -1)
  ce_t = -np.mean([lp_t[b, p, seq[b, p + 1]] for b in range(3) for p in range(3)])
  ce_i = -np.mean([lp_i[b, p, seq[b, p + 1]] for b in range(3) for p in range(3, 19)])
  np.testing.assert_allclose(float(metrics["text_ce"]), ce_t, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["image_ce"]), ce_i, rtol=1e-5)
  np.testing.assert_allclose(float(loss), ce_t / 8 + 7 * ce_i / 8, rtol=1e-5)
  # sampling through the Python API with captions as tokens
  imgs = jax.jit(lambda p, k: method.sample(p, k, 3, inputs={"text": text}))(params,
                                                                             jax.random.key(3))
  assert imgs.shape == (3, 8, 8, 1)
