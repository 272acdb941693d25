"""linear_softmax_cross_entropy: PyTorch's numbers, the naive composition,
transformations, half precision and the memory bound.

The naive composition is `softmax_cross_entropy_with_integer_labels(cap(x @ W
+ b), y)` (itself checked against PyTorch in test_fixtures.py), or optax's
function where it has no options.
"""

import functools
import json
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss

FIXTURES = pathlib.Path(__file__).parent / "data" / "linear" / "torch_linear.npz"
N_SHAPE, D, V = (3, 13), 16, 50  # 39 tokens: no chunk size below divides them


def _inputs(seed=0, dtype=jnp.float32, n_shape=N_SHAPE, d=D, v=V):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=n_shape + (d,)), dtype)
    kernel = jnp.asarray(rng.normal(size=(d, v)) * 0.5, dtype)
    bias = jnp.asarray(rng.normal(size=(v,)), dtype)
    labels = rng.integers(0, v, size=n_shape).astype(np.int32)
    labels.reshape(-1)[::5] = -100
    return x, kernel, bias, jnp.asarray(labels)


def _cap(z, c):
    return z if c is None else c * jnp.tanh(z / c)


def fused(x, kernel, bias, labels, cot, **kw):
    out = jaxloss.linear_softmax_cross_entropy(x, kernel, labels, bias=bias, **kw)
    return jnp.sum(out * cot), out


def naive(x, kernel, bias, labels, cot, logit_soft_cap=None, chunk_size=None, **kw):
    z = jnp.matmul(x, kernel, preferred_element_type=jnp.float32)
    if bias is not None:
        z = z + jnp.broadcast_to(bias.astype(jnp.float32), z.shape)
    z = _cap(z, logit_soft_cap)
    out = jaxloss.softmax_cross_entropy_with_integer_labels(z, labels, **kw)
    return jnp.sum(out * cot), out


_STATIC = ("reduction", "ignore_index", "chunk_size")


@functools.partial(jax.jit, static_argnames=("fn", *_STATIC))
def value_and_grads(fn, x, kernel, bias, labels, cot, **kw):
    """The loss and the gradients of sum(loss * cot) for inputs, kernel, bias."""
    grad = jax.grad(fn, argnums=(0, 1, 2), has_aux=True)
    (dx, dk, db), out = grad(x, kernel, bias, labels, cot, **kw)
    return out, dx, dk, db


@functools.partial(jax.jit, static_argnames=_STATIC)
def fused_and_naive(x, kernel, bias, labels, cot, **kw):
    """`value_and_grads` of both, compiled as one program (fewer compiles)."""
    return (
        value_and_grads(fused, x, kernel, bias, labels, cot, **kw),
        value_and_grads(naive, x, kernel, bias, labels, cot, **kw),
    )


def _cot(reduction, shape=N_SHAPE, seed=1):
    if reduction != "none":
        return jnp.float32(0.7)
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def assert_same(got, want, rtol=1e-5, grad_rtol=1e-4):
    chex.assert_trees_all_close(got[0], want[0], rtol=rtol, atol=1e-6)
    for g, w in zip(got[1:], want[1:], strict=True):
        chex.assert_trees_all_close(g, w, rtol=grad_rtol, atol=1e-5)


# --------------------------------------------------------------------------
# PyTorch.


def _torch_cases():
    with np.load(FIXTURES) as z:
        arrays = {k: z[k] for k in z.files}
    return [pytest.param(c, arrays, id=c["id"]) for c in json.loads(str(arrays["meta"]))]


@pytest.mark.xdist_group("linear_torch")  # one worker: the cases share programs
@pytest.mark.parametrize("case,arrays", _torch_cases())
def test_matches_torch(case, arrays):
    """Value and the gradients for inputs, kernel and bias equal PyTorch's
    matmul + F.cross_entropy (float64), with z-loss and soft cap in torch.

    Smoothing and z-loss are passed traced (0 where the case has none) and
    ignore_index is -100 throughout (only the ignore cases' labels hold -100),
    so the 21 cases compile 12 programs, one per reduction, bias and cap.
    The static-zero paths are held to the naive composition below."""
    _check_torch_case(case, arrays, value_and_grads, chunk_size=4)


