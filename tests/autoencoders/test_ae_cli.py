"""End to end through the command line: train, sample, evaluate (and, in the slow set, every
config, the VQ-VAE-2 prior stage and the figures)."""

import json
import os

import numpy as np
import pytest

from tests.conftest import run_python

COMMON = [
    "--config.training.batch_size=16", "--config.training.num_steps=4",
    "--config.training.log_every=2", "--config.training.sample_every=4",
    "--config.training.ckpt_every=4", "--config.training.num_sample_images=4",
    "--config.training.progress=False", "--config.training.tensorboard=False",
]

TINY = {
    "ae": ["--config.model.hidden=(16,)"],
    "dae": ["--config.model.hidden=(16,)"],
    "sparse_ae": ["--config.model.hidden=(16,)", "--config.ae.latent_dim=8"],
    "ksparse_ae": ["--config.ae.latent_dim=8", "--config.ae.k=3"],
    "cae": ["--config.model.hidden=(16,)", "--config.ae.latent_dim=4"],
    "vae": ["--config.model.hidden=(16,)", "--config.vae.latent_dim=2",
            "--config.vae.eval_iwae_k=10", "--config.vae.eval_samples=2"],
    "beta_vae": ["--config.model.hidden=(16,)", "--config.vae.eval_iwae_k=10"],
    "vae_2d_latent": ["--config.model.hidden=(16,)", "--config.vae.eval_iwae_k=10"],
    "vqvae": ["--config.model.channels=(8,)", "--config.model.num_res_blocks=1",
              "--config.model.res_channels=8", "--config.vq.num_codes=8",
              "--config.vq.embedding_dim=4"],
    "vqvae2": ["--config.model.channels=(8,)", "--config.model.num_res_blocks=1",
               "--config.model.res_channels=8", "--config.vq.num_codes=8",
               "--config.vq.top_num_codes=4", "--config.vq.embedding_dim=4"],
    "tdvae": ["--config.model.hidden=(16,)", "--config.tdvae.belief_hidden=8",
              "--config.tdvae.pre_hidden=(16,)", "--config.tdvae.hidden=(8,)",
              "--config.tdvae.seq_len=4", "--config.tdvae.max_jump=2",
              "--config.tdvae.num_sample_sequences=2", "--config.tdvae.context=2"],
}
PRIOR_TINY = ["--config.prior.hidden=8", "--config.prior.num_layers=1",
              "--config.prior.cond_hidden=4"]


def _args(name):
  return [f"--config=configs/{name}.py", *COMMON, *TINY.get(name, [])]


def _train_and_sample(name, wd, extra=()):
  run_python(["train.py", *_args(name), *extra, f"--workdir={wd}"], check=True)
  assert sorted(os.listdir(os.path.join(wd, "checkpoints")))[-1] == "4"
  rows = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))]
  assert rows[-1]["step"] == 4 and np.isfinite(rows[-1]["loss"])
  assert os.path.exists(os.path.join(wd, "samples", "step_0000004.png"))
  run_python(["sample.py", *_args(name), *extra, f"--workdir={wd}", "--num=6", "--batch=6"],
             check=True)
  samples = np.load(os.path.join(wd, "samples.npz"))["samples"]
  assert samples.shape == (6, 8, 8, 1) and np.all(np.isfinite(samples))
  assert samples.min() >= -1.0 and samples.max() <= 1.0
  return rows


