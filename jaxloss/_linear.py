"""Linear layer + softmax cross-entropy, fused so that the logits never exist.

The loss of token `i` needs only a few statistics of its logits row (its
logsumexp, the target logit, the smoothing sum), and the gradient of the
row is `softmax - target` times the token's cotangent. So the tokens are
processed in chunks of `n`: each chunk's `[n, V]` logits are formed, used
and dropped, and only the `[n, D]` input gradients and the `[D, V]` kernel
gradient (accumulated) leave the chunk. Peak memory is one or two chunks of
logits plus the gradients themselves, instead of the `[N, V]` logits and
their `[N, V]` gradient.

At a large V (above 32768 by default) even a short chunk of whole rows is
big, so each chunk's rows are also split into tiles of columns, and only a
tile of logits exists at a time (the 2-D tiling of Cut Cross-Entropy and
tokamax): a first pass over the tiles gathers each token's row sums, and a
second forms each tile's logits again for the gradients. Memory no longer
grows with V, for a fourth matmul.

Two ways of doing the backward pass, both in this module:

* A mean or sum over tokens has one scalar cotangent, and each token's
  share of it (`1 / count`, or 1, or 0 if ignored) is known in the forward
  pass. The gradients are then computed in the forward pass (as Liger
  Kernel's FusedLinearCrossEntropy does) and scaled in the backward pass:
  three matmuls in all with whole rows, the floor of the unfused
  computation.
* `reduction="none"` has a cotangent per token that only the backward pass
  knows, so the backward pass recomputes each chunk's logits (as Cut
  Cross-Entropy and MaxText's vocabulary tiling do): four matmuls (the
  tiled path keeps its first pass's row sums, so four there too).

One per-token core serves both layouts: the loss is a function of a few
row sums (`_RowSums`: the sum of exponentials relative to the max, the
label's logit, the smoothing sum), which add up across tiles (`_row_loss`,
the formula of `integer_ce` in `_core.py`); the derivative of a tile's (or
a whole row's) logits comes from `jax.vjp` of its sums, so every option
(smoothing, z-loss, soft cap, class weights) has its gradient by
construction.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._common import (
    INDEX,
    Reduction,
    as_float_array,
    as_index_array,
    as_mask,
    broadcast_to,
    check_ignore_index,
    check_in_range,
    check_non_negative,
    check_reduction,
    compute_dtype,
    fill_masked,
    hyper,
    is_static_zero,
    mean_normalizer,
    safe_div,
    value_checks,
)
from ._core import (
    accumulate_product,
    finish_integer,
    label_masks,
    pick,
    present,
    z_term,
)

ArrayLike = jax.typing.ArrayLike

# The default chunk of whole rows: 2**23 logits (32 MiB in float32; 256
# tokens at V = 32768), and at least 128 tokens so that the matmuls stay
# efficient at large V. Chosen by measurement (`benchmarks/linear_ce.py`,
# the docs' Performance page).
_ROW_LOGITS = 2**23
_MIN_CHUNK = 128
# Where even `_MIN_CHUNK` whole rows exceed `_ROW_LOGITS` (V > 65536), the
# default is tiles of `_TILED_CHUNK` tokens by about `_TILE_LOGITS /
# _TILED_CHUNK` classes (2048 x 2048): memory that no longer grows with V,
# measured on CPU at about the time of 128-token rows.
_TILE_LOGITS = 2**22
_TILED_CHUNK = 2048
_MIN_GROUP = 16


class _Tiles(NamedTuple):
    """A split of the `V` columns into `num` tiles: column `c` lies in tile
    `(c // run) % num`. Runs of `run` adjacent columns, dealt out in
    turn, so that a vocabulary split over devices gives each device an
    equal share of every tile (no gather), as the strided token chunks do."""

    num: int
    run: int


class _Config(NamedTuple):
    """The static facts of one call (the hashable, non-differentiable part)."""

    chunk: int  # tokens per chunk
    tiles: _Tiles | None  # the vocabulary tiles, None for whole rows
    matmul_dtype: Any  # dtype the matmuls read: the inputs' (bf16 stays bf16)
    dtype: Any  # dtype they accumulate in, and of the loss: float32 (float64 if given)
    smoothing: bool  # label_smoothing may be non-zero
    z_loss: bool  # z_loss may be non-zero
    soft_cap: bool  # logit_soft_cap is set
    stats: bool  # return_stats: per-token statistics from the same pass


class LinearStats(NamedTuple):
    """Per-token statistics of `linear_softmax_cross_entropy(..., return_stats=True)`,
    from the same pass as the loss (no gradient flows through them). Tokens
    that `where` masks or `ignore_index` ignores hold 0 (and False)."""

    logsumexp: jax.Array  # logsumexp of the token's logits (after bias and soft cap)
    z_loss: jax.Array  # the token's z-loss term, z_loss * logsumexp ** 2
    target_log_prob: jax.Array  # log-probability of the label
    correct: jax.Array  # bool: the label's logit is the largest (accuracy)


def _biased(cfg: _Config, u, bias, hp):
    """The logits from the pre-bias ones: bias added (along the rows of a
    chunk, or per token for the labels' logits), soft cap applied."""
    z = u if bias is None else u + bias.reshape((1,) * (u.ndim - bias.ndim) + bias.shape)
    if cfg.soft_cap:
        c = hp["cap"]
        z = c * jnp.tanh(z / c)  # Gemma-2's soft cap
    return z


def _chunk_loss(cfg: _Config, u, u_y, bias, hp, index):
    """The per-token core: `(loss, stats)` of one chunk from its pre-bias
    logits `u: [n, V]`, `stats` None unless `cfg.stats`. Every option is a
    term here; the loops around it only move chunks and gradients.

    `u_y`: the labels' pre-bias logits if computed apart (`_label_logits`),
    else None (read from `u`)."""
    z = _biased(cfg, u, bias, hp)
    if u_y is None:
        z_y = pick(z, index, 1)
    else:
        z_y = _biased(cfg, u_y, None if bias is None else bias[index], hp)
    m = jax.lax.stop_gradient(jnp.max(z, 1))
    sums = _tile_sums(cfg, z, hp.get("class_weight"), z_y, m)
    return _row_loss(cfg, z.shape[1], m, sums, hp, index)


def _label_logits(cfg, x, kernel, index):
    """`[n]`: each token's pre-bias logit for its label, from the label's
    column of the kernel (`[n, D]`, gathered), not from the chunk's logits.

    So that the chunk's `[n, V]` logits are not read after their softmax is
    formed, and XLA can write the logit gradient into their buffer: one
    chunk of logits alive instead of two. With `return_stats` the label's
    logit is read from the logits (whether it is the largest must compare
    numbers from the same matmul)."""
    if cfg.stats:
        return None
    columns = jnp.take(kernel, index, axis=1).T  # [n, D]
    a, b = x.astype(cfg.matmul_dtype), columns.astype(cfg.matmul_dtype)
    return jnp.einsum("nd,nd->n", a, b, preferred_element_type=cfg.dtype), columns


def _stats(z_loss, lse, z_y, m):
    """The per-token statistics (without gradients) from the row's
    logsumexp, the label's logit and the row max."""
    stats = (lse, z_term(z_loss, lse), z_y - lse, (z_y >= m).astype(lse.dtype))
    return jax.tree.map(jax.lax.stop_gradient, stats)


def _matmul(cfg, a, b, dims):
    """`a` times `b` contracted over `dims`: reads `cfg.matmul_dtype`,
    accumulates and returns `cfg.dtype`."""
    a, b = a.astype(cfg.matmul_dtype), b.astype(cfg.matmul_dtype)
    return jax.lax.dot_general(a, b, (dims, ((), ())), preferred_element_type=cfg.dtype)


def _logits(cfg, x, kernel):
    return _matmul(cfg, x, kernel, ((1,), (0,)))  # [n, D] @ [D, V]


def _chunk_grads(cfg, kernel, bias, hp, carry, chunk):
    """Loss of one chunk and the gradients for a per-token cotangent `ct`.

    Returns the chunk's loss and input gradient; adds its kernel, bias and
    hyperparameter gradients to `carry`.
    """
    x, index, ct, _ = chunk
    u = _logits(cfg, x, kernel)
    apart = _label_logits(cfg, x, kernel, index)
    u_y, columns = (None, None) if apart is None else apart
    loss, vjp, stats = jax.vjp(
        lambda u, u_y, b, h: _chunk_loss(cfg, u, u_y, b, h, index), u, u_y, bias, hp,
        has_aux=True,
    )  # fmt: skip
    du, du_y, db, dh = vjp(ct.astype(loss.dtype))
    dx = _matmul(cfg, du, kernel, ((1,), (1,)))  # [n, V] @ [V, D]
    acc_k, acc_b, acc_h = carry
    # acc_k + [D, n] @ [n, V], the product added where it is formed
    acc_k = accumulate_product(acc_k, x, du, lambda a, b: _matmul(cfg, a, b, ((0,), (0,))))
    if du_y is not None:  # the labels' logits, through their kernel columns
        dx = dx + du_y[:, None] * columns.astype(cfg.dtype)
        acc_k = acc_k.at[:, index].add((du_y[:, None] * x.astype(cfg.dtype)).T)
    acc_b = None if db is None else acc_b + db
    acc_h = jax.tree.map(jnp.add, acc_h, dh)
    return (acc_k, acc_b, acc_h), (loss, dx, stats)


# The vocabulary-tiled path. At a large V even a short chunk of whole rows
# is big (128 tokens at V = 262144: 128 MiB of logits), so each chunk's rows
# are split into tiles of columns too. A first pass over the tiles gathers
# each token's row sums (an online max and sum of exponentials, as flash
# attention keeps them, the label's logit and the smoothing sum); the loss
# is a function of those (`_row_loss`, `integer_ce`'s formula); a second
# pass forms each tile's logits again and turns the sums' cotangents into
# the tile's logit gradient by `jax.vjp` of `_tile_sums`. Four matmuls
# instead of three (the logits are formed twice), in memory that no longer
# grows with V: the tiling of Cut Cross-Entropy and tokamax's chunked path.


class _RowSums(NamedTuple):
    """Sums over a token's logits that add up across tiles."""

    s: jax.Array  # sum_c exp(z_c - m), relative to the row max m
    z_y: jax.Array  # the label's logit (0 from the tiles without it)
    wz: jax.Array  # sum_c w_c (m - z_c), the smoothing sum (0 without smoothing)
    wp: jax.Array  # sum_c w_c, the weight of the classes present (0 without smoothing)


def _grouped(a, tiles):
    """`[..., V] -> [..., V / (num * run), num, run]`, a reshape."""
    return a.reshape(*a.shape[:-1], -1, tiles.num, tiles.run)


def _tile(a, t, tiles):
    """Tile `t` of the columns (last axis) of `a`: `[..., V / num]`."""
    a = _grouped(a, tiles)
    return jax.lax.dynamic_index_in_dim(a, t, a.ndim - 2, keepdims=False).reshape(*a.shape[:-3], -1)


def _update_tile(acc, t, fn, tiles):
    """`acc` with its tile `t` replaced by `fn(tile)`, written in place."""
    a = _grouped(acc, tiles)
    new = fn(_tile(acc, t, tiles)).reshape(*a.shape[:-2], 1, tiles.run)
    return jax.lax.dynamic_update_slice_in_dim(a, new, t, a.ndim - 2).reshape(acc.shape)


def _tile_labels(z, index, t, tiles):
    """Each label's logit in tile `t` of logits `z`, 0 for labels in other
    tiles (a gather: a masked sum would be written out by XLA:CPU)."""
    run = index // tiles.run
    column = (run // tiles.num) * tiles.run + index % tiles.run
    return jnp.where(run % tiles.num == t, pick(z, column, 1), 0)


def _tile_sums(cfg, z, w, z_y, m):
    """The `_RowSums` of one tile of logits `z: [n, Vt]` (class weights `w`)
    and the labels' logits in it `z_y`. A class whose logit is -inf (a bias
    of -inf, say, on padded vocabulary) is absent: it leaves the softmax and
    the smoothing sums, as in `integer_ce`."""
    wz = wp = jnp.zeros_like(m)
    if cfg.smoothing:
        exists = present(z)
        wc = jnp.where(exists, 1.0 if w is None else w[None, :], 0)
        wp = jnp.sum(wc, 1)
        wz = jnp.sum(wc * jnp.where(exists, m[:, None] - z, 0), 1)
    return _RowSums(jnp.sum(jnp.exp(z - m[:, None]), 1), z_y, wz, wp)


def _tile_inputs(cfg, kernel, bias, hp, t):
    """Tile `t` of the kernel's columns, the bias and the class weights."""
    w = hp.get("class_weight")
    return tuple(None if a is None else _tile(a, t, cfg.tiles) for a in (kernel, bias, w))


def _row_sums(cfg, x, kernel, bias, hp, index):
    """First pass: each token's row max and `_RowSums` over every tile."""

    def body(t, carry):
        m, sums = carry
        k, b, w = _tile_inputs(cfg, kernel, bias, hp, t)
        z = _biased(cfg, _logits(cfg, x, k), b, hp)
        new_m = jnp.maximum(m, jnp.max(z, 1))
        part = _tile_sums(cfg, z, w, _tile_labels(z, index, t, cfg.tiles), new_m)
        s = sums.s * jnp.exp(m - new_m) + part.s
        # the smoothing sum so far, moved to the new max (none before a class is seen)
        moved = jnp.where(sums.wp > 0, (new_m - m) * sums.wp, 0)
        wz = sums.wz + moved + part.wz
        return new_m, _RowSums(s, sums.z_y + part.z_y, wz, sums.wp + part.wp)

    zero = jnp.zeros(index.shape, cfg.dtype)
    lowest = jnp.full(index.shape, jnp.finfo(cfg.dtype).min, cfg.dtype)
    init = (lowest, _RowSums(zero, zero, zero, zero))
    return jax.lax.fori_loop(0, cfg.tiles.num, body, init)


def _row_loss(cfg, vocab, m, sums, hp, index):
    """Per-token `(loss, stats)` from the row sums, with `lse = m + log s`:

        loss = (1 - e) * w_y * (lse - z_y) + e / V * sum_c w_c (lse - z_c) + z_loss * lse ** 2

    (`integer_ce`'s formula), each difference taken relative to the max so
    that large logits keep their precision."""
    log_s = jnp.log(sums.s)
    w = hp.get("class_weight")
    w_y = 1.0 if w is None else w[index]
    loss = w_y * ((m - sums.z_y) + log_s)
    if cfg.smoothing:
        e = hp["smoothing"]
        loss = (1 - e) * loss + e / vocab * (sums.wp * log_s + sums.wz)
    zl = hp["z_loss"] if cfg.z_loss else 0.0
    lse = m + log_s
    loss = loss + z_term(zl, lse)
    return loss, (_stats(zl, lse, sums.z_y, m) if cfg.stats else None)


def _tiled_chunk_grads(cfg, kernel, bias, hp, carry, chunk):
    """`_chunk_grads` for tiled rows: row sums, the loss and the sums'
    cotangents, then each tile's logits again and their gradient."""
    x, index, ct, rows = chunk  # rows: the first pass's (m, sums) if kept, else None
    m, sums = _row_sums(cfg, x, kernel, bias, hp, index) if rows is None else rows
    loss, vjp, stats = jax.vjp(
        lambda sums, h: _row_loss(cfg, kernel.shape[1], m, sums, h, index), sums, hp, has_aux=True
    )
    d_sums, dh = vjp(ct.astype(loss.dtype))
    acc_k, acc_b, acc_h = carry
    acc_h = jax.tree.map(jnp.add, acc_h, dh)
    cap = {key: v for key, v in hp.items() if key == "cap"}  # the tiles' only hyperparameter

    def body(t, state):
        (acc_k, acc_b, acc_h), dx = state
        k, b, w = _tile_inputs(cfg, kernel, bias, hp, t)

        def sums(u, b, w, h):
            z = _biased(cfg, u, b, h)
            return _tile_sums(cfg, z, w, _tile_labels(z, index, t, cfg.tiles), m)

        _, tile_vjp = jax.vjp(sums, _logits(cfg, x, k), b, w, cap)
        du, db, dw, dcap = tile_vjp(d_sums)
        dx = dx + _matmul(cfg, du, k, ((1,), (1,)))  # [n, Vt] @ [Vt, D]
        mm = functools.partial(_matmul, cfg, dims=((0,), (0,)))
        acc_k = _update_tile(acc_k, t, lambda a: accumulate_product(a, x, du, mm), cfg.tiles)
        if db is not None:
            acc_b = _update_tile(acc_b, t, lambda a: a + db, cfg.tiles)
        acc_h = {**acc_h, **jax.tree.map(jnp.add, {key: acc_h[key] for key in cap}, dcap)}
        if dw is not None:
            cw = _update_tile(acc_h["class_weight"], t, lambda a: a + dw, cfg.tiles)
            acc_h = {**acc_h, "class_weight": cw}
        return (acc_k, acc_b, acc_h), dx

    dx = jnp.zeros(x.shape, cfg.dtype)
    carry, dx = jax.lax.fori_loop(0, cfg.tiles.num, body, ((acc_k, acc_b, acc_h), dx))
    return carry, (loss, dx, stats)


def _strided(a, n):
    """`[N, ...]` -> `[n, N / n, ...]`, a reshape (no copy): chunk `t` is
    `[:, t]`, the tokens `t, t + N/n, ...`.

    Strided rather than contiguous chunks: when the tokens are sharded over
    devices (data parallelism), the first axis carries the sharding and
    every device works on its own tokens in every step of the loop. Each
    step reads its chunk in place and writes its outputs in place, so no
    transposed copy of the inputs or the outputs is made.
    """
    return a.reshape(n, -1, *a.shape[1:])


def _take(a, t):
    return jax.lax.dynamic_index_in_dim(a, t, 1, keepdims=False)


def _put(a, t, v):
    return jax.lax.dynamic_update_index_in_dim(a, v, t, 1)


def _loop(cfg, step, carry, rows, outs):
    """Run `step(carry, chunk) -> (carry, out)` over the chunks of `rows`,
    writing each chunk's outputs into `outs` (`[n, N/n, ...]` buffers)."""
    rows = jax.tree.map(lambda a: _strided(a, cfg.chunk), rows)
    num = jax.tree.leaves(rows)[0].shape[1]

    def body(t, state):
        carry, outs = state
        carry, out = step(carry, jax.tree.map(lambda a: _take(a, t), rows))
        return carry, jax.tree.map(lambda b, o: _put(b, t, o), outs, out)

    carry, outs = jax.lax.fori_loop(0, num, body, (carry, outs))
    return carry, jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), outs)


