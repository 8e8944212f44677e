"""Inception-v3 (FID): converter, loading errors, and layer-for-layer parity with pytorch-fid.

The parity tests need the test-only extra (torch, torchvision, pytorch-fid); without it they
skip and say so. They build pytorch-fid's own network (``fid_inception_v3`` and the
``InceptionV3`` wrapper, with its resize and input scaling) around random weights created
here, export them to a .pth, convert that with genjax's converter, and compare pool3 features
and logits. Nothing is downloaded.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import metrics
from genjax.metrics import convert_inception, inception
from genjax.metrics import weights as weights_lib


def _random_state_dict(seed=0):
  """A torch-layout state dict (NumPy) with random weights for every network parameter."""
  from flax import traverse_util

  rng = np.random.default_rng(seed)
  shapes = traverse_util.flatten_dict(inception.variable_shapes(), sep="/")
  sd = {}
  for key, shape in shapes.items():
    coll, *path, leaf = key.split("/")
    mod = ".".join(path)
    if path == ["fc"]:
      if leaf == "kernel":
        sd["fc.weight"] = rng.normal(0, 1 / np.sqrt(shape[0]), (shape[1], shape[0]))
      else:
        sd["fc.bias"] = rng.normal(0, 0.1, shape)
    elif leaf == "kernel":  # [kh, kw, I, O] -> torch [O, I, kh, kw]
      kh, kw, i, o = shape
      sd[f"{mod}.weight"] = rng.normal(0, np.sqrt(2.0 / (kh * kw * i)), (o, i, kh, kw))
    else:
      name = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}[leaf]
      lo_hi = {"weight": (0.6, 1.2), "running_var": (0.5, 1.5)}
      if name in lo_hi:
        sd[f"{mod}.{name}"] = rng.uniform(*lo_hi[name], shape)
      else:
        sd[f"{mod}.{name}"] = rng.normal(0, 0.1, shape)
  return {k: v.astype(np.float32) for k, v in sd.items()}


@pytest.fixture(scope="module")
def state_dict():
  return _random_state_dict()


def test_network_shapes_and_size():
  from flax import traverse_util
  flat = traverse_util.flatten_dict(inception.variable_shapes(), sep="/")
  n_params = sum(int(np.prod(s)) for k, s in flat.items() if k.startswith("params/"))
  # torchvision's inception_v3(num_classes=1008, aux_logits=False) trainable parameters.
  assert n_params == 23_850_960
  assert flat["params/fc/kernel"] == (2048, 1008)
  assert flat["params/Mixed_7c/branch_pool/conv/kernel"] == (1, 1, 2048, 192)


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
  monkeypatch.delenv(inception.ENV_VAR, raising=False)
  with pytest.raises(FileNotFoundError, match="never downloads.*convert_inception"):
    metrics.get_extractor("inception")
  with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05"):
    inception.load_inception_params(str(tmp_path / "nope.npz"))
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="not a readable"):
    inception.load_inception_params(str(bad))


def test_converter_mapping_without_torch(state_dict, tmp_path):
  flat = convert_inception.convert_state_dict(state_dict)
  variables = weights_lib.unflatten(flat)
  convert_inception.check_variables(variables)
  w = state_dict["Mixed_6b.branch7x7_2.conv.weight"]  # [O, I, 1, 7]
  np.testing.assert_array_equal(
      variables["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"], w.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(variables["batch_stats"]["Conv2d_1a_3x3"]["bn"]["var"],
                                state_dict["Conv2d_1a_3x3.bn.running_var"])
  np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], state_dict["fc.weight"].T)
  # Extra torch bookkeeping is dropped; foreign keys and shapes are refused.
  assert convert_inception.convert_state_dict(
      {**state_dict, "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(3)}).keys() == flat.keys()
  with pytest.raises(ValueError, match="unexpected entry 'features.0.weight'"):
    convert_inception.convert_state_dict({"features.0.weight": np.zeros((3, 3, 3, 3))})
  short = dict(flat)
  del short["params/Mixed_7c/branch_pool/conv/kernel"]
  with pytest.raises(ValueError, match="missing"):
    convert_inception.check_variables(weights_lib.unflatten(short))
  # A saved .npz loads back (no torch involved) with the same checksum.
  path = str(tmp_path / "inc.npz")
  checksum = weights_lib.save_weights(path, variables, {"name": inception.NAME}, compress=False)
  loaded, got = inception.load_inception_params(path)
  assert got == checksum
  ext = metrics.get_extractor("inception", path)
  assert ext.checksum == checksum and ext.feature_dim == 2048


def test_fid_specific_pools():
  # count_include_pad=False: a constant image stays constant at the borders.
  ones = jnp.ones((1, 5, 5, 2))
  np.testing.assert_allclose(inception._avg_pool_3x3_same(ones), ones, rtol=1e-6)
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  pooled = inception._avg_pool_3x3_same(x)
  assert float(pooled[0, 0, 0, 0]) == pytest.approx((0 + 1 + 4 + 5) / 4)


def test_preprocess_pipeline():
  u8 = np.random.default_rng(0).integers(0, 256, size=(2, 8, 8, 1))
  x = u8 / 127.5 - 1.0
  y = inception.preprocess(jnp.asarray(x, jnp.float32))
  assert y.shape == (2, 299, 299, 3)
  # Quantization reproduces the uint8 values exactly; the resize is a convex combination.
  q = inception.preprocess(jnp.asarray(x + 0.001, jnp.float32))
  np.testing.assert_allclose(q, y, atol=1e-6)
  assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0
  with pytest.raises(ValueError, match="1 or 3"):
    inception.preprocess(jnp.zeros((1, 8, 8, 2)))


# --- parity with pytorch-fid (test-only extra) --------------------------------------------------

_REASON = ("pytorch-fid parity needs the test-only extra: pip install -e '.[fid-parity]' "
           "(torch==2.14.1, torchvision==0.29.1, pytorch-fid==0.3.0)")


@pytest.fixture(scope="module")
def torch_fid(state_dict, tmp_path_factory):
  """pytorch-fid's networks with the random weights, and the .pth they came from."""
  try:
    import torch
    import pytorch_fid.inception as pfi
  except Exception as e:  # ImportError, or torchvision's operator registration failing.
    pytest.skip(f"{_REASON}; import failed: {type(e).__name__}: {e}")
  torch.set_num_threads(2)
  pth = str(tmp_path_factory.mktemp("inception") / "random_fid_inception.pth")
  torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, pth)
  real_loader = pfi.load_state_dict_from_url
  pfi.load_state_dict_from_url = lambda *a, **k: torch.load(pth, weights_only=True)
  try:
    wrapper = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    full = pfi.fid_inception_v3().eval()
  finally:
    pfi.load_state_dict_from_url = real_loader
  return torch, wrapper, full, pth


