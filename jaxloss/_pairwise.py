"""Pairwise contrastive losses over the similarities of two embedding batches.

SigLIP's sigmoid loss and CLIP's symmetric softmax loss score every pair
`(x_i, y_j)` of a batch by `t * x_i . y_j (+ b)`. The `[B, B]` matrix of these
logits is never held: the rows of `x` are processed a chunk at a time
against a block of `y`, and the gradients for both sides are formed from
each chunk's block of logits, which is then dropped (as
`linear_softmax_cross_entropy` does with a vocabulary).

With ``axis_name``, inside ``shard_map`` (or ``pmap``) over the axis that
splits the batch, each device holds its rows of `x` and `y`; the blocks of
`y` travel around the ring of devices (``ppermute``), carrying what is
accumulated for them (their gradient, the column statistics), and arrive
home after a full turn. No device ever holds more than its own rows of
either side and one block of `y` in transit. This is the "chunked"
implementation of Zhai et al. (2023), Section 3.3.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._binary import _bce_with_logits, _sigmoid_focal
from ._common import (
    Reduction,
    as_float_array,
    as_index_array,
    as_mask,
    broadcast_to,
    check_in_range,
    check_non_negative,
    check_reduction,
    compute_dtype,
    fill_masked,
    hyper,
    is_static_zero,
    safe_div,
    value_checks,
)
from ._linear import _cast_grads, _matmul

ArrayLike = jax.typing.ArrayLike

# Rows of `x` per chunk by default: a block of 2**21 logits (8 MiB in
# float32) against the `y` rows a device holds, at least 64 rows. A block
# and its gradient are live at once, beside the `[M, D]` gradient of `y`.
_BLOCK_LOGITS = 2**21
_MIN_CHUNK = 64


class _Config(NamedTuple):
    """The static facts of one call."""

    chunk: int  # rows of x per chunk
    axis_name: Any  # the mesh axis the batch is split over, or None
    matmul_dtype: Any  # what the similarity matmuls read (bf16 stays bf16)
    dtype: Any  # what they accumulate in, and the loss: float32 (float64 if given)
    focal: bool  # sigmoid: gamma may be non-zero
    pos_weight: bool  # sigmoid: pos_weight is given
    smoothing: bool  # softmax: label_smoothing may be non-zero


class _Side(NamedTuple):
    """One side's local rows: embeddings, ids (equal ids are positives), kept."""

    e: jax.Array  # [n, D]
    ids: jax.Array  # [n] int
    keep: jax.Array  # [n] bool


def _similarities(cfg, xc, y):
    return _matmul(cfg, xc, y, ((1,), (1,)))  # [c, D] x [m, D] -> [c, m]


def _backward_matmuls(cfg, ds, xc, y):
    """`(dx_c, dy)` from the block's similarity gradient `ds: [c, m]`."""
    return _matmul(cfg, ds, y, ((1,), (0,))), _matmul(cfg, ds, xc, ((0,), (0,)))


def _axis_size(axis_name) -> int:
    if axis_name is None:
        return 1
    size = getattr(jax.lax, "axis_size", None)
    return size(axis_name) if size else jax.lax.psum(1, axis_name)


def _vary(cfg, tree):
    """Mark fresh accumulators as varying over the ring's axis (shard_map's
    replication typing: they will hold per-device values)."""
    if cfg.axis_name is None:
        return tree
    cast, pvary = getattr(jax.lax, "pcast", None), getattr(jax.lax, "pvary", None)

    axes = cfg.axis_name if isinstance(cfg.axis_name, tuple) else (cfg.axis_name,)

    def varying_axes(a):
        aval = jax.typeof(a)
        if hasattr(aval, "vma"):  # JAX 0.6 to 0.8
            return aval.vma
        manual = getattr(aval, "manual_axis_type", None)  # later versions
        return axes if manual is None else manual.varying

    def vary(a):
        missing = tuple(ax for ax in axes if ax not in varying_axes(a))
        if not missing:
            return a  # already varying, or no replication typing to satisfy
        if cast is not None:
            return cast(a, missing, to="varying")
        return pvary(a, missing)

    return jax.tree.map(vary, tree)