def _check_torch_case(case, arrays, run, chunk_size):
    i = case["id"].split("-")[1]
    opts = {
        "reduction": case["reduction"],
        "ignore_index": -100,
        "label_smoothing": jnp.float32(case.get("label_smoothing", 0.0)),
        "z_loss": jnp.float32(case.get("z_loss", 0.0)),
    }
    if "logit_soft_cap" in case:
        opts["logit_soft_cap"] = jnp.float32(case["logit_soft_cap"])
    bias = jnp.asarray(arrays["bias"]) if case.get("bias") else None
    out, dx, dk, db = run(
        fused,
        jnp.asarray(arrays["inputs"]),
        jnp.asarray(arrays["kernel"]),
        bias,
        jnp.asarray(arrays[f"{i}/labels"]),
        jnp.asarray(arrays[f"{i}/cot"]),
        chunk_size=chunk_size,
        **opts,
    )
    f32 = lambda k: arrays[f"{i}/{k}"].astype(np.float32)  # noqa: E731
    chex.assert_trees_all_close(out, f32("expected"), rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close((dx, dk), (f32("dinputs"), f32("dkernel")), rtol=1e-4, atol=1e-5)
    if bias is not None:
        chex.assert_trees_all_close(db, f32("dbias"), rtol=1e-4, atol=1e-5)


OPTION_FIXTURES = FIXTURES.with_name("torch_linear_options.npz")


def _option_cases():
    with np.load(OPTION_FIXTURES) as z:
        arrays = {k: z[k] for k in z.files}
    return [pytest.param(c, arrays, id=c["id"]) for c in json.loads(str(arrays["meta"]))]


@functools.partial(jax.jit, static_argnames=("reduction", "chunk_size"))
def _options_value_and_grads(
    x, kernel, bias, labels, cot, cw, tw, e, normalizer, reduction, chunk_size=5
):
    def f(x, kernel, bias, cw, tw):
        out = jaxloss.linear_softmax_cross_entropy(
            x, kernel, labels, bias=bias, class_weight=cw, weight=tw, ignore_index=-100,
            label_smoothing=e, reduction=reduction, normalizer=normalizer, chunk_size=chunk_size,
        )  # fmt: skip
        return jnp.sum(out * cot), out

    return jax.grad(f, argnums=(0, 1, 2, 3, 4), has_aux=True)(x, kernel, bias, cw, tw)


@pytest.mark.xdist_group("linear_torch")
@pytest.mark.parametrize("case,arrays", _option_cases())
def test_options_match_torch(case, arrays):
    """Class weights (PyTorch's `F.linear_cross_entropy(weight=...)`, and its
    formula for their gradient), per-token weights and a given normalizer:
    values and the gradients for inputs, kernel, bias, class and token
    weights."""
    _check_option_case(case, arrays, _options_value_and_grads, chunk_size=5)


def _check_option_case(case, arrays, run, chunk_size):
    i = case["id"].split("-")[1]
    tw = jnp.asarray(arrays["weight"]) if case.get("weight") else None
    norm = case.get("normalizer")
    grads, out = run(
        *(jnp.asarray(arrays[k]) for k in ("inputs", "kernel", "bias")),
        jnp.asarray(arrays[f"{i}/labels"]),
        jnp.asarray(arrays[f"{i}/cot"]),
        jnp.asarray(arrays["class_weight"]),
        tw,
        jnp.float32(case.get("label_smoothing", 0.0)),
        None if norm is None else jnp.float32(norm),
        reduction=case["reduction"],
        chunk_size=chunk_size,
    )
    f32 = lambda k: arrays[f"{i}/{k}"].astype(np.float32)  # noqa: E731
    chex.assert_trees_all_close(out, f32("expected"), rtol=1e-5, atol=1e-6)
    names = ["inputs", "kernel", "bias", "class_weight", "weight"]
    for name, g in zip(names, grads, strict=True):
        if f"{i}/d{name}" in arrays:
            chex.assert_trees_all_close(g, f32(f"d{name}"), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------
# The vocabulary-tiled path: the default above V = 65536, forced here at test
# sizes by shrinking the plan's constants.


@pytest.fixture
def tiles(monkeypatch):
    """`use(chunk, width, group)`: the default plan tiles every vocabulary it
    can split, in chunks of `chunk` tokens and tiles of about `width`
    columns in runs of `group`; returns the planning function."""
    from jaxloss import _linear

    def use(chunk, width, group):
        monkeypatch.setattr(_linear, "_TILED_CHUNK", chunk)
        monkeypatch.setattr(_linear, "_ROW_LOGITS", chunk * width)
        monkeypatch.setattr(_linear, "_TILE_LOGITS", chunk * width)
        monkeypatch.setattr(_linear, "_MIN_GROUP", group)
        return _linear._plan

    return use


# Programs traced only under `tiles` (jit caches by function and arguments,
# not by module constants), shared by the cases below.
_tiled_value_and_grads = jax.jit(value_and_grads.__wrapped__, static_argnames=("fn", *_STATIC))
_tiled_options = jax.jit(
    _options_value_and_grads.__wrapped__, static_argnames=("reduction", "chunk_size")
)


@pytest.mark.xdist_group("linear_torch")
@pytest.mark.parametrize("case,arrays", _torch_cases())
def test_tiled_matches_torch(case, arrays, tiles):
    """PyTorch's values and gradients with every row split into tiles: V = 11
    (prime) in 11 tiles of one column, chunks of 4 of the 21 tokens."""
    assert tiles(4, 4, 1)(11, 21, None) == (4, (11, 1))
    _check_torch_case(case, arrays, _tiled_value_and_grads, chunk_size=None)


@pytest.mark.xdist_group("linear_torch")
@pytest.mark.parametrize("case,arrays", _option_cases())
def test_tiled_options_match_torch(case, arrays, tiles):
    """Class weights, token weights, normalizer and smoothing against PyTorch
    with V = 9 in 3 tiles of the columns {t, t + 3, t + 6}."""
    assert tiles(5, 3, 1)(9, 12, None) == (5, (3, 1))
    _check_option_case(case, arrays, _tiled_options, chunk_size=None)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_tiled_matches_naive(reduction, tiles):
    """Every option at once (bias, ignore_index, smoothing, z-loss, soft cap,
    class weights) against the materialised logits, with V = 96 in 4 tiles
    of 3 runs of 8 columns (the runs of one tile are 32 columns apart)."""
    assert tiles(6, 24, 8)(96, 39, None) == (6, (4, 8))
    x, kernel, bias, labels = _inputs(seed=6, v=96)
    cw = jnp.asarray(np.random.default_rng(6).uniform(0.5, 2.0, 96), jnp.float32)
    kw = dict(ALL, reduction=reduction, class_weight=cw)
    got = _tiled_value_and_grads(fused, x, kernel, bias, labels, _cot(reduction), **kw)
    want = value_and_grads(naive, x, kernel, bias, labels, _cot(reduction), **kw)
    assert_same(got, want)


def test_tiled_hyperparameter_gradients(tiles):
    """Gradients for smoothing, z-loss, soft cap and class weights through
    the tiles (the cap is applied tile by tile) equal AD of the materialised
    logits."""
    assert tiles(6, 24, 8)(96, 39, None) == (6, (4, 8))
    x, kernel, bias, labels = _inputs(seed=7, v=96)
    cw = jnp.asarray(np.random.default_rng(7).uniform(0.5, 2.0, 96), jnp.float32)

    def grads(fn):
        def total(e, zl, cap, cw):
            kw = dict(label_smoothing=e, z_loss=zl, logit_soft_cap=cap, class_weight=cw)
            return fn(x, kernel, bias, labels, 0.7, ignore_index=-100, reduction="mean", **kw)[0]

        return jax.jit(jax.grad(total, argnums=(0, 1, 2, 3)))(0.2, 1e-2, 3.0, cw)

    chex.assert_trees_all_close(grads(fused), grads(naive), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("tiled", [False, True], ids=["rows", "tiles"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_padded_vocabulary_with_a_bias_of_minus_inf(reduction, tiled, tiles):
    """Padding columns with a bias of -inf are absent classes: they leave the
    softmax and the smoothing sums (PyTorch-style smoothing over the classes
    that exist, divided by V), with class weights, against the materialised
    logits; a label on a padding column gives +inf."""
    if tiled:
        assert tiles(6, 24, 8)(96, 39, None) == (6, (4, 8))
    x, kernel, bias, labels = _inputs(seed=8, v=96)
    bias = bias.at[80:].set(-jnp.inf)  # 16 padding columns, split over the tiles
    labels = jnp.where(labels >= 80, labels - 40, labels)
    cw = jnp.asarray(np.random.default_rng(8).uniform(0.5, 2.0, 96), jnp.float32)
    kw = dict(ALL, reduction=reduction, class_weight=cw, chunk_size=None if tiled else 7)
    del kw["logit_soft_cap"]  # a cap would make the padding a finite -c
    run = _tiled_value_and_grads if tiled else value_and_grads
    got = run(fused, x, kernel, bias, labels, _cot(reduction), **kw)
    want = value_and_grads(naive, x, kernel, bias, labels, _cot(reduction), **kw)
    chex.assert_tree_all_finite(got)
    assert_same(got, want)
    out = jaxloss.linear_softmax_cross_entropy(
        x, kernel, labels.at[0, 0].set(90), bias=bias, ignore_index=-100
    )
    assert out[0, 0] == jnp.inf and np.isfinite(np.asarray(out[0, 1:])).all()


def test_tiled_large_logits_keep_their_precision(tiles):
    """Logits near 1e30 (the row sums are taken relative to the max): two
    tied classes at the top give log 2, with smoothing."""
    assert tiles(2, 4, 2)(16, 4, None) == (2, (4, 2))
    x = jnp.ones((4, 1))
    kernel = jnp.zeros((1, 16)).at[0, 3].set(1e30).at[0, 9].set(1e30)
    labels = jnp.array([3, 9, 3, 9])
    loss = jaxloss.linear_softmax_cross_entropy(x, kernel, labels, reduction="mean")
    np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)
    smooth = jaxloss.linear_softmax_cross_entropy(
        x, kernel, labels, label_smoothing=0.5, reduction="mean"
    )
    # half the mass on the label (log 2), half spread: lse - z_c is log 2 for
    # the two tied classes and 1e30 + log 2 for the other 14
    want = 0.5 * np.log(2) + 0.5 * (16 * np.log(2) + 14e30) / 16
    np.testing.assert_allclose(smooth, want, rtol=1e-6)


def test_the_default_plan():
    """Whole rows of 2**23 logits (2**22 with a bias; at least 128 tokens)
    up to V = 65536 and
    wherever V does not split into runs of 16 columns; tiles of 2048 tokens
    by about 2048 classes above, whose runs per tile split evenly over 8
    devices where V allows; a given chunk_size is always whole rows."""
    from jaxloss._linear import _plan

    assert _plan(32768, 4096, None) == (256, None)
    assert _plan(50257, 4096, None) == (166, None)  # GPT-2
    assert _plan(65536, 4096, None) == (128, None)
    assert _plan(151936, 4096, None) == (128, None)  # Qwen: 2**7 * 1187, no split
    assert _plan(128256, 4096, None) == (2048, (167, 16))  # Llama 3: runs of 48 per tile
    assert _plan(262144, 100, None) == (100, (8, 16))  # few tokens: wider tiles
    assert _plan(262144, 4096, 512) == (512, None)
    assert _plan(32768, 4096, None, bias=True) == (128, None)  # half the rows with a bias
    assert _plan(131072, 4096, None, bias=True) == (2048, (64, 16))
    for vocab in (100352, 131072, 256000, 262144):
        chunk, t = _plan(vocab, 4096, None)
        assert chunk == 2048 and vocab % (t.num * t.run) == 0
        assert vocab // t.num <= 2 * 2048 and vocab // (t.num * t.run) % 8 == 0


# --------------------------------------------------------------------------
# The naive composition, for every option, reduction and chunk size.

ALL = dict(ignore_index=-100, label_smoothing=0.1, z_loss=1e-3, logit_soft_cap=4.0)
OPTIONS = [
    {},
    {"ignore_index": -100},
    {"label_smoothing": 0.3},
    {"z_loss": 1e-2},
    {"logit_soft_cap": 2.0},
    ALL,
]


# "sum" shares the "mean" path (one scalar cotangent); the PyTorch fixtures
# cover it for every option.
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "+".join(o) or "plain")
def test_matches_naive(opts, reduction):
    x, kernel, bias, labels = _inputs()
    if "ignore_index" not in opts:
        labels = jnp.where(labels < 0, 3, labels)
    cot = _cot(reduction)
    kw = dict(opts, reduction=reduction)
    assert_same(*fused_and_naive(x, kernel, bias, labels, cot, chunk_size=7, **kw))


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("chunk", [1, 16, 64])
def test_chunk_sizes(chunk, reduction):
    """39 tokens: chunks of one, uneven chunks, more than all (7 in test_matches_naive)."""
    x, kernel, _, labels = _inputs()
    cot = _cot(reduction)
    kw = dict(ALL, reduction=reduction)
    want = value_and_grads(naive, x, kernel, None, labels, cot, **kw)  # shared by the chunks
    assert_same(value_and_grads(fused, x, kernel, None, labels, cot, chunk_size=chunk, **kw), want)


def test_plain_equals_optax():
    x, kernel, _, labels = _inputs()
    labels = jnp.where(labels < 0, 0, labels)
    out = jax.jit(jaxloss.linear_softmax_cross_entropy)(x, kernel, labels)
    chex.assert_trees_all_close(
        out, optax.losses.softmax_cross_entropy_with_integer_labels(x @ kernel, labels), rtol=1e-5
    )


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_where_mask(reduction):
    """Masked tokens give 0 and no gradient, even where their inputs are NaN."""
    x, kernel, bias, labels = _inputs()
    mask = jnp.asarray(np.random.default_rng(3).uniform(size=N_SHAPE) > 0.4)
    poisoned = jnp.where(mask[..., None], x, jnp.nan)
    cot = _cot(reduction)
    kw = dict(ALL, reduction=reduction, where=mask)
    want = value_and_grads(naive, x, kernel, bias, labels, cot, **kw)
    got = value_and_grads(fused, poisoned, kernel, bias, labels, cot, chunk_size=8, **kw)
    chex.assert_tree_all_finite(got)
    assert_same(got, want)


def test_traced_hyperparameters():
    """label_smoothing, z_loss and the cap may be traced (and are differentiated)."""
    x, kernel, bias, labels = _inputs()

    def loss(fn, h):
        kw = dict(label_smoothing=h[0], z_loss=h[1], logit_soft_cap=h[2], reduction="mean")
        return fn(x, kernel, bias, labels, 1.0, ignore_index=-100, **kw)[0]

    h = jnp.array([0.2, 1e-2, 3.0])
    got = jax.jit(jax.value_and_grad(functools.partial(loss, fused)))(h)
    want = jax.jit(jax.value_and_grad(functools.partial(loss, naive)))(h)
    chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------
# Ignored tokens and bad labels.


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_a_chunk_of_ignored_tokens(reduction):
    """Every token of one chunk ignored: that chunk contributes nothing."""
    x, kernel, bias, labels = _inputs()
    labels = labels.reshape(-1).at[8:16].set(-100).reshape(N_SHAPE)
    cot = _cot(reduction)
    kw = dict(ALL, reduction=reduction)
    assert_same(*fused_and_naive(x, kernel, bias, labels, cot, chunk_size=8, **kw))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_all_tokens_ignored(reduction):
    """Loss 0 and zero gradients (PyTorch's mean would be NaN)."""
    x, kernel, bias, _ = _inputs()
    labels = jnp.full(N_SHAPE, -100, jnp.int32)
    out, *grads = value_and_grads(
        fused,
        x,
        kernel,
        bias,
        labels,
        _cot(reduction),
        chunk_size=8,
        **dict(ALL, reduction=reduction),
    )
    chex.assert_trees_all_equal(out, jnp.zeros_like(out))
    chex.assert_trees_all_equal(grads, jax.tree.map(jnp.zeros_like, grads))


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_out_of_range_label_is_nan(reduction):
    x, kernel, _, labels = _inputs()
    labels = labels.at[0, 1].set(V)
    out = jax.jit(
        functools.partial(
            jaxloss.linear_softmax_cross_entropy, reduction=reduction, ignore_index=-100
        )
    )(x, kernel, labels)
    assert np.isnan(np.asarray(out)).sum() == 1  # the one token, or the whole mean
    if reduction == "none":
        assert np.isnan(out[0, 1]) and np.isfinite(np.delete(np.asarray(out).ravel(), 1)).all()


def test_checked_names_the_labels():
    x, kernel, _, labels = _inputs()
    fn = jaxloss.checked(jaxloss.linear_softmax_cross_entropy)
    with pytest.raises(ValueError, match=r"`labels` must be a class index in \[0, 50\) or -100"):
        fn(x, kernel, labels.at[0, 0].set(77), ignore_index=-100)


# --------------------------------------------------------------------------
# Transformations.


def test_vmap_over_a_batch_axis():
    """vmap of the loss and of its gradients equals the batched computation."""
    x, kernel, bias, labels = _inputs()

    def per_row(xr, yr):  # one row of tokens: value and gradients
        f = lambda xr, k, b: jaxloss.linear_softmax_cross_entropy(  # noqa: E731
            xr, k, yr, bias=b, reduction="mean", chunk_size=4, ignore_index=-100
        )
        return jax.value_and_grad(f, argnums=(0, 1, 2))(xr, kernel, bias)

    got = jax.jit(jax.vmap(per_row))(x, labels)
    want = [jax.jit(per_row)(x[i], labels[i]) for i in range(N_SHAPE[0])]
    want = jax.tree.map(lambda *a: jnp.stack(a), *want)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)

    # And "none": vmap over the leading axis equals the [3, 13] call.
    none = lambda xr, yr: jaxloss.linear_softmax_cross_entropy(  # noqa: E731
        xr, kernel, yr, chunk_size=5, ignore_index=-100
    )
    chex.assert_trees_all_close(
        jax.jit(jax.vmap(none))(x, labels), jax.jit(none)(x, labels), rtol=1e-6
    )


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_checkpoint(reduction):
    x, kernel, bias, labels = _inputs()
    cot = _cot(reduction)
    kw = dict(ALL, reduction=reduction, chunk_size=8)
    remat = jax.checkpoint(functools.partial(fused, **kw))

    def both(*a):
        return value_and_grads(fused, *a, **kw), jax.grad(lambda *a: remat(*a)[0], (0, 1, 2))(*a)

    plain, got = jax.jit(both)(x, kernel, bias, labels, cot)
    chex.assert_trees_all_close(got, plain[1:], rtol=1e-6, atol=1e-7)


def test_no_retrace():
    x, kernel, _, labels = _inputs()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, kernel, labels, e):
        return jaxloss.linear_softmax_cross_entropy(x, kernel, labels, label_smoothing=e)

    chex.clear_trace_counter()
    for e in (0.1, 0.2, 0.3):
        f(x, kernel, labels, jnp.float32(e))


# --------------------------------------------------------------------------
# Half precision.


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_half_precision(dtype, reduction):
    """float32 loss equal to float32 on the rounded inputs; gradients in the
    input dtypes, finite, equal to bf16/fp16 rounding."""
    x, kernel, bias, labels = _inputs(dtype=dtype)
    cot = _cot(reduction)
    kw = dict(ALL, reduction=reduction, chunk_size=8)
    out, dx, dk, db = value_and_grads(fused, x, kernel, bias, labels, cot, **kw)
    assert out.dtype == jnp.float32
    assert (dx.dtype, dk.dtype, db.dtype) == (dtype, dtype, dtype)
    chex.assert_tree_all_finite((out, dx, dk, db))
    up = [a.astype(jnp.float32) for a in (x, kernel, bias)]
    want = value_and_grads(naive, *up, labels, cot, **kw)
    chex.assert_trees_all_close(out, want[0], rtol=1e-5, atol=1e-6)
    got = [g.astype(jnp.float32) for g in (dx, dk, db)]
    # The chunk's logit gradients enter the two backward matmuls in `dtype`.
    chex.assert_trees_all_close(got, list(want[1:]), rtol=2e-2, atol=2e-2)


def test_half_precision_large_values_stay_finite():
    x, kernel, bias, labels = _inputs(dtype=jnp.bfloat16)
    x = x * 300  # logits of order 1e4: exp would overflow without the max
    out = value_and_grads(
        fused, x, kernel, bias, labels, 1.0, chunk_size=8, **dict(ALL, reduction="mean")
    )
    chex.assert_tree_all_finite(out)


# --------------------------------------------------------------------------
# Memory: never the [N, V] logits. Compiled memory analysis is deterministic.


def _temp_bytes(fn, n, d, v, dtype=jnp.float32):
    x = jax.ShapeDtypeStruct((n, d), dtype)
    kernel = jax.ShapeDtypeStruct((d, v), dtype)
    labels = jax.ShapeDtypeStruct((n,), jnp.int32)
    compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(x, kernel, labels).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_temp_memory_is_a_fraction_of_the_logits(reduction):
    """Peak temporary memory is the float32 kernel gradient (D * V * 4 bytes,
    1/64 of the logits here) plus about two chunks of logits (the default
    chunk of 256 tokens is 1/16 of them), never the [N, V] logits."""
    n, d, v = 4096, 64, 16384
    logits = n * v * 4

    def fused_loss(x, kernel, labels, chunk_size=None):
        out = jaxloss.linear_softmax_cross_entropy(
            x, kernel, labels, reduction=reduction, chunk_size=chunk_size
        )
        return jnp.mean(out)

    def naive_loss(x, kernel, labels):
        return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(x @ kernel, labels))

    assert _temp_bytes(naive_loss, n, d, v) >= logits  # the measure sees the logits
    assert _temp_bytes(fused_loss, n, d, v) <= logits / 6
    small = functools.partial(fused_loss, chunk_size=32)
    assert _temp_bytes(small, n, d, v) <= logits / 20


