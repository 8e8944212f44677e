"""LPIPS (Zhang et al. 2018): converter, loading errors, gradients, and parity with the lpips
package (test-only extra) on random backbone weights exported from torchvision and the linear
layers that ship inside the lpips package. Nothing is downloaded."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import metrics
from genjax.metrics import convert_lpips
from genjax.metrics import lpips as lpips_lib
from genjax.metrics import weights as weights_lib

_REASON = ("LPIPS parity needs the test-only extra: pip install -e '.[fid-parity]' "
           "(torch, torchvision, lpips)")


def _random_params(net, seed=0):
  rng = np.random.default_rng(seed)
  flat = {}
  for k, shape in convert_lpips.expected_shapes(net).items():
    if k.startswith("lin/"):
      flat[k] = rng.uniform(0, 1, shape).astype(np.float32)  # the learned weights are >= 0
    elif k.endswith("kernel"):
      flat[k] = rng.normal(0, np.sqrt(2.0 / np.prod(shape[:3])), shape).astype(np.float32)
    else:
      flat[k] = rng.normal(0, 0.1, shape).astype(np.float32)
  return weights_lib.unflatten(flat)


def test_lpips_closed_forms_and_gradient():
  params = jax.tree.map(jnp.asarray, _random_params("alex"))
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  y = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  lpips = jax.jit(metrics.lpips_distance)
  d = lpips(params, x, y)
  assert d.shape == (2,) and d.dtype == jnp.float32
  np.testing.assert_allclose(lpips(params, x, x), 0.0, atol=1e-7)
  np.testing.assert_allclose(lpips(params, y, x), d, rtol=1e-6)
  # Eq. (1) with one layer's weights doubled: that layer's term doubles.
  feats = lambda z: lpips_lib.backbone_features(
      params, (z - jnp.asarray(lpips_lib.SHIFT)) / jnp.asarray(lpips_lib.SCALE))
  fx, fy = feats(x), feats(y)
  terms = []
  for l in range(5):
    nx = fx[l] / (jnp.linalg.norm(fx[l], axis=-1, keepdims=True) + 1e-10)
    ny = fy[l] / (jnp.linalg.norm(fy[l], axis=-1, keepdims=True) + 1e-10)
    terms.append(jnp.mean(jnp.sum((nx - ny) ** 2 * params["lin"][str(l)], -1), axis=(1, 2)))
  np.testing.assert_allclose(d, sum(terms), rtol=1e-5)
  # Usable as a training loss: finite gradients, also where features are all zero.
  g = jax.jit(jax.grad(lambda a: metrics.lpips_distance(params, a, y).sum()))(x)
  assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
  g0 = jax.grad(lambda f: lpips_lib._unit_normalize(f).sum())(jnp.zeros((2, 3, 3, 4)))
  assert bool(jnp.all(jnp.isfinite(g0)))  # a dead-ReLU position: ||f|| = 0
  with pytest.raises(ValueError, match="at least 31x31"):
    metrics.lpips_distance(params, x[:, :16, :16], y[:, :16, :16])
  with pytest.raises(ValueError, match="images in \\[0, 1\\]"):
    metrics.lpips_distance(params, (x + 1) / 2, (y + 1) / 2)


def test_converter_refusals_and_missing_weights(tmp_path, monkeypatch):
  monkeypatch.delenv(lpips_lib.ENV_VAR, raising=False)
  with pytest.raises(FileNotFoundError, match="never downloads.*convert_lpips"):
    metrics.load_lpips()
  with pytest.raises(ValueError, match="unexpected entry 'classifierx.1.weight'"):
    convert_lpips.convert_state_dicts("alex", {"classifierx.1.weight": np.zeros(3)})
  sd = {f"features.{k.split('/')[1]}.{'weight' if k.endswith('kernel') else 'bias'}":
        (v.transpose(3, 2, 0, 1) if v.ndim == 4 else v)
        for k, v in weights_lib.flatten_params(_random_params("alex")).items()
        if k.startswith("backbone")}
  with pytest.raises(ValueError, match="missing: \\['lin/0'"):
    convert_lpips.convert_state_dicts("alex", sd)
  path = str(tmp_path / "notlpips.npz")
  weights_lib.save_weights(path, {"a": np.zeros(2)}, {})
  with pytest.raises(ValueError, match="no LPIPS weights"):
    metrics.load_lpips(path)


@pytest.fixture(scope="module")
def torch_lpips():
  try:
    import torch
    import torchvision
    import lpips
  except Exception as e:  # ImportError, or torchvision's operator registration failing.
    pytest.skip(f"{_REASON}; import failed: {type(e).__name__}: {e}")
  torch.set_num_threads(2)
  return torch, torchvision, lpips


@pytest.mark.parametrize("net", ["alex", pytest.param("vgg", marks=pytest.mark.slow)])
def test_parity_with_the_lpips_package(torch_lpips, net, tmp_path):
  torch, tv, lpips = torch_lpips
  torch.manual_seed(0)
  backbone = (tv.models.alexnet if net == "alex" else tv.models.vgg16)(weights=None)
  bpath = str(tmp_path / "backbone.pth")
  torch.save(backbone.state_dict(), bpath)  # torchvision's state-dict layout
  lin = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", f"{net}.pth")
  ref = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)  # real lin layers
  for s in ref.net.children():  # the same random backbone inside the reference
    for name, mod in s.named_children():
      mod.load_state_dict(backbone.features[int(name)].state_dict())
  npz = str(tmp_path / f"lpips_{net}.npz")
  convert_lpips.main(["--net", net, "--backbone", bpath, "--lin", lin, "--out", npz])
  params, got_net, _ = metrics.load_lpips(npz)
  assert got_net == net
  rng = np.random.default_rng(1)
  x = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
  y = np.clip(x + 0.3 * rng.normal(size=x.shape), -1, 1).astype(np.float32)
  with torch.no_grad():
    want = ref(torch.from_numpy(x).permute(0, 3, 1, 2),
               torch.from_numpy(y).permute(0, 3, 1, 2)).numpy().reshape(-1)
  got = np.asarray(jax.jit(metrics.lpips_distance)(params, x, y))
  print(f"LPIPS-{net}: genjax {got}, lpips {want}")
  np.testing.assert_allclose(got, want, rtol=1e-5)
