"""Generate the golden fixtures in tests/data from the real systems.

    pip install "torch==2.13.0+cpu" && pip install -e ".[fixtures]"
    pip install --no-deps timm open-clip-torch   # their losses need only torch
    KERAS_BACKEND=jax python tests/make_fixtures.py

Reference values come from PyTorch (float64 on the float32 inputs), Keras 3
(JAX backend, float32), scikit-learn, kornia, optax, timm, entmax, MONAI and
open_clip, never from jaxloss.
Each case records the jaxloss call that must reproduce it: function name,
array arguments, keyword options, the expected value, and where the reference
system gives one, the gradient with respect to the first argument (of
``sum(loss * cotangent)`` for ``reduction="none"``). CI reads the .npz files
and needs none of these libraries.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import torch
import torch.nn.functional as F

DATA = pathlib.Path(__file__).parent / "data"
rng = np.random.default_rng(20261121)


class Cases:
    """Collects cases and writes them to one .npz with a JSON manifest."""

    def __init__(self, name: str, source: str):
        self.name, self.source, self.meta, self.arrays = name, source, [], {}

    def add(self, fn, args, expected, grad=None, cot=None, wrt=0, **kwargs):
        """`grad` is the gradient with respect to `wrt`: the index of a
        positional argument, or the name of a keyword option."""
        i = len(self.meta)
        case = {"id": f"{self.name}-{i}", "fn": fn, "source": self.source}
        if wrt != 0:
            case["wrt"] = wrt
        case["args"] = []
        for j, a in enumerate(args):
            self.arrays[f"{i}/arg{j}"] = np.asarray(a)
            case["args"].append(f"{i}/arg{j}")
        case["kwargs"] = {}
        for k, v in kwargs.items():
            if isinstance(v, np.ndarray):
                self.arrays[f"{i}/{k}"] = v
                v = "@" + f"{i}/{k}"
            case["kwargs"][k] = v
        self.arrays[f"{i}/expected"] = np.asarray(expected, np.float64)
        if grad is not None:
            self.arrays[f"{i}/grad"] = np.asarray(grad, np.float64)
            if cot is not None:
                self.arrays[f"{i}/cot"] = np.asarray(cot, np.float32)
        self.meta.append(case)

    def save(self):
        DATA.mkdir(exist_ok=True)
        np.savez_compressed(
            DATA / f"{self.name}.npz", meta=np.array(json.dumps(self.meta)), **self.arrays
        )
        print(f"{self.name}: {len(self.meta)} cases")


def f32(a):
    return np.asarray(a, np.float32)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


def torch_grad_wrt(fn, tensors, wrt, reduction):
    """Value of `fn(**tensors)` and the gradient of sum(value * cot) with
    respect to `tensors[wrt]` (float64 tensors made from float32 arrays)."""
    ts = {k: (None if v is None else t64(v, grad=k == wrt)) for k, v in tensors.items()}
    out = fn(**ts)
    cot = None
    if reduction == "none":
        cot = f32(rng.normal(size=out.shape))
        (out * t64(cot)).sum().backward()
    else:
        out.backward()
    return out.detach().numpy(), ts[wrt].grad.numpy(), cot


def torch_value_grad(fn, x, reduction):
    """Value of `fn(x)` and the gradient of sum(value * cot) (or of value)."""
    return torch_grad_wrt(lambda x: fn(x), {"x": x}, "x", reduction)


# --------------------------------------------------------------------------
# PyTorch: BCELoss and BCEWithLogitsLoss.


def binary_torch():
    c = Cases("torch_binary", "torch 2.13.0")
    n, k = 6, 4
    probs = f32(rng.uniform(0.02, 0.98, size=(n, k)))
    hard = f32(rng.integers(0, 2, size=(n, k)))
    soft = f32(rng.uniform(0, 1, size=(n, k)))
    w_full, w_class = f32(rng.uniform(0.1, 2, size=(n, k))), f32(rng.uniform(0.1, 2, size=(k,)))
    logits = f32(rng.normal(size=(n, k)) * 3)
    pos_weight = f32(rng.uniform(0.5, 4, size=(k,)))
    for red in ("none", "mean", "sum"):
        for labels in (hard, soft):
            for w in (None, w_full, w_class):
                for e in (0.0, 0.1):
                    target = labels * (1 - e) + e / 2  # Keras' smoothing, applied first

                    def bce(p, target=target, w=w, red=red):
                        wt = None if w is None else t64(np.broadcast_to(w, p.shape))
                        return F.binary_cross_entropy(p, t64(target), weight=wt, reduction=red)

                    v, g, cot = torch_value_grad(bce, probs, red)
                    kw = dict(reduction=red, label_smoothing=e)
                    if w is not None:
                        kw["weight"] = w
                    c.add("binary_cross_entropy", [probs, labels], v, g, cot, **kw)
                    for pw in (None, pos_weight):

                        def bcel(x, target=target, w=w, red=red, pw=pw):
                            wt = None if w is None else t64(np.broadcast_to(w, x.shape))
                            pwt = None if pw is None else t64(pw)
                            return F.binary_cross_entropy_with_logits(
                                x, t64(target), weight=wt, pos_weight=pwt, reduction=red
                            )

                        v, g, cot = torch_value_grad(bcel, logits, red)
                        kw2 = dict(kw)
                        if pw is not None:
                            kw2["pos_weight"] = pw
                        c.add("sigmoid_binary_cross_entropy", [logits, labels], v, g, cot, **kw2)
    # Clamping at p = 0 and p = 1: loss 100, PyTorch's finite gradient.
    p_edge = f32([0.0, 1.0, 0.0, 1.0, 0.5, 1e-30])
    y_edge = f32([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    v, g, cot = torch_value_grad(
        lambda p: F.binary_cross_entropy(p, t64(y_edge), reduction="sum"), p_edge, "sum"
    )
    c.add("binary_cross_entropy", [p_edge, y_edge], v, g, cot, reduction="sum")
    # Large logits, float32: PyTorch is stable there too.
    x_big = f32([1e4, -1e4, 1e4, -1e4, 80.0, -80.0, 3e38, -3e38])
    y_big = f32([1.0, 1.0, 0.0, 0.0, 0.3, 0.7, 1.0, 1.0])
    v, g, cot = torch_value_grad(
        lambda x: F.binary_cross_entropy_with_logits(x, t64(y_big), reduction="none"),
        x_big,
        "none",
    )
    c.add("sigmoid_binary_cross_entropy", [x_big, y_big], v, g, cot, reduction="none")
    # Seed examples users compare with.
    x = f32([[-0.8858, 0.3241, 0.9456], [1.4887, 1.8076, -0.0565], [-1.6529, -1.8539, 0.6756]])
    y = f32([[0, 1, 1], [1, 1, 1], [0, 0, 0]])
    v, g, cot = torch_value_grad(lambda x: F.binary_cross_entropy_with_logits(x, t64(y)), x, "mean")
    c.add("sigmoid_binary_cross_entropy", [x, y], v, g, cot, reduction="mean")
    v, g, cot = torch_value_grad(
        lambda x: F.binary_cross_entropy(torch.sigmoid(x), t64(y)), x, "mean"
    )
    c.add("binary_cross_entropy@sigmoid", [x, y], v, g, cot, reduction="mean")
    p = f32([[0.4963, 0.7682, 0.0885], [0.1320, 0.3074, 0.6341]])
    y = f32([[0, 0, 1], [1, 0, 0]])
    for red in ("none", "mean"):
        v, g, cot = torch_value_grad(
            lambda p, red=red: F.binary_cross_entropy(p, t64(y), reduction=red), p, red
        )
        c.add("binary_cross_entropy", [p, y], v, g, cot, reduction=red)
    x, y = f32([2.0, -1.0, 0.5]), f32([1.0, 0.0, 1.0])
    for pw in (None, f32([3.0])):
        for red in ("none", "mean"):

            def fn(x, pw=pw, red=red):
                pwt = None if pw is None else t64(pw)
                return F.binary_cross_entropy_with_logits(x, t64(y), pos_weight=pwt, reduction=red)

            v, g, cot = torch_value_grad(fn, x, red)
            kw = {} if pw is None else {"pos_weight": pw}
            c.add("sigmoid_binary_cross_entropy", [x, y], v, g, cot, reduction=red, **kw)
    c.save()


# --------------------------------------------------------------------------
# PyTorch: gradients with respect to targets, weights and pos_weight.


def target_grads_torch():
    """Labels at exactly 0 and 1 (and soft), weights at exactly 0: the
    derivatives PyTorch gives there, which a guarded product must keep."""
    global rng
    rng = np.random.default_rng(20261204)  # its own seed: the same cases alone or in a full run
    c = Cases("torch_target_grads", "torch 2.13.0")
    n, k = 5, 4
    logits = f32(rng.normal(size=(n, k)) * 3)
    probs = f32(rng.uniform(0.02, 0.98, size=(n, k)))
    hard = f32(rng.integers(0, 2, size=(n, k)))
    soft = f32(np.where(rng.uniform(size=(n, k)) < 0.5, hard, rng.uniform(size=(n, k))))
    w = f32(np.where(rng.uniform(size=(n, k)) < 0.4, 0.0, rng.uniform(0.1, 2, size=(n, k))))
    pos_weight = f32(rng.uniform(0.5, 4, size=(k,)))

    # PyTorch does not differentiate its fused losses with respect to
    # `weight`; the loss is linear in it, so it is applied here, to PyTorch's
    # unweighted elementwise loss, and autograd differentiates that.
    def reduce(loss, weight, red):
        loss = loss if weight is None else loss * weight
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[red]

    def bcel(x, y, weight=None, pos_weight=None, red="none"):
        if pos_weight is not None and pos_weight.requires_grad:
            # Nor with respect to `pos_weight`: its documented formula, in torch ops.
            loss = -(pos_weight * y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
        else:
            loss = F.binary_cross_entropy_with_logits(x, y, pos_weight=pos_weight, reduction="none")
        return reduce(loss, weight, red)

    def bce(p, y, weight=None, red="none"):
        return reduce(F.binary_cross_entropy(p, y, reduction="none"), weight, red)

    for red in ("none", "mean"):
        for labels in (hard, soft):
            for pw in (None, pos_weight):
                opts = {} if pw is None else {"pos_weight": pw}
                for wrt in ("y", "weight") + (() if pw is None else ("pos_weight",)):
                    t = {"x": logits, "y": labels, "weight": w, "pos_weight": pw}
                    fn = functools.partial(bcel, red=red)
                    v, g, cot = torch_grad_wrt(fn, t, wrt, red)
                    name = {"y": 1, "weight": "weight", "pos_weight": "pos_weight"}[wrt]
                    c.add(
                        "sigmoid_binary_cross_entropy",
                        [logits, labels],
                        v,
                        g,
                        cot,
                        wrt=name,
                        reduction=red,
                        weight=w,
                        **opts,
                    )
            for wrt in ("y", "weight"):
                t = {"p": probs, "y": labels, "weight": w}
                v, g, cot = torch_grad_wrt(functools.partial(bce, red=red), t, wrt, red)
                name = {"y": 1, "weight": "weight"}[wrt]
                c.add(
                    "binary_cross_entropy",
                    [probs, labels],
                    v,
                    g,
                    cot,
                    wrt=name,
                    reduction=red,
                    weight=w,
                )
    # The cases users reported, as PyTorch gives them.
    x, y = f32([2.0, -2.0, 2.0, -2.0]), f32([1.0, 0.0, 0.0, 1.0])
    v, g, _ = torch_grad_wrt(functools.partial(bcel, red="sum"), {"x": x, "y": y}, "y", "sum")
    c.add("sigmoid_binary_cross_entropy", [x, y], v, g, wrt=1, reduction="sum")
    x, y, pw = f32([2.0]), f32([1.0]), f32([3.0])
    t = {"x": x, "y": y, "pos_weight": pw}
    v, g, _ = torch_grad_wrt(functools.partial(bcel, red="sum"), t, "y", "sum")
    c.add("sigmoid_binary_cross_entropy", [x, y], v, g, wrt=1, reduction="sum", pos_weight=pw)
    # Probability-target cross-entropy: gradient with respect to hard and
    # soft targets and to the class weights.
    x = f32(rng.normal(size=(n, k)) * 2)
    onehot = f32(np.eye(k)[rng.integers(0, k, size=n)])
    dist = f32(rng.dirichlet(np.ones(k), size=n))
    cw = f32([0.0, 0.5, 1.0, 2.0])
    for labels in (onehot, dist):
        for e in (0.0, 0.1):
            for wrt in ("y", "weight"):

                def ce(x, y, weight, e=e):
                    return F.cross_entropy(x, y, weight=weight, label_smoothing=e, reduction="sum")

                t = {"x": x, "y": labels, "weight": cw}
                v, g, _ = torch_grad_wrt(ce, t, wrt, "sum")
                c.add(
                    "softmax_cross_entropy",
                    [x, labels],
                    v,
                    g,
                    wrt={"y": 1, "weight": "class_weight"}[wrt],
                    reduction="sum",
                    class_weight=cw,
                    label_smoothing=e,
                )
    c.save()


# --------------------------------------------------------------------------
# PyTorch: cross_entropy with class indices and with probabilities.


def softmax_torch():
    c = Cases("torch_softmax", "torch 2.13.0")
    n, k = 7, 5
    w = f32(rng.uniform(0.2, 3, size=(k,)))
    layouts = [
        (f32(rng.normal(size=(n, k)) * 2), -1),
        (f32(rng.normal(size=(3, k, 2, 3)) * 2), 1),  # PyTorch's (N, C, d1, d2)
    ]
    for x, axis in layouts:
        ex_shape = x.shape[:1] + x.shape[2:] if axis == 1 else x.shape[:-1]
        labels = rng.integers(0, k, size=ex_shape).astype(np.int32)
        for ignore in (None, -100, 0, 255):
            y = labels.copy()
            if ignore is not None:
                y.reshape(-1)[::3] = ignore  # every third example ignored
            for cw in (None, w):
                for e in (0.0, 0.1):
                    for red in ("none", "mean", "sum"):

                        def ce(
                            xt,
                            y=y,
                            cw=cw,
                            e=e,
                            red=red,
                            ignore=ignore,
                            axis=axis,
                            ex_shape=ex_shape,
                        ):
                            if axis == -1:
                                xt = xt.reshape(-1, k)
                                yt = torch.tensor(y.reshape(-1), dtype=torch.long)
                            else:
                                yt = torch.tensor(y, dtype=torch.long)
                            out = F.cross_entropy(
                                xt,
                                yt,
                                weight=None if cw is None else t64(cw),
                                ignore_index=-100 if ignore is None else ignore,
                                label_smoothing=e,
                                reduction=red,
                            )
                            return out.reshape(ex_shape) if red == "none" else out

                        v, g, cot = torch_value_grad(ce, x, red)
                        kw = dict(axis=axis, reduction=red, label_smoothing=e)
                        if ignore is not None:
                            kw["ignore_index"] = ignore
                        if cw is not None:
                            kw["class_weight"] = cw
                        c.add("softmax_cross_entropy_with_integer_labels", [x, y], v, g, cot, **kw)
        probs_t = f32(rng.dirichlet(np.ones(k), size=int(np.prod(ex_shape))))
        probs_t = probs_t.reshape(ex_shape + (k,))
        if axis == 1:
            probs_t = np.moveaxis(probs_t, -1, 1)
        for cw in (None, w):
            for e in (0.0, 0.2):
                for red in ("none", "mean", "sum"):

                    def ce_p(xt, cw=cw, e=e, red=red, probs_t=probs_t):
                        return F.cross_entropy(
                            xt,
                            t64(probs_t),
                            weight=None if cw is None else t64(cw),
                            label_smoothing=e,
                            reduction=red,
                        )

                    v, g, cot = torch_value_grad(ce_p, x, red)
                    kw = dict(axis=axis, reduction=red, label_smoothing=e)
                    if cw is not None:
                        kw["class_weight"] = cw
                    c.add("softmax_cross_entropy", [x, probs_t], v, g, cot, **kw)
    # Seed: PyTorch CE on a small batch, with and without label smoothing.
    x = f32([[3.2, -1.5, 0.8], [0.4, 2.1, -0.1]])
    y = np.array([0, 2], np.int32)
    for e in (0.0, 0.1):
        for red in ("none", "mean"):
            v, g, cot = torch_value_grad(
                lambda xt, e=e, red=red: F.cross_entropy(
                    xt, torch.tensor(y, dtype=torch.long), label_smoothing=e, reduction=red
                ),
                x,
                red,
            )
            c.add(
                "softmax_cross_entropy_with_integer_labels",
                [x, y],
                v,
                g,
                cot,
                reduction=red,
                label_smoothing=e,
            )
    # Large logits: PyTorch's log_softmax is stable; ours must agree.
    x = f32([[1e4, -1e4, 0.0], [-1e30, 1e30, 5.0], [30.0, 29.0, -60000.0]])
    y = np.array([1, 1, 2], np.int32)
    for e in (0.0, 0.1):
        v, g, cot = torch_value_grad(
            lambda xt, e=e: F.cross_entropy(
                xt, torch.tensor(y, dtype=torch.long), label_smoothing=e, reduction="none"
            ),
            x,
            "none",
        )
        c.add(
            "softmax_cross_entropy_with_integer_labels",
            [x, y],
            v,
            g,
            cot,
            reduction="none",
            label_smoothing=e,
        )
    c.save()


# --------------------------------------------------------------------------
# scikit-learn log_loss, Keras cross-entropies.


def sklearn_cases():
    from sklearn.metrics import log_loss

    c = Cases("sklearn", "scikit-learn")
    y_true = np.eye(3, dtype=np.float32)[[2, 1, 0]]
    for p in (
        [[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]],
        [[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3]],
    ):
        p = f32(p)
        c.add(
            "categorical_cross_entropy",
            [p, y_true],
            log_loss([2, 1, 0], p.astype(np.float64), labels=[0, 1, 2]),
            reduction="mean",
        )
    k = 6
    p = f32(rng.dirichlet(np.ones(k), size=10))
    y = rng.integers(0, k, size=10)
    per_example = [
        log_loss([y[i]], p[i : i + 1].astype(np.float64), labels=list(range(k))) for i in range(10)
    ]
    c.add("categorical_cross_entropy", [p, np.eye(k, dtype=np.float32)[y]], per_example)
    c.save()


def keras_cases():
    import keras

    kl = keras.losses
    c = Cases("keras", f"keras {keras.__version__}")
    n, k = 8, 5

    def keras_value_grad(loss_fn, x):
        import jax

        v = np.asarray(loss_fn(x))
        g = jax.grad(lambda z: (loss_fn(z) * cot).sum())(x)
        return v, np.asarray(g)

    # Binary cross-entropy (Keras averages the last axis: use a last axis of 1).
    probs = f32(rng.uniform(0.05, 0.95, size=(n, 1)))
    logits = f32(rng.normal(size=(n, 1)) * 3)
    labels = f32(rng.integers(0, 2, size=(n, 1)))
    soft = f32(rng.uniform(0, 1, size=(n, 1)))
    cot = f32(rng.normal(size=(n,)))
    for y in (labels, soft):
        for e in (0.0, 0.1):
            v, g = keras_value_grad(
                lambda p, y=y, e=e: kl.binary_crossentropy(y, p, label_smoothing=e), probs
            )
            c.add(
                "binary_cross_entropy", [probs, y], v[:, None], g, cot[:, None], label_smoothing=e
            )
            v, g = keras_value_grad(
                lambda x, y=y, e=e: kl.binary_crossentropy(
                    y, x, from_logits=True, label_smoothing=e
                ),
                logits,
            )
            c.add(
                "sigmoid_binary_cross_entropy",
                [logits, y],
                v[:, None],
                g,
                cot[:, None],
                label_smoothing=e,
            )
            for gamma in (0.0, 0.5, 2.0, 3.5):
                for alpha in (None, 0.25):
                    kw = dict(gamma=gamma, label_smoothing=e)
                    kk = dict(kw)
                    if alpha is not None:
                        kw["alpha"] = alpha
                        kk.update(apply_class_balancing=True, alpha=alpha)
                    v, g = keras_value_grad(
                        lambda p, y=y, kk=kk: kl.binary_focal_crossentropy(y, p, **kk), probs
                    )
                    c.add("binary_focal_loss", [probs, y], v[:, None], g, cot[:, None], **kw)
                    v, g = keras_value_grad(
                        lambda x, y=y, kk=kk: kl.binary_focal_crossentropy(
                            y, x, from_logits=True, **kk
                        ),
                        logits,
                    )
                    c.add("sigmoid_focal_loss", [logits, y], v[:, None], g, cot[:, None], **kw)
    # Categorical.
    x = f32(rng.normal(size=(n, k)) * 2)
    p = f32(rng.dirichlet(np.ones(k) * 2, size=n))
    y_int = rng.integers(0, k, size=n).astype(np.int32)
    y_hot = np.eye(k, dtype=np.float32)[y_int]
    y_soft = f32(rng.dirichlet(np.ones(k), size=n))
    cot = f32(rng.normal(size=(n,)))
    for t in (y_hot, y_soft):
        for e in (0.0, 0.1):
            v, g = keras_value_grad(
                lambda z, t=t, e=e: kl.categorical_crossentropy(
                    t, z, from_logits=True, label_smoothing=e
                ),
                x,
            )
            c.add("softmax_cross_entropy", [x, t], v, g, cot, label_smoothing=e)
            v, g = keras_value_grad(
                lambda q, t=t, e=e: kl.categorical_crossentropy(t, q, label_smoothing=e), p
            )
            c.add("categorical_cross_entropy", [p, t], v, None, None, label_smoothing=e)
            for gamma in (0.0, 0.5, 2.0, 3.5):
                for alpha in (None, 0.25, f32(rng.uniform(0.1, 1, size=k))):
                    ka = 1.0 if alpha is None else alpha
                    v, g = keras_value_grad(
                        lambda z, t=t, e=e, gamma=gamma, ka=ka: kl.categorical_focal_crossentropy(
                            t, z, alpha=ka, gamma=gamma, from_logits=True, label_smoothing=e
                        ),
                        x,
                    )
                    kw = dict(gamma=gamma, label_smoothing=e)
                    if alpha is not None:
                        kw["alpha"] = alpha
                    c.add("softmax_focal_loss", [x, t], v, g, cot, **kw)
                    if t is y_hot and e == 0.0:
                        kw.pop("label_smoothing")
                        c.add("softmax_focal_loss_with_integer_labels", [x, y_int], v, g, cot, **kw)
    # SparseCategoricalCrossentropy(ignore_class=...): ignored examples give 0.
    y_ign = y_int.copy()
    y_ign[::3] = 255
    v, g = keras_value_grad(
        lambda z: kl.sparse_categorical_crossentropy(y_ign, z, from_logits=True, ignore_class=255),
        x,
    )
    c.add("softmax_cross_entropy_with_integer_labels", [x, y_ign], v, g, cot, ignore_index=255)
    c.save()


def kornia_optax_cases():
    import jax
    import kornia.losses
    import optax

    c = Cases("kornia_optax", "kornia / optax")
    n, k = 6, 4
    x = f32(rng.normal(size=(n, k)) * 3)
    cot = f32(rng.normal(size=(n, k)))
    hard = f32(rng.integers(0, 2, size=(n, k)))
    for y in (hard, f32(rng.uniform(0, 1, size=(n, k)))):
        for gamma in (0.0, 0.5, 2.0, 3.5):
            for alpha in (None, 0.25):
                kw = {"gamma": gamma}
                if alpha is not None:
                    kw["alpha"] = alpha
                v = optax.losses.sigmoid_focal_loss(x, y, **kw)
                g = jax.grad(
                    lambda z, y=y, kw=kw: (optax.losses.sigmoid_focal_loss(z, y, **kw) * cot).sum()
                )(x)
                c.add("sigmoid_focal_loss", [x, y], v, g, cot, **kw)
                # kornia weights the positive and negative terms separately, which
                # agrees with the p_t formula for hard labels only.
                if alpha is not None and y is hard:
                    xt = t64(x, grad=True)
                    out = kornia.losses.binary_focal_loss_with_logits(
                        xt, t64(y), alpha=alpha, gamma=gamma, reduction="none"
                    )
                    (out * t64(cot)).sum().backward()
                    v, g = out.detach().numpy(), xt.grad.numpy()
                    c.add("sigmoid_focal_loss", [x, y], v, g, cot, **kw)
        v = optax.losses.sigmoid_binary_cross_entropy(x, y)
        c.add("sigmoid_binary_cross_entropy", [x, y], v)
    xs = f32(rng.normal(size=(n, k)) * 2)
    yi = rng.integers(0, k, size=n).astype(np.int32)
    c.add(
        "softmax_cross_entropy_with_integer_labels",
        [xs, yi],
        optax.losses.softmax_cross_entropy_with_integer_labels(xs, yi),
    )
    t = f32(rng.dirichlet(np.ones(k), size=n))
    c.add("softmax_cross_entropy", [xs, t], optax.losses.softmax_cross_entropy(xs, t))
    cm = rng.uniform(size=(n, k)) > 0.3
    cm[:, 0] = True
    c.add(
        "softmax_cross_entropy",
        [xs, t],
        optax.losses.softmax_cross_entropy(xs, t, where=cm),
        where=cm,
    )
    em = np.array([True, False, True, True, False, True])
    c.add(
        "softmax_cross_entropy",
        [xs, t],
        optax.losses.softmax_cross_entropy(xs, t, where=em),
        where=em,
    )
    c.save()


def linear_torch():
    """`linear_softmax_cross_entropy` against PyTorch's matmul + cross_entropy,
    with z-loss and the soft cap written out in torch; gradients for the
    inputs, the kernel and the bias (of sum(loss * cot) for "none")."""
    out = {}
    meta = []
    n, d, v = (3, 7), 6, 11
    x, k = f32(rng.normal(size=n + (d,))), f32(rng.normal(size=(d, v)) * 0.7)
    b = f32(rng.normal(size=(v,)))
    labels = rng.integers(0, v, size=n).astype(np.int32)
    ignored = labels.copy()
    ignored.reshape(-1)[::4] = -100
    options = [
        {},
        {"bias": True},
        {"ignore_index": -100},
        {"label_smoothing": 0.1},
        {"z_loss": 1e-2},
        {"logit_soft_cap": 2.0},
        {
            "bias": True,
            "ignore_index": -100,
            "label_smoothing": 0.2,
            "z_loss": 1e-2,
            "logit_soft_cap": 3.0,
        },
    ]
    for opts in options:
        for red in ("none", "mean", "sum"):
            y = ignored if "ignore_index" in opts else labels
            xt, kt, bt = t64(x, True), t64(k, True), t64(b, True)
            z = xt @ kt + (bt if opts.get("bias") else 0)
            cap = opts.get("logit_soft_cap")
            if cap:
                z = cap * torch.tanh(z / cap)
            z, yt = z.reshape(-1, v), torch.tensor(y.reshape(-1), dtype=torch.long)
            loss = F.cross_entropy(
                z,
                yt,
                ignore_index=-100,
                label_smoothing=opts.get("label_smoothing", 0.0),
                reduction="none",
            )
            kept = yt != -100
            loss = loss + opts.get("z_loss", 0.0) * torch.logsumexp(z, -1) ** 2 * kept
            if red == "mean":
                loss = loss.sum() / kept.sum()
            elif red == "sum":
                loss = loss.sum()
            else:
                loss = loss.reshape(n)
            cot = f32(rng.normal(size=loss.shape))
            (loss * t64(cot)).sum().backward()
            i = len(meta)
            meta.append({"id": f"torch_linear-{i}", "reduction": red, **opts})
            out.update(
                {
                    f"{i}/expected": loss.detach().numpy(),
                    f"{i}/labels": y,
                    f"{i}/cot": cot,
                    f"{i}/dinputs": xt.grad.numpy(),
                    f"{i}/dkernel": kt.grad.numpy(),
                    f"{i}/dbias": np.zeros(v) if bt.grad is None else bt.grad.numpy(),
                }
            )
    np.savez_compressed(
        DATA / "linear" / "torch_linear.npz",
        meta=np.array(json.dumps(meta)),
        inputs=x,
        kernel=k,
        bias=b,
        **out,
    )
    print(f"torch_linear: {len(meta)} cases")


# --------------------------------------------------------------------------
# timm: AsymmetricLossMultiLabel (ASL).


def _timm_asl_class():
    """timm's ASL module, loaded from its file: the package's __init__ needs
    torchvision, the loss only torch (`pip install --no-deps timm`)."""
    import importlib.util

    path = (
        pathlib.Path(importlib.util.find_spec("timm").origin).parent / "loss" / "asymmetric_loss.py"
    )
    spec = importlib.util.spec_from_file_location("timm_asl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.AsymmetricLossMultiLabel


def asl_timm():
    """Values and logit gradients of timm's ASL for every option, on logits
    where its eps = 1e-8 clamp is inactive (|x| <= 6). timm computes in
    float32 (it casts its inputs)."""
    global rng
    rng = np.random.default_rng(20261205)  # its own seed: the same cases alone or in a full run
    from importlib.metadata import version

    asl = _timm_asl_class()
    c = Cases("timm_asl", f"timm {version('timm')}")
    n, k = 6, 5
    logits = f32(np.clip(rng.normal(size=(n, k)) * 2.5, -6, 6))
    hard = f32(rng.integers(0, 2, size=(n, k)))
    soft = f32(np.where(rng.uniform(size=(n, k)) < 0.5, hard, rng.uniform(size=(n, k))))
    weight = f32(rng.uniform(0.5, 2, size=(k,)))
    pos_weight = f32(rng.uniform(0.5, 4, size=(k,)))
    options = [
        {},
        {"gamma_neg": 2.0, "gamma_pos": 0.0},
        {"gamma_neg": 0.0, "gamma_pos": 0.0, "clip": 0.0},
        {"clip": None},
        {"clip": 0.2, "gamma_neg": 3.0, "gamma_pos": 0.5},
        {"weight": weight},
        {"pos_weight": pos_weight},
        {"smoothing": 0.1},
        {"disable_torch_grad_focal_loss": True},
        {"weight": weight, "pos_weight": pos_weight, "smoothing": 0.2, "clip": 0.1},
    ]
    ours = {"smoothing": "label_smoothing", "disable_torch_grad_focal_loss": "stop_focal_gradient"}
    for labels in (hard, soft):
        for opts in options:
            for red in ("none", "mean", "sum"):
                kw = {**opts}
                for key in ("weight", "pos_weight"):
                    if key in kw:
                        kw[key] = torch.tensor(kw[key])
                fn = asl(reduction=red, **kw)
                v, g, cot = torch_value_grad(
                    lambda x, fn=fn, labels=labels: fn(x, t64(labels)), logits, red
                )
                jl_kw = {ours.get(key, key): val for key, val in opts.items()}
                c.add("asymmetric_loss", [logits, labels], v, g, cot, reduction=red, **jl_kw)
    c.save()


# --------------------------------------------------------------------------
# PyTorch: NLLLoss and the distillation KL divergence.


def nll_and_kl_torch():
    """`F.nll_loss` with weight / ignore_index / K-dim / every reduction, and
    `F.kl_div(log_softmax(s / T), log_softmax(t / T), log_target=True) * T**2`
    with its gradients for the student's and the teacher's logits."""
    global rng
    rng = np.random.default_rng(20261206)  # its own seed: the same cases alone or in a full run
    c = Cases("torch_nll_kl", "torch 2.13.0")
    n, k = 6, 5
    x = f32(rng.normal(size=(n, k)) * 2)
    log_p = f32(torch.log_softmax(t64(x), -1).numpy())
    y = rng.integers(0, k, size=n).astype(np.int32)
    y_ignored = y.copy()
    y_ignored[[1, 4]] = -100
    weight = f32(rng.uniform(0.2, 2, size=(k,)))
    for red in ("none", "mean", "sum"):
        for w in (None, weight):
            for labels, ignore in ((y, None), (y_ignored, -100)):

                def nll(lp, labels=labels, w=w, red=red, ignore=ignore):
                    wt = None if w is None else t64(w)
                    idx = -100 if ignore is None else ignore
                    return F.nll_loss(lp, torch.tensor(labels, dtype=torch.long), weight=wt,
                                      ignore_index=idx, reduction=red)  # fmt: skip

                v, g, cot = torch_value_grad(nll, log_p, red)
                kw = {"reduction": red}
                if w is not None:
                    kw["class_weight"] = w
                if ignore is not None:
                    kw["ignore_index"] = ignore
                c.add("nll_loss", [log_p, labels], v, g, cot, **kw)
    # K-dim: (N, C, d) with the classes on axis 1.
    xk = f32(rng.normal(size=(3, k, 4)))
    lpk = f32(torch.log_softmax(t64(xk), 1).numpy())
    yk = rng.integers(0, k, size=(3, 4)).astype(np.int32)
    for red in ("none", "mean"):

        def nll_k(lp, red=red):
            labels = torch.tensor(yk, dtype=torch.long)
            return F.nll_loss(lp, labels, weight=t64(weight), reduction=red)

        v, g, cot = torch_value_grad(nll_k, lpk, red)
        c.add("nll_loss", [lpk, yk], v, g, cot, axis=1, class_weight=weight, reduction=red)
    # Distillation: gradients for the student (argument 0) and the teacher (1).
    student = f32(rng.normal(size=(n, k)) * 3)
    teacher = f32(rng.normal(size=(n, k)) * 2)
    for temp in (1.0, 2.0, 4.0):
        for red, torch_red in (("none", "none"), ("mean", "batchmean"), ("sum", "sum")):

            def kl(s, t, temp=temp, torch_red=torch_red):
                out = F.kl_div(F.log_softmax(s / temp, -1), F.log_softmax(t / temp, -1),
                               log_target=True, reduction=torch_red)  # fmt: skip
                return (out.sum(-1) if torch_red == "none" else out) * temp**2

            for wrt in ("s", "t"):
                v, g, cot = torch_grad_wrt(kl, {"s": student, "t": teacher}, wrt, red)
                c.add("softmax_kl_divergence", [student, teacher], v, g, cot,
                      wrt={"s": 0, "t": 1}[wrt], temperature=temp, reduction=red)  # fmt: skip
    c.save()


def more_losses():
    """Issue 22's losses against their anchors: PyTorch (`kl_div`,
    `multi_margin_loss`), Keras 3 (`kl_divergence`, `hinge`, `squared_hinge`,
    `categorical_hinge`, `dice`, `tversky`), optax (float64: the hinge
    family, sparsemax, KL, `dice_loss`), entmax (`SparsemaxLoss`) and MONAI
    (`DiceLoss`, `TverskyLoss`), with gradients where the system gives them."""
    import entmax
    import jax
    import keras
    import monai
    import optax

    global rng
    rng = np.random.default_rng(20261204)  # its own seed: the same cases alone or in a full run
    n, k = 6, 5

    # PyTorch.
    c = Cases("torch_margin_kl", "torch 2.13.0")
    log_p = f32(torch.log_softmax(t64(rng.normal(size=(n, k)) * 2), -1).numpy())
    t_pos = f32(rng.dirichlet(np.ones(k), size=n))
    t_zero = t_pos.copy()
    t_zero[rng.uniform(size=(n, k)) < 0.3] = 0.0
    t_zero /= t_zero.sum(-1, keepdims=True)
    for red, torch_red in (("none", "none"), ("mean", "batchmean"), ("sum", "sum")):

        def kl(lp, t, torch_red=torch_red, log_target=False):
            out = F.kl_div(lp, t, reduction=torch_red, log_target=log_target)
            return out.sum(-1) if torch_red == "none" else out

        for targets, wrts in ((t_pos, ("lp", "t")), (t_zero, ("lp",))):  # PyTorch: NaN d/dt at 0
            for wrt in wrts:
                v, g, cot = torch_grad_wrt(kl, {"lp": log_p, "t": targets}, wrt, red)
                c.add("kl_divergence", [log_p, targets], v, g, cot,
                      wrt={"lp": 0, "t": 1}[wrt], reduction=red)  # fmt: skip
        log_t = f32(np.log(t_pos))
        for wrt in ("lp", "t"):
            v, g, cot = torch_grad_wrt(
                functools.partial(kl, log_target=True), {"lp": log_p, "t": log_t}, wrt, red
            )
            c.add("kl_divergence_with_log_targets", [log_p, log_t], v, g, cot,
                  wrt={"lp": 0, "t": 1}[wrt], reduction=red)  # fmt: skip
    s = f32(rng.normal(size=(n, k)) * 2)
    y = rng.integers(0, k, size=n).astype(np.int32)
    w = f32(rng.uniform(0.2, 2, size=k))
    for red in ("none", "mean", "sum"):
        for p in (1, 2):
            for margin in (1.0, 0.5):
                for weight in (None, w):

                    def mm(x, p=p, margin=margin, weight=weight, red=red):
                        wt = None if weight is None else t64(weight)
                        return F.multi_margin_loss(x, torch.tensor(y, dtype=torch.long), p=p,
                                                   margin=margin, weight=wt, reduction=red)  # fmt: skip

                    v, g, cot = torch_value_grad(mm, s, red)
                    kw = dict(p=p, margin=margin, reduction=red)
                    if weight is not None:
                        kw["class_weight"] = weight
                    c.add("multi_margin_loss", [s, y], v, g, cot, **kw)
    c.save()

    # Keras 3 on JAX (float32; its clipping and epsilon do not bite here).
    c = Cases("keras_more", f"keras {keras.__version__}")
    kl_ = keras.losses
    cot = f32(rng.normal(size=n))

    def keras_grad(fn, args, wrt):
        return np.asarray(jax.grad(lambda a: (fn(*[a if i == wrt else x for i, x in
                                                   enumerate(args)]) * cot).sum())(args[wrt]))  # fmt: skip

    p = f32(np.exp(log_p))
    v = np.asarray(kl_.kl_divergence(t_pos, p))
    g = keras_grad(lambda t, p: kl_.kl_divergence(t, p), [t_pos, p], 0)  # d/d targets
    c.add("kl_divergence", [np.log(p), t_pos], v, g, cot, wrt=1)
    scores = f32(rng.normal(size=(n, 1)) * 2)
    for labels in (f32(rng.choice([-1.0, 1.0], size=(n, 1))), f32(rng.integers(0, 2, (n, 1)))):
        for name, fn in (("hinge_loss", kl_.hinge), ("squared_hinge_loss", kl_.squared_hinge)):
            v = np.asarray(fn(labels, scores))
            g = keras_grad(lambda y, x, fn=fn: fn(y, x), [labels, scores], 1)
            c.add(name, [scores, labels], v[:, None], g, cot[:, None])
    # categorical_hinge: rows where a wrong class scores above 0 (elsewhere
    # Keras' runner-up is floored at 0; see multiclass_hinge_loss).
    sc = f32(rng.normal(size=(n, k)) * 2)
    sc[:, 0] = np.abs(sc[:, 0]) + 0.5
    onehot = np.eye(k, dtype=np.float32)[rng.integers(1, k, size=n)]
    v = np.asarray(kl_.categorical_hinge(onehot, sc))
    g = keras_grad(lambda t, x: kl_.categorical_hinge(t, x), [onehot, sc], 1)
    c.add("multiclass_hinge_loss", [sc, onehot], v, g, cot)
    probs = f32(rng.uniform(0.02, 0.98, size=(n, 4, 3)))
    mask = f32(rng.integers(0, 2, size=(n, 4, 3)))
    v = np.asarray(kl_.dice(mask, probs, axis=(1, 2)))
    g = keras_grad(lambda t, q: kl_.dice(t, q, axis=(1, 2)), [mask, probs], 1)
    one = (probs[..., None], mask[..., None])  # one channel, then [n, 4, 3] is not 3 classes
    c.add("dice_loss", one, v, g[..., None], cot, apply_softmax=False, smooth=0.0)
    for a, b in ((0.5, 0.5), (0.3, 0.7), (0.8, 0.2)):  # Keras' alpha weighs false negatives
        v = np.asarray(kl_.tversky(mask, probs, alpha=a, beta=b, axis=(1, 2)))
        g = keras_grad(
            lambda t, q, a=a, b=b: kl_.tversky(t, q, alpha=a, beta=b, axis=(1, 2)), [mask, probs], 1
        )
        c.add("tversky_loss", one, v, g[..., None], cot, apply_softmax=False, smooth=0.0,
              alpha=b, beta=a)  # fmt: skip
    c.save()

    # optax, in float64.
    c = Cases("optax_more", f"optax {optax.__version__}")
    ol = optax.losses
    with jax.enable_x64(True):

        def optax_case(name, fn, args, jl_args=None, wrt=0, **kw):
            a64 = [np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else a
                   for a in args]  # fmt: skip
            out = fn(*a64)
            cot = f32(rng.normal(size=np.shape(out)))

            def total(z):
                b = list(a64)
                b[wrt] = z
                return (fn(*b) * cot).sum()

            g = np.asarray(jax.grad(total)(a64[wrt]))
            c.add(name, jl_args or args, np.asarray(out), g, cot, wrt=wrt, **kw)

        sb = f32(rng.normal(size=(n, k)) * 2)
        pm = f32(rng.choice([-1.0, 1.0], size=(n, k)))
        optax_case("hinge_loss", ol.hinge_loss, [sb, pm])
        optax_case("perceptron_loss", ol.perceptron_loss, [sb, pm])
        optax_case("hinge_loss", ol.hinge_loss, [sb, pm], [sb, (pm + 1) / 2])  # {0, 1} labels
        yi = rng.integers(0, k, size=n).astype(np.int32)
        for name in ("multiclass_hinge_loss", "multiclass_perceptron_loss",
                     "multiclass_sparsemax_loss"):  # fmt: skip
            optax_case(name, getattr(ol, name), [sb, yi])
        for scale in (0.3, 3.0):  # sparse and dense supports
            optax_case("multiclass_sparsemax_loss", ol.multiclass_sparsemax_loss, [sb * scale, yi])
        onehot = np.eye(k, dtype=np.float32)[yi]
        optax_case("multiclass_hinge_loss", lambda x, t: ol.multiclass_hinge_loss(
            x, jnp_argmax(t)), [sb, onehot])  # fmt: skip
        for wrt in (0, 1):
            optax_case("kl_divergence", ol.kl_divergence, [log_p, t_pos], wrt=wrt)
            optax_case("kl_divergence_with_log_targets", ol.kl_divergence_with_log_targets,
                       [log_p, np.log(t_pos)], wrt=wrt)  # fmt: skip
        optax_case("kl_divergence", ol.kl_divergence, [log_p, t_zero])
        xs = f32(rng.normal(size=(3, 4, 5, k)) * 2)
        ts = np.eye(k, dtype=np.float32)[rng.integers(0, k, size=(3, 4, 5))]
        cw = f32(rng.uniform(0.2, 2, size=k))
        options = [
            {}, dict(smooth=0.1), dict(alpha=0.2, beta=0.8), dict(class_weights=cw),
            dict(ignore_background=True), dict(axis=(1,)),
            dict(class_weights=cw, smooth=0.0, alpha=0.7, beta=0.3, ignore_background=True),
        ]  # fmt: skip
        for kw in options:
            for wrt in (0, 1):
                kw64 = {k_: (np.asarray(v, np.float64) if isinstance(v, np.ndarray) else v)
                        for k_, v in kw.items()}  # fmt: skip
                optax_case("dice_loss", functools.partial(ol.dice_loss, **kw64), [xs, ts],
                           wrt=wrt, **kw)  # fmt: skip
        xb, tb = xs[..., 0], ts[..., 0]  # one channel: a sigmoid
        optax_case("dice_loss", ol.dice_loss, [xb, tb])
        pr = f32(np.exp(xs) / np.exp(xs).sum(-1, keepdims=True))
        optax_case("dice_loss", functools.partial(ol.dice_loss, apply_softmax=False), [pr, ts],
                   apply_softmax=False)  # fmt: skip
    c.save()

    # entmax and MONAI (PyTorch, float64).
    c = Cases("entmax_monai", f"entmax 1.3 / monai {monai.__version__}")
    for scale in (0.3, 1.0, 3.0):
        x = f32(rng.normal(size=(n, k)) * 2 * scale)
        for red, ered in (("none", "none"), ("mean", "elementwise_mean"), ("sum", "sum")):

            def sp(x, ered=ered):
                return entmax.SparsemaxLoss(reduction=ered)(x, torch.tensor(yi, dtype=torch.long))

            v, g, cot = torch_value_grad(sp, x, red)
            c.add("multiclass_sparsemax_loss", [x, yi], v, g, cot, reduction=red)
    xs_cf = np.moveaxis(xs, -1, 1)  # MONAI: classes on axis 1
    ts_cf = np.moveaxis(ts, -1, 1)
    for s_ in (1e-5, 0.5):
        for bg in (True, False):
            for weight in (None, cw):

                def dice(x, s_=s_, bg=bg, weight=weight):
                    f = monai.losses.DiceLoss(softmax=True, include_background=bg,
                                              smooth_nr=2 * s_, smooth_dr=2 * s_,
                                              weight=None if weight is None else
                                              t64(weight if bg else weight[1:]),
                                              reduction="none")  # fmt: skip
                    return f(x, t64(ts_cf)).reshape(len(x), -1).mean(1)  # mean over classes

                v, g, cot = torch_value_grad(dice, xs_cf, "none")
                kw = dict(smooth=s_, ignore_background=not bg)
                if weight is not None:
                    kw["class_weights"] = weight
                c.add("dice_loss", [xs, ts], v, np.moveaxis(g, 1, -1), cot, **kw)
            for a, b in ((0.3, 0.7), (0.8, 0.2)):

                def tv(x, s_=s_, bg=bg, a=a, b=b):
                    f = monai.losses.TverskyLoss(softmax=True, include_background=bg, alpha=a,
                                                 beta=b, smooth_nr=s_, smooth_dr=s_,
                                                 reduction="none")  # fmt: skip
                    return f(x, t64(ts_cf)).reshape(len(x), -1).mean(1)

                v, g, cot = torch_value_grad(tv, xs_cf, "none")
                c.add("tversky_loss", [xs, ts], v, np.moveaxis(g, 1, -1), cot, smooth=s_,
                      alpha=a, beta=b, ignore_background=not bg)  # fmt: skip
    c.save()


def pairwise_open_clip():
    """open_clip's `SigLipLoss` and `ClipLoss` (one process, float64): values
    and the gradients for both embeddings, the logit scale and the bias.
    Its loss module needs only torch: loaded from its file, so that
    open-clip-torch can be installed without torchvision (`--no-deps`)."""
    import importlib.metadata
    import importlib.util

    global rng
    rng = np.random.default_rng(20261205)  # its own seed
    spec = importlib.util.find_spec("open_clip")
    path = pathlib.Path(spec.origin).parent / "loss.py"
    loss_spec = importlib.util.spec_from_file_location("open_clip_loss", path)
    oc = importlib.util.module_from_spec(loss_spec)
    loss_spec.loader.exec_module(oc)
    oc_version = importlib.metadata.version("open_clip_torch")

    c = Cases("open_clip_pairwise", f"open_clip {oc_version}")
    b, d = 8, 5

    def unit(*shape):
        v = rng.normal(size=shape)
        return f32(v / np.linalg.norm(v, axis=-1, keepdims=True))

    x, y = unit(b, d), unit(b, d)
    for scale, bias in ((1.0, 0.0), (10.0, -10.0), (4.0, -2.0)):
        tensors = {"x": x, "y": y, "t": f32(scale), "b": f32(bias)}

        def siglip(x, y, t, b):
            return oc.SigLipLoss()(x, y, t, b)

        for wrt, name in (("x", 0), ("y", 1), ("t", "temperature"), ("b", "bias")):
            v, g, _ = torch_grad_wrt(siglip, tensors, wrt, "mean")
            c.add("sigmoid_pairwise_loss", [x, y], v, g, wrt=name, temperature=scale,
                  bias=bias, reduction="mean")  # fmt: skip

        def clip(x, y, t, b):
            return oc.ClipLoss()(x, y, t)

        for wrt, name in (("x", 0), ("y", 1), ("t", "temperature")):
            v, g, _ = torch_grad_wrt(clip, tensors, wrt, "mean")
            c.add("softmax_pairwise_loss", [x, y], v, g, wrt=name, temperature=scale,
                  reduction="mean")  # fmt: skip
    c.save()


def linear_options_torch():
    """`linear_softmax_cross_entropy`'s class weights, per-token weights and
    normalizer against PyTorch 2.13's `F.linear_cross_entropy` (its own
    fused loss, `weight=` for class weights) and, where it has no such
    option, `F.cross_entropy(x @ W.T + b, reduction="none")` weighted and
    summed in torch. Gradients for inputs, kernel, bias and the per-token
    weights by autograd; for the class weights (which PyTorch's fused ops
    refuse to differentiate) by autograd of its documented formula."""
    global rng
    rng = np.random.default_rng(20261207)  # its own seed
    n, d, v = 12, 6, 9
    x, k = f32(rng.normal(size=(n, d))), f32(rng.normal(size=(d, v)) * 0.7)
    b = f32(rng.normal(size=(v,)))
    y = rng.integers(0, v, size=n).astype(np.int32)
    y_ign = y.copy()
    y_ign[::4] = -100
    cw = f32(rng.uniform(0.2, 2.0, size=v))
    tw = f32(rng.uniform(0.0, 2.0, size=n))
    meta, out = [], {"inputs": x, "kernel": k, "bias": b, "class_weight": cw, "weight": tw}

    def add(case, loss, tensors, cot, labels):
        (loss * t64(cot)).sum().backward()
        i = len(meta)
        meta.append({"id": f"torch_linear_options-{i}", **case})
        out[f"{i}/expected"] = loss.detach().numpy()
        out[f"{i}/labels"] = labels
        out[f"{i}/cot"] = cot
        for name, t in tensors.items():
            out[f"{i}/d{name}"] = np.zeros(t.shape) if t.grad is None else t.grad.numpy()

    for red in ("none", "mean", "sum"):
        for e in (0.0, 0.1):
            for labels in (y, y_ign):
                # Class weights: PyTorch's own fused linear cross-entropy.
                xt, kt, bt = t64(x, True), t64(k, True), t64(b, True)
                loss = F.linear_cross_entropy(
                    xt, kt.T, torch.tensor(labels, dtype=torch.long), linear_bias=bt,
                    weight=t64(cw), reduction=red, ignore_index=-100, label_smoothing=e,
                )  # fmt: skip
                cot = f32(rng.normal(size=loss.shape))
                case = {"reduction": red, "label_smoothing": e, "class_weight": True}
                add(case, loss, {"inputs": xt, "kernel": kt, "bias": bt}, cot, labels)
        # The class weights' gradient, from the documented formula.
        xt, kt, bt, wt = t64(x, True), t64(k, True), t64(b, True), t64(cw, True)
        z = xt @ kt + bt
        lse = torch.logsumexp(z, -1)
        yt = torch.tensor(y_ign, dtype=torch.long)
        kept = yt != -100
        yc = torch.where(kept, yt, 0)
        e = 0.1
        per = (1 - e) * wt[yc] * (lse - z.gather(1, yc[:, None])[:, 0])
        per = per + e / v * ((lse[:, None] - z) * wt).sum(-1)
        per = per * kept
        loss = {"none": per, "sum": per.sum(), "mean": per.sum() / (wt[yc] * kept).sum()}[red]
        cot = f32(rng.normal(size=loss.shape))
        case = {"reduction": red, "label_smoothing": e, "class_weight": True, "formula": True}
        add(case, loss, {"inputs": xt, "kernel": kt, "bias": bt, "class_weight": wt}, cot, y_ign)
        # Per-token weights (with class weights), and a given normalizer.
        for norm in (None, 17.0) if red == "mean" else (None,):
            xt, kt, bt, twt = t64(x, True), t64(k, True), t64(b, True), t64(tw, True)
            z = xt @ kt + bt
            yt = torch.tensor(y_ign, dtype=torch.long)
            per = F.cross_entropy(z, yt, weight=t64(cw), ignore_index=-100, reduction="none")
            per = per * twt
            if red == "none":
                loss = per
            elif red == "sum" or norm is not None:
                loss = per.sum() / (1.0 if norm is None else norm)
            else:
                kept = (yt != -100).double()
                loss = per.sum() / (twt * t64(cw)[torch.where(yt < 0, 0, yt)] * kept).sum()
            cot = f32(rng.normal(size=loss.shape))
            case = {"reduction": red, "class_weight": True, "weight": True}
            if norm is not None:
                case["normalizer"] = norm
            tensors = {"inputs": xt, "kernel": kt, "bias": bt, "weight": twt}
            add(case, loss, tensors, cot, y_ign)
    (DATA / "linear").mkdir(exist_ok=True)
    np.savez_compressed(
        DATA / "linear" / "torch_linear_options.npz", meta=np.array(json.dumps(meta)), **out
    )
    print(f"torch_linear_options: {len(meta)} cases")


def jnp_argmax(t):
    import jax.numpy as jnp

    return jnp.argmax(t, -1)


if __name__ == "__main__":
    torch.set_num_threads(2)
    binary_torch()
    softmax_torch()
    sklearn_cases()
    keras_cases()
    kornia_optax_cases()
    linear_torch()
    target_grads_torch()  # these two reseed `rng`: last
    asl_timm()
    nll_and_kl_torch()
    more_losses()
    pairwise_open_clip()
    linear_options_torch()