def test_temp_memory_at_the_target_shape_and_its_growth_with_n():
    """Value and gradients of the mean at N=4096, D=512, V=32768, compiled:
    below 1/8 of the [N, V] float32 logits: one chunk of logits (256
    tokens; their gradient is written over them, the labels' logits being
    read from the kernel) and the [N, D] input gradient kept for the
    backward pass; the kernel gradient is accumulated in place, in the
    output. With a fixed chunk, more tokens add only their input gradient."""
    d, v = 512, 32768

    def mean(x, kernel, labels):
        return jaxloss.linear_softmax_cross_entropy(x, kernel, labels, reduction="mean")

    temp = _temp_bytes(mean, 4096, d, v)
    assert temp <= 4096 * v * 4 / 8
    assert temp <= 1.1 * (256 * v * 4 + 4096 * d * 4), temp  # one chunk, not two
    grown = _temp_bytes(mean, 16384, d, v) - _temp_bytes(mean, 4096, d, v)
    assert grown <= 1.05 * (16384 - 4096) * d * 4, grown


def test_tiled_temp_memory_at_a_large_vocabulary():
    """At V = 262144 (N = 4096, D = 512: 4 GiB of logits) the default tiles
    keep the compiled temporary memory of the mean and of reduction="none"
    under 1/64 of the logits and 1/3 of 128-token whole rows, and more
    tokens add less than their input gradient."""
    n, d, v = 4096, 512, 262144

    def loss(reduction, chunk_size=None):
        def f(x, kernel, labels):
            out = jaxloss.linear_softmax_cross_entropy(
                x, kernel, labels, reduction=reduction, chunk_size=chunk_size
            )
            return jnp.mean(out)

        return f

    rows = _temp_bytes(loss("mean", 128), n, d, v)
    for reduction in ("mean", "none"):
        tiled = _temp_bytes(loss(reduction), n, d, v)
        assert tiled <= n * v * 4 / 64 and tiled <= rows / 3, (reduction, tiled, rows)
    grown = _temp_bytes(loss("mean"), 4 * n, d, v) - _temp_bytes(loss("mean"), n, d, v)
    assert grown <= 3 * n * d * 4, grown


