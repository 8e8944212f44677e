"""The one generic trainer (DESIGN.md items 7-8).

Given a :class:`~genjax.training.method.Method`, a dataset and the typed config sections, it
owns everything that is not the model: the device mesh and shardings, one ``jax.jit`` of the
train step (compiled once), the optimizer and EMA, per-step keys from ``fold_in``, the
non-finite guard, orbax checkpoints with exact resume, metrics logs (JSON lines + TensorBoard),
a progress bar, PNG sample grids and the loss curve.

Host round-trips happen only every ``log_every`` steps (metrics, the non-finite check) and when
sampling or checkpointing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from genjax import viz
from genjax.training import compile_opts
from genjax.training import optim as optim_lib
from genjax.training.checkpoint import Checkpointer
from genjax.training.config import OptimConfig, TrainConfig
from genjax.training import method as method_lib
from genjax.training import workdir as workdir_lib
from genjax.training.method import Method
from genjax.training.state import TrainState, tree_all_finite


class NonFiniteLossError(FloatingPointError):
  """The loss or the parameters became NaN/Inf; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
  """SIGINT/SIGTERM arrived; a checkpoint was written and the run can be resumed."""


def make_mesh(devices=None) -> Mesh:
  """A 1-D data-parallel mesh over all devices (axis name ``"data"``)."""
  devices = devices if devices is not None else jax.devices()
  return jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,), devices=devices)


def batch_sharding(mesh: Mesh, batches_per_step: int = 1) -> NamedSharding:
  """Batch rows on ``P('data')`` (after the micro-batch axis when there is one)."""
  return NamedSharding(mesh, P(None, "data") if batches_per_step > 1 else P("data"))


def check_batch_divides(batch_size: int, mesh: Mesh, grad_accum_steps: int = 1) -> None:
  n = mesh.size * grad_accum_steps
  if batch_size % n:
    what = (f"the number of devices ({mesh.size})" if grad_accum_steps == 1 else
            f"devices x training.grad_accum_steps ({mesh.size} x {grad_accum_steps})")
    raise ValueError(
        f"training.batch_size={batch_size} does not divide by {what}. Use a multiple of {n}, "
        f"e.g. --config.training.batch_size={max(n, batch_size // n * n)}.")


# Leaves with fewer elements stay replicated under FSDP (scalars, biases, norms, keys): sharding
# them saves no memory and costs a collective each.
FSDP_MIN_SIZE = 2 ** 14


def fsdp_spec(shape, axis_size: int, min_size: Optional[int] = None) -> P:
  """``P`` sharding the largest axis of ``shape`` divisible by ``axis_size`` over ``"data"``
  (ZeRO-3 / FSDP); ``P()`` for leaves under ``min_size`` (default :data:`FSDP_MIN_SIZE`)
  elements or when no axis divides."""
  min_size = FSDP_MIN_SIZE if min_size is None else min_size
  if axis_size <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  for ax in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[ax] % axis_size == 0:
      return P(*([None] * ax + ["data"]))
  return P()


def state_shardings(abstract_state: TrainState, mesh: Mesh, param_sharding: str = "replicated"):
  """The sharding of every leaf of a train state.

  ``"replicated"``: everything on every device (data parallelism). ``"fsdp"``: params,
  optimizer state and EMA params sharded by :func:`fsdp_spec` over the ``data`` axis, the rest
  (step, keys, model state) replicated; XLA gathers each layer's params where it is used and
  reduce-scatters its gradients.
  """
  rep = NamedSharding(mesh, P())
  if param_sharding == "replicated":
    return jax.tree.map(lambda _: rep, abstract_state)
  size = mesh.shape["data"]
  shard = lambda tree: jax.tree.map(lambda a: NamedSharding(mesh, fsdp_spec(a.shape, size)), tree)
  out = jax.tree.map(lambda _: rep, abstract_state)
  return out.replace(params=shard(abstract_state.params),
                     opt_state=shard(abstract_state.opt_state),
                     ema_params=shard(abstract_state.ema_params))