def test_resize_matches_torch_interpolate(torch_fid):
  torch = torch_fid[0]
  rng = np.random.default_rng(0)
  for size in (8, 32, 400):  # up- and downsampling
    x = rng.uniform(size=(1, size, size + 3, 3)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(299, 299),
                                           mode="bilinear", align_corners=False)
    got = jax.image.resize(x, (1, 299, 299, 3), "linear", antialias=False)
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), atol=2e-6)


def test_parity_with_pytorch_fid(torch_fid, tmp_path, python):
  torch, wrapper, full, pth = torch_fid
  # genjax's converter command, run as a user would.
  npz = str(tmp_path / "inception_fid.npz")
  python(["-m", "genjax.metrics.convert_inception", pth, npz], check=True, timeout=300)
  variables, checksum = inception.load_inception_params(npz)
  assert inception.load_inception_params(pth)[1] == checksum  # .pth loads directly too

  rng = np.random.default_rng(1)
  u8 = rng.integers(0, 256, size=(2, 32, 32, 3)).astype(np.uint8)  # e.g. CIFAR-10 PNGs
  with torch.no_grad():
    x01 = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255.0  # pytorch-fid's ToTensor
    want_pool3 = wrapper(x01)[0][:, :, 0, 0].numpy()
    resized = torch.nn.functional.interpolate(x01, size=(299, 299), mode="bilinear",
                                              align_corners=False)
    want_logits = full(2 * resized - 1).numpy()

  x = np.asarray(u8 / 127.5 - 1.0, np.float32)  # genjax's [-1, 1] samples
  # The extractor that evaluate() uses: preprocess + InceptionV3FID, jitted over the mesh.
  pool3, probs = metrics.extract(metrics.get_extractor("inception", npz), x)
  scale = np.abs(want_pool3).max()
  # Inception Score probabilities: the logits without the fc bias by default (torch-fidelity's
  # logits_unbiased), the full fc layer only on request.
  with torch.no_grad():
    want_unbiased = (torch.from_numpy(want_pool3) @ full.fc.weight.T).numpy()
  want_logp = jax.nn.log_softmax(want_unbiased)
  print(f"pool3 max |diff| {np.abs(pool3 - want_pool3).max():.2e} (scale {scale:.2e}); "
        f"log-probs max |diff| {np.abs(np.log(probs) - want_logp).max():.2e}")
  np.testing.assert_allclose(pool3, want_pool3, rtol=1e-4, atol=1e-4 * scale)
  # Logits, through the softmax (up to a per-row constant, which the softmax removes).
  np.testing.assert_allclose(np.log(probs), want_logp, atol=1e-4 * np.abs(want_logits).max())
  probs_b = inception.class_probs(variables["params"]["fc"], jnp.asarray(pool3), True)
  np.testing.assert_allclose(np.log(probs_b), jax.nn.log_softmax(want_logits),
                             atol=1e-4 * np.abs(want_logits).max())


