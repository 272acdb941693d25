"""The pairwise contrastive losses against float64 formulas on materialised
logits: values and gradients (embeddings, temperature, bias, pos_weight,
gamma, smoothing) for every option, chunked equal to unchunked, masks equal
to boolean indexing, transforms, extremes, half precision and the compiled
memory bound. Golden values from open_clip are fixtures (tests/data); the
sharded ring is tested in test_sharding.py."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

B, M, D = 10, 13, 4


def _unit(rng, *shape):
    v = rng.normal(size=shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _sigmoid64(x, y, t, b, pos, keep_x, keep_y, pos_weight=1.0, gamma=0.0):
    """Per-row SigLIP loss from the [B, M] logits, float64, plain formulas."""
    z = t * x @ y.T + b
    p = jax.nn.sigmoid(z)
    p_t = jnp.where(pos, p, 1 - p)
    term = -jnp.where(pos, jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)) * (1 - p_t) ** gamma
    term = jnp.where(pos, pos_weight * term, term)
    valid = keep_x[:, None] & keep_y[None, :]
    return jnp.where(keep_x, jnp.sum(jnp.where(valid, term, 0), 1), 0)


def _softmax64(x, y, t, e, keep):
    """Per-pair CLIP loss, float64: PyTorch's smoothed cross-entropy over the
    kept rows and columns, averaged over the two directions."""
    z = t * x @ y.T
    k = jnp.sum(keep, dtype=x.dtype)
    valid = keep[:, None] & keep[None, :]
    target = (1 - e) * jnp.eye(len(x)) + e / k

    def ce(z):
        lp = jax.nn.log_softmax(jnp.where(valid, z, -1e9), 1)  # dropped: exp(-1e9) = 0
        return -jnp.sum(jnp.where(valid, target, 0) * lp, 1)

    return jnp.where(keep, (ce(z) + ce(z.T)) / 2, 0)


def _reduce(per_row, keep, reduction, cot):
    if reduction == "mean":
        return jnp.sum(per_row) / jnp.sum(keep, dtype=per_row.dtype)
    if reduction == "sum":
        return jnp.sum(per_row)
    return jnp.sum(per_row * cot)


SIGMOID_OPTIONS = [
    dict(),
    dict(pos_weight=2.5),
    dict(gamma=1.5),
    dict(pos_weight=0.5, gamma=2.0),
]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("opts", SIGMOID_OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_sigmoid_values_and_gradients(opts, reduction):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x, y = jnp.asarray(_unit(rng, B, D)), jnp.asarray(_unit(rng, M, D))
        labels = jnp.asarray(rng.integers(0, 4, size=B))  # several positives per row
        y_labels = jnp.asarray(rng.integers(0, 4, size=M))
        keep_x = jnp.asarray(rng.uniform(size=B) > 0.2)
        keep_y = jnp.asarray(rng.uniform(size=M) > 0.2)
        cot = jnp.asarray(rng.normal(size=B))
        pos = labels[:, None] == y_labels[None, :]
        hyper = dict(temperature=4.0, bias=-1.5, **opts)

        def ref(x, y, h):
            rows = _sigmoid64(x, y, h["temperature"], h["bias"], pos, keep_x, keep_y,
                              h.get("pos_weight", 1.0), h.get("gamma", 0.0))  # fmt: skip
            return _reduce(rows, keep_x, reduction, cot)

        @jax.jit
        def ours(x, y, h):
            def f(x, y, h):
                out = jaxloss.sigmoid_pairwise_loss(
                    x, y, labels=labels, y_labels=y_labels, where=keep_x, y_where=keep_y,
                    reduction=reduction, chunk_size=3, **h,
                )  # fmt: skip
                return out if reduction != "none" else jnp.sum(out * cot)

            return jax.value_and_grad(f, argnums=(0, 1, 2))(x, y, h)

        h = {k: jnp.asarray(v, jnp.float64) for k, v in hyper.items()}
        want = jax.value_and_grad(ref, argnums=(0, 1, 2))(x, y, h)
        chex.assert_trees_all_close(ours(x, y, h), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("e", [0.0, 0.2])
def test_softmax_values_and_gradients(e, reduction):
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        x, y = jnp.asarray(_unit(rng, B, D)), jnp.asarray(_unit(rng, B, D))
        keep = jnp.asarray(rng.uniform(size=B) > 0.2)
        cot = jnp.asarray(rng.normal(size=B))

        def ref(x, y, t, e):
            return _reduce(_softmax64(x, y, t, e, keep), keep, reduction, cot)

        @jax.jit
        def ours(x, y, t, e):
            def f(x, y, t, e):
                out = jaxloss.softmax_pairwise_loss(
                    x, y, temperature=t, label_smoothing=e, where=keep, reduction=reduction,
                    chunk_size=4,
                )  # fmt: skip
                return out if reduction != "none" else jnp.sum(out * cot)

            return jax.value_and_grad(f, argnums=(0, 1, 2, 3))(x, y, t, e)

        args = (x, y, jnp.float64(6.0), jnp.float64(e))
        want = jax.value_and_grad(ref, argnums=(0, 1, 2, 3))(*args)
        chex.assert_trees_all_close(ours(*args), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sigmoid_pairwise_loss", "softmax_pairwise_loss"])
def test_chunks_and_masks_change_nothing(name):
    """Every chunk size gives the unchunked result, and `where` gives the loss
    of the kept pairs alone."""
    fn = getattr(jaxloss, name)
    rng = np.random.default_rng(2)
    x = jnp.asarray(_unit(rng, 12, 6), jnp.float32)
    y = jnp.asarray(_unit(rng, 12, 6), jnp.float32)
    f = jax.jit(
        lambda x, y, chunk: jax.value_and_grad(
            lambda x, y: fn(x, y, temperature=5.0, reduction="mean", chunk_size=chunk),
            argnums=(0, 1),
        )(x, y),
        static_argnums=2,
    )
    whole = f(x, y, 12)
    for chunk in (1, 5, 7, 64):
        chex.assert_trees_all_close(f(x, y, chunk), whole, rtol=2e-6, atol=1e-7)
    keep = np.asarray(rng.uniform(size=12) > 0.4)
    keep[0] = True
    masked = fn(x, y, temperature=5.0, reduction="mean", where=jnp.asarray(keep))
    alone = fn(x[keep], y[keep], temperature=5.0, reduction="mean")
    np.testing.assert_allclose(masked, alone, rtol=1e-6)


def test_labels_give_several_positives_and_a_different_y_size():
    """Two captions per image: y's rows point at their image."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(_unit(rng, 4, 5), jnp.float32)
    y = jnp.asarray(_unit(rng, 8, 5), jnp.float32)
    image_of_caption = jnp.array([0, 0, 1, 1, 2, 2, 3, 3])
    out = jaxloss.sigmoid_pairwise_loss(
        x, y, temperature=3.0, bias=-1.0, labels=jnp.arange(4), y_labels=image_of_caption
    )
    z = 3.0 * np.asarray(x, np.float64) @ np.asarray(y, np.float64).T - 1.0
    sign = np.where(np.arange(4)[:, None] == np.asarray(image_of_caption)[None, :], 1, -1)
    np.testing.assert_allclose(out, np.sum(np.log1p(np.exp(-sign * z)), 1), rtol=1e-6)


