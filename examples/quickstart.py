"""Quickstart: a softmax classifier and a multi-label head trained with jaxloss.

Runs on a CPU in a few seconds with nothing but jax, numpy and jaxloss; the
data are made here (three Gaussian blobs), so nothing is downloaded.

    python examples/quickstart.py
"""

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss


def make_data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    y = rng.integers(0, 3, size=n)
    x = centers[y] + rng.normal(size=(n, 2))
    # Multi-label targets from the same points: "x > 0" and "y > 0".
    multi = (x > 0).astype(np.float32)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32), jnp.asarray(multi)


def loss_fn(params, x, y, multi):
    logits = x @ params["w"] + params["b"]  # [N, 3] class scores
    heads = x @ params["v"] + params["c"]  # [N, 2] multi-label scores
    ce = jaxloss.softmax_cross_entropy_with_integer_labels(
        logits, y, label_smoothing=0.05, reduction="mean"
    )
    bce = jaxloss.sigmoid_binary_cross_entropy(
        heads, multi, pos_weight=jnp.array([1.0, 2.0]), reduction="mean"
    )
    return ce + bce, (logits, heads)


def main():
    x, y, multi = make_data()
    x_tr, y_tr, m_tr = x[:500], y[:500], multi[:500]
    x_te, y_te, m_te = x[500:], y[500:], multi[500:]
    key_w, key_v = jax.random.split(jax.random.key(0))
    params = {
        "w": 0.01 * jax.random.normal(key_w, (2, 3)),
        "b": jnp.zeros(3),
        "v": 0.01 * jax.random.normal(key_v, (2, 2)),
        "c": jnp.zeros(2),
    }
    step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    for epoch in range(201):
        (loss, _), grads = step(params, x_tr, y_tr, m_tr)
        params = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
        if epoch % 50 == 0:
            print(f"step {epoch:3d}  train loss {float(loss):.4f}")
    _, (logits, heads) = loss_fn(params, x_te, y_te, m_te)
    accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y_te))
    label_acc = float(jnp.mean((heads > 0) == (m_te > 0.5)))
    print(f"test accuracy {accuracy:.3f}   multi-label accuracy {label_acc:.3f}")
    # jaxloss.checked adds runtime value checks while debugging:
    try:
        jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)(logits, y_te + 3)
    except ValueError as err:
        print(f"checked() caught a bad label: {err}")
    assert accuracy > 0.85, accuracy


if __name__ == "__main__":
    main()