def _ring(cfg, step, local, travel):
    """Run `step(local, travel)` once per block of `y`: the blocks (and what
    travels with them) pass to the next device after each step, so after the
    last one every block is home again."""
    p = _axis_size(cfg.axis_name)
    if p == 1:
        return step(local, travel)
    perm = [(i, (i + 1) % p) for i in range(p)]

    def body(_, carry):
        local, travel = step(*carry)
        return local, jax.lax.ppermute(travel, cfg.axis_name, perm)

    return jax.lax.fori_loop(0, p, body, (local, travel))


def _scan_rows(cfg, chunk_fn, travel, rows):
    """`chunk_fn(travel, chunk) -> (travel, out)` over contiguous chunks of
    the local rows (a reshape, no copy); returns the final `travel` and the
    outputs per row."""
    chunks = jax.tree.map(lambda a: a.reshape(-1, cfg.chunk, *a.shape[1:]), rows)
    travel, out = jax.lax.scan(chunk_fn, travel, chunks)
    return travel, jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), out)


# --------------------------------------------------------------------------
# Sigmoid (SigLIP): every pair is an independent binary problem.


def _sigmoid_terms(cfg, s, hp, pos, valid):
    """`-log sigmoid(+-(t s + b))` per pair (focal, weighted), 0 if not valid."""
    logits = hp["t"] * s + hp["b"]
    z = pos.astype(s.dtype)
    v = _sigmoid_focal(logits, z, hp["gamma"]) if cfg.focal else _bce_with_logits(logits, z)
    if cfg.pos_weight:
        v = jnp.where(pos, hp["pos_weight"] * v, v)
    return jnp.where(valid, v, 0)


def _sigmoid_pass(cfg, x: _Side, y: _Side, hp, ct, grads: bool):
    """Per-row losses of the local rows and, if `grads`, the gradients of
    `sum_i ct_i loss_i` for x, y and the hyperparameters."""
    n, d = x.e.shape
    zero_hp = jax.tree.map(jnp.zeros_like, hp)
    if ct is None:
        ct = jnp.zeros((n,), cfg.dtype)

    def chunk_fn(travel, chunk):
        ye, yid, ykeep, dy, dhp = travel
        xc, xid, xkeep, ctc = chunk
        s = _similarities(cfg, xc, ye)
        pos = xid[:, None] == yid[None, :]
        valid = xkeep[:, None] & ykeep[None, :]
        if not grads:
            return travel, (jnp.sum(_sigmoid_terms(cfg, s, hp, pos, valid), 1), None)
        v, vjp = jax.vjp(lambda s, hp: _sigmoid_terms(cfg, s, hp, pos, valid), s, hp)
        ds, dh = vjp(jnp.broadcast_to(ctc[:, None], v.shape).astype(v.dtype))
        dxc, dyc = _backward_matmuls(cfg, ds, xc, ye)
        dhp = jax.tree.map(jnp.add, dhp, dh)
        return (ye, yid, ykeep, dy + dyc, dhp), (jnp.sum(v, 1), dxc)

    def step(local, travel):
        loss, dx = local
        travel, (lc, dxc) = _scan_rows(cfg, chunk_fn, travel, (x.e, x.ids, x.keep, ct))
        return (loss + lc, dx if dxc is None else dx + dxc), travel

    local = _vary(cfg, (jnp.zeros((n,), cfg.dtype), jnp.zeros((n, d), cfg.dtype)))
    travel = (y.e, y.ids, y.keep, *_vary(cfg, (jnp.zeros(y.e.shape, cfg.dtype), zero_hp)))
    (loss, dx), (*_, dy, dhp) = _ring(cfg, step, local, travel)
    return loss, dx, dy, dhp


# --------------------------------------------------------------------------
# Softmax (CLIP): a cross-entropy over each row and each column.


def _softmax_logits(cfg, s, hp, valid):
    return jnp.where(valid, hp["t"] * s, -jnp.inf)


def _online_lse(m, se, z, axis):
    """Fold the logits `z` into a running `(max, sum exp(z - max))` along `axis`."""
    new_m = jnp.maximum(m, jnp.max(z, axis))  # m starts at the lowest float: finite
    scale = jnp.exp(m - new_m)
    return new_m, se * scale + jnp.sum(jnp.exp(z - jnp.expand_dims(new_m, axis)), axis)


