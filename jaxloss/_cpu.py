"""The XLA:CPU fast path of two statistics of `_core.py`, and of the fused
loss's kernel-gradient accumulation.

`_core.class_sum`, `_core.log_s_fresh` and `_core.accumulate_product` choose these forms with
`jax.lax.platform_dependent` when a program is compiled for CPU; GPU and TPU
programs never contain them. They compute the same values and derivatives
as the plain core (`tests/test_core.py` holds them equal in value, `grad`,
`jacfwd`, `hessian` and under `vmap`), and only exist because XLA:CPU
compiles the plain forms to more passes over memory. Measured on a 2-core
CPU at [4096, 32768], float32, value and gradient of the mean, the plain
core against this path in one run (``python benchmarks/run.py --core``;
the docs' Performance page, "The XLA:CPU fast path", has the table):

- `softmax_cross_entropy`: 1.92x the time, 15/5 full-size reads/writes
  against 7/1;
- the integer-label loss with class weights, `ignore_index` and label
  smoothing: 1.80x, 12/5 against 6/2;
- `softmax_focal_loss`: 1.31x, 34/11 against 27/9.

What each trick buys:

- The -inf guard in a `lax.cond`. XLA:CPU fuses reductions into YNNPACK
  kernels, which take `maximum` and `exp` but no select: the double `where`
  that drops absent classes costs a pass over the logits on every call.
  Here the plain sums are taken first and the guarded ones only when some
  example's plain sum is not finite (it holds a -inf logit). On an
  accelerator this would be a data-dependent conditional, whose predicate
  is copied to the host every step.
- A custom JVP with symbolic zeros for the class sum: its derivatives in
  closed form, which fuse into one elementwise pass, instead of AD through
  the `cond`, which stores the branches' intermediates.
- `optimization_barrier`s and `x + (-m)`: XLA would otherwise share `x - m`
  and the broadcast targets between the forward and the gradient pass and
  write them out to memory to do so.
- `log_s_fresh`: with label smoothing the gradient forms the softmax anew
  instead of reading back a stored `exp(x - m)`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from . import _core


def _class_stats(x, v, required, axis):
    """`(S, V, r)` per example: `S = sum_c v_c (lse - x_c)` and
    `V = sum_c v_c` over the classes that exist, and `r` the logsumexp of
    `x`; `S` is +inf where `required` puts mass on an absent class.

    The plain sums first; the guarded ones, in a `cond`, only if some
    example's plain sum is not finite, and used for those examples alone, so
    that an example's loss never depends on the others. (Under `vmap` the
    `cond` becomes a select and both run.)
    """
    r = _core.logsumexp(x, axis)
    v = jnp.reshape(v, (1,) * (x.ndim - jnp.ndim(v)) + jnp.shape(v))
    axis = axis % x.ndim
    # `x + (-m)`, not `x - m`: XLA would share `x - m` with the logsumexp and
    # write it out to memory. Relative to the max, so that large logits do
    # not cancel.
    neg_m = jnp.expand_dims(-r.m, axis)

    def sums(v, gap):
        # V from `v` broadcast along the classes only: no [N, C] array of
        # class weights, which XLA would write out.
        along = jnp.broadcast_to(v, v.shape[:axis] + x.shape[axis : axis + 1] + v.shape[axis + 1 :])
        big_v = jnp.broadcast_to(jnp.sum(along, axis), r.m.shape)
        return big_v * r.log_s - jnp.sum(gap * v, axis), big_v

    plain = sums(v, x + neg_m)
    ok = jnp.isfinite(plain[0])

    def guarded():
        exists = _core.present(x)
        s = sums(jnp.where(exists, v, 0), jnp.where(exists, x + neg_m, 0))
        if required is not None:
            impossible = jnp.any(~exists & (required > 0), axis)
            s = (jnp.where(impossible, jnp.inf, s[0]), s[1])
        return tuple(jnp.where(ok, a, b) for a, b in zip(plain, s, strict=True))

    s, big_v = jax.lax.cond(jnp.all(ok), lambda: plain, guarded)
    return s, big_v, r


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def class_sum(x, v, required, axis):
    """`_core.plain_class_sum`, with its derivatives written out:

    d/dx_c = p_c V - v_c,   d/dv_c = lse - x_c     (0 for absent classes)
    """
    return _class_stats(x, v, required, axis)[0]


@functools.partial(class_sum.defjvp, symbolic_zeros=True)
def _class_sum_jvp(axis, primals, tangents):
    # `required` only decides where the loss is infinite: no derivative.
    (x, v, required), (dx, dv, _) = primals, tangents
    s, big_v, r = _class_stats(x, v, required, axis)
    exists = _core.present(x)
    # Copies of the max and of `v` behind a barrier: XLA would otherwise
    # merge the gradient's `x - m` and broadcast `v` with the forward's and
    # write them out to memory to share them.
    m, v = jax.lax.optimization_barrier((r.m, v))
    log_p = _core.log_softmax(x, r._replace(m=m), axis)
    ds = jnp.zeros_like(s)
    if not isinstance(dx, SymbolicZero):
        gx = jnp.exp(log_p) * jnp.expand_dims(big_v, axis) - v
        ds = ds + jnp.sum(jnp.where(exists, gx, 0) * dx, axis)
    if not isinstance(dv, SymbolicZero):
        ds = ds + jnp.sum(jnp.where(exists, -log_p, 0) * dv, axis)
    return s, ds


log_s_fresh = jax.custom_jvp(_core.log_s, nondiff_argnums=(3,))


@log_s_fresh.defjvp
def _log_s_fresh_jvp(axis, primals, tangents):
    # `m` carries no gradient (it is stopped); the barrier gives the gradient
    # its own `x - m`, which XLA would otherwise share with the sum. Plain AD
    # keeps the sum's `exp(x - m)`, which XLA writes out to share it: this
    # trades that pass over memory for a second exponential, which pays off
    # with label smoothing, whose class sum forms the softmax anew in the
    # gradient anyway.
    (x, m, has_class), (dx, _, _) = primals, tangents
    log_s = log_s_fresh(x, m, has_class, axis)
    shift = jnp.expand_dims(jax.lax.optimization_barrier(m), axis)
    p = jnp.exp((x - shift) - jnp.expand_dims(log_s, axis))
    return log_s, jnp.sum(p * dx, axis)


# Elements of the `[D, V]` product formed at once (8 MiB in float32): rows
# of it, so that each is added to the accumulator while still in cache.
_PRODUCT = 2**21
_MIN_ROWS = 32


def accumulate_product(acc, x, du, matmul):
    """`acc + matmul(x, du)` for `x: [n, D]`, `du: [n, V]`, in slices of the
    `D` rows of the `[D, V]` product, each added in place. XLA:CPU does not
    fuse the addition into the matmul, and would otherwise write the whole
    product (64 MiB at D=512, V=32768) and read it back for every chunk of
    tokens. The slices run along `D`, which no parallelism splits, so a
    vocabulary split over devices stays split (slices along `V` would make
    the partitioner gather it). At N=4096, D=512, V=32768 this takes the
    fused loss's compiled temporary memory from 96 to 48 MiB."""
    d, v = acc.shape
    rows = max(_MIN_ROWS, _PRODUCT // max(v, 1))
    if rows >= d:
        return acc + matmul(x, du)
    full = d // rows

    def add_rows(i, acc):
        start = i * rows
        part = jax.lax.dynamic_slice_in_dim(x, start, rows, 1)
        total = jax.lax.dynamic_slice_in_dim(acc, start, rows, 0) + matmul(part, du)
        return jax.lax.dynamic_update_slice_in_dim(acc, total, start, 0)

    acc = jax.lax.fori_loop(0, full, add_rows, acc)
    if d % rows:
        start = full * rows
        acc = acc.at[start:].add(matmul(x[:, start:], du))
    return acc