def test_cpu_accumulation_equals_the_plain_core():
    """On XLA:CPU the kernel gradient is accumulated a slice of rows at a
    time (`_cpu.accumulate_product`: 32 rows of D at V = 65536); GPUs and
    TPUs run the plain `acc + x.T @ du`. Both give the same gradients, with
    a D that is not a multiple of the slice."""
    from jaxloss._core import plain_core

    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.normal(size=(24, 80)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(80, 65536)) * 0.1, jnp.float32)
    labels = jnp.asarray(rng.integers(0, kernel.shape[1], size=24), jnp.int32)

    def grads():  # a fresh function per trace: no cached program is reused
        return jax.jit(
            jax.grad(
                lambda x, k: jaxloss.linear_softmax_cross_entropy(
                    x, k, labels, reduction="mean", chunk_size=8
                ),
                argnums=(0, 1),
            )
        )

    fast = grads()(x, kernel)
    with plain_core():
        plain = grads()(x, kernel)
    chex.assert_trees_all_close(fast, plain, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------
# Errors name the argument and the shapes.


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(kernel=jnp.zeros((5, V))), r"share D; got inputs \(3, 13, 16\) and kernel \(5, 50\)"),
        (dict(labels=jnp.zeros((3, 12), jnp.int32)), r"`labels` has shape \(3, 12\)"),
        (dict(bias=jnp.zeros((V + 1,))), r"`bias` must have shape \(50,\)"),
        (dict(chunk_size=0), r"`chunk_size` must be a positive int"),
        (dict(label_smoothing=1.5), r"`label_smoothing` must lie in \[0, 1\]"),
        (dict(z_loss=-1.0), r"`z_loss` must be non-negative"),
        (dict(logit_soft_cap=0.0), r"`logit_soft_cap` must"),
        (dict(reduction="avg"), r"`reduction` must be one of"),
        (dict(where=jnp.ones((3, 13, 50), bool)), r"`where` has shape \(3, 13, 50\)"),
    ],
)
def test_errors(change, match):
    x, kernel, bias, labels = _inputs()
    kw = dict(inputs=x, kernel=kernel, labels=labels)
    kw.update(change)
    args = [kw.pop(k) for k in ("inputs", "kernel", "labels")]
    with pytest.raises(ValueError, match=match):
        jaxloss.linear_softmax_cross_entropy(*args, **kw)


