"""Linear layer + softmax cross-entropy, fused so that the logits never exist.

The loss of token `i` needs only a few statistics of its logits row (its
logsumexp, the target logit, the smoothing sum), and the gradient of the
row is `softmax - target` times the token's cotangent. So the tokens are
processed in chunks of `n`: each chunk's `[n, V]` logits are formed, used
and dropped, and only the `[n, D]` input gradients and the `[D, V]` kernel
gradient (accumulated) leave the chunk. Peak memory is one or two chunks of
logits plus the gradients themselves, instead of the `[N, V]` logits and
their `[N, V]` gradient.

Two ways of doing the backward pass, both in this module:

* A mean or sum over tokens has one scalar cotangent, and each token's
  share of it (`1 / count`, or 1, or 0 if ignored) is known in the forward
  pass. The gradients are then computed in the forward pass (as Liger
  Kernel's FusedLinearCrossEntropy does) and scaled in the backward pass:
  three matmuls in all, the floor of the unfused computation.
* `reduction="none"` has a cotangent per token that only the backward pass
  knows, so the backward pass recomputes each chunk's logits (as Cut
  Cross-Entropy and MaxText's vocabulary tiling do): four matmuls.

The cross-entropy of a chunk is `integer_ce` from the plain core (`_core.py`),
the same function `softmax_cross_entropy_with_integer_labels` uses; its
derivative with respect to the chunk's logits comes from `jax.vjp` of it,
so every option (smoothing, z-loss, soft cap) has its gradient by
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
    integer_ce,
    label_masks,
    logsumexp,
    pick,
    z_term,
)

ArrayLike = jax.typing.ArrayLike

# The default chunk: 2**22 logits (16 MiB in float32), and at least 128
# tokens so that the matmuls stay efficient at large V. Chosen by measurement
# (`benchmarks/linear_ce.py`, README "Fused linear cross-entropy").
_CHUNK_LOGITS = 2**22
_MIN_CHUNK = 128


class _Config(NamedTuple):
    """The static facts of one call (the hashable, non-differentiable part)."""

    chunk: int  # tokens per chunk
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


def _chunk_loss(cfg: _Config, u, bias, hp, index):
    """The per-token core: `(loss, stats)` of one chunk from its pre-bias
    logits `u: [n, V]`, `stats` None unless `cfg.stats`. Every option is a
    term here; the loops around it only move chunks and gradients."""
    z = u if bias is None else u + bias[None, :]
    if cfg.soft_cap:
        c = hp["cap"]
        z = c * jnp.tanh(z / c)  # Gemma-2's soft cap
    e = hp["smoothing"] if cfg.smoothing else 0.0
    zl = hp["z_loss"] if cfg.z_loss else 0.0
    # fresh: the gradient forms the softmax anew from the logits instead of
    # keeping a third [n, V] buffer (on XLA:CPU; elsewhere the same program).
    loss = integer_ce(z, index, -1, e, zl, hp.get("class_weight"), fresh=True)[0]
    if not cfg.stats:
        return loss, None
    r = logsumexp(z, -1)
    z_y = pick(z, index, -1)
    stats = (r.lse, z_term(zl, r.lse), z_y - r.lse, (z_y >= r.m).astype(z.dtype))
    return loss, jax.tree.map(jax.lax.stop_gradient, stats)


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
    x, index, ct = chunk
    u = _logits(cfg, x, kernel)
    loss, vjp, stats = jax.vjp(
        lambda u, b, h: _chunk_loss(cfg, u, b, h, index), u, bias, hp, has_aux=True
    )
    du, db, dh = vjp(ct.astype(loss.dtype))
    dx = _matmul(cfg, du, kernel, ((1,), (1,)))  # [n, V] @ [V, D]
    acc_k, acc_b, acc_h = carry
    # acc_k + [D, n] @ [n, V], the product added where it is formed
    acc_k = accumulate_product(acc_k, x, du, lambda a, b: _matmul(cfg, a, b, ((0,), (0,))))
    acc_b = None if db is None else acc_b + db
    acc_h = jax.tree.map(jnp.add, acc_h, dh)
    return (acc_k, acc_b, acc_h), (loss, dx, stats)


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


def _scan_grads(cfg, x, kernel, bias, hp, index, ct):
    """Every chunk's loss and gradients: `(loss, dx, dkernel, dbias, dhp, stats)`.

    The gradients are in `cfg.dtype` (float32, or float64).
    """
    carry = (
        jnp.zeros(kernel.shape, cfg.dtype),
        None if bias is None else jnp.zeros(bias.shape, cfg.dtype),
        jax.tree.map(jnp.zeros_like, hp),
    )
    step = functools.partial(_chunk_grads, cfg, kernel, bias, hp)
    outs = _buffers(cfg, x.shape[0], x.shape[1])
    (dk, db, dh), (loss, dx, stats) = _loop(cfg, step, carry, (x, index, ct), outs)
    return loss, dx, dk, db, dh, stats


def _scan_loss(cfg, x, kernel, bias, hp, index):
    """Every token's loss (and statistics), one chunk of logits at a time."""

    def step(carry, chunk):
        xc, ic = chunk
        return carry, _chunk_loss(cfg, _logits(cfg, xc, kernel), bias, hp, ic)

    loss, _, stats = _buffers(cfg, x.shape[0], 1)
    _, (loss, stats) = _loop(cfg, step, None, (x, index), (loss, stats))
    return loss, stats