def _softmax_stats(cfg, x: _Side, y: _Side, hp):
    """Pass 1: for every local row and every local column, the logsumexp
    over the kept pairs, the positive pair's logit and the sum of the kept
    logits (for label smoothing)."""
    n = x.e.shape[0]
    low = jnp.finfo(cfg.dtype).min

    def chunk_fn(travel, chunk):
        ye, yid, ykeep, cm, cs, cpos, csum = travel
        xc, xid, xkeep = chunk
        s = _similarities(cfg, xc, ye)
        valid = xkeep[:, None] & ykeep[None, :]
        z = _softmax_logits(cfg, s, hp, valid)
        pos = valid & (xid[:, None] == yid[None, :])
        zpos = jnp.where(pos, z, 0)
        zsum = jnp.where(valid, z, 0)
        cm, cs = _online_lse(cm, cs, z, 0)
        rm, rs = _online_lse(jnp.full(xc.shape[:1], low, cfg.dtype), 0.0, z, 1)
        out = (rm, rs, jnp.sum(zpos, 1), jnp.sum(zsum, 1))
        return (ye, yid, ykeep, cm, cs, cpos + jnp.sum(zpos, 0), csum + jnp.sum(zsum, 0)), out

    def step(local, travel):
        rm, rs, rpos, rsum = local
        travel, (bm, bs, bpos, bsum) = _scan_rows(cfg, chunk_fn, travel, (x.e, x.ids, x.keep))
        new_m = jnp.maximum(rm, bm)
        rs = rs * jnp.exp(rm - new_m) + bs * jnp.exp(bm - new_m)
        return (new_m, rs, rpos + bpos, rsum + bsum), travel

    m = y.e.shape[0]
    zeros_n, zeros_m = jnp.zeros((n,), cfg.dtype), jnp.zeros((m,), cfg.dtype)
    local = _vary(cfg, (jnp.full((n,), low, cfg.dtype), zeros_n, zeros_n, zeros_n))
    travel = (y.e, y.ids, y.keep,
              *_vary(cfg, (jnp.full((m,), low, cfg.dtype), zeros_m, zeros_m, zeros_m)))  # fmt: skip
    (rm, rs, rpos, rsum), (*_, cm, cs, cpos, csum) = _ring(cfg, step, local, travel)

    def lse(m, s):
        return m + jnp.log(jnp.where(s > 0, s, 1))  # 0 terms: a row with no kept pair

    return lse(rm, rs), rpos, rsum, lse(cm, cs), cpos, csum


def _softmax_grads(cfg, x: _Side, y: _Side, hp, rlse, clse, count, ct):
    """Pass 2: the gradients of `sum_i ct_i loss_i` for x, y and `t`, with
    `loss_i = (CE of row i + CE of column i) / 2`."""
    n, d = x.e.shape
    e = hp["smoothing"] if cfg.smoothing else 0.0
    uniform = safe_div(jnp.asarray(e, cfg.dtype), count)  # e / K on every kept pair

    def chunk_fn(travel, chunk):
        ye, yid, ykeep, cl, cct, dy, dt = travel
        xc, xid, xkeep, rl, rct = chunk
        s = _similarities(cfg, xc, ye)
        valid = xkeep[:, None] & ykeep[None, :]
        z = _softmax_logits(cfg, s, hp, valid)
        target = jnp.where(xid[:, None] == yid[None, :], 1 - e, 0) + uniform
        p_row = jnp.exp(z - rl[:, None])  # 0 where not valid
        p_col = jnp.exp(z - cl[None, :])
        g = (rct[:, None] * (p_row - target) + cct[None, :] * (p_col - target)) / 2
        g = jnp.where(valid, g, 0)
        dxc, dyc = _backward_matmuls(cfg, hp["t"] * g, xc, ye)
        return (ye, yid, ykeep, cl, cct, dy + dyc, dt + jnp.sum(g * s)), dxc

    def step(local, travel):
        travel, dxc = _scan_rows(cfg, chunk_fn, travel, (x.e, x.ids, x.keep, rlse, ct))
        return local + dxc, travel

    dy, dt = _vary(cfg, (jnp.zeros(y.e.shape, cfg.dtype), jnp.zeros((), cfg.dtype)))
    travel = (y.e, y.ids, y.keep, clse, ct, dy, dt)
    dx, (*_, dy, dt) = _ring(cfg, step, _vary(cfg, jnp.zeros((n, d), cfg.dtype)), travel)
    return dx, dy, dt