def test_type_errors():
    x, kernel, _, labels = _inputs()
    with pytest.raises(TypeError, match="`labels` must hold integer class indices"):
        jaxloss.linear_softmax_cross_entropy(x, kernel, labels.astype(jnp.float32))
    with pytest.raises(TypeError, match="`kernel` must have a floating-point dtype"):
        jaxloss.linear_softmax_cross_entropy(x, kernel.astype(jnp.int32), labels)


# --------------------------------------------------------------------------
# Gradient accumulation with a global normalizer, and the statistics.


@pytest.mark.parametrize("fused_loss", [True, False], ids=["fused", "integer_labels"])
def test_micro_batches_with_the_global_count_equal_the_full_batch(fused_loss):
    """Four micro-batches, each divided by the whole batch's count of kept
    tokens, sum to the full batch's mean, in value and gradients (the
    micro-batches keep different numbers of tokens)."""
    x, kernel, bias, labels = _inputs(seed=3, n_shape=(8, 5))
    count = jnp.sum(labels != -100).astype(jnp.float32)

    def loss(x, kernel, labels, normalizer=None):
        kw = dict(ignore_index=-100, label_smoothing=0.1, reduction="mean", normalizer=normalizer)
        if fused_loss:
            return jaxloss.linear_softmax_cross_entropy(x, kernel, labels, chunk_size=3, **kw)
        return jaxloss.softmax_cross_entropy_with_integer_labels(x @ kernel, labels, **kw)

    @jax.jit
    def both(x, kernel, labels):
        full = jax.value_and_grad(loss, argnums=(0, 1))(x, kernel, labels)
        parts = [
            jax.value_and_grad(loss, argnums=(0, 1))(x[i : i + 2], kernel, labels[i : i + 2], count)
            for i in range(0, 8, 2)
        ]
        value = sum(p[0] for p in parts)
        dx = jnp.concatenate([p[1][0] for p in parts])
        dk = sum(p[1][1] for p in parts)
        return full, (value, (dx, dk))

    full, accumulated = both(x, kernel, labels)
    chex.assert_trees_all_close(accumulated, full, rtol=1e-5, atol=1e-7)


