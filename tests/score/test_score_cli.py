"""Short end-to-end train + sample runs of every score config through the CLI (tiny overrides).

One train.py run per config (3 steps of a tiny network; the trainer samples at the end with the
config's sampler), a sample.py run with a second sampler, and ``--eval=nll`` on the 2-D SDE. The
image configs' runs are marked slow (each spends a minute or more compiling a U-Net on the
shared CPU); every sampler name of every family is also exercised in process, on a tiny
network, by ``test_every_sampler_name_runs``.
"""

import json
import os

import numpy as np
import pytest

from tests.conftest import run_python

TINY_UNET = ["--config.model.ch=8", "--config.model.ch_mult=(1,)",
             "--config.model.num_res_blocks=1", "--config.model.attn_resolutions=()"]
TINY_MLP = ["--config.model.hidden=16", "--config.model.depth=1", "--config.model.time_dim=16"]
TRAIN = ["--config.training.batch_size=16", "--config.training.num_steps=3",
         "--config.training.log_every=3", "--config.training.sample_every=3",
         "--config.training.ckpt_every=3", "--config.training.num_sample_images=4",
         "--config.training.progress=False", "--config.training.tensorboard=False"]

# (config, tiny overrides, sample.py's sampler or None, expected sample shape). train.py's own
# sample grid at step 3 uses the config's default sampler (pc+ode for sde_2d, annealed
# Langevin for ncsn, edm-heun for edm); sample.py then runs a second one.
SLOW = pytest.mark.slow  # each is a minute or more of CPU on the shared 2-core machines
CASES = [
    pytest.param("sde_vp", TINY_UNET + ["--config.sampling.steps=4"], ("dpm-solver-2", 4),
                 (8, 8, 1), marks=SLOW, id="sde_vp"),
    pytest.param("sde_subvp", TINY_UNET + ["--config.sampling.steps=4"], None, (8, 8, 1),
                 marks=SLOW, id="sde_subvp"),
    pytest.param("sde_ve", TINY_UNET + ["--config.sampling.steps=4"], ("edm-heun", 3), (8, 8, 1),
                 marks=SLOW, id="sde_ve"),
    pytest.param("sde_2d", TINY_MLP + ["--config.sampling.steps=4"], None, (2,), id="sde_2d"),
    pytest.param("ncsn", TINY_UNET + ["--config.sampling.steps=2", "--config.ncsn.num_scales=3"],
                 None, (8, 8, 1), id="ncsn"),
    pytest.param("edm", TINY_UNET + ["--config.sampling.steps=3"], None, (8, 8, 1), marks=SLOW,
                 id="edm"),
    pytest.param("edm_2d", TINY_MLP + ["--config.sampling.steps=3"], ("edm-heun", 4), (2,),
                 id="edm_2d"),
]


@pytest.mark.parametrize("name,tiny,sampler,shape", CASES)
def test_train_and_sample(name, tiny, sampler, shape, tmp_path):
  wd = str(tmp_path / name)
  args = [f"--config=configs/{name}.py", *tiny]
  run_python(["train.py", *args, *TRAIN, f"--workdir={wd}"], check=True)
  assert os.path.exists(os.path.join(wd, "samples", "step_0000003.png"))
  row = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))][-1]
  assert row["step"] == 3 and np.isfinite(row["loss"])
  if sampler is not None:
    run_python(["sample.py", *args, f"--workdir={wd}", f"--sampler={sampler[0]}",
                f"--steps={sampler[1]}", "--num=4", "--batch=4"], check=True)
    out = np.load(os.path.join(wd, f"{sampler[0]}_{sampler[1]}.npz"))["samples"]
    assert out.shape == (4, *shape) and np.all(np.isfinite(out)), sampler
  if name == "sde_2d":
    run_python(["sample.py", *args, f"--workdir={wd}", "--eval=nll", "--num=8"], check=True)
    res = json.load(open(os.path.join(wd, "eval.json")))["nll"]
    assert np.isfinite(res["bpd"]) and res["num_examples"] == 8 and res["hutchinson"] == "exact"


def _tiny_method(config_name, overrides):
  import importlib
  from genjax import methods
  from genjax.data import DataConfig, load_dataset
  from genjax.typed_config import to_dict
  config = importlib.import_module(f"configs.{config_name}").get_config()
  for k, v in overrides.items():
    section, field = k.split(".")
    config[section][field] = v
  ds = load_dataset(DataConfig.from_dict(to_dict(config.data)))
  return config, ds, methods.build_method(config, ds.spec)


UNET = {"model.ch": 8, "model.ch_mult": (1,), "model.num_res_blocks": 1,
        "model.attn_resolutions": ()}


@pytest.mark.parametrize("config_name,samplers", [
    ("sde_vp", ["pc", "langevin", "ode-euler", "ode-heun", "ode-adaptive", "pc+ode",
                "dpm-solver-1", "dpm-solver-3", "ddpm", "ddim"]),
    ("sde_ve", ["pc", "ode-heun", "edm-heun"]),
    ("ncsn", ["langevin", "edm-heun"]),
])
def test_every_sampler_name_runs(config_name, samplers):
  """Each sample.py sampler name of each family, in process, on a tiny untrained network."""
  import jax
  overrides = dict(UNET)
  if config_name == "sde_vp":
    overrides["sde.num_scales"] = 20  # ddpm runs all N steps
  for sampler in samplers:
    over = dict(overrides, **{"sampling.sampler": sampler, "sampling.steps": 3})
    config, ds, method = _tiny_method(config_name, over)
    params, _ = method.init(jax.random.key(0), ds.train.get(np.arange(2)))
    x = jax.jit(lambda p, k: method.sample(p, k, 2))(params, jax.random.key(1))
    assert x.shape == (2, 8, 8, 1) and np.all(np.isfinite(np.asarray(x))), sampler


def test_sampler_errors_are_clear():
  """A sampler the model cannot run fails when the method is built, naming the fix."""
  with pytest.raises(ValueError, match="discrete VP chain.*valid here: ddim, pc"):
    _tiny_method("sde_subvp", dict(UNET, **{"sampling.sampler": "ddpm"}))
  with pytest.raises(ValueError, match="cannot sample a denoiser model"):
    _tiny_method("ncsn", dict(UNET, **{"sampling.sampler": "consistency"}))
  with pytest.raises(ValueError, match="Unknown sampling.sampler 'heun'"):
    _tiny_method("sde_vp", dict(UNET, **{"sampling.sampler": "heun"}))
  with pytest.raises(ValueError, match="ancestral_sampling needs a VP or VE SDE"):
    _tiny_method("sde_subvp", dict(UNET, **{"sampling.predictor": "ancestral_sampling"}))
  with pytest.raises(ValueError, match="Unknown config field"):
    _tiny_method("sde_vp", dict(UNET, **{"sampling.snr_typo": 0.1}))
