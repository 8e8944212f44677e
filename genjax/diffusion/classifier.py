"""Classifier guidance (Dhariwal & Nichol 2021; seed 003 eq. 36-38): the noise-conditional
classifier as a trainer method, and the guided noise prediction for the DDPM samplers.

The classifier ``p_phi(y | x_t, t)`` is trained with cross-entropy on ``x_t ~ q(x_t | x_0)`` at
uniformly drawn zero-based ``t`` of the diffusion model's own schedule (``config.diffusion``).
A DDPM run then samples with ``sampling.classifier_workdir`` and ``sampling.classifier_scale`` s,
with every sampler (:func:`genjax.sampling.guidance.classifier_guidance`): the score-based ones
use ``eps^ = eps - s sqrt(1 - abar_t) grad_x log p_phi(y | x_t, t)`` (Algorithm 2, seed
eq. 38), ancestral DDPM shifts its mean by ``s Sigma grad`` (Algorithm 1) with its own
``Sigma`` (beta, beta-tilde or the learned one).

    python train.py --config=configs/noisy_classifier.py --workdir=runs/classifier
    python sample.py --config=configs/ddpm.py --workdir=runs/ddpm \\
        --config.sampling.classifier_workdir=runs/classifier --config.sampling.classifier_scale=2
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.nets.classifier import NoisyClassifier
from genjax.sampling import guidance, schedules
from genjax.sampling.posterior import q_sample
from genjax.typed_config import from_section, to_dict
from genjax.training.method import Method
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class ClassifierDiffusionConfig:
  """The part of ``config.diffusion`` a classifier needs: the forward process it sees."""
  schedule: str = "linear"
  num_timesteps: int = 1000


def _network(config, spec: DataSpec) -> NoisyClassifier:
  d = dict(to_dict(config.model))
  name = d.pop("name", "noisy_classifier")
  if name != "noisy_classifier":
    raise ValueError(f"config.model.name must be noisy_classifier, got {name!r}.")
  if d.get("num_classes", -1) == -1:
    d["num_classes"] = spec.num_classes
  d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
  try:
    return NoisyClassifier(**d)
  except TypeError as e:
    raise ValueError(f"Bad config.model for noisy_classifier: {e}") from None


def build_noisy_classifier(config, spec: DataSpec) -> Method:
  """The classifier of classifier guidance as a trainer method (cross-entropy on noisy x_t)."""
  if spec.num_classes < 2:
    raise ValueError("noisy_classifier needs a labelled dataset (e.g. digits).")
  dcfg = from_section(ClassifierDiffusionConfig, config.diffusion, where="diffusion")
  sched = schedules.get_schedule(dcfg.schedule, dcfg.num_timesteps)
  net = _network(config, spec)
  num_t = sched.num_timesteps

  def init(key, batch):
    k1, k2 = jax.random.split(key)
    return net.init({"params": k1, "dropout": k2}, batch["x"][:1], jnp.zeros((1,), jnp.int32))[
        "params"], {}

  def loss(params, batch, key):
    x0, y = batch["x"], batch["label"]
    k_t, k_n, k_d = jax.random.split(key, 3)
    t = jax.random.randint(k_t, (x0.shape[0],), 0, num_t)
    xt = q_sample(sched, x0, t, jax.random.normal(k_n, x0.shape, x0.dtype))
    logits = net.apply({"params": params}, xt, t, train=True, rngs={"dropout": k_d})
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    acc = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
    q = jnp.minimum(4 * t // num_t, 3)
    metrics = {f"acc_q{i}": jnp.sum(acc * (q == i)) / jnp.maximum(jnp.sum(q == i), 1)
               for i in range(4)}
    return jnp.mean(ce), dict(metrics, accuracy=jnp.mean(acc))

  def sample(params, key, num):
    raise ValueError("noisy_classifier has no samples; set training.sample_every=0 and use "
                     "`sample.py --eval=accuracy`, or guide a DDPM with it "
                     "(sampling.classifier_workdir).")

  def eval_accuracy(state, dataset, key, num):
    """Test accuracy at 10 noise levels t = 0, T/10, ..., with the EMA params."""
    n = min(len(dataset.test), int(num))
    data = dataset.test.get(np.arange(n))
    x0, y = jnp.asarray(data["x"]), np.asarray(data["label"])
    apply = jax.jit(lambda p, x, t: net.apply({"params": p}, x, t))
    out = {}
    for i, t in enumerate(np.linspace(0, num_t - 1, 10).astype(int)):
      xt = q_sample(sched, x0, jnp.full((n,), t),
                             jax.random.normal(jax.random.fold_in(key, i), x0.shape))
      out[f"accuracy_t{t}"] = float(np.mean(np.argmax(apply(state.ema_params, xt, t), -1) == y))
    out.update(num_examples=n, split="test", params="ema")
    return out

  return Method(name="noisy_classifier", init=init, loss=loss, sample=sample,
                evaluators={"accuracy": eval_accuracy})


def load_guidance_classifier(workdir: str, diffusion_cfg, spec: DataSpec):
  """``grad_fn(x_t, t, y) -> grad_x log p_phi(y | x_t, t)`` of a trained ``noisy_classifier``
  run (``y``, the condition, holds the labels); its forward process must be the diffusion
  model's. ``t`` may be a fractional step: the classifier embeds times smoothly."""
  from genjax.training import run as run_lib
  c_config, c_run, c_state = run_lib.load_trained(workdir)
  if c_config.method != "noisy_classifier":
    raise ValueError(f"sampling.classifier_workdir must hold a noisy_classifier run; {workdir} has "
                     f"method={c_config.method!r}.")
  cdc = from_section(ClassifierDiffusionConfig, c_config.diffusion, where="diffusion") \
      if "diffusion" in c_config else ClassifierDiffusionConfig()
  if (cdc.schedule, cdc.num_timesteps) != (diffusion_cfg.schedule, diffusion_cfg.num_timesteps):
    raise ValueError(f"The classifier in {workdir} saw the {cdc.schedule} schedule with T="
                     f"{cdc.num_timesteps}; the diffusion model uses {diffusion_cfg.schedule} with "
                     f"T={diffusion_cfg.num_timesteps}. Train the classifier on the same one.")
  if tuple(c_run.dataset.spec.shape) != tuple(spec.shape):
    raise ValueError(f"The classifier was trained on shape {c_run.dataset.spec.shape}, the "
                     f"diffusion model on {spec.shape}.")
  net = _network(c_config, c_run.dataset.spec)
  params = jax.device_get(c_state.ema_params)
  return guidance.classifier_log_prob_grad(lambda x, t: net.apply({"params": params}, x, t))