def _cast_grads(primals, grads):
    """Each gradient in the dtype of its primal (None stays None)."""
    pairs = zip(primals, grads, strict=True)
    return tuple(None if g is None else g.astype(p.dtype) for p, g in pairs)


# reduction="none": the cotangent is per token; the backward pass recomputes.
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _token_losses(cfg, x, kernel, bias, hp, index):
    return _scan_loss(cfg, x, kernel, bias, hp, index)


def _token_losses_fwd(cfg, x, kernel, bias, hp, index):
    return _scan_loss(cfg, x, kernel, bias, hp, index), (x, kernel, bias, hp, index)


def _token_losses_bwd(cfg, res, ct):
    x, kernel, bias, hp, index = res
    _, dx, dk, db, dh, _ = _scan_grads(cfg, x, kernel, bias, hp, index, ct[0])  # ct[1]: stats
    return (*_cast_grads((x, kernel, bias), (dx, dk, db)), dh, None)


_token_losses.defvjp(_token_losses_fwd, _token_losses_bwd)


# "mean" / "sum": `sum_i share_i * loss_i` has one scalar cotangent, so the
# gradients are computed in the forward pass and only scaled backwards.
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _weighted_sum(cfg, x, kernel, bias, hp, index, share):
    loss, stats = _scan_loss(cfg, x, kernel, bias, hp, index)
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


def _default_chunk(vocab: int) -> int:
    return max(_MIN_CHUNK, _CHUNK_LOGITS // vocab)


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
    ``weight``, ``ignore_index`` and ``label_smoothing``.

    for language-model heads and extreme classifiers with a large ``V``.

    Memory model: the tokens are processed ``chunk_size`` at a time; each
    chunk's ``[chunk_size, V]`` logits are formed, used for the loss and the
    gradients, and dropped; the kernel gradient is accumulated in place.
    Peak temporary memory of a jitted value-and-grad is about two chunks of
    logits, ``2 * chunk_size * V`` floats, plus (for ``"mean"`` and
    ``"sum"``) the ``[N, D]`` input gradient, instead of the naive
    ``2 * N * V`` (logits and their gradient): at N=4096, D=512, V=32768,
    40 MiB, 1/12.7 of the logits' ``N * V * 4`` bytes (naive: 2x), at about
    1.05x the naive time on 2 CPU cores; see the Performance page.

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
      chunk_size: tokens per chunk. None picks ``max(128, 2**22 // V)``
        tokens (a 16 MiB float32 chunk of logits; 128 tokens at V=32768),
        measured on CPU (``benchmarks/linear_ce.py``). Smaller chunks save
        memory, larger ones can be faster; on GPUs and TPUs, whose
        flops-to-bandwidth balance is higher, use 512 or more (the
        Performance page has the roofline).
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
    cfg = _Config(
        chunk=max(1, min(chunk_size or _default_chunk(vocab), num_tokens)),
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
