"""TD-VAE (Gregor et al. 2019) as a trainer :class:`~genjax.training.method.Method` (``"tdvae"``).

The trainer hands out single digits; each batch is turned into sequences of moving (or
rotating) digits inside the loss (:func:`genjax.autoencoders.tdvae.make_sequences`), so the
data pipeline stays the generic one. Per batch::

  1. x_seq = make_sequences(x)                      [B, T, H, W, C], a random direction each
  2. b = LSTM(pre(x_seq))                           belief states b_0..b_{T-1}
  3. t1 < t2 sampled; z_t2 ~ p_B(.|b_t2); z_t1 ~ q_S(.|z_t2, b_t1, b_t2)
  4. loss = -mean J_{t1,t2}                         seed 003 eq. 14 (Gregor et al. eq. 8)

``sample`` shows what the model has learned: for a fixed set of test digits it observes the
first ``context`` frames of each sequence, then imagines the rest (``p_B`` then ``p_T``
steps, decoded), so each row of the grid is one sequence: real frames, then imagined ones.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz
from genjax.autoencoders import common
from genjax.autoencoders import tdvae as td
from genjax.autoencoders import vae as vae_lib
from genjax.nets.belief import BeliefLSTM
from genjax.nets.conv import GaussianMLP
from genjax.typed_config import from_section, to_dict
from genjax.training.method import Method
from genjax.types import DataSpec


@dataclasses.dataclass(frozen=True)
class TDVAEConfig:
  """The ``config.tdvae`` section.

  Attributes:
    seq_len: T, frames per sequence.
    mode: "move" (one pixel per frame, left or right, wrap-around) or "rotate".
    rotation_deg: degrees per frame for "rotate".
    max_jump: largest t2 - t1 in training.
    latent_dim: width of z.
    belief_hidden: width of the belief state b (LSTM).
    pre_hidden: widths of the per-frame MLP before the LSTM.
    hidden: widths of the Gaussian heads p_B, q_S, p_T.
    condition_on_dt: feed t2 - t1 to the transition p_T (one network for every jump).
    decoder: "bernoulli" (binarized frames, as the paper's MNIST) or "gaussian".
    binarize: "threshold" | "stochastic" for the Bernoulli decoder, "none" otherwise.
    context: frames observed before the imagined ones in ``sample`` and the figures.
    num_sample_sequences: test digits (fixed) that ``sample`` continues.
  """
  seq_len: int = 8
  mode: str = "move"
  rotation_deg: float = 30.0
  max_jump: int = 4
  latent_dim: int = 8
  belief_hidden: int = 64
  pre_hidden: tuple[int, ...] = (128,)
  hidden: tuple[int, ...] = (64,)
  condition_on_dt: bool = True
  decoder: str = "bernoulli"
  binarize: str = "threshold"
  context: int = 3
  num_sample_sequences: int = 16

  def __post_init__(self):
    if self.mode not in td.SEQUENCE_MODES:
      raise ValueError(f"tdvae.mode must be one of {td.SEQUENCE_MODES}, got {self.mode!r}.")
    if self.seq_len < 2 or not 1 <= self.max_jump < self.seq_len:
      raise ValueError(f"tdvae needs seq_len >= 2 and 1 <= max_jump < seq_len; got "
                       f"seq_len={self.seq_len}, max_jump={self.max_jump}.")
    if not 1 <= self.context < self.seq_len:
      raise ValueError(f"tdvae.context must lie in [1, seq_len - 1], got {self.context}.")
    if self.decoder not in ("bernoulli", "gaussian"):
      raise ValueError(f"tdvae.decoder must be 'bernoulli' or 'gaussian', got {self.decoder!r}.")
    if (self.decoder == "bernoulli") == (self.binarize == "none"):
      raise ValueError("tdvae: the Bernoulli decoder needs binarize=threshold|stochastic; the "
                       "Gaussian decoder needs binarize=none.")


def build_tdvae_model(config, spec: DataSpec):
  """``(AutoencoderModel, Method)`` of TD-VAE on sequences made from ``config.data``'s images."""
  common.check_image_spec(spec, "tdvae")
  cfg = from_section(TDVAEConfig, config.tdvae, where="tdvae")
  net = from_section(common.NetConfig, config.model, where="model")
  if net.name != "mlp":
    raise ValueError("tdvae uses MLP frame decoders: set --config.model.name=mlp.")
  d = cfg.latent_dim
  c = spec.shape[-1]
  belief_net = BeliefLSTM(cfg.belief_hidden, tuple(cfg.pre_hidden), net.activation)
  p_b = GaussianMLP(tuple(cfg.hidden), d, "tanh")
  q_s = GaussianMLP(tuple(cfg.hidden), d, "tanh")
  p_t = GaussianMLP(tuple(cfg.hidden), d, "tanh")
  decoder = common.make_decoder(net, spec, c)

  def apply(mod, name):
    return lambda params, *a: mod.apply({"params": params[name]}, *a)

  def fns(params):
    belief_fn = lambda b: apply(p_b, "p_b")(params, b)
    smoothing_fn = lambda z2, b1, b2: apply(q_s, "q_s")(params, jnp.concatenate([z2, b1, b2], -1))

    def transition_fn(z1, dt):
      inp = jnp.concatenate([z1, dt[:, None] / cfg.max_jump], -1) if cfg.condition_on_dt else z1
      m, lv = apply(p_t, "p_t")(params, inp)
      return z1 + m, lv  # residual mean: the state moves from z1

    return belief_fn, smoothing_fn, transition_fn

  def target_of(x, key):
    if cfg.decoder == "bernoulli":
      return common.binarize(x, cfg.binarize, key)
    return x

  def encoder_input(t):
    return 2.0 * t - 1.0 if cfg.decoder == "bernoulli" else t

  def log_likelihood(params, t, z):
    out = decoder.apply({"params": params["decoder"]}, z)
    if cfg.decoder == "bernoulli":
      return vae_lib.bernoulli_log_prob(t, out)
    return vae_lib.gaussian_log_prob(t, out, jnp.log(0.1))

  def decode_mean(params, z):
    out = decoder.apply({"params": params["decoder"]}, z)
    return 2.0 * jax.nn.sigmoid(out) - 1.0 if cfg.decoder == "bernoulli" else jnp.clip(out, -1, 1)

  def sequences(key, x):
    return td.make_sequences(key, x, cfg.seq_len, cfg.mode, cfg.rotation_deg)

  def init(key, batch):
    ks = jax.random.split(key, 5)
    x = sequences(ks[0], batch["x"][:2])
    b = belief_net.init(ks[0], x)["params"]
    bb = jnp.zeros((2, cfg.belief_hidden))
    z = jnp.zeros((2, d))
    t_in = jnp.zeros((2, d + (1 if cfg.condition_on_dt else 0)))
    params = {"belief": b, "p_b": p_b.init(ks[1], bb)["params"],
              "q_s": q_s.init(ks[2], jnp.concatenate([z, bb, bb], -1))["params"],
              "p_t": p_t.init(ks[3], t_in)["params"],
              "decoder": decoder.init(ks[4], z)["params"]}
    return params, {}

  def objective(params, x_seq, key):
    k_bin, k_j = jax.random.split(key)
    target = target_of(x_seq, k_bin)
    beliefs = belief_net.apply({"params": params["belief"]}, encoder_input(target))
    belief_fn, smoothing_fn, transition_fn = fns(params)
    return td.jump_objective(k_j, target, beliefs, belief_fn, smoothing_fn, transition_fn,
                             lambda t, z: log_likelihood(params, t, z), cfg.max_jump)

  def loss(params, batch, key):
    k_seq, k_obj = jax.random.split(key)
    terms = objective(params, sequences(k_seq, batch["x"]), k_obj)       # 1.-3.
    loss = -jnp.mean(terms.objective)                                     # 4.
    metrics = {"neg_jump_elbo": loss, "recon_nll": -jnp.mean(terms.log_px),
               "kl_t2": jnp.mean(terms.log_pb_t2 - terms.log_pt),
               "kl_t1": jnp.mean(terms.log_qs - terms.log_pb_t1)}
    return loss, metrics

  def rollout_frames(params, key, x_seq, context):
    """Observes ``context`` frames of x_seq [B, T, ...], imagines the T - context others."""
    k_bin, k_r = jax.random.split(key)
    target = target_of(x_seq, k_bin)
    beliefs = belief_net.apply({"params": params["belief"]}, encoder_input(target[:, :context]))
    belief_fn, _, transition_fn = fns(params)
    zs = td.rollout(k_r, beliefs[:, -1], belief_fn, transition_fn,
                    cfg.seq_len - context, jump=1, sample=True)           # [T-ctx, B, D]
    frames = jax.vmap(lambda z: decode_mean(params, z))(zs)              # [T-ctx, B, H, W, C]
    return jnp.swapaxes(frames, 0, 1)

  # The fixed test digits ``sample`` continues (rows of the periodic training grid).
  from genjax.data import DataConfig, load_dataset  # pylint: disable=g-import-not-at-top
  ds = load_dataset(DataConfig.from_dict(to_dict(config.data)))
  n_seq = min(cfg.num_sample_sequences, len(ds.test))
  fixed = jnp.asarray(ds.test.get(np.arange(n_seq))["x"])
  fixed_seq = sequences(jax.random.key(1), fixed)

  def sample(params, key, num):
    reps = -(-num // (n_seq * cfg.seq_len))
    x_seq = jnp.concatenate([fixed_seq] * reps, 0)
    pred = rollout_frames(params, key, x_seq, cfg.context)
    observed = encoder_input(target_of(x_seq[:, :cfg.context], key))
    frames = jnp.concatenate([observed, pred], axis=1)  # [B, T, H, W, C]
    return frames.reshape(-1, *spec.shape)[:num]

  def plot_samples(samples, data, path):
    del data
    viz.save_image_grid(samples, path, nrow=cfg.seq_len)

  def eval_elbo(state, dataset, key, num):
    """Test jump objective (nats per predicted frame) and rollout error per imagined step."""
    obj = jax.jit(lambda p, x, k: objective(p, sequences(jax.random.fold_in(k, 1), x), k))
    roll = jax.jit(lambda p, x, k: (rollout_frames(p, k, sequences(k, x), cfg.context),
                                    sequences(k, x)))
    js, errs = [], []
    for i, b in enumerate(common.iter_test_batches(dataset, num)):
      x = jnp.asarray(b["x"])
      for r in range(4):  # several (t1, t2) draws per sequence
        js.append(np.asarray(obj(state.ema_params, x, jax.random.fold_in(key, 10 * i + r)).objective))
      pred, seq = roll(state.ema_params, x, jax.random.fold_in(key, 10 * i + 9))
      truth = encoder_input(target_of(seq[:, cfg.context:], jax.random.key(0)))
      errs.append(np.asarray(jnp.mean(jnp.square(pred - truth), axis=(2, 3, 4))))
    err = np.concatenate(errs).mean(0)
    return {"neg_jump_elbo_nats": -float(np.mean(np.concatenate(js))),
            "rollout_mse_per_step": [float(e) for e in err],
            "context_frames": cfg.context, "mode": cfg.mode}

  def reconstruct(params, x):
    """Frame reconstruction through the belief: z ~ mean of p_B(.|b_0) for one frame."""
    frame = encoder_input(target_of(x, jax.random.key(0)))[:, None]  # [B, 1, H, W, C]
    beliefs = belief_net.apply({"params": params["belief"]}, frame)
    m, _ = fns(params)[0](beliefs[:, 0])
    return decode_mean(params, m)

  model = common.AutoencoderModel(
      name="tdvae", reconstruct=reconstruct, sample=sample, latent_dim=0,
      rollout=lambda p, k, x_seq, ctx: rollout_frames(p, k, x_seq, ctx),
      sequence=sequences)
  method = Method(name="tdvae", init=init, loss=loss, sample=sample,
                  plot_samples=plot_samples, evaluators={"elbo": eval_elbo},
                  reconstruct=model.reconstruct)
  return model, method


def build_tdvae(config, spec: DataSpec) -> Method:
  """Registry entry: ``"tdvae"``."""
  return build_tdvae_model(config, spec)[1]
