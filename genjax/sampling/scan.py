"""The one trajectory loop under every sampler: ``lax.scan`` with an optional recorded path.

Every sampler in :mod:`genjax.sampling` is a step function over per-step inputs; this module
runs it. With ``trajectory_stride = k`` the state before the first step, after every ``k``-th
step and after the last step are recorded into a preallocated ``[n, *shape]`` carry (one
``dynamic_update_slice`` per step), so memory is ``n`` states, not one per step.

A sampler whose steps are not all alike (DPM-Solver's runs of different orders) gives several
groups ``(step_fn, xs)``; they run as consecutive scans and share one trajectory.

A stochastic sampler's per-step noise comes from :func:`step_draws`: drawn before the scan in one
vectorised call when it fits in :data:`DRAWS_AHEAD_BYTES` (the same bits as drawing in each step),
in the step otherwise.

Example:
  >>> x, traj = run_scan(lambda x, a: 0.5 * x + a, jnp.ones(3), jnp.zeros(10), stride=5)
  >>> traj.shape  # states after 0, 5 and 10 steps
  (3, 3)
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DRAWS_AHEAD_BYTES", "check_shape", "finish", "initial_state", "run_groups",
           "run_scan", "step_draws", "trajectory_steps"]

StepFn = Callable[[Any, Any], Any]

#: The most bytes of random draws (all steps together) that :func:`step_draws` makes before the
#: scan; above it each step draws its own.
DRAWS_AHEAD_BYTES = 64 * 2**20


def trajectory_steps(num_steps: int, stride: int) -> np.ndarray:
  """Which states a trajectory holds: step counts ``0, k, 2k, ...`` plus ``num_steps``.

  State ``0`` is the initial noise and state ``num_steps`` the final sample.

  Raises:
    ValueError: ``stride`` is not a positive integer.
  """
  if isinstance(stride, bool) or int(stride) != stride or stride < 1:
    raise ValueError(f"trajectory_stride must be a positive integer or None, got {stride!r}.")
  return np.unique(np.append(np.arange(0, num_steps + 1, int(stride)), num_steps))


def check_shape(shape, x_T: Optional[jax.Array] = None) -> tuple[int, ...]:
  """``shape`` as a tuple of ints with a batch axis, agreeing with ``x_T`` if given.

  Raises:
    ValueError: no batch axis, or ``x_T`` of another shape.
  """
  shape = tuple(int(s) for s in shape)
  if len(shape) < 1:
    raise ValueError(f"shape must be (B, ...) with a batch axis, got {shape}.")
  if x_T is not None and tuple(x_T.shape) != shape:
    raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape is {shape}; make them agree.")
  return shape


def initial_state(process, key, shape, x_T=None, t_start=None, dtype=None):
  """The start of every sampler: the checked shape, ``x_T`` (a draw from the process's prior
  unless given) and the two keys split from ``key``, one for the start and one for the steps.

  Raises:
    ValueError: a bad shape, or a start time below the top without the state there.
  """
  shape = check_shape(shape, x_T)
  if t_start is not None and x_T is None:
    raise ValueError("t_start starts below the top of the process: give the state there as x_T "
                     "(e.g. genjax.sampling.conditional.noised_start for SDEdit).")
  key_init, key_steps = jax.random.split(key)
  if x_T is None:
    x_T = process.prior_sampling(key_init, shape, dtype or jnp.float32)
  return shape, x_T, key_init, key_steps


def step_draws(draw: Callable[[jax.Array], Any], keys: jax.Array, *,
               max_bytes: Optional[int] = None) -> tuple[Any, Callable[[Any], Any]]:
  """The random draws of every step, as scan inputs: ``(xs, draws_of)``.

  ``draw(key)`` is one step's randomness from its key (any pytree of arrays and keys), and
  ``keys`` holds one key per step along its leading axis. When the draws of all steps fit in
  ``max_bytes``, they are made here, before the scan, in one vectorised call
  (``vmap(draw)(keys)``: threefry is counter-based, so these are the same bits the steps would
  draw), ``xs`` holds them and ``draws_of`` is the identity. Otherwise ``xs`` is ``keys`` and
  ``draws_of = draw`` draws inside the step.

  Drawing ahead matters on CPU, where jax lowers threefry to a rolled loop of small kernels: in
  every step of the 2-D MLP's DDPM sampler at batch 16 it was about a quarter of the step
  (``benchmarks/sampler_speed.py``).

  Args:
    draw: ``key -> draws`` of one step.
    keys: ``[n]`` keys (typed or raw ``uint32[n, 2]``).
    max_bytes: the most bytes to draw ahead (default :data:`DRAWS_AHEAD_BYTES`, read at each
      call); 0 draws in every step.
  """
  max_bytes = DRAWS_AHEAD_BYTES if max_bytes is None else max_bytes
  if keys.shape[0] == 0:
    return keys, draw
  one = jax.eval_shape(draw, jax.ShapeDtypeStruct(keys.shape[1:], keys.dtype))
  nbytes = keys.shape[0] * sum(
      int(np.prod(leaf.shape)) * (8 if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
                                  else np.dtype(leaf.dtype).itemsize)
      for leaf in jax.tree.leaves(one))
  if nbytes <= max_bytes:
    return jax.vmap(draw)(keys), lambda d: d
  return keys, draw


def run_groups(groups: Sequence[tuple[StepFn, Any]], carry: Any, *,
               stride: Optional[int] = None, state_of: Callable[[Any], jax.Array] = lambda c: c):
  """Runs ``carry <- f(carry, xs_i)`` over consecutive groups ``(f, xs)``, one scan each.

  Args:
    groups: ``[(step_fn, xs), ...]``; ``xs`` is a pytree with a leading step axis.
    carry: the initial carry (any pytree).
    stride: ``None``, or record ``state_of(carry)`` before the first step, after every
      ``stride``-th step (counted over all groups) and after the last.
    state_of: the array of the carry that a trajectory records (and that is returned).

  Returns:
    The final carry, or ``(carry, trajectory [n, ...])`` with a stride.
  """
  if stride is None:
    for f, xs in groups:
      carry, _ = jax.lax.scan(lambda c, inp, f=f: (f(c, inp), None), carry, xs)
    return carry
  num_steps = sum(jax.tree.leaves(xs)[0].shape[0] for _, xs in groups)
  recorded = trajectory_steps(num_steps, stride)
  slot_of = np.full(num_steps + 1, -1, dtype=np.int32)
  slot_of[recorded] = np.arange(len(recorded), dtype=np.int32)
  x = state_of(carry)
  traj = jnp.zeros((len(recorded),) + x.shape, x.dtype).at[0].set(x)
  done = 0
  for f, xs in groups:
    n = jax.tree.leaves(xs)[0].shape[0]
    slots = jnp.asarray(slot_of[1 + done: 1 + done + n])

    def body(state, inp, f=f):
      c, tr = state
      step_inp, slot = inp
      c = f(c, step_inp)
      idx = jnp.maximum(slot, 0)
      tr = tr.at[idx].set(jnp.where(slot >= 0, state_of(c), tr[idx]))
      return (c, tr), None

    (carry, traj), _ = jax.lax.scan(body, (carry, traj), (xs, slots))
    done += n
  return carry, traj


def run_scan(step: StepFn, carry: Any, xs: Any, *, stride: Optional[int] = None,
             state_of: Callable[[Any], jax.Array] = lambda c: c):
  """``run_groups([(step, xs)], carry, ...)``: one ``lax.scan`` over the leading axis of ``xs``."""
  return run_groups([(step, xs)], carry, stride=stride, state_of=state_of)


def finish(out, stride: Optional[int], last: Callable[[Any], jax.Array]):
  """Applies ``last`` to the final state of a :func:`run_scan` result (a final denoising or
  Euler step outside the scan) and keeps the trajectory's last entry equal to the output.

  Args:
    out: ``carry`` or ``(carry, trajectory)``.
    stride: the stride the scan ran with.
    last: ``carry -> final x``.

  Returns:
    ``x`` or ``(x, trajectory)``.
  """
  if stride is None:
    return last(out)
  carry, traj = out
  x = last(carry)
  return x, traj.at[-1].set(x.astype(traj.dtype))