def _softmax_losses(cfg, hp, stats, count, keep):
    """Per-row loss from the statistics, and its derivative by `e`."""
    rlse, rpos, rsum, clse, cpos, csum = stats
    e = hp["smoothing"] if cfg.smoothing else 0.0
    row_mean, col_mean = safe_div(rsum, count), safe_div(csum, count)
    row = (1 - e) * (rlse - rpos) + e * (rlse - row_mean)
    col = (1 - e) * (clse - cpos) + e * (clse - col_mean)
    loss = jnp.where(keep, (row + col) / 2, 0)
    d_e = jnp.where(keep, (rpos - row_mean + cpos - col_mean) / 2, 0)
    return loss, d_e


# --------------------------------------------------------------------------
# One custom VJP for both: `(loss per row, gradients for sum_i ct_i loss_i)`.


def _pass(cfg, kind, x, y, hp, ct, grads):
    """Per-row losses and, if `grads`, `(dx, dy, dhp)` for cotangents `ct`."""
    # Inside shard_map everything the ring carries holds per-device values.
    x, y, ct = _vary(cfg, (x, y, ct))
    if kind == "sigmoid":
        loss, dx, dy, dhp = _sigmoid_pass(cfg, x, y, hp, ct, grads)
        return loss, ((dx, dy, dhp) if grads else None)
    count = jnp.sum(x.keep, dtype=cfg.dtype)
    if cfg.axis_name is not None:
        count = jax.lax.psum(count, cfg.axis_name)
    stats = _softmax_stats(cfg, x, y, hp)
    loss, d_e = _softmax_losses(cfg, hp, stats, count, x.keep)
    if not grads:
        return loss, None
    dx, dy, dt = _softmax_grads(cfg, x, y, hp, stats[0], stats[3], count, ct)
    dhp = {"t": dt}
    if cfg.smoothing:
        dhp["smoothing"] = jnp.sum(ct * d_e)
    return loss, (dx, dy, dhp)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _row_losses(cfg, kind, xe, ye, hp, ids):
    """`reduction="none"`: the cotangent is per row; the backward pass runs
    the pass again with it."""
    return _pass(cfg, kind, _Side(xe, *ids[0]), _Side(ye, *ids[1]), hp, None, False)[0]


def _row_losses_fwd(cfg, kind, xe, ye, hp, ids):
    return _row_losses(cfg, kind, xe, ye, hp, ids), (xe, ye, hp, ids)


def _row_losses_bwd(cfg, kind, res, ct):
    xe, ye, hp, ids = res
    _, (dx, dy, dhp) = _pass(cfg, kind, _Side(xe, *ids[0]), _Side(ye, *ids[1]), hp, ct, True)
    return (*_cast_grads((xe, ye), (dx, dy)), dhp, None)


