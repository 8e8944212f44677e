"""Classifier-free guidance through the DDPM method and the command line."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ddpm_2d
from genjax import sampling as gs
from genjax.sampling import guidance, schedules
from genjax.diffusion.method import build_ddpm
from genjax.nets.build import build_network
from genjax.types import DataSpec
from tests.conftest import run_python

SPEC = DataSpec(shape=(2,), num_classes=3, kind="points")


def cond_config(**sampling):
  config = ddpm_2d.get_config()
  config.model.hidden = 16
  config.model.num_classes = -1
  config.diffusion.num_timesteps = 50  # linear betas reach 1 at T = 20
  config.diffusion.cond_drop_prob = 0.2
  config.sampling.sampler, config.sampling.steps, config.sampling.eta = "ddim", 5, 0.0
  for k, v in sampling.items():
    config.sampling[k] = v
  return config


def test_method_samples_with_the_guided_eps():
  """method.sample with w equals DDIM on (1 + w) eps(x, y) - w eps(x, null) built by hand."""
  w = 2.0
  method = build_ddpm(cond_config(guidance_scale=w, label=1), SPEC)
  batch = {"x": jnp.zeros((4, 2)), "label": jnp.zeros((4,), jnp.int32)}
  params, _ = method.init(jax.random.key(0), batch)
  params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(3), p.shape), params)
  x = method.sample(params, jax.random.key(1), 5)
  net = build_network(cond_config().model, SPEC)
  y = jnp.full((5,), 1)

  def eps_fn(xt, t, c=None):
    out = lambda label: net.apply({"params": params}, xt, t, y=label)
    return (1 + w) * out(y) - w * out(jnp.full((5,), 3))

  sched = schedules.get_schedule(ddpm_2d.get_config().diffusion.schedule, 50)
  expect = gs.ddim_sample(eps_fn, sched, jax.random.key(1), (5, 2), num_steps=5, eta=0.0)
  np.testing.assert_allclose(x, expect, rtol=1e-4, atol=1e-5)
  plain = build_ddpm(cond_config(label=1), SPEC).sample(params, jax.random.key(1), 5)
  assert np.abs(np.asarray(plain) - np.asarray(x)).max() > 1e-4
  # Every sampler goes through the guided network.
  for sampler in ("ddpm", "dpm-solver-2", "pc", "edm-heun"):
    m = build_ddpm(cond_config(guidance_scale=w, sampler=sampler), SPEC)
    assert np.all(np.isfinite(np.asarray(m.sample(params, jax.random.key(2), 4))))


def test_the_loss_drops_labels():
  """With cond_drop_prob the loss equals the loss on labels dropped by the same key."""
  config = cond_config()
  method = build_ddpm(config, SPEC)
  batch = {"x": jax.random.normal(jax.random.key(0), (64, 2)), "label": jnp.arange(64) % 3}
  params, _ = method.init(jax.random.key(0), batch)
  key = jax.random.key(5)
  loss_drop, _ = method.loss(params, batch, key)
  config.diffusion.cond_drop_prob = 0.0
  plain = build_ddpm(config, SPEC)
  k_loss, k_drop = jax.random.split(key)
  dropped = dict(batch, label=guidance.drop_condition(k_drop, batch["label"], 3, 0.2))
  assert int(jnp.sum(dropped["label"] == 3)) > 0
  np.testing.assert_allclose(loss_drop, plain.loss(params, dropped, k_loss)[0], rtol=1e-6)


@pytest.mark.parametrize("change,match", [
    (dict(sampling=dict(guidance_scale=1.0), drop=0.0), "cond_drop_prob > 0"),
    (dict(sampling=dict(label=7), drop=0.1), "not a class"),
    (dict(sampling=dict(guidance_scale=1.0), drop=0.1, uncond=True), "class-conditional"),
])
def test_guidance_config_errors(change, match):
  config = cond_config(**change["sampling"])
  config.diffusion.cond_drop_prob = change["drop"]
  spec = SPEC
  if change.get("uncond"):
    config.model.num_classes = 0
    spec = DataSpec(shape=(2,), kind="points")
  with pytest.raises(ValueError, match=match):
    build_ddpm(config, spec)


def test_cli_train_and_guided_sample(tmp_path):
  wd = str(tmp_path / "run")
  tiny = ["--config=configs/ddpm_cfg.py", "--config.model.ch=8", "--config.model.ch_mult=(1,)",
          "--config.model.attn_resolutions=()", "--config.diffusion.num_timesteps=50",
          "--config.training.batch_size=16", "--config.training.num_steps=4",
          "--config.training.sample_every=4", "--config.training.ckpt_every=4",
          "--config.training.num_sample_images=10", "--config.sampling.steps=4"]
  run_python(["train.py", *tiny, f"--workdir={wd}"], check=True)
  run_python(["sample.py", *tiny, f"--workdir={wd}", "--guidance_scale=3", "--label=7",
              "--num=5"], check=True)
  x = np.load(os.path.join(wd, "ddim4_eta1.0_w3.0_label7.npz"))["samples"]
  assert x.shape == (5, 8, 8, 1) and np.all(np.isfinite(x))