def test_normalizer_only_for_the_mean():
    x, kernel, _, labels = _inputs()
    with pytest.raises(ValueError, match='`normalizer` divides the sum of reduction="mean"'):
        jaxloss.linear_softmax_cross_entropy(x, kernel, labels, reduction="sum", normalizer=3.0)
    with pytest.raises(ValueError, match="`normalizer` must be a scalar"):
        jaxloss.softmax_cross_entropy_with_integer_labels(
            x @ kernel, labels, reduction="mean", normalizer=jnp.ones(2)
        )


@pytest.mark.parametrize("tiled", [False, True], ids=["rows", "tiles"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_stats_from_the_same_pass(reduction, tiled, tiles):
    """logsumexp, the z-loss term, the label's log-probability and whether
    its logit is the largest, against float64 NumPy on the materialised
    logits; ignored tokens hold 0 / False; the loss is unchanged. Whole rows
    in chunks of 7, or 5 tiles of 5 runs of 2 columns in chunks of 4."""
    if tiled:
        assert tiles(4, 12, 2)(V, 39, None) == (4, (5, 2))
    x, kernel, bias, labels = _inputs(seed=4)
    kw = dict(bias=bias, ignore_index=-100, z_loss=1e-3, logit_soft_cap=5.0, reduction=reduction)
    kw["chunk_size"] = None if tiled else 7
    plain = jaxloss.linear_softmax_cross_entropy(x, kernel, labels, **kw)
    loss, stats = jaxloss.linear_softmax_cross_entropy(x, kernel, labels, return_stats=True, **kw)
    chex.assert_trees_all_close(loss, plain)
    z = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64)
    z = 5.0 * np.tanh(z / 5.0)
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    y = np.asarray(labels)
    kept = y != -100
    z_y = np.take_along_axis(z, np.where(kept, y, 0)[..., None], -1)[..., 0]
    np.testing.assert_allclose(stats.logsumexp, np.where(kept, lse, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.z_loss, np.where(kept, 1e-3 * lse**2, 0), rtol=1e-5)
    np.testing.assert_allclose(
        stats.target_log_prob, np.where(kept, z_y - lse, 0), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(stats.correct, kept & (z.argmax(-1) == y))
    assert stats.correct.dtype == jnp.bool_
    # No gradient flows through the statistics.
    g = jax.grad(
        lambda x: jaxloss.linear_softmax_cross_entropy(x, kernel, labels, return_stats=True, **kw)[
            1
        ].logsumexp.sum()
    )(x)
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_weights_of_ignored_tokens_may_hold_anything(reduction):
    """A per-token weight of NaN or inf where the label is ignored (or `where`
    masks the token) changes neither the loss nor any gradient."""
    x, kernel, bias, labels = _inputs(seed=5)
    rng = np.random.default_rng(5)
    w = jnp.asarray(rng.uniform(0.5, 1.5, size=labels.shape), jnp.float32)
    keep = jnp.asarray(rng.uniform(size=labels.shape) > 0.2)
    hidden = (labels == -100) | ~keep
    poisoned = jnp.where(hidden, jnp.nan, w).at[0, 0].set(jnp.inf)
    poisoned = jnp.where(hidden, poisoned, w)

    @jax.jit
    def f(weight):
        def total(x, kernel, weight):
            out = jaxloss.linear_softmax_cross_entropy(
                x, kernel, labels, weight=weight, where=keep, ignore_index=-100,
                reduction=reduction, chunk_size=7,
            )  # fmt: skip
            return jnp.sum(out), out

        return jax.grad(total, argnums=(0, 1, 2), has_aux=True)(x, kernel, weight)

    (dx, dk, dw), out = f(poisoned)
    (dx0, dk0, dw0), out0 = f(jnp.where(hidden, 0.0, w))
    chex.assert_trees_all_close((out, dx, dk), (out0, dx0, dk0))
    np.testing.assert_array_equal(jnp.where(hidden, dw, 0.0), 0.0)
    chex.assert_tree_all_finite((out, dx, dk, dw))