_row_losses.defvjp(_row_losses_fwd, _row_losses_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _weighted_sum(cfg, kind, xe, ye, hp, ids, share):
    """`sum_i share_i loss_i` (a mean or a sum): one scalar cotangent, so the
    gradients are computed in the forward pass and scaled backwards."""
    return _weighted_sum_fwd(cfg, kind, xe, ye, hp, ids, share)[0]


def _weighted_sum_fwd(cfg, kind, xe, ye, hp, ids, share):
    x, y = _Side(xe, *ids[0]), _Side(ye, *ids[1])
    loss, (dx, dy, dhp) = _pass(cfg, kind, x, y, hp, share, True)
    return jnp.sum(share * loss), ((xe, ye), (dx, dy), dhp, loss)


def _weighted_sum_bwd(cfg, kind, res, ct):
    primals, grads, dhp, loss = res
    dx, dy = _cast_grads(primals, tuple(ct * g for g in grads))
    return dx, dy, jax.tree.map(lambda g: ct * g, dhp), None, ct * loss


_weighted_sum.defvjp(_weighted_sum_fwd, _weighted_sum_bwd)


# --------------------------------------------------------------------------
# The public losses.


def _embeddings(name, v):
    e = as_float_array(name, v)
    if e.ndim != 2:
        raise ValueError(f"`{name}` must be a [B, D] batch of embeddings; got shape {e.shape}.")
    return e


def _setup(x, y, where, y_where, labels, y_labels, reduction, chunk_size, axis_name, kind):
    """Validate; returns `(x, y, x ids, y ids, x kept, y kept)` (local rows)."""
    check_reduction(reduction)
    xe, ye = _embeddings("x", x), _embeddings("y", y)
    if xe.shape[1] != ye.shape[1]:
        raise ValueError(f"`x` {xe.shape} and `y` {ye.shape} must have the same embedding size D.")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"`chunk_size` must be a positive int or None; got {chunk_size!r}.")
    n, m = xe.shape[0], ye.shape[0]
    if kind == "softmax" or labels is None:
        if n != m:
            raise ValueError(
                f"`x` has {n} rows and `y` {m}; the i-th rows are a positive pair, so the "
                "batches must match" + ("" if kind == "softmax" else " (or pass `labels`).")
            )
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name)
    if labels is None:  # the i-th rows of x and y are the positive pairs
        xid = offset * n + jnp.arange(n)
        yid = offset * m + jnp.arange(m)
    else:
        xid = broadcast_to("labels", as_index_array("labels", labels), (n,), "x")
        if y_labels is None:
            if m != n:
                raise ValueError(f"`y` has {m} rows and `x` {n}: pass `y_labels` for y's rows.")
            y_labels = labels
        yid = broadcast_to("y_labels", as_index_array("y_labels", y_labels), (m,), "y")
    xk = jnp.ones((n,), bool) if where is None else broadcast_to("where", as_mask(where), (n,), "x")
    if y_where is None:
        if where is not None and m != n:
            raise ValueError(f"`y` has {m} rows and `x` {n}: pass `y_where` for y's rows.")
        yk = xk if where is not None else jnp.ones((m,), bool)
    else:
        yk = broadcast_to("y_where", as_mask(y_where), (m,), "y")
    return xe, ye, xid, yid, xk, yk