def test_vae_train_sample_and_eval_elbo(tmp_path):
  wd = str(tmp_path / "vae")
  rows = _train_and_sample("vae", wd)
  assert {"elbo", "kl", "recon_nll", "bpd"} <= set(rows[-1])
  proc = run_python(["sample.py", *_args("vae"), f"--workdir={wd}", "--eval=elbo,recon,parzen",
                     "--num=32", "--config.parzen.num_samples=100"], check=True)
  result = json.load(open(os.path.join(wd, "eval.json")))
  e = result["elbo"]
  assert e["num_examples"] == 32 and e["iwae_k"] == 10
  for k in ("neg_elbo_nats", "neg_elbo_bpd", "neg_iwae_nats", "neg_iwae_bpd"):
    assert np.isfinite(e[k]) and e[k] > 0, k
  np.testing.assert_allclose(e["neg_elbo_bpd"], e["neg_elbo_nats"] / (64 * np.log(2)), rtol=1e-5)
  assert e["neg_iwae_nats"] <= e["neg_elbo_nats"] + 1.0  # the IWAE bound is the tighter one
  assert np.isfinite(result["recon"]["test_mse_per_dim"])
  assert "neg_iwae_bpd" in proc.stdout
  # The Parzen window is an evaluation of every method, not only of the GANs.
  p = result["parzen"]
  assert p["num_samples"] == 100 and p["num_test"] == 32 and p["num_val"] == 32
  assert np.isfinite(p["log_likelihood"]) and p["sigma"] in p["sigmas"]


def test_vqvae_train_sample_and_eval(tmp_path):
  wd = str(tmp_path / "vqvae")
  rows = _train_and_sample("vqvae", wd)
  assert {"perplexity_z", "codes_used_z", "commitment_z", "recon_mse"} <= set(rows[-1])
  run_python(["sample.py", *_args("vqvae"), f"--workdir={wd}", "--eval=recon", "--num=32"],
             check=True)
  r = json.load(open(os.path.join(wd, "eval.json")))["recon"]
  assert 1.0 <= r["perplexity_z"] <= 8.0 and 1 <= r["codes_used_z"] <= 8


def test_vq_prior_without_a_first_stage_fails_clearly(tmp_path):
  proc = run_python(["train.py", "--config=configs/vqvae2_prior.py", *COMMON,
                     f"--config.prior.vqvae_workdir={tmp_path / 'missing'}",
                     f"--workdir={tmp_path / 'prior'}"])
  assert proc.returncode == 1
  assert "vqvae_workdir" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ae", "dae", "sparse_ae", "ksparse_ae", "cae", "beta_vae",
                                  "vae_2d_latent", "vqvae2", "tdvae"])
def test_every_config_trains_samples_and_draws_its_figures(tmp_path, name):
  wd = str(tmp_path / name)
  _train_and_sample(name, wd)
  run_python(["-m", "genjax.autoencoders.figures", *_args(name), f"--workdir={wd}"], check=True)
  expected = {"tdvae": ["rollouts.png", "prior_samples.png"],
              "vae_2d_latent": ["manifold.png", "latent_scatter.png", "reconstructions.png"],
              "vqvae2": ["codebook_usage.png", "reconstructions.png", "interpolations.png"]}
  for f in expected.get(name, ["reconstructions.png", "prior_samples.png",
                               "interpolations.png"]):
    assert os.path.exists(os.path.join(wd, f)), f


@pytest.mark.slow
def test_vqvae2_then_its_prior_as_a_second_stage(tmp_path):
  stage1 = str(tmp_path / "vqvae2")
  _train_and_sample("vqvae2", stage1)
  wd = str(tmp_path / "prior")
  extra = [f"--config.prior.vqvae_workdir={stage1}", *PRIOR_TINY]
  run_python(["train.py", "--config=configs/vqvae2_prior.py", *COMMON, *extra,
              f"--workdir={wd}"], check=True)
  run_python(["sample.py", "--config=configs/vqvae2_prior.py", *COMMON, *extra,
              f"--workdir={wd}", "--num=4", "--batch=4"], check=True)
  assert np.load(os.path.join(wd, "samples.npz"))["samples"].shape == (4, 8, 8, 1)
  run_python(["sample.py", "--config=configs/vqvae2_prior.py", *COMMON, *extra,
              f"--workdir={wd}", "--eval=nll", "--num=32"], check=True)
  r = json.load(open(os.path.join(wd, "eval.json")))["nll"]
  assert np.isfinite(r["nll_codes_nats_per_image"])
  run_python(["-m", "genjax.autoencoders.figures", "--config=configs/vqvae2_prior.py", *COMMON,
              *extra, f"--workdir={wd}"], check=True)
  assert os.path.exists(os.path.join(wd, "prior_samples.png"))