def process_rows(sharding: NamedSharding, global_shape) -> slice:
  """The rows of a global batch that this process's devices hold (a contiguous block)."""
  starts, stops = [], []
  for idx in sharding.addressable_devices_indices_map(tuple(global_shape)).values():
    sl = idx[0] if sharding.spec and sharding.spec[0] == "data" else idx[1]
    starts.append(sl.start or 0)
    stops.append(global_shape[0 if sharding.spec and sharding.spec[0] == "data" else 1]
                 if sl.stop is None else sl.stop)
  return slice(min(starts), max(stops))


def _batch_shape(iterator) -> tuple:
  n = iterator.batches_per_step
  return (n, iterator.batch_size) if n > 1 else (iterator.batch_size,)


def local_rows(iterator, sharding: NamedSharding) -> Optional[slice]:
  """This process's rows of every global batch; None in a one-process run (all of them)."""
  if jax.process_count() == 1:
    return None
  return process_rows(sharding, _batch_shape(iterator))


def put_batch(iterator, step: int, sharding: NamedSharding, stream=None):
  """The global batch of ``step`` as arrays sharded by ``sharding``. In a multi-process run
  each process reads only its own rows (``iterator.batch_at(step, rows)``); with a ``stream``
  (a data loader's, positioned at ``step``) the batch is its next one."""
  if stream is not None:
    local = next(stream)
  else:
    local = iterator.batch_at(step, local_rows(iterator, sharding))
  if jax.process_count() == 1:
    return jax.device_put(local, sharding)
  global_shape = _batch_shape(iterator)
  return jax.tree.map(
      lambda a: jax.make_array_from_process_local_data(
          sharding, a, global_shape + a.shape[len(global_shape):]), local)


def _ema_fns(method: Method, cfg: TrainConfig):
  filt = method.ema_filter or (lambda p: p)
  init, update = optim_lib.ema(cfg.ema_decay, cfg.ema_start_step, cfg.ema_warmup)
  return filt, init, update


def init_state(method: Method, tx: Any, key: jax.Array, example_batch: dict, cfg: TrainConfig,
               mesh: Mesh) -> TrainState:
  """Initializes params, optimizer and EMA over ``mesh``: replicated, or sharded when
  ``cfg.param_sharding == "fsdp"`` (:func:`state_shardings`)."""
  filt, ema_init, _ = _ema_fns(method, cfg)
  init_key, run_key = jax.random.split(key)

  def _init(k, batch):
    params, model_state = method.init(k, batch)
    opt_state = (method.init_opt_state or (lambda t, p: t.init(p)))(tx, params)
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
        ema_params=ema_init(filt(params)).ema, model_state=model_state,
        rng=jax.random.key_data(run_key), nonfinite_step=jnp.full((), -1, jnp.int32), tx=tx)

  shardings = state_shardings(jax.eval_shape(_init, init_key, example_batch), mesh,
                              cfg.param_sharding)
  return jax.jit(_init, out_shardings=shardings)(init_key, example_batch)


