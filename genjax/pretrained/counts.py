"""Parameter counts of the published reference configurations, from shapes only
(``jax.eval_shape``: no memory is allocated, nothing is computed).

=====================================  =============  ====================================
model (published config)               genjax count   published
=====================================  =============  ====================================
DDPM CIFAR-10 (google/ddpm-cifar10-32)  35,746,307    35.7M (Ho et al. 2020, Sec. 4)
DiT-XL/2 256x256 (DiT-XL-2-256x256.pt) 675,129,632   675M (Peebles & Xie 2023, Table 4)
CLIP ViT-L/14 text encoder (SD 1.x)    123,060,480   123.1M
=====================================  =============  ====================================

``python -m genjax.pretrained.counts`` prints them (and those of the Stable Diffusion 1.x U-Net
and VAE when their genjax modules can express them).
"""

from __future__ import annotations

import math

from genjax.pretrained import convert as cv

__all__ = ["REFERENCE", "count", "reference_counts"]


def count(tree) -> int:
  """Number of scalars in a params tree (or its shapes)."""
  return int(sum(math.prod(v.shape) for v in cv.flatten(tree).values()))


# The published configurations, as genjax keyword arguments (and input shapes).
DDPM_CIFAR10_CONFIG = {  # google/ddpm-cifar10-32/config.json
    "_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256], "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32,
    "out_channels": 3, "sample_size": 32, "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}
DIT_XL_2 = dict(patch_size=2, hidden_size=1152, depth=28, num_heads=16, num_classes=1000,
                out_channels=8)  # learn_sigma: eps and the variance, 2 x 4 latent channels
CLIP_L14_TEXT = {  # openai/clip-vit-large-patch14's text_config (Stable Diffusion 1.x)
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
    "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "eos_token_id": 2}

REFERENCE = {"ddpm_cifar10": 35_746_307, "dit_xl_2": 675_129_632, "clip_text_l14": 123_060_480,
             "sd1_unet": 859_520_964, "sd1_vae": 83_653_863}


def reference_counts() -> dict[str, int]:
  """genjax's parameter count of each reference configuration it can build."""
  from genjax.pretrained import clip_text, dit, unet2d
  out = {}
  kw, shape = unet2d.unet_kwargs(DDPM_CIFAR10_CONFIG)
  out["ddpm_cifar10"] = unet2d.param_count(kw, shape)
  # DiT's fixed pos_embed (256 tokens x 1152) is a parameter of the authors' module (counted in
  # their 675M); genjax computes it, so it is added here to compare like with like.
  out["dit_xl_2"] = count(dit.expected_params(DIT_XL_2, (32, 32, 4))) + 256 * 1152
  out["clip_text_l14"] = count(clip_text.expected_params(clip_text.encoder_kwargs(CLIP_L14_TEXT)))
  try:
    from genjax.pretrained import sd
    out.update(sd.reference_counts())
  except ImportError:
    pass
  return out


if __name__ == "__main__":
  for name, n in reference_counts().items():
    print(f"{name:16s} {n:>13,d}  ({n / 1e6:.1f}M; published {REFERENCE[name] / 1e6:.1f}M)")
