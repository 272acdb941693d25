"""The per-example statistics every multi-class loss is built from.

This is the executable specification, and what GPUs and TPUs run: plain
JAX, differentiated by plain AD, with the double-``where`` idiom wherever a
class may be absent (a logit of -inf). Every formula here is the one the
docstrings state.

On XLA:CPU two of these statistics have a faster form (``_cpu.py``); the
two dispatchers at the end of this file choose it at compile time with
``jax.lax.platform_dependent``, so a program lowered for GPU or TPU never
contains it. Both forms are tested equal in ``tests/test_core.py``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._common import hyper, is_static_zero, reduce


class Lse(NamedTuple):
    """A logsumexp split as `lse = m + log_s`, with `m` the row max.

    Quantities relative to `m` (`x - m`, `log_s`) keep their precision at
    large logits, where `x - lse` would round away e.g. the `log 2` of a tie
    at 1e30.
    """

    m: jax.Array  # row max (the lowest float for a row without classes), no gradient
    log_s: jax.Array  # log sum exp(x - m)
    has_class: jax.Array  # False where every logit is -inf

    @property
    def lse(self) -> jax.Array:
        return self.m + self.log_s


def row_max(x: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
    """`(m, has_class)`: the row max, floored at the lowest float so that a
    row of -inf logits gives finite differences `x - m` (no gradient)."""
    top = jnp.max(x, axis)
    m = jax.lax.stop_gradient(jnp.maximum(top, jnp.finfo(x.dtype).min))
    return m, top > -jnp.inf


def log_s(x: jax.Array, m: jax.Array, has_class: jax.Array, axis: int) -> jax.Array:
    """`log sum exp(x - m)` over `axis`; 0 (not -inf) where no class exists."""
    s = jnp.sum(jnp.exp(x - jnp.expand_dims(m, axis)), axis)
    return jnp.log(jnp.where(has_class, s, 1))


def logsumexp(x: jax.Array, axis: int, fresh: bool = False) -> Lse:
    """Per-example logsumexp over `axis`, NaN-free where no class exists.

    A row whose logits are all -inf gets `m` the lowest float and `log_s = 0`
    with zero gradients (instead of -inf and NaN gradients) and
    `has_class = False`. `fresh` asks for the gradient form that forms the
    softmax anew (see `_cpu.log_s_fresh`); the value is the same.
    """
    m, has_class = row_max(x, axis)
    return Lse(m, (log_s_fresh if fresh else log_s)(x, m, has_class, axis), has_class)


def log_softmax(x: jax.Array, r: Lse, axis: int) -> jax.Array:
    """`x - lse`, formed as `(x - m) - log_s` for precision."""
    return (x - jnp.expand_dims(r.m, axis)) - jnp.expand_dims(r.log_s, axis)


def pick(x: jax.Array, index: jax.Array, axis: int) -> jax.Array:
    """`x[..., index, ...]` along `axis`: a gather, no one-hot array."""
    return jnp.squeeze(jnp.take_along_axis(x, jnp.expand_dims(index, axis), axis), axis)


def is_class(index: jax.Array, x: jax.Array, axis: int) -> jax.Array:
    """`c == index` for every class `c` of `x`, as a fused comparison."""
    iota = jax.lax.broadcasted_iota(index.dtype, x.shape, axis)
    return iota == jnp.expand_dims(index, axis)


def present(x: jax.Array) -> jax.Array:
    """The classes that exist: logits above -inf."""
    return x > -jnp.inf


def along(v: jax.Array, ndim: int, axis: int) -> jax.Array:
    """A `[C]` vector reshaped to broadcast along `axis` of an `ndim` array."""
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def plain_class_sum(x: jax.Array, v: jax.Array, required: Any, axis: int) -> jax.Array:
    """`sum_c v_c (lse - x_c)` over the classes that exist (`x_c > -inf`).

    Cross-entropy against (unnormalised) targets `v`, broadcastable to `x`.
    Target mass on an absent class is dropped (the label-smoothing share),
    unless `required` (the unsmoothed targets, or None) puts mass there: then
    the loss is +inf, as the integer-label loss gives for a label whose logit
    is -inf. Absent classes are masked before and after the subtraction (the
    double `where`), so no `0 * inf` reaches the value or either AD mode:

        d/dx_c = p_c V - v_c,   d/dv_c = lse - x_c     (0 for absent classes)
    """
    r = logsumexp(x, axis)
    exists = present(x)
    v = jnp.where(exists, v, 0)
    gap = jnp.where(exists, x - jnp.expand_dims(r.m, axis), 0)  # x_c - m, 0 if absent
    s = jnp.sum(v, axis) * r.log_s - jnp.sum(v * gap, axis)
    if required is not None:  # added, so that the derivatives stay those of `s`
        s = s + jnp.where(jnp.any(~exists & (required > 0), axis), jnp.inf, 0)
    return s


def z_term(z_loss: Any, lse: jax.Array) -> jax.Array:
    """`z * lse ** 2`, as `(z * lse) * lse`: exactly 0 for z = 0 (also traced)
    and no overflow of `lse ** 2` before the small `z` scales it."""
    if is_static_zero(z_loss):
        return jnp.zeros_like(lse)
    return (hyper(z_loss, lse.dtype) * lse) * lse


def integer_ce(x, index, axis, label_smoothing, z_loss, w=None, fresh=None):
    """The PyTorch cross-entropy with class indices, per example, unreduced.

        loss = (1 - e) * w_y * (lse - x_y)
               + e / C * sum_c w_c * (lse - x_c)      (the smoothing term)
               + z * lse ** 2                         (z-loss)

    NaN where no class exists. Returns `(loss, w_y)` (`w_y` None without
    weights). Shared with `linear_softmax_cross_entropy`, which applies it to
    one chunk of logits at a time. `fresh` (default: with smoothing) asks
    for the logsumexp whose gradient forms the softmax anew (`log_s_fresh`).
    """
    smoothing = not is_static_zero(label_smoothing)
    r = logsumexp(x, axis, fresh=smoothing if fresh is None else fresh)
    loss = r.log_s - (pick(x, index, axis) - r.m)  # lse - x_y, relative to the max
    w_y = None
    if w is not None:
        w_y = w[index]
        loss = w_y * loss
    if smoothing:
        e = hyper(label_smoothing, loss.dtype)
        wc = jnp.ones((), x.dtype) if w is None else along(w, x.ndim, axis)
        loss = (1 - e) * loss + e / x.shape[axis] * class_sum(x, wc, None, axis)
    loss = loss + z_term(z_loss, r.lse)
    return jnp.where(r.has_class, loss, jnp.nan), w_y


def modulator(log_1m_p: jax.Array, defined: jax.Array, gamma: Any) -> jax.Array:
    """`(1 - p) ** gamma` from `log(1 - p)`, in log space.

    Where `defined` is False, `1 - p` is exactly 0 (the only class left) and
    the factor is `0 ** gamma`. Its derivatives stay finite for every finite
    logit, also for 0 < gamma < 1.
    """
    g = hyper(gamma, log_1m_p.dtype)
    safe = jnp.where(defined, log_1m_p, 0)
    return jnp.where(defined, jnp.exp(g * safe), (g == 0).astype(log_1m_p.dtype))


def label_masks(labels, num_classes, ignore_index, mask):
    """`(keep, bad)`: the examples that count (None: all) and the kept ones
    whose label is outside `[0, C)` (they give NaN, never a plausible number)."""
    keep = mask
    if ignore_index is not None:
        keep = labels != ignore_index if keep is None else keep & (labels != ignore_index)
    bad = (labels < 0) | (labels >= num_classes)
    return keep, bad if keep is None else bad & keep


def finish_integer(
    loss, labels, num_classes, ignore_index, mask, reduction, w_y=None, normalizer=None
):
    """Mask ignored examples, poison bad labels with NaN, and reduce.

    `"mean"` divides by `normalizer` when given, else by the number of kept
    examples, or by the sum of their target classes' weights when `w_y` is
    given (PyTorch); 0 over nothing.
    """
    keep, bad = label_masks(labels, num_classes, ignore_index, mask)
    loss = jnp.where(bad, jnp.nan, loss)
    if reduction == "mean" and normalizer is None and w_y is not None:
        normalizer = jnp.sum(w_y if keep is None else jnp.where(keep, w_y, 0))
    return reduce(loss, reduction, keep, normalizer)


# --------------------------------------------------------------------------
# Where XLA:CPU has a faster form: chosen at compile time, per platform.

_plain_only = contextvars.ContextVar("jaxloss_plain_core", default=False)


@contextlib.contextmanager
def plain_core() -> Iterator[None]:
    """Trace with the plain core on every platform, CPU included (for tests
    and benchmarks: programs traced inside this block keep it)."""
    token = _plain_only.set(True)
    try:
        yield
    finally:
        _plain_only.reset(token)


def _per_platform(cpu: Callable, default: Callable, *args: Any) -> Any:
    if _plain_only.get():
        return default(*args)
    return jax.lax.platform_dependent(*args, cpu=cpu, default=default)


def class_sum(x: jax.Array, v: jax.Array, required: Any, axis: int) -> jax.Array:
    """`plain_class_sum`, or on XLA:CPU its faster form of the same value."""
    from . import _cpu

    def cpu(x, v, required):
        return _cpu.class_sum(x, v, required, axis)

    def default(x, v, required):
        return plain_class_sum(x, v, required, axis)

    return _per_platform(cpu, default, x, v, required)


def log_s_fresh(x: jax.Array, m: jax.Array, has_class: jax.Array, axis: int) -> jax.Array:
    """`log_s`, or on XLA:CPU a form whose gradient forms the softmax anew."""
    from . import _cpu

    def cpu(x, m, has_class):
        return _cpu.log_s_fresh(x, m, has_class, axis)

    def default(x, m, has_class):
        return log_s(x, m, has_class, axis)

    return _per_platform(cpu, default, x, m, has_class)


def accumulate_product(acc: jax.Array, x: jax.Array, du: jax.Array, matmul: Callable) -> jax.Array:
    """`acc + matmul(x, du)` (a `[D, V]` gradient accumulated over chunks).

    GPU and TPU compilers write the product into the accumulator (a GEMM
    with an addend); XLA:CPU writes the whole `[D, V]` product first, so on
    CPU the product is formed and added a slice of rows at a time instead.
    """
    from . import _cpu

    def cpu(acc, x, du):
        return _cpu.accumulate_product(acc, x, du, matmul)

    def default(acc, x, du):
        return acc + matmul(x, du)

    return _per_platform(cpu, default, acc, x, du)
