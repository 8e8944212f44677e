"""Full-reference image metrics: PSNR and SSIM, as pure JAX functions.

Both take images NHWC (any leading batch shape, ``[..., H, W, C]``) and return one number per
image. They are jit-, vmap- and grad-compatible.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from genjax.metrics.checks import check_image_pair


def psnr(a: jax.Array, b: jax.Array, data_range: float) -> jax.Array:
  """Peak signal-to-noise ratio, 10 log10(data_range^2 / MSE), per image.

  The MSE is over all pixels and channels of one image, as in scikit-image's
  ``peak_signal_noise_ratio`` applied to each image. Identical images give +inf.

  Args:
    a: [..., H, W, C] images.
    b: [..., H, W, C] images.
    data_range: max - min of the pixel scale: 2.0 for genjax's [-1, 1] images, 255 for uint8.

  Returns:
    [...] PSNR in dB.
  """
  a = jnp.asarray(a)
  b = jnp.asarray(b)
  check_image_pair(a, b, "psnr", data_range)
  dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
  diff = a.astype(dtype) - b.astype(dtype)
  mse = jnp.mean(diff * diff, axis=(-3, -2, -1))
  return 10.0 * jnp.log10(jnp.asarray(data_range, dtype) ** 2 / mse)


def gaussian_window(win_size: int = 11, sigma: float = 1.5, dtype=jnp.float32) -> jax.Array:
  """[win_size] normalised 1-D Gaussian, exp(-(i - r)^2 / (2 sigma^2)), r = (win_size - 1) / 2."""
  r = (win_size - 1) / 2.0
  i = jnp.arange(win_size, dtype=dtype) - r
  w = jnp.exp(-(i * i) / (2.0 * sigma * sigma))
  return w / w.sum()


def _filter_valid(x: jax.Array, w: jax.Array) -> jax.Array:
  """Separable 'valid' filtering of [B, H, W, C] with the 1-D window w, channel by channel."""
  c = x.shape[-1]
  w = w.astype(x.dtype)
  dn = ("NHWC", "HWIO", "NHWC")
  kh = jnp.tile(w[:, None, None, None], (1, 1, 1, c))
  kw = jnp.tile(w[None, :, None, None], (1, 1, 1, c))
  hi = jax.lax.Precision.HIGHEST
  x = jax.lax.conv_general_dilated(x, kh, (1, 1), "VALID", dimension_numbers=dn,
                                   feature_group_count=c, precision=hi)
  return jax.lax.conv_general_dilated(x, kw, (1, 1), "VALID", dimension_numbers=dn,
                                      feature_group_count=c, precision=hi)


@functools.partial(jax.jit, static_argnames=("win_size", "sigma", "k1", "k2", "per_channel"))
def _ssim(a, b, data_range, win_size, sigma, k1, k2, per_channel):
  batch = a.shape[:-3]
  a = a.reshape((-1,) + a.shape[-3:])
  b = b.reshape((-1,) + b.shape[-3:])
  w = gaussian_window(win_size, sigma, a.dtype)
  c1 = (k1 * data_range) ** 2
  c2 = (k2 * data_range) ** 2
  mu_a = _filter_valid(a, w)
  mu_b = _filter_valid(b, w)
  # Weighted (co)variances, Wang et al. eq. (14): E_w[ab] - E_w[a] E_w[b].
  var_a = _filter_valid(a * a, w) - mu_a * mu_a
  var_b = _filter_valid(b * b, w) - mu_b * mu_b
  cov = _filter_valid(a * b, w) - mu_a * mu_b
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
       / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)))
  s = s.mean(axis=(1, 2))  # [B, C]: mean SSIM (MSSIM, eq. 17) of each channel.
  if not per_channel:
    s = s.mean(axis=-1)
  return s.reshape(batch + s.shape[1:])


def ssim(a: jax.Array, b: jax.Array, data_range: float, *, win_size: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
         per_channel: bool = False) -> jax.Array:
  """Structural similarity (SSIM) of Wang et al. (2004), eq. (13), (14) and (17).

  SSIM(a, b) = (2 mu_a mu_b + C1)(2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 +
  sigma_b^2 + C2)), C1 = (K1 L)^2, C2 = (K2 L)^2, L = data_range, with local statistics
  weighted by a Gaussian window (11 taps, sigma 1.5) and averaged over the positions where
  the window lies wholly inside the image (``valid`` filtering, as Wang et al.'s MATLAB code
  and scikit-image's cropped map). Each channel is treated on its own and the channel SSIMs
  are averaged. This equals ``skimage.metrics.structural_similarity(a, b, data_range=L,
  channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

  Args:
    a: [..., H, W, C] images, H and W >= win_size.
    b: [..., H, W, C] images.
    data_range: max - min of the pixel scale (2.0 for [-1, 1]).
    win_size: taps of the Gaussian window.
    sigma: its standard deviation in pixels.
    k1: the constant K1.
    k2: the constant K2.
    per_channel: return [..., C] instead of the mean over channels.

  Returns:
    [...] (or [..., C]) mean SSIM per image, in [-1, 1].
  """
  a = jnp.asarray(a)
  b = jnp.asarray(b)
  check_image_pair(a, b, "ssim", data_range)
  h, w = a.shape[-3:-1]
  if min(h, w) < win_size:
    raise ValueError(
        f"ssim: images are {h}x{w}, smaller than the {win_size}x{win_size} window. Upsample "
        "them, or pass a smaller window such as win_size=7, sigma=0.8 (8x8 digits), and say so "
        "when you report the number.")
  dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
  return _ssim(a.astype(dtype), b.astype(dtype), jnp.asarray(data_range, dtype), int(win_size),
               float(sigma), float(k1), float(k2), bool(per_channel))
