"""The samplers' catalog and registry: names, validation before any work, tags, help, views."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import methods
from genjax import sampling as gs
from genjax.sampling import catalog, registry


def _model(process, **kw):
  return gs.Model(process=process, model_fn=lambda x, t, c: 0.1 * x, **kw)


def test_the_catalog_and_the_method_table_import_no_jax():
  code = ("import sys, genjax.sampling.catalog as c, genjax.methods as m; "
          "assert 'jax' not in sys.modules, sorted(k for k in sys.modules if 'jax' in k); "
          "print(c.help_by_method(m.SAMPLING))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
  assert out.returncode == 0, out.stderr
  assert "sde: ddpm (vp), ddim, pc" in out.stdout and "progressive_distill: ddim" in out.stdout
  steps_help = catalog.help_text()  # sample.py --steps: every sampler's meaning of steps
  for name, entry in catalog.SAMPLERS.items():
    assert f"{name}: {entry.steps_help}" in steps_help


def test_every_catalog_entry_has_a_runner_and_a_tag():
  assert set(registry._RUNNERS) == set(catalog.SAMPLERS)
  cfg = gs.SamplingConfig
  assert catalog.tag(cfg(sampler="ddim", steps=50, eta=1.0)) == "ddim50_eta1.0"
  assert catalog.tag(cfg(sampler="ddim", steps=8, set_alpha_to_one=False)) == \
      "ddim8_eta0.0_lastabar0"
  assert catalog.tag(cfg(sampler="ddpm", respacing="50")) == "ddpm_respaced50"
  # The grid and diffusers' steps_offset change the samples, so they name the file too.
  assert catalog.tag(cfg(sampler="ddim", steps=50, spacing="leading", steps_offset=1)) == \
      "ddim50_eta0.0_leading_offset1"
  assert catalog.tag(cfg(sampler="dpm-solver++-2m", steps=20, spacing="trailing",
                         dpm_skip_type="discrete")) == "dpm-solver++-2m_20_trailing"
  assert catalog.tag(cfg(sampler="dpm-solver++-2m", steps=20, spacing="trailing")) == \
      "dpm-solver++-2m_20"  # logSNR steps: no grid
  assert catalog.tag(cfg(sampler="ddpm", spacing="trailing")) == "ddpm"  # not its option
  assert catalog.tag(cfg(sampler="dpm-solver-2", steps=20, guidance_scale=2.0, label=3)) == \
      "dpm-solver-2_20_w2.0_label3"
  assert catalog.tag(cfg(sampler="pc", steps=10, mode="img2img", strength=0.3)) == \
      "pc_10_img2img0.3"
  # steps = 0 is the sampler's default for the model.
  assert catalog.tag(cfg(sampler="edm-heun"), _model(gs.EDMProcess())) == "edm-heun_18"
  assert catalog.tag(cfg(sampler="pc"), _model(gs.VPSDE(N=300))) == "pc_300"
  assert catalog.tag(cfg(sampler="ddim"), _model(gs.get_schedule("linear", 20).continuous(),
                                                  kind="student", student_steps=4)) == \
      "ddim4_eta0.0"


@pytest.mark.parametrize("cfg,model,match", [
    (dict(sampler="heun"), None, "Unknown sampling.sampler 'heun'; valid: ddpm, ddim"),
    (dict(sampler="ddpm"), _model(gs.VESDE()), "discrete VP chain.*valid here: ddim, pc"),
    (dict(sampler="consistency"), _model(gs.EDMProcess()), "cannot sample a denoiser model"),
    (dict(sampler="edm-heun"), _model(gs.EDMProcess(), kind="consistency"),
     "valid: consistency"),
    (dict(sampler="ddim", guidance_scale=2.0), _model(gs.VPSDE()), "null condition"),
    (dict(sampler="ode-adaptive", mode="inpaint"), None, "cannot inpaint"),
    (dict(sampler="langevin", mode="img2img"), None, "no start time"),
    (dict(sampler="ddim", repaint_resample=3, mode="inpaint"), None, "RePaint's"),
    (dict(sampler="pc", predictor="ancestral_sampling"), _model(gs.EDMProcess()),
     "ancestral_sampling needs a VP or VE"),
    (dict(sampler="ddpm", respacing="ddim8"), _model(gs.get_schedule("linear", 20)),
     "no integer stride"),
])
def test_validation_names_the_field_before_any_work(cfg, model, match):
  with pytest.raises(ValueError, match=match):
    registry.validate(gs.SamplingConfig(**cfg), model)


def test_typed_fields_are_checked_at_construction():
  with pytest.raises(ValueError, match="config.sampling.steps"):
    gs.SamplingConfig(steps=-1)
  with pytest.raises(ValueError, match="config.sampling.dpm_method"):
    gs.SamplingConfig(dpm_method="fast")
  with pytest.raises(ValueError, match="config.sampling.strength"):
    gs.SamplingConfig(strength=0.0)
  with pytest.raises(ValueError, match="Unknown config field.*'stepz'"):
    registry.from_config({"stepz": 3}, default="ddim")
  assert registry.from_config({}, default="pc").sampler == "pc"


def test_views_and_time_maps():
  """A discrete model is sampled in continuous time by the continuous samplers (its network at
  the fractional step (t - 1/N) N), and a VP SDE by ancestral DDPM on its chain (its network at
  the continuous time of each step's abar)."""
  sched = gs.get_schedule("linear", 100)
  seen = []
  model = gs.Model(sched, lambda x, t, c: (seen.append(t), 0 * x)[1])
  view, tmap = registry._view(model, "continuous")
  assert isinstance(view, gs.DiscreteVPSDE)
  np.testing.assert_allclose(tmap(jnp.asarray([0.01, 0.5, 1.0])), [0.0, 49.0, 99.0], atol=1e-4)
  vp = gs.VPSDE()
  chain, tmap = registry._view(_model(vp), "discrete")
  t = np.asarray(tmap(jnp.asarray([0, 500, 999])))
  np.testing.assert_allclose(np.asarray(vp.marginal_alpha(jnp.asarray(t))) ** 2,
                             np.asarray(chain.alphas_cumprod)[[0, 500, 999]], rtol=1e-4)
  cfg = gs.SamplingConfig(sampler="dpm-solver-2", steps=4)
  jax.jit(lambda k: gs.run(model, cfg, k, (2, 3)))(jax.random.key(0))
  assert seen and seen[0].dtype == jnp.float32 and seen[0].shape == ()  # one scalar t a step


def test_class_labels():
  np.testing.assert_array_equal(gs.class_labels(5, 3, -1), [0, 1, 2, 0, 1])
  np.testing.assert_array_equal(gs.class_labels(3, 10, 7), [7, 7, 7])
  assert gs.class_labels(4, 0, -1) is None
  with pytest.raises(ValueError, match="not a class"):
    gs.class_labels(4, 3, 3)


@pytest.mark.parametrize("name", ["unet", "mlp", "dit"])
def test_networks_embed_a_scalar_time_once(name):
  """A scalar t (what samplers pass) gives the per-row result of the broadcast t."""
  from genjax.nets.build import build_network
  from genjax.types import DataSpec
  import ml_collections
  sec = {"unet": dict(name="unet", ch=8, ch_mult=(1,), attn_resolutions=(), num_classes=3),
         "mlp": dict(name="mlp", hidden=16, num_classes=3),
         "dit": dict(name="dit", patch_size=2, hidden_size=16, depth=1, num_heads=2,
                     num_classes=3)}[name]
  shape = (2,) if name == "mlp" else (8, 8, 1)
  net = build_network(ml_collections.ConfigDict(sec), DataSpec(shape=shape, num_classes=3))
  x = jax.random.normal(jax.random.key(0), (4,) + shape)
  y = jnp.array([0, 1, 2, 3])
  params = net.init(jax.random.key(1), x, jnp.zeros((4,)), y=y)["params"]
  one = net.apply({"params": params}, x, jnp.asarray(37.0), y=y)
  rows = net.apply({"params": params}, x, jnp.full((4,), 37.0), y=y)
  np.testing.assert_allclose(one, rows, rtol=1e-5, atol=1e-6)
  assert methods.SAMPLING["ddpm"] == ("denoiser", ("discrete",))