@pytest.mark.parametrize("name", ["sigmoid_pairwise_loss", "softmax_pairwise_loss"])
def test_vmap_over_groups_jit_and_checkpoint(name):
    fn = getattr(jaxloss, name)
    rng = np.random.default_rng(4)
    x = jnp.asarray(_unit(rng, 3, 6, 5), jnp.float32)  # 3 independent groups
    y = jnp.asarray(_unit(rng, 3, 6, 5), jnp.float32)

    def f(x, y):
        return fn(x, y, temperature=4.0, reduction="mean", chunk_size=4)

    mapped, looped = jax.jit(
        lambda x, y: (
            jax.vmap(jax.value_and_grad(f, argnums=(0, 1)))(x, y),
            [jax.value_and_grad(f, argnums=(0, 1))(x[g], y[g]) for g in range(3)],
        )
    )(x, y)
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *looped)
    chex.assert_trees_all_close(mapped, stacked, rtol=1e-6, atol=1e-7)
    remat, plain = jax.jit(
        lambda x, y: (jax.grad(jax.checkpoint(f))(x[0], y[0]), jax.grad(f)(x[0], y[0]))
    )(x, y)
    chex.assert_trees_all_close(remat, plain, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", ["sigmoid_pairwise_loss", "softmax_pairwise_loss"])
def test_extreme_logits_and_half_precision(name, dtype):
    """Logits of about +-1e30 (a temperature of 1e30 on unit vectors; 6e4
    in float16 embeddings scaled instead): finite loss and gradients, the
    loss in float32 and each gradient in its input's dtype."""
    fn = getattr(jaxloss, name)
    rng = np.random.default_rng(5)
    x = jnp.asarray(_unit(rng, 6, 4), dtype)
    y = jnp.asarray(_unit(rng, 6, 4), dtype)
    t = 1e30 if dtype != jnp.float16 else 6e4
    kw = {"bias": -10.0} if name.startswith("sigmoid") else {}
    out, grads = jax.jit(
        jax.value_and_grad(
            lambda x, y, t: fn(x, y, temperature=t, reduction="mean", chunk_size=4, **kw),
            argnums=(0, 1, 2),
        )
    )(x, y, jnp.float32(t))
    chex.assert_tree_all_finite((out, grads))
    assert out.dtype == jnp.float32
    assert grads[0].dtype == dtype and grads[1].dtype == dtype
    # Half precision equals float32 on the same (rounded) embeddings.
    up = fn(x.astype(jnp.float32), y.astype(jnp.float32), temperature=3.0, reduction="mean", **kw)
    np.testing.assert_allclose(fn(x, y, temperature=3.0, reduction="mean", **kw), up, rtol=1e-6)


@pytest.mark.parametrize("name", ["sigmoid_pairwise_loss", "softmax_pairwise_loss"])
def test_compiled_memory_is_a_fraction_of_the_logits(name):
    """Value and gradients of the mean, compiled (not run): temp memory below
    1/16 of the [B, B] float32 logits at B = 16384, D = 512 with the default
    chunk, where the naive program needs more than the logits; and with a
    fixed chunk, the memory grows with B only through the [B, D] gradient."""
    fn = getattr(jaxloss, name)

    def temp(f, b, d):
        x = jax.ShapeDtypeStruct((b, d), jnp.float32)
        compiled = jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(x, x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    b, d = 16384, 512
    ours = temp(lambda x, y: fn(x, y, temperature=10.0, reduction="mean"), b, d)
    naive = temp(
        lambda x, y: jaxloss.softmax_cross_entropy_with_integer_labels(
            10.0 * x @ y.T, jnp.arange(b), reduction="mean"
        ),
        b, d,
    )  # fmt: skip
    assert naive > b * b * 4
    assert ours < b * b * 4 / 16, ours
    # A fixed chunk of 64 rows: a few blocks of 64 x B and [B, D] arrays, so
    # linear in B (the logits grow as B ** 2).
    temps = []
    for b in (2048, 8192):
        temps.append(
            temp(lambda x, y: fn(x, y, temperature=10.0, reduction="mean", chunk_size=64), b, 8)
        )
        assert temps[-1] < 4 * 64 * b * 4 + 4 * b * 8 * 4, (b, temps[-1])
    assert temps[1] < 4.5 * temps[0], temps


def test_errors_name_the_arguments():
    x = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match="same embedding size D"):
        jaxloss.sigmoid_pairwise_loss(x, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="pass `labels`"):
        jaxloss.sigmoid_pairwise_loss(x, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="batches must match"):
        jaxloss.softmax_pairwise_loss(x, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="`x` must be a \\[B, D\\] batch"):
        jaxloss.softmax_pairwise_loss(jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(ValueError, match="`chunk_size` must be a positive int"):
        jaxloss.softmax_pairwise_loss(x, x, chunk_size=0)
    with pytest.raises(ValueError, match="`y_labels`"):
        jaxloss.sigmoid_pairwise_loss(x, jnp.zeros((5, 3)), labels=jnp.arange(4))
    with pytest.raises(ValueError, match="`gamma` must be non-negative"):
        jaxloss.sigmoid_pairwise_loss(x, x, gamma=-1.0)
    with pytest.raises(TypeError, match="`labels` must hold integer"):
        jaxloss.sigmoid_pairwise_loss(x, x, labels=jnp.zeros(4))


def test_checked_skips_masked_rows():
    """`checked` finds NaN in kept rows only: padding rows may hold anything."""
    x = jnp.ones((4, 3)).at[3, 0].set(jnp.nan)
    y = jnp.ones((4, 3)).at[2, 1].set(jnp.nan)
    keep = jnp.array([True, True, False, False])
    for fn in (jaxloss.sigmoid_pairwise_loss, jaxloss.softmax_pairwise_loss):
        out = jaxloss.checked(fn)(x, y, where=keep, reduction="mean")
        assert np.isfinite(out)
        with pytest.raises(ValueError, match="`x` contains NaN"):
            jaxloss.checked(fn)(x, y, where=keep.at[3].set(True))
    with pytest.raises(ValueError, match="`y` contains NaN"):
        jaxloss.checked(jaxloss.sigmoid_pairwise_loss)(x, y, where=keep, y_where=~keep)