def _buffers(cfg, n_tokens, d):
    """Per-token output buffers of the loops: loss, input gradient, stats."""
    per_token = jnp.zeros((cfg.chunk, n_tokens // cfg.chunk), cfg.dtype)
    stats = (per_token,) * 4 if cfg.stats else None
    return per_token, jnp.zeros((cfg.chunk, n_tokens // cfg.chunk, d), cfg.dtype), stats


def _scan_grads(cfg, x, kernel, bias, hp, index, ct, rows=None):
    """Every chunk's loss and gradients: `(loss, dx, dkernel, dbias, dhp, stats)`.

    The gradients are in `cfg.dtype` (float32, or float64). `rows`: the tiled
    first pass's per-token `(m, sums)`, if kept from the forward pass.
    """
    carry = (
        jnp.zeros(kernel.shape, cfg.dtype),
        None if bias is None else jnp.zeros(bias.shape, cfg.dtype),
        jax.tree.map(jnp.zeros_like, hp),
    )
    grads = _chunk_grads if cfg.tiles is None else _tiled_chunk_grads
    step = functools.partial(grads, cfg, kernel, bias, hp)
    outs = _buffers(cfg, x.shape[0], x.shape[1])
    (dk, db, dh), (loss, dx, stats) = _loop(cfg, step, carry, (x, index, ct, rows), outs)
    return loss, dx, dk, db, dh, stats


def _scan_loss(cfg, x, kernel, bias, hp, index):
    """Every token's loss and statistics, one chunk of logits at a time;
    with tiles also the first pass's per-token `(m, sums)` (else None)."""

    def step(carry, chunk):
        xc, ic = chunk
        if cfg.tiles is None:
            return carry, (*_chunk_loss(cfg, _logits(cfg, xc, kernel), None, bias, hp, ic), None)
        m, sums = _row_sums(cfg, xc, kernel, bias, hp, ic)
        return carry, (*_row_loss(cfg, kernel.shape[1], m, sums, hp, ic), (m, sums))

    loss, _, stats = _buffers(cfg, x.shape[0], 1)
    rows = None if cfg.tiles is None else (loss, _RowSums(loss, loss, loss, loss))
    _, outs = _loop(cfg, step, None, (x, index), (loss, stats, rows))
    return outs


def _cast_grads(primals, grads):
    """Each gradient in the dtype of its primal (None stays None)."""
    pairs = zip(primals, grads, strict=True)
    return tuple(None if g is None else g.astype(p.dtype) for p, g in pairs)


# reduction="none": the cotangent is per token; the backward pass recomputes.
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _token_losses(cfg, x, kernel, bias, hp, index):
    return _scan_loss(cfg, x, kernel, bias, hp, index)[:2]


def _token_losses_fwd(cfg, x, kernel, bias, hp, index):
    loss, stats, rows = _scan_loss(cfg, x, kernel, bias, hp, index)
    return (loss, stats), (x, kernel, bias, hp, index, rows)


def _token_losses_bwd(cfg, res, ct):
    x, kernel, bias, hp, index, rows = res
    _, dx, dk, db, dh, _ = _scan_grads(cfg, x, kernel, bias, hp, index, ct[0], rows)  # ct[1]: stats
    return (*_cast_grads((x, kernel, bias), (dx, dk, db)), dh, None)


_token_losses.defvjp(_token_losses_fwd, _token_losses_bwd)


# "mean" / "sum": `sum_i share_i * loss_i` has one scalar cotangent, so the
# gradients are computed in the forward pass and only scaled backwards.
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _weighted_sum(cfg, x, kernel, bias, hp, index, share):
    loss, stats, _ = _scan_loss(cfg, x, kernel, bias, hp, index)
    return jnp.sum(share * loss), stats


def _weighted_sum_fwd(cfg, x, kernel, bias, hp, index, share):
    loss, dx, dk, db, dh, stats = _scan_grads(cfg, x, kernel, bias, hp, index, share)
    grads = (x, kernel, bias), (dx, dk, db), dh, loss
    return (jnp.sum(share * loss), stats), grads


def _weighted_sum_bwd(cfg, res, ct):
    primals, grads, dh, loss = res
    ct = ct[0]  # the statistics carry no gradient
    scaled = (None if g is None else ct * g for g in grads)
    dh = jax.tree.map(lambda g: ct * g, dh)
    return (*_cast_grads(primals, scaled), dh, None, ct * loss)


_weighted_sum.defvjp(_weighted_sum_fwd, _weighted_sum_bwd)


def _plan(
    vocab: int, num_tokens: int, chunk_size: int | None, bias: bool = False
) -> tuple[int, _Tiles | None]:
    """Tokens per chunk and the vocabulary tiles (None: whole rows).

    A given `chunk_size` is whole rows of that many tokens. By default, whole
    rows of `_ROW_LOGITS / V` tokens (half as many with a bias: XLA then
    keeps the logits beside their biased copy), at least `_MIN_CHUNK`; where
    even `_MIN_CHUNK` rows exceed `_ROW_LOGITS` logits (V > 65536), tiles of
    `_TILED_CHUNK` tokens by about `_TILE_LOGITS / _TILED_CHUNK` classes,
    if `V` splits into such tiles."""
    if chunk_size is not None:
        return max(1, min(chunk_size, num_tokens)), None
    budget = _ROW_LOGITS // 2 if bias else _ROW_LOGITS
    rows = max(1, min(max(_MIN_CHUNK, budget // vocab), num_tokens))
    if min(_MIN_CHUNK, num_tokens) * vocab <= _ROW_LOGITS:
        return rows, None
    chunk = min(_TILED_CHUNK, num_tokens)
    tiles = _tiles(vocab, max(1, _TILE_LOGITS // chunk))
    return (chunk, tiles) if tiles is not None else (rows, None)


def _tiles(vocab: int, width: int) -> _Tiles | None:
    """`V` split into tiles of about `width` columns (from half as many
    tiles to 4x as many), in runs of `_MIN_GROUP` adjacent columns (64 bytes
    in float32: whole cache lines); None where `V` has no such split.

    Preferred: splits whose runs per tile are a multiple of 8, so that a
    vocabulary split over up to 8 devices (or any power of two dividing
    that count) gives each device whole runs of every tile (no gather);
    then the nearest to `width`."""
    least = -(-vocab // width)
    counts = range(max(2, -(-least // 2)), 4 * least + 1)
    fits = [c for c in counts if vocab % (c * _MIN_GROUP) == 0]
    if not fits:
        return None

    def badness(c):
        return (vocab // (c * _MIN_GROUP) % 8 != 0, max(c / least, least / c))

    return _Tiles(min(fits, key=badness), _MIN_GROUP)


def _check_shapes(x, kernel, y, bias):
    """Shapes: inputs `[..., D]`, kernel `[D, V]`, labels `[...]`, bias `[V]`."""
    if x.ndim < 1 or kernel.ndim != 2 or x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"`inputs` [..., D] and `kernel` [D, V] must share D; got inputs {x.shape} "
            f"and kernel {kernel.shape}. For tied embeddings of shape [V, D] pass "
            "`embedding.T`."
        )
    if y.shape != x.shape[:-1]:
        raise ValueError(
            f"`labels` has shape {y.shape} but `inputs` has shape {x.shape}; labels have "
            f"the shape of `inputs` without its last axis, {x.shape[:-1]}."
        )
    if bias is not None and bias.shape != kernel.shape[1:]:
        raise ValueError(
            f"`bias` must have shape ({kernel.shape[1]},), one entry per column of "
            f"`kernel` {kernel.shape}; got shape {bias.shape}."
        )


def _num_classes(bound) -> int:
    return jnp.shape(bound.arguments["kernel"])[-1]


@value_checks({"labels": INDEX}, _num_classes)
def linear_softmax_cross_entropy(
    inputs: ArrayLike,
    kernel: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    z_loss: ArrayLike = 0.0,
    logit_soft_cap: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    reduction: Reduction = "none",
    normalizer: ArrayLike | None = None,
    where: ArrayLike | None = None,
    chunk_size: int | None = None,
    return_stats: bool = False,
) -> Any:
    """Cross-entropy of a linear layer's logits, without ever holding them.

    Equals, in value and gradients:

        z = inputs @ kernel + bias                 # [..., V] logits
        z = c * tanh(z / c)                        # if logit_soft_cap=c (Gemma 2)
        weight * softmax_cross_entropy_with_integer_labels(z, labels, ...)

    that is, per token, with ``lse = logsumexp(z)``, ``e`` the smoothing,
    ``w`` the class weights (1 if None) and ``t`` the token's weight:

        loss = t * ((1 - e) * w[y] * (lse - z[y]) + e / V * sum_c w[c] * (lse - z[c]))
               + t * z_loss * lse ** 2

    ``reduction="mean"`` divides the sum by ``normalizer`` if given, else by
    the sum of ``t * w[y]`` over kept tokens (the count without weights):
    PyTorch's ``F.linear_cross_entropy`` and ``F.cross_entropy`` with
    ``weight``, ``ignore_index`` and ``label_smoothing``. For
    language-model heads and extreme classifiers with a large ``V``.

    Memory model: the tokens are processed in chunks; each chunk's logits
    are formed, used for the loss and the gradients, and dropped; the kernel
    gradient is accumulated in place.

    - Whole rows (the default up to V = 65536, and whenever ``chunk_size``
      is given): a chunk is ``[chunk_size, V]``, and the peak temporary
      memory of a jitted value-and-grad is about one chunk of logits,
      ``chunk_size * V`` floats (their gradient is written over them; two
      chunks with a ``bias``), plus (for ``"mean"`` and ``"sum"``) the
      ``[N, D]`` input gradient, instead of the naive ``2 * N * V`` (logits
      and their gradient): 42 MiB at N=4096, D=512, V=32768, 1/12 of the
      logits' ``N * V * 4`` bytes.
    - Vocabulary tiles (the default above V = 65536): chunks of 2048 tokens
      whose rows are split into tiles of about 2048 classes. A first pass
      over the tiles gathers each token's logsumexp and label logit, a
      second forms each tile's logits again for the gradients: a fourth
      matmul, in memory that no longer grows with V (two tiles of logits
      and one tile of the kernel, 52 MiB at N=4096, D=512, V=262144, 1/79 of
      the logits). A tile holds runs of 16 adjacent classes dealt out in
      turn, so a vocabulary split over devices stays split; a ``V`` without
      such a split (a prime, say) keeps whole rows of 128 tokens.

    The Performance page has the times against the naive loss and the
    peers.

    Gradients for ``inputs``, ``kernel``, ``bias`` (and the traced
    hyperparameters) come from a ``jax.custom_vjp``:

    - ``reduction="mean"`` or ``"sum"``: the gradients are computed in the
      forward pass and scaled by the cotangent in the backward pass (Liger
      Kernel's approach): three matmuls, the same as the unfused loss, and
      measured faster than it.
    - ``reduction="none"``: the cotangent differs per token, so the backward
      pass recomputes each chunk's logits (Cut Cross-Entropy's approach): four
      matmuls, correct for any cotangent.

    Both work under ``jax.jit``, ``jax.vmap`` and ``jax.checkpoint``; forward
    mode (``jax.jvp``, ``jax.jacfwd``) is not available for a custom VJP. Use
    ``softmax_cross_entropy_with_integer_labels`` on materialised logits where
    those are needed.

    Precision: half-precision ``inputs`` and ``kernel`` are multiplied as they
    are with float32 accumulation; the loss is float32, each gradient has the
    dtype of its input, and the chunk's logit gradients enter the two
    backward matmuls in the input dtype (as the unfused half-precision
    computation would).

    Shape:
      - inputs: ``[..., D]``.
      - kernel: ``[D, V]`` (Flax ``nnx.Linear`` / ``Dense`` layout; pass
        ``embedding.T`` for tied embeddings of shape ``[V, D]``).
      - labels: ``[...]``, the shape of ``inputs`` without its last axis.
      - bias: ``[V]``.
      - class_weight: ``[V]``.
      - weight, where: ``[...]``, per token.
      - output: ``[...]`` for ``reduction="none"``, else a scalar.

    Args:
      inputs: the features entering the output layer, floating dtype.
      kernel: the output layer's weights.
      labels: integer class indices in ``[0, V)``; a label outside that range
        that is not ``ignore_index`` gives NaN (``checked`` raises instead).
      bias: the output layer's bias, or None.
      ignore_index: a label value whose tokens give 0 and leave the mean
        (e.g. -100 for padding).
      label_smoothing: ``e`` in [0, 1].
      z_loss: coefficient of ``lse ** 2`` (PaLM uses 1e-4).
      logit_soft_cap: ``c > 0``: logits become ``c * tanh(z / c)``; None for
        no cap.
      class_weight: ``[V]`` weight of each class (PyTorch's ``weight``),
        differentiable.
      weight: a float weight per token (the shape of ``labels``),
        differentiable; ``where`` is the boolean mask.
      reduction: ``"none"``, ``"mean"`` (over kept tokens; 0 if none is
        kept) or ``"sum"``.
      normalizer: for ``"mean"``, divide the sum by this traced scalar (e.g.
        the number of kept tokens of the whole batch, across micro-batches
        and hosts) so that accumulated micro-batches give exactly the full
        batch's loss and gradients.
      where: per-token mask; masked tokens give 0, leave the mean and get
        zero gradients whatever their inputs hold.
      chunk_size: tokens per chunk of whole rows. None picks whole rows of
        ``max(128, 2**23 // V)`` tokens (a 32 MiB float32 chunk of logits;
        ``2**22 // V`` with a bias) up to V = 65536 and vocabulary tiles
        above, both measured on CPU (``benchmarks/linear_ce.py``). Smaller
        chunks save memory, larger ones can be faster; with whole rows on
        GPUs and TPUs, whose flops-to-bandwidth balance is higher, use 512
        or more (the Performance page has the roofline).
      return_stats: also return per-token statistics from the same pass.

    Returns:
      The loss, float32 for half-precision inputs; with ``return_stats``,
      ``(loss, stats)``, ``stats`` a ``LinearStats`` NamedTuple of per-token
      (the shape of ``labels``) ``logsumexp``, ``z_loss`` term,
      ``target_log_prob`` and ``correct`` (bool: the label's logit is the
      largest, for accuracy), 0 / False for masked and ignored tokens and
      without gradients.

    Raises:
      TypeError: non-integer ``labels``, non-floating ``inputs``, ``kernel``
        or ``bias``.
      ValueError: ``inputs`` and ``kernel`` not sharing ``D``, ``labels`` not
        of shape ``inputs.shape[:-1]``, ``bias`` not ``[V]``, bad
        ``chunk_size``, ``reduction`` or hyperparameters.

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models"
      (Cut Cross-Entropy), 2024; Hsu et al., "Liger Kernel: Efficient Triton
      Kernels for LLM Training", 2024; Gemma Team, "Gemma 2", 2024 (soft cap).

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> x = jnp.array([[0.5, -1.0], [2.0, 0.3], [0.1, 0.1]])   # 3 tokens, D=2
      >>> w = jnp.array([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]])    # V=3
      >>> y = jnp.array([0, 2, -100])
      >>> loss = jaxloss.linear_softmax_cross_entropy(
      ...     x, w, y, ignore_index=-100, reduction="mean", chunk_size=2)
      >>> naive = jaxloss.softmax_cross_entropy_with_integer_labels(
      ...     x @ w, y, ignore_index=-100, reduction="mean")
      >>> print(np.round(np.asarray(loss), 4), np.allclose(loss, naive))
      1.7442 True
    """
    x, k, y, b = _validate(
        inputs, kernel, labels, bias, label_smoothing, z_loss, logit_soft_cap,
        ignore_index, reduction, chunk_size,
    )  # fmt: skip
    mask = None if where is None else broadcast_to("where", as_mask(where), y.shape, "labels")
    cfg, hp = _configure(
        x, k, b, y.size, label_smoothing, z_loss, logit_soft_cap, chunk_size, return_stats
    )
    num_tokens, vocab = y.size, k.shape[1]
    n = mean_normalizer(normalizer, reduction, cfg.dtype)
    if class_weight is not None:
        w = as_float_array("class_weight", class_weight)
        if w.shape != (vocab,):
            raise ValueError(
                f"`class_weight` must have shape ({vocab},), one entry per column of "
                f"`kernel` {k.shape}; got shape {w.shape}."
            )
        hp["class_weight"] = w.astype(cfg.dtype)
    tw = None
    if weight is not None:
        hint = " `weight` is per token, of the shape of `labels`."
        tw = broadcast_to("weight", as_float_array("weight", weight), y.shape, "labels", hint)
        tw = tw.astype(cfg.dtype)

    # Flatten the tokens, zero the masked ones (whatever they hold, they give
    # 0 and zero gradients) and pad to whole chunks with tokens of share 0.
    pad = -num_tokens % cfg.chunk
    x = x.reshape(num_tokens, -1)
    if mask is not None:
        x = fill_masked(x, mask.reshape(-1, 1), 0)
    x = jnp.pad(x, ((0, pad), (0, 0)))
    index = jnp.pad(jnp.clip(y, 0, vocab - 1).reshape(-1), (0, pad))
    b = None if b is None else b.astype(cfg.dtype)

    keep, _ = label_masks(y, vocab, ignore_index, mask)
    if tw is not None and keep is not None:  # a token not kept may hold any weight
        tw = jnp.where(keep, tw, 0)
    if reduction == "none":
        loss, stats = _token_losses(cfg, x, k, b, hp, index)
        loss = loss[:num_tokens].reshape(y.shape)
        out = finish_integer(loss if tw is None else tw * loss, y, vocab, ignore_index, mask,
                             reduction)  # fmt: skip
    else:
        out, stats = _reduced(cfg, x, k, b, hp, index, y, keep, tw, n, reduction, pad)
    if not return_stats:
        return out
    return out, _finish_stats(stats, num_tokens, y.shape, keep)


def _finish_stats(stats, num_tokens, shape, keep) -> LinearStats:
    """Per-token statistics in the labels' shape, 0 / False where not kept."""

    def per_token(a):
        a = a[:num_tokens].reshape(shape)
        return a if keep is None else jnp.where(keep, a, 0)

    lse, zl, logp, correct = (per_token(a) for a in stats)
    return LinearStats(lse, zl, logp, correct > 0)


def _validate(
    inputs, kernel, labels, bias, label_smoothing, z_loss, logit_soft_cap,
    ignore_index, reduction, chunk_size,
):  # fmt: skip
    """The static checks; returns `(inputs, kernel, labels, bias)` as arrays."""
    check_reduction(reduction)
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    check_non_negative("z_loss", z_loss)
    if logit_soft_cap is not None:
        check_in_range("logit_soft_cap", logit_soft_cap, 1e-30, float("inf"))
    check_ignore_index(ignore_index)
    x = as_float_array("inputs", inputs)
    kernel = as_float_array("kernel", kernel)
    y = as_index_array("labels", labels)
    b = None if bias is None else as_float_array("bias", bias)
    _check_shapes(x, kernel, y, b)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"`chunk_size` must be a positive int or None; got {chunk_size!r}.")
    return x, kernel, y, b


def _configure(
    x, kernel, b, num_tokens, label_smoothing, z_loss, logit_soft_cap, chunk_size, stats
):
    """The static configuration and the traced hyperparameters in use
    (differentiated like the inputs)."""
    vocab = kernel.shape[1]
    dtype = compute_dtype(x, kernel, b)
    chunk, tiles = _plan(vocab, num_tokens, chunk_size, bias=b is not None)
    cfg = _Config(
        chunk=chunk,
        tiles=tiles,
        matmul_dtype=jnp.promote_types(x.dtype, kernel.dtype),
        dtype=dtype,
        smoothing=not is_static_zero(label_smoothing),
        z_loss=not is_static_zero(z_loss),
        soft_cap=logit_soft_cap is not None,
        stats=bool(stats),
    )
    hp = {}
    if cfg.smoothing:
        hp["smoothing"] = hyper(label_smoothing, dtype)
    if cfg.z_loss:
        hp["z_loss"] = hyper(z_loss, dtype)
    if logit_soft_cap is not None:
        hp["cap"] = hyper(logit_soft_cap, dtype)
    return cfg, hp


def _reduced(cfg, x, kernel, b, hp, index, y, keep, tw, normalizer, reduction, pad):
    """`"mean"` or `"sum"`: each token's share of the one scalar cotangent is
    known in the forward pass, so the gradients are computed there
    (`_weighted_sum`). The share is the token's weight (1, 0 if not kept),
    over the normalizer for the mean: the given one, else the sum of the
    kept tokens' weights times their label's class weight (PyTorch's
    weighted mean; the count without weights)."""
    bad = label_masks(y, kernel.shape[1], None, None)[1]
    if keep is not None:
        bad = bad & keep
    share = jnp.ones(y.shape, cfg.dtype) if keep is None else keep.astype(cfg.dtype)
    if tw is not None:
        share = share * tw
    if reduction == "mean":  # 0 over nothing, as every loss here
        if normalizer is None:
            den = share
            if "class_weight" in hp:
                den = den * hp["class_weight"][jnp.clip(y, 0, kernel.shape[1] - 1)]
            normalizer = jnp.sum(den)
        share = safe_div(share, normalizer)
    share = jnp.pad(share.reshape(-1), (0, pad))
    total, stats = _weighted_sum(cfg, x, kernel, b, hp, index, share)
    return jnp.where(jnp.any(bad), jnp.nan, total), stats