def _run(kind, cfg_kw, hp, sides, reduction, chunk_size, axis_name):
    xe, ye, xid, yid, xk, yk = sides
    dtype = compute_dtype(xe, ye)
    n = xe.shape[0]
    chunk = chunk_size or max(_MIN_CHUNK, _BLOCK_LOGITS // max(ye.shape[0], 1))
    chunk = max(1, min(chunk, n))
    cfg = _Config(
        chunk=chunk, axis_name=axis_name, matmul_dtype=jnp.promote_types(xe.dtype, ye.dtype),
        dtype=dtype, **cfg_kw,
    )  # fmt: skip
    # Replicated hyperparameters meet per-device data: their gradient is a
    # per-device partial sum, summed over the axis by the cast's transpose.
    hp = _vary(cfg, {k: hyper(v, dtype) for k, v in hp.items()})
    # Masked rows hold zeros (whatever they held: zero gradients); pad to whole chunks.
    pad = -n % chunk
    xe = jnp.pad(fill_masked(xe, xk[:, None], 0), ((0, pad), (0, 0)))
    ye = fill_masked(ye, yk[:, None], 0)
    if kind == "softmax":  # column i is row i's pair: pad y alike
        ye, yid, yk = jnp.pad(ye, ((0, pad), (0, 0))), jnp.pad(yid, (0, pad)), jnp.pad(yk, (0, pad))
    ids = ((jnp.pad(xid, (0, pad)), jnp.pad(xk, (0, pad))), (yid, yk))
    if reduction == "none":
        return _row_losses(cfg, kind, xe, ye, hp, ids)[:n]
    share = xk.astype(dtype)
    if reduction == "mean":
        count = jnp.sum(share)
        if axis_name is not None:
            count = jax.lax.psum(count, axis_name)
        share = safe_div(share, count)
    share = _vary(cfg, jnp.pad(share, (0, pad)))  # its cotangent is per device
    total = _weighted_sum(cfg, kind, xe, ye, hp, ids, share)
    return total if axis_name is None else jax.lax.psum(total, axis_name)


@value_checks({})
def sigmoid_pairwise_loss(
    x: ArrayLike,
    y: ArrayLike,
    *,
    temperature: ArrayLike = 1.0,
    bias: ArrayLike = 0.0,
    labels: ArrayLike | None = None,
    y_labels: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    gamma: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
    y_where: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: Any = None,
) -> jax.Array:
    """SigLIP's sigmoid loss over every pair of two embedding batches.

    Every pair ``(x_i, y_j)`` is a binary problem with the logit
    ``t * x_i . y_j + b``, positive when the pair matches (``z_ij = 1``) and
    negative otherwise (``z_ij = -1``). The unreduced loss of row ``i``:

        loss_i = sum_j -log sigmoid(z_ij * (t * x_i . y_j + b))

    and ``reduction="mean"`` averages over the rows, as Zhai et al. (2023) and
    open_clip's ``SigLipLoss(image, text, logit_scale=t, logit_bias=b)``
    do. Pass normalised embeddings; ``temperature`` and ``bias`` are traced
    and differentiable (SigLIP learns ``log t``, initialised at ``log 10``,
    and ``b``, at -10: pass ``temperature=jnp.exp(log_t)``).

    The ``[B, B]`` logits are never held: the rows of ``x`` are processed
    ``chunk_size`` at a time against ``y`` (against one device's block of
    ``y`` at a time with ``axis_name``), and the gradients for ``x``, ``y``,
    ``temperature``, ``bias``, ``pos_weight`` and ``gamma`` come from each
    block before it is dropped (a custom VJP; reverse mode only).

    Positives are the pairs ``(x_i, y_i)`` by default. With ``labels`` (and
    ``y_labels`` for a ``y`` of a different size), ``x_i`` and ``y_j`` are
    positive when their labels are equal: several captions per image, or
    the same class.

    Sharded: call it inside ``jax.shard_map`` with ``x`` and ``y`` (and
    ``labels``, ``where``) split over the mesh axis ``axis_name``; each
    device passes its own rows. The blocks of ``y`` travel around the ring
    of devices (``ppermute``), so no device holds the global ``y`` or any
    block of logits beyond its own rows'; ``"mean"`` and ``"sum"`` return
    the global value on every device, ``"none"`` the local rows' losses.
    Default positives are then the pairs with the same global row index.

    Shape:
      - x: ``[B, D]``; y: ``[M, D]`` (``M = B`` unless ``labels`` are given).
      - labels, where: ``[B]``; y_labels, y_where: ``[M]``.
      - output: ``[B]`` for ``reduction="none"``, else a scalar.

    Args:
      x: one side's embeddings (e.g. images), floating dtype.
      y: the other side's (e.g. texts).
      temperature: ``t``, multiplying the similarities (may be traced).
      bias: ``b`` (may be traced).
      labels: integer ids of ``x``'s rows: equal ids are positive pairs.
      y_labels: ids of ``y``'s rows (default: ``labels``).
      pos_weight: weight of the positive pairs' terms (may be traced).
      gamma: focal modulation of each pair's term, ``(1 - p_t) ** gamma``
        (may be traced; 0 is the plain loss).
      reduction: ``"none"``, ``"mean"`` (over kept rows) or ``"sum"``.
      where: rows of ``x`` to keep (padding): a dropped row gives 0 and,
        when ``y`` has the same rows, drops ``y``'s row too.
      y_where: rows of ``y`` to keep, if they differ from ``where``.
      chunk_size: rows of ``x`` per block. None picks ``2**21 // M`` rows
        (an 8 MiB float32 block), at least 64.
      axis_name: the mesh axis the batch is split over, inside
        ``shard_map``; None on one device (or under automatic sharding).

    Returns:
      The loss, float32 for half-precision embeddings.

    Raises:
      TypeError: non-floating embeddings, non-integer labels.
      ValueError: embeddings that are not ``[B, D]`` or differ in ``D``,
        batches that differ in size without ``labels``, bad ``reduction``,
        ``chunk_size`` or hyperparameters.

    References:
      Zhai, Mustafa, Kolesnikov and Beyer, Sigmoid Loss for Language Image
      Pre-Training, ICCV 2023, https://arxiv.org/abs/2303.15343

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
      >>> y = jnp.array([[0.8, 0.6], [0.9, -0.1], [-0.2, 1.0]])
      >>> loss = jaxloss.sigmoid_pairwise_loss(x, y, temperature=10.0, bias=-5.0,
      ...                                      reduction="mean")
      >>> print(np.round(np.asarray(loss), 4))  # open_clip's SigLipLoss
      2.2887
    """
    check_non_negative("gamma", gamma)
    if pos_weight is not None:
        check_non_negative("pos_weight", pos_weight)
    sides = _setup(x, y, where, y_where, labels, y_labels, reduction, chunk_size, axis_name,
                   "sigmoid")  # fmt: skip
    hp = {"t": temperature, "b": bias, "gamma": gamma}
    if pos_weight is not None:
        hp["pos_weight"] = pos_weight
    cfg_kw = dict(focal=not is_static_zero(gamma), pos_weight=pos_weight is not None,
                  smoothing=False)  # fmt: skip
    return _run("sigmoid", cfg_kw, hp, sides, reduction, chunk_size, axis_name)


@value_checks({})
def softmax_pairwise_loss(
    x: ArrayLike,
    y: ArrayLike,
    *,
    temperature: ArrayLike = 1.0,
    label_smoothing: ArrayLike = 0.0,
    reduction: Reduction = "none",
    where: ArrayLike | None = None,
    chunk_size: int | None = None,
    axis_name: Any = None,
) -> jax.Array:
    """CLIP's symmetric softmax loss (InfoNCE) over two embedding batches.

    With the logits ``z_ij = t * x_i . y_j``, the pair ``(x_i, y_i)`` is the
    positive among each row's and each column's candidates. The unreduced
    loss of pair ``i`` is the mean of the two cross-entropies it anchors:

        loss_i = (CE(z_i., i) + CE(z_.i, i)) / 2

    so ``reduction="mean"`` is open_clip's ``ClipLoss(image, text,
    logit_scale=t)``: ``(cross_entropy(z, arange(B)) +
    cross_entropy(z.T, arange(B))) / 2``. ``temperature`` multiplies the
    similarities, as CLIP's ``logit_scale = exp(s)`` (initialised at
    ``1 / 0.07``); InfoNCE's divisor ``tau`` is ``temperature=1 / tau``. It is
    traced and differentiable. ``label_smoothing=e`` mixes each target with
    the uniform distribution over the row's (column's) kept candidates.

    The ``[B, B]`` logits are never held: two passes over blocks of rows
    (the row and column logsumexps, then the gradients) with a custom VJP
    (reverse mode only). ``axis_name`` runs it sharded inside
    ``jax.shard_map``, as for `sigmoid_pairwise_loss`: the blocks of ``y``
    and their column statistics travel around the ring of devices.

    Shape:
      - x, y: ``[B, D]``.
      - where: ``[B]``.
      - output: ``[B]`` for ``reduction="none"``, else a scalar.

    Args:
      x: one side's embeddings (e.g. images), floating dtype.
      y: the other side's (e.g. texts), in the same order.
      temperature: ``t``, multiplying the similarities (may be traced).
      label_smoothing: ``e`` in [0, 1].
      reduction: ``"none"``, ``"mean"`` (over kept pairs) or ``"sum"``.
      where: pairs to keep (padding): a dropped pair leaves every row's and
        column's candidates and gives 0.
      chunk_size: rows of ``x`` per block (default as
        `sigmoid_pairwise_loss`).
      axis_name: the mesh axis the batch is split over, inside
        ``shard_map``; None on one device.

    Returns:
      The loss, float32 for half-precision embeddings.

    Raises:
      TypeError: non-floating embeddings.
      ValueError: embeddings that are not ``[B, D]`` or differ in shape, bad
        ``reduction``, ``chunk_size`` or ``label_smoothing``.

    References:
      Radford et al., Learning Transferable Visual Models From Natural
      Language Supervision (CLIP), ICML 2021, https://arxiv.org/abs/2103.00020;
      van den Oord, Li and Vinyals, Representation Learning with Contrastive
      Predictive Coding (InfoNCE), 2018, https://arxiv.org/abs/1807.03748

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
      >>> y = jnp.array([[0.8, 0.6], [0.9, -0.1], [-0.2, 1.0]])
      >>> loss = jaxloss.softmax_pairwise_loss(x, y, temperature=10.0, reduction="mean")
      >>> print(np.round(np.asarray(loss), 4))  # open_clip's ClipLoss
      0.1092
    """
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    sides = _setup(x, y, where, None, None, None, reduction, chunk_size, axis_name, "softmax")
    smoothing = not is_static_zero(label_smoothing)
    hp = {"t": temperature}
    if smoothing:
        hp["smoothing"] = label_smoothing
    cfg_kw = dict(focal=False, pos_weight=False, smoothing=smoothing)
    return _run("softmax", cfg_kw, hp, sides, reduction, chunk_size, axis_name)