# --- clean-fid's resize --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(8, 8), (32, 40), (400, 350)])  # up, up, down (antialiased)
def test_clean_resize_matches_pil_bicubic(size):
  """clean-fid's make_resizer("PIL", False, "bicubic", (299, 299)): per channel, mode "F"."""
  from PIL import Image
  rng = np.random.default_rng(sum(size))
  u8 = rng.integers(0, 256, size=(1, *size, 3)).astype(np.uint8)
  want = np.stack([np.asarray(Image.fromarray(u8[0, :, :, c].astype(np.float32), mode="F")
                              .resize((299, 299), resample=Image.BICUBIC)).clip(0, 255)
                   for c in range(3)], axis=-1)
  got = np.asarray(inception.resize_clean(jnp.asarray(u8, jnp.float32)))[0]
  np.testing.assert_allclose(got, want, atol=1e-3)  # float32 round-off on a [0, 255] scale
  # Through preprocess: [-1, 1] -> uint8 -> resize -> (x - 128) / 128.
  x = u8 / 127.5 - 1.0
  pre = np.asarray(inception.preprocess(jnp.asarray(x, jnp.float32), resize="clean"))[0]
  np.testing.assert_allclose(pre, (want - 128.0) / 128.0, atol=1e-5)


def test_resize_modes_differ_and_are_recorded():
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 400, 400, 3)), jnp.float32)
  a = inception.preprocess(x, resize="pytorch-fid")
  b = inception.preprocess(x, resize="clean")
  assert float(jnp.abs(a - b).mean()) > 0.05  # aliasing of the bilinear downsample
  assert inception.RESIZES["clean"] != inception.RESIZES["pytorch-fid"]
  with pytest.raises(ValueError, match="unknown Inception resize 'bilinear'"):
    inception.preprocess(x, resize="bilinear")


def test_official_weights_are_recognised_by_their_source(state_dict, tmp_path):
  flat = convert_inception.convert_state_dict(state_dict)
  path = str(tmp_path / "inc.npz")
  weights_lib.save_weights(path, weights_lib.unflatten(flat),
                           {"name": inception.NAME, "source_sha256": "6726825d" + "0" * 56},
                           compress=False)
  ext = metrics.get_extractor("inception_clean", path)
  assert inception.is_official(ext.source_sha256)
  assert ext.space == "inception_clean" and ext.resize == inception.CLEAN_RESIZE_CONVENTION
  assert metrics.metric_key("fd", ext.space) == "fid_inception_clean"
  assert metrics.metric_key("fd", "digits") == "fd_digits"