def make_train_step(method: Method, cfg: TrainConfig) -> Callable:
  """``step(state, batch) -> (state, metrics)``, the body of the one jitted train step.

  Wraps the method's step with what every method gets: the step key
  ``fold_in(base_key, step)``, the EMA update, the step counter, a ``count`` metric (the trainer
  sums metrics on device and reads them only at log time), and the non-finite guard: a step whose loss or new
  params are not finite is not applied, and ``nonfinite_step`` records where it happened.
  """
  filt, _, ema_update = _ema_fns(method, cfg)

  grad_fn = (jax.value_and_grad(method.loss, has_aux=True) if method.loss is not None
             else None)  # methods with their own train_step give no loss
  accum = cfg.grad_accum_steps

  def default_step(state: TrainState, batch, key):
    if accum == 1:
      (loss, metrics), grads = grad_fn(state.params, batch, key)
    else:
      loss, metrics, grads = _accumulate(state.params, batch, key)
    metrics = dict(metrics, loss=loss, grad_norm=optim_lib.optax.global_norm(grads))
    return state.apply_gradients(grads), metrics

  def _accumulate(params, batch, key):
    """Mean of the gradients (and metrics) of ``accum`` micro-batches, one ``lax.scan``.

    Micro-batch i takes rows i, i + accum, i + 2 accum, ... so that each one is spread over
    every device like the whole batch; its key is ``fold_in(key, i)``.
    """
    def split(a):
      a = a.reshape((a.shape[0] // accum, accum) + a.shape[1:])
      return jnp.swapaxes(a, 0, 1)

    micro = jax.tree.map(split, batch)
    shapes = jax.eval_shape(grad_fn, params, jax.tree.map(lambda a: a[0], micro), key)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def body(carry, xs):
      mb, i = xs
      out = grad_fn(params, mb, jax.random.fold_in(key, i))
      return jax.tree.map(jnp.add, carry, out), None

    total, _ = jax.lax.scan(body, zeros, (micro, jnp.arange(accum)))
    (loss, metrics), grads = jax.tree.map(lambda a: a / accum, total)
    return loss, metrics, grads

  if method.train_step is not None and accum > 1:
    raise ValueError(
        f"training.grad_accum_steps={accum} splits the gradient step the trainer builds from a "
        f"method's loss; method {method.name!r} has its own train_step. Set "
        f"training.grad_accum_steps=1 (and a smaller batch if memory is short).")
  inner = method.train_step or default_step

  def step(state: TrainState, batch):
    key = jax.random.fold_in(state.key, state.step)
    new, metrics = inner(state, batch, key)
    if "loss" not in metrics:
      raise ValueError(f"Method {method.name!r} step must return metrics['loss'].")
    ema = ema_update(filt(new.params), optim_lib.EmaState(state.ema_params), state.step).ema
    new = new.replace(ema_params=ema)
    finite = jnp.isfinite(metrics["loss"]) & tree_all_finite(new.params)
    keep = lambda n, o: jax.tree.map(lambda a, b: jnp.where(finite, a, b), n, o)
    new = new.replace(
        params=keep(new.params, state.params), opt_state=keep(new.opt_state, state.opt_state),
        ema_params=keep(new.ema_params, state.ema_params),
        model_state=keep(new.model_state, state.model_state),
        step=state.step + 1,
        nonfinite_step=jnp.where((state.nonfinite_step < 0) & ~finite, state.step,
                                 state.nonfinite_step))
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    return new, dict(metrics, count=jnp.ones((), jnp.float32))

  return step


@contextlib.contextmanager
def _stop_on_signal():
  """Turns SIGINT/SIGTERM into a flag the loop polls, so that it can checkpoint first."""
  flag = {"stop": None}

  def handler(signum, frame):
    if flag["stop"] is not None:  # second signal: give up at once
      raise KeyboardInterrupt
    flag["stop"] = signal.Signals(signum).name

  old = {}
  for s in (signal.SIGINT, signal.SIGTERM):
    try:
      old[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread
      pass
  try:
    yield flag
  finally:
    for s, h in old.items():
      signal.signal(s, h)


@dataclasses.dataclass
class _Logger:
  """``metrics.jsonl`` (the record) and TensorBoard events of a run that starts at ``start``."""
  workdir: str
  tensorboard: bool
  enabled: bool = True  # False on the non-primary processes of a multi-process run
  start: int = 0  # the checkpoint step a resumed run starts from

  def __post_init__(self):
    self.path = os.path.join(self.workdir, "metrics.jsonl")
    self.tb = None
    if self.tensorboard:
      try:
        from tensorboardX import SummaryWriter
        # A resumed run computes the steps after its checkpoint again: purge_step makes
        # TensorBoard hide the events an earlier run logged from there on (it writes a
        # SessionLog.START at that step), as drop_rows_after does for metrics.jsonl.
        # The suffix keeps two runs started within one second from sharing one file name.
        self.tb = SummaryWriter(os.path.join(self.workdir, "tb"),
                                purge_step=self.start + 1 if self.start > 0 else None,
                                filename_suffix=f".{os.getpid()}.{time.time_ns()}")
      except Exception as e:  # TensorBoard is a convenience; JSON lines are the record.
        logging.warning("TensorBoard writer unavailable (%s); writing metrics.jsonl only.", e)

  def drop_rows_after(self, step: int) -> None:
    """Removes the rows of steps after ``step`` (computed again by a resumed run), so that
    ``metrics.jsonl`` holds each step once and the loss curve never runs backwards."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = f.readlines()
    keep = [l for l in lines if _row_step(l) <= step]
    if len(keep) < len(lines):
      tmp = self.path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(keep)
      os.replace(tmp, self.path)

  def write(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(dict(step=step, **metrics)) + "\n")
    if self.tb is not None:
      for k, v in metrics.items():
        self.tb.add_scalar(k, v, step)
      self.tb.flush()

  def close(self):
    if self.tb is not None:
      self.tb.close()


def train(method: Method, dataset, iterator, train_cfg: TrainConfig, optim_cfg: OptimConfig,
          workdir: str, seed: int = 0, run_meta: Optional[dict] = None,
          mesh: Optional[Mesh] = None) -> TrainState:
  """Trains ``method`` and returns the final state; resumes from ``workdir`` if it has one.

  Args:
    method: the model family's :class:`Method`.
    dataset: a ``genjax.data.Dataset`` (its test split gives the 2-D scatter background).
    iterator: a deterministic ``genjax.data.BatchIterator``; the batch of step s is
      ``iterator.batch_at(s)``, so the data position is the step.
    train_cfg, optim_cfg: typed config sections.
    workdir: where checkpoints, metrics and pictures go.
    seed: the run's seed (params init and step keys).
    run_meta: JSON-able facts saved beside each checkpoint (e.g. the config).
    mesh: device mesh; default all devices.

  Raises:
    NonFiniteLossError: the loss became NaN/Inf (the message gives the step).
    TrainingInterrupted: SIGINT/SIGTERM arrived (a checkpoint was saved first).
    CheckpointSaveError: a checkpoint could not be saved (e.g. the disk is full); the run stops
      there and the earlier checkpoints stay intact.
    CheckpointError: every checkpoint in ``workdir`` is damaged, or they do not match this
      method (a damaged newest step is moved aside and the newest intact one is used).
    ValueError: ``train_cfg.num_steps`` is below the step already saved.
    WorkdirBusyError: another process is training in ``workdir``.
  """
  os.makedirs(workdir, exist_ok=True)
  with workdir_lib.lock(workdir):  # one writer per workdir (re-entrant in this process)
    return _train(method, dataset, iterator, train_cfg, optim_cfg, workdir, seed, run_meta, mesh)


def _train(method, dataset, iterator, train_cfg, optim_cfg, workdir, seed, run_meta, mesh):
  mesh = mesh or make_mesh()
  check_batch_divides(train_cfg.batch_size, mesh, train_cfg.grad_accum_steps)
  primary = jax.process_index() == 0  # writes the logs and pictures (every process saves)
  data_sharding = batch_sharding(mesh, method.batches_per_step)
  replicated = NamedSharding(mesh, P())

  tx = (method.make_optimizer(optim_cfg, train_cfg.num_steps) if method.make_optimizer
        else optim_lib.make_optimizer(optim_cfg, train_cfg.num_steps))
  own_optim = None if method.make_optimizer else optim_cfg  # the settings the advice can name
  example = iterator.batch_at(0)
  example = jax.tree.map(lambda a: a[0] if method.batches_per_step > 1 else a, example)
  state = init_state(method, tx, jax.random.key(seed), example, train_cfg, mesh)

  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=train_cfg.keep_checkpoints)
  data_state = None
  if ckpt.latest_step() is not None:
    try:
      restored = ckpt.restore(state.checkpoint_items())  # verified; damaged steps are skipped
    except BaseException:
      ckpt.close(raise_errors=False)
      raise
    if restored.damaged:
      moved = ckpt.set_aside([s for s, _ in restored.damaged])
      logging.warning("Resuming from step %d, the newest intact checkpoint; the damaged step(s) "
                      "%s were moved to %s.", restored.step,
                      ", ".join(str(s) for s, _ in restored.damaged), moved)
    items, meta = restored.items, restored.meta
    data_state = meta.get("data_state")
    state = state.from_checkpoint_items(items)
    if method.check_restored is not None:
      method.check_restored(state)
    if meta.get("data_position") != int(items["step"]):
      raise ValueError(f"Checkpoint meta data_position={meta.get('data_position')} does not match "
                       f"step {int(items['step'])}.")
    logging.info("Resumed from step %d in %s", int(items["step"]), ckpt.directory)
  start = int(jax.device_get(state.step))
  # A data loader (genjax.data.grain_loader) streams the batches from worker processes,
  # resuming from the position saved in the checkpoint.
  stream = None
  if hasattr(iterator, "stream") and start < train_cfg.num_steps:
    stream = iterator.stream(start, local_rows(iterator, data_sharding), state=data_state)
  if start > train_cfg.num_steps:
    ckpt.close()
    raise ValueError(
        f"config.training.num_steps={train_cfg.num_steps} is below step {start}, already saved "
        f"in {workdir}. Pass --config.training.num_steps={start} or more to continue the run, "
        f"or train in a new --workdir.")

  step_fn = make_train_step(method, train_cfg)
  batch_struct = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=data_sharding), iterator.batch_at(0))
  # Host zeros: each reset makes fresh device buffers (the running sum is donated).
  metrics_zero = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                              jax.eval_shape(step_fn, state, batch_struct)[1])

  traces = {"n": 0}

  def accumulate_step(state, metrics_sum, batch):
    traces["n"] += 1  # runs at trace time only: counts compilations of the hot loop
    state, metrics = step_fn(state, batch)
    return state, jax.tree.map(jnp.add, metrics_sum, metrics)

  shardings = state_shardings(state, mesh, train_cfg.param_sharding)
  xla = lambda e: compile_opts.compiler_options(train_cfg.xla_cpu_options, e)  # CPU only
  jit_step = jax.jit(accumulate_step, out_shardings=(shardings, replicated), donate_argnums=(0, 1),
                     compiler_options=xla("train"))
  num = train_cfg.num_sample_images
  jit_sample = jax.jit(lambda p, k: method.sample(p, k, num), out_shardings=replicated,
                       compiler_options=xla("sample"))
  sample_key = jax.random.key(seed + 1)  # a fixed batch of noise: grids comparable across steps

  logger = _Logger(workdir, train_cfg.tensorboard and primary, enabled=primary, start=start)
  logger.drop_rows_after(start)  # rows of steps that the resumed run computes again
  grid_dir = os.path.join(workdir, "samples")
  os.makedirs(grid_dir, exist_ok=True)

  def save(step: int):
    bad = int(jax.device_get(state.nonfinite_step))
    if bad >= 0:
      raise NonFiniteLossError(_nonfinite_message(bad, ckpt, own_optim))
    extra = {} if stream is None else {"data_state": stream.get_state()}
    ckpt.save(step, state.checkpoint_items(),
              dict(data_position=step, seed=seed, **extra, **(run_meta or {})))

  def write_samples(step: int):
    samples = np.asarray(jax.device_get(jit_sample(state.ema_params, sample_key)))
    if not primary:
      return
    if method.plot_samples is not None:
      data = dataset.test.get(np.arange(min(len(dataset.test), 5000)))["x"]
      method_lib.plot_samples(method, samples, data,
                              os.path.join(grid_dir, f"step_{step:07d}.png"), state=state)
    else:
      viz.save_image_grid(samples, os.path.join(grid_dir, f"step_{step:07d}.png"))

  metrics_sum = jax.device_put(metrics_zero, replicated)
  pbar = None
  if train_cfg.progress and primary:
    from tqdm.auto import tqdm
    pbar = tqdm(total=train_cfg.num_steps, initial=start, desc=f"train {method.name}",
                unit="step", dynamic_ncols=True)
  # Compiled before the budget's clock starts: time_budget_s counts training, not compiling.
  jit_step = jit_step.lower(state, metrics_sum, batch_struct).compile()
  clock = time.time if train_cfg.time_budget_clock == "wall" else time.process_time
  budget_t0 = clock()
  last_log_time, last_log_step = time.time(), start
  step = start
  try:
    with _stop_on_signal() as flag:
      while step < train_cfg.num_steps:
        batch = put_batch(iterator, step, data_sharding, stream)
        with jax.transfer_guard_host_to_device("disallow"):  # no hidden copies in the hot loop
          state, metrics_sum = jit_step(state, metrics_sum, batch)
        step += 1
        if pbar is not None:
          pbar.update(1)
        last = step == train_cfg.num_steps
        out_of_time = (train_cfg.time_budget_s is not None
                       and clock() - budget_t0 > train_cfg.time_budget_s)
        stop = flag["stop"] is not None or out_of_time
        if step % train_cfg.log_every == 0 or last or stop:
          sums = jax.device_get(metrics_sum)
          metrics_sum = jax.device_put(metrics_zero, replicated)
          bad = int(jax.device_get(state.nonfinite_step))
          if bad >= 0:
            raise NonFiniteLossError(_nonfinite_message(bad, ckpt, own_optim))
          ckpt.check()  # a background save that failed stops the run here
          count = max(float(sums.pop("count")), 1.0)
          row = {k: float(v) / count for k, v in sums.items()}
          now = time.time()
          row["steps_per_s"] = (step - last_log_step) / max(now - last_log_time, 1e-9)
          row["train_step_traces"] = traces["n"]
          last_log_time, last_log_step = now, step
          logger.write(step, row)
          if pbar is not None:
            pbar.set_postfix(loss=f"{row['loss']:.4f}")
        if train_cfg.sample_every and (step % train_cfg.sample_every == 0 or last):
          write_samples(step)
        if step % train_cfg.ckpt_every == 0 or last or stop:
          save(step)
        if stop:
          break
      ckpt.wait()
      if flag["stop"] is not None:
        raise TrainingInterrupted(
            f"Stopped by {flag['stop']} at step {step}; checkpoint saved in {ckpt.directory}. "
            f"Run the same command again to resume.")
  finally:
    failing = sys.exc_info()[0] is not None  # do not mask the error on its way up
    if stream is not None:
      stream.close()
    if pbar is not None:
      pbar.close()
    logger.close()
    ckpt.close(raise_errors=not failing)
    if primary:
      try:
        viz.plot_loss_curve(logger.path, os.path.join(workdir, "loss.png"))
      except Exception as e:  # a picture must never fail (or hide the failure of) a run
        logging.warning("Could not write loss.png: %s", e)
      _write_progress_strip(grid_dir)
  return state


def _nonfinite_message(bad: int, ckpt: Checkpointer, optim_cfg: Optional[OptimConfig]) -> str:
  """The advice names the current settings (``optim_cfg``; None: the method's own optimizer)."""
  last = ckpt.latest_step()
  kept = (f"the last good checkpoint is step {last} in {ckpt.directory}" if last is not None
          else "no checkpoint had been saved yet")
  if optim_cfg is None:
    advice = "Lower the learning rate(s), clip the gradients harder"
  else:
    advice = (f"Lower the learning rate (--config.optim.learning_rate="
              f"{optim_cfg.learning_rate:g} now), "
              + (f"clip the gradients harder (--config.optim.grad_clip={optim_cfg.grad_clip:g} "
                 f"now)" if optim_cfg.grad_clip else
                 "enable gradient clipping (--config.optim.grad_clip=1.0)"))
  return (f"Non-finite loss or parameters at step {bad}. Training stopped; the update of that "
          f"step was not applied and no checkpoint was overwritten ({kept}). {advice}, or "
          f"check the data for NaN/Inf.")


def _row_step(line: str) -> float:
  """The step of a ``metrics.jsonl`` line (a torn last line counts as after every step)."""
  try:
    return json.loads(line)["step"]
  except (ValueError, KeyError, TypeError):
    return float("inf")


def _write_progress_strip(grid_dir: str) -> None:
  """An animated GIF of the sample grids across training, if there are several."""
  try:
    from PIL import Image
    files = sorted(f for f in os.listdir(grid_dir) if f.startswith("step_") and f.endswith(".png"))
    if len(files) >= 2:
      frames = [np.asarray(Image.open(os.path.join(grid_dir, f)).convert("RGB")) for f in files]
      if len({f.shape for f in frames}) == 1:
        viz.save_gif(frames, os.path.join(grid_dir, "progress.gif"))
  except Exception as e:  # a picture must never fail a finished run
    logging.warning("Could not write progress.gif: %s", e)
