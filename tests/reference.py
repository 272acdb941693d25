"""Float64 NumPy references, written stably and independently of jaxloss.

Each follows the published formula (PyTorch docs for BCE / cross_entropy,
Lin et al. and Keras for focal losses) with NumPy's own stable primitives;
a naive NumPy BCE would return NaN at logit 100.
"""

import numpy as np


def log_sigmoid(x):
    return -np.logaddexp(0.0, -np.asarray(x, np.float64))


def clamped_log(p):
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(np.asarray(p, np.float64)), -100.0)


def reduce(loss, reduction, mask=None, denominator=None):
    loss = np.asarray(loss, np.float64)
    if mask is not None:
        loss = np.where(mask, loss, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if denominator is None:
        denominator = loss.size if mask is None else np.sum(mask)
    return loss.sum() / denominator if denominator else 0.0


def bce(p, y, weight=1.0, e=0.0):
    y = np.asarray(y, np.float64) * (1 - e) + e / 2
    return -weight * (y * clamped_log(p) + (1 - y) * clamped_log(1 - np.asarray(p, np.float64)))


def bce_logits(x, y, weight=1.0, pos_weight=1.0, e=0.0):
    y = np.asarray(y, np.float64) * (1 - e) + e / 2
    return -weight * (
        pos_weight * y * log_sigmoid(x) + (1 - y) * log_sigmoid(-np.asarray(x, np.float64))
    )


def focal_logits(x, y, gamma=2.0, alpha=None, e=0.0):
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64) * (1 - e) + e / 2
    p = np.exp(log_sigmoid(x))
    q = np.exp(log_sigmoid(-x))
    one_minus_pt = y * q + (1 - y) * p
    loss = one_minus_pt**gamma * bce_logits(x, y)
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def focal_probs(p, y, gamma=2.0, alpha=None, e=0.0):
    p = np.asarray(p, np.float64)
    y = np.asarray(y, np.float64) * (1 - e) + e / 2
    loss = (y * (1 - p) + (1 - y) * p) ** gamma * bce(p, y)
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def log_softmax(x, axis=-1):
    x = np.asarray(x, np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def ce_integer(x, y, axis=-1, weight=None, ignore_index=None, e=0.0, z=0.0, reduction="none"):
    """torch.nn.functional.cross_entropy with class indices (plus z-loss)."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    c = x.shape[-1]
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    keep = np.ones(y.shape, bool) if ignore_index is None else y != ignore_index
    yc = np.where(keep, y, 0)
    logp = log_softmax(x)
    nll = -np.take_along_axis(logp, yc[..., None], -1)[..., 0]
    smooth = -(logp * w).sum(-1)
    lse = x.max(-1) + np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1))
    loss = (1 - e) * w[yc] * nll + e / c * smooth + z * lse**2
    return reduce(loss, reduction, keep, np.sum(np.where(keep, w[yc], 0)))


def ce_probs(x, t, axis=-1, weight=None, e=0.0, reduction="none"):
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    t = np.moveaxis(np.asarray(t, np.float64), axis, -1)
    c = x.shape[-1]
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    t = (1 - e) * t + e / c
    return reduce(-(w * t * log_softmax(x)).sum(-1), reduction)


def softmax_focal(x, t, axis=-1, gamma=2.0, alpha=None, e=0.0):
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    t = np.moveaxis(np.asarray(t, np.float64), axis, -1)
    c = x.shape[-1]
    a = np.ones(c) if alpha is None else np.broadcast_to(np.asarray(alpha, np.float64), (c,))
    t = (1 - e) * t + e / c
    logp = log_softmax(x)
    return -(a * t * (-np.expm1(logp)) ** gamma * logp).sum(-1)


def asl(x, y, gamma_neg=4.0, gamma_pos=1.0, clip=0.05, weight=1.0, pos_weight=1.0, e=0.0):
    """Asymmetric loss (Ridnik et al. 2021), float64, with no eps clamp: the
    probabilities in log space where they are tiny."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64) * (1 - e) + e / 2
    log_p, log_1mp = log_sigmoid(x), log_sigmoid(-x)
    q = np.minimum(np.exp(log_1mp) + clip, 1.0)
    log_q = np.where(clip > 0, np.log(q), log_1mp)
    focus = asl_focus(x, y, gamma_neg, gamma_pos, clip)
    return -weight * focus * (pos_weight * y * log_p + (1 - y) * log_q)


def asl_focus(x, y, gamma_neg, gamma_pos, clip):
    """ASL's focusing weight (1 - p_t) ** gamma, float64 (labels as given)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    one_minus_q = np.maximum(np.exp(log_sigmoid(x)) - clip, 0.0)
    one_minus_pt = y * np.exp(log_sigmoid(-x)) + (1 - y) * one_minus_q
    gamma = gamma_pos * y + gamma_neg * (1 - y)
    safe = np.where(one_minus_pt > 0, one_minus_pt, 1.0)
    return np.where(one_minus_pt > 0, safe**gamma, (gamma == 0) * 1.0)
