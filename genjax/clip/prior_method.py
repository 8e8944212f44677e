"""unCLIP's prior P(z_i | y) as a trainer method, ``config.method = "unclip_prior"``
(Ramesh et al. 2022, Sec. 2.1; seed 003 eq. 49).

A trained CLIP (``config.unclip.clip_workdir``, frozen) embeds each batch's images and captions;
the prior is a diffusion model over the image embeddings ``z_i`` conditioned on the text
embedding ``y`` (:mod:`genjax.clip.prior`: a residual MLP predicting ``z_i`` directly with the
DDPM family's loss, ``parameterization = "x0"``), with ``diffusion.cond_drop_prob`` of the text
embeddings replaced by the null (zero) condition for classifier-free guidance. Embeddings are
unit vectors; the prior works on ``sqrt(E) z`` (per-coordinate scale about 1) and its samples are
renormalised to unit length, as CLIP's embeddings are compared by cosine.

``sample(params, key, num, inputs={"text": tokens})`` returns ``[num, E]`` image embeddings
(without inputs: the captions of held-out images). ``sample.py --eval=prior`` reports, on
held-out pairs, the cosine of sampled and true image embeddings beside that of unrelated pairs,
and the CLIP score of the samples with their captions beside the real images'.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from genjax.clip.losses import l2_normalize
from genjax.clip.prior import PriorMLP, drop_text, preconditioned
from genjax.diffusion import losses
from genjax.sampling import registry, schedules
from genjax.training.method import Method
from genjax.typed_config import field, from_section
from genjax.types import DataSpec

__all__ = ["UnclipConfig", "build_unclip_prior"]


@dataclasses.dataclass(frozen=True)
class UnclipConfig:
  """The ``config.unclip`` section.

  Attributes:
    clip_workdir: the trained CLIP's workdir (``configs/clip_shapes.py``).
    width, depth: the prior MLP.
    eval_num: held-out pairs of ``--eval=prior``.
  """
  clip_workdir: str = ""
  width: int = field(256, gt=0)
  depth: int = field(3, gt=0)
  eval_num: int = field(500, gt=0)


def build_unclip_prior(config, spec: DataSpec) -> Method:
  from genjax.clip.score import load_clip
  from genjax.diffusion.method import DDPMConfig
  cfg = from_section(UnclipConfig, config.get("unclip", {}), where="unclip")
  dcfg = from_section(DDPMConfig, config.diffusion, where="diffusion")
  sampling = registry.from_config(config.get("sampling"), default="ddim")
  if not cfg.clip_workdir:
    raise ValueError("unclip.clip_workdir must name a trained CLIP run (configs/clip_shapes.py).")
  if dcfg.parameterization != "x0":
    raise ValueError("unCLIP's prior predicts z_i directly: set diffusion.parameterization='x0'.")
  clip = load_clip(cfg.clip_workdir)
  if tuple(clip.image_shape) != tuple(spec.shape):
    raise ValueError(f"unclip.clip_workdir's CLIP was trained on {clip.image_shape} images, "
                     f"this data has {spec.shape}.")
  e = clip.embed_dim
  scale = math.sqrt(e)
  net = PriorMLP(width=cfg.width, depth=cfg.depth)
  sched = schedules.get_schedule(dcfg.schedule, dcfg.num_timesteps)
  f = preconditioned(lambda p, z, t, y: net.apply({"params": p}, z, t, y), sched, 1.0)
  loss_fn = losses.make_ddpm_loss(lambda p, z, t, y, k: f(p, z, t, y), sched, "x0")

  def embed(batch):
    z = jax.lax.stop_gradient(clip.encode_image(batch["x"])) * scale
    y = jax.lax.stop_gradient(clip.encode_text(batch["text"]))
    return z, y

  def loss(params, batch, key):
    k_drop, k_loss = jax.random.split(key)
    z, y = embed(batch)
    if dcfg.cond_drop_prob:
      y = drop_text(k_drop, y, dcfg.cond_drop_prob)
    return loss_fn(params, {"x": z, "label": y}, k_loss)

  def init(key, batch):
    p = net.init(key, jnp.zeros((1, e)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, e)))
    return p["params"], {}

  def model_of(params):
    return registry.Model(process=sched, model_fn=lambda z, t, y: f(params, z, t, y),
                          prediction="x0", null_cond=jnp.zeros_like)

  registry.validate(sampling, model_of(None))
  from genjax.data import DataConfig, load_dataset
  from genjax.typed_config import to_dict
  test = load_dataset(DataConfig.from_dict(to_dict(config.data))).test
  held_out = np.asarray(test.get(np.arange(min(256, len(test))))["text"])

  def sample(params, key, num, inputs=None):
    tokens = (jnp.asarray(inputs["text"]) if inputs is not None and "text" in inputs
              else jnp.asarray(held_out)[jnp.arange(num) % held_out.shape[0]])
    y = clip.encode_text(tokens)
    z = registry.run(model_of(params), sampling, key, (num, e), cond=y)
    return l2_normalize(z)

  def eval_prior(state, dataset, key, num):
    n = min(int(num), cfg.eval_num, len(dataset.test))
    data = dataset.test.get(np.arange(n))
    zi = np.asarray(clip.encode_image(jnp.asarray(data["x"])))
    zt = np.asarray(clip.encode_text(jnp.asarray(data["text"])))
    zs = np.asarray(jax.jit(lambda p, k: sample(p, k, n, {"text": data["text"]}))(
        state.ema_params, key))
    cos = lambda a, b: float(np.mean(np.sum(a * b, axis=1)))
    perm = np.roll(np.arange(n), 1)
    from genjax.metrics import clip_score
    score = lambda a, b: float(np.mean(np.asarray(clip_score(a, b))))
    return {"cos_sample_true": cos(zs, zi), "cos_unrelated_true": cos(zi[perm], zi),
            "clip_score_samples": score(zs, zt), "clip_score_real_images": score(zi, zt),
            "guidance_scale": sampling.guidance_scale, "num_pairs": n, "params": "ema"}

  return Method(name="unclip_prior", init=init, loss=loss, sample=sample,
                evaluators={"prior": eval_prior},
                sample_tag="prior_" + registry.tag(sampling, model_of(None)),
                modes=("sample", "text"))
