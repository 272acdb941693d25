"""Every jaxloss loss against optax (or a naive jnp formula) and a copy pass.

    python benchmarks/run.py            # all cases, float32 and bfloat16 (~6 min on 2 quiet cores)
    python benchmarks/run.py --quick    # float32, one shape per family, 3 repetitions
    python benchmarks/run.py --quarter  # float32, a quarter of the rows, 9 repetitions
    python benchmarks/run.py --core     # XLA:CPU fast path vs the plain core (what GPUs run)

Measures `jax.jit(jax.value_and_grad(mean loss))` with respect to the first
argument over interleaved repetitions (each contender runs once untimed
right before each timed call): the best and the median time, their ratios to
the baseline of the same run, the ratio to a copy pass over the same array
(`z * 1.0 + 0.0`, one read and one write: the memory-bandwidth reference),
the full-size reads and writes of the compiled program (a count that noise
cannot move), the compiled temporary memory and the trace + compile time.
PyTorch CPU is an optional column when `torch` is installed. Writes
benchmarks/results/losses.md and docs/img/benchmark_losses.png (shown by the
README and the docs).

The script restarts itself under `_measure.STEADY_MALLOC`, so that buffers
are reused between calls rather than faulted in afresh each time. On a
shared virtual machine a call still sometimes stalls for a second or more
(the host, not the program: it happens with no page faults in the process);
the best time is then the estimate of a call's cost, and the targets are
judged on it, with the median shown beside it. The stalls hit the 512 MiB
arrays of the full shapes far more often than 128 MiB ones, so `--quarter`
repeats the float32 cases with a quarter of the rows (same classes) and
more repetitions, into benchmarks/results/losses_quarter.md.
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import platform
import re
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from _measure import (
    compiled,
    full_passes,
    interleaved_times,
    mib,
    reexec_with_steady_malloc,
    temp_bytes,
)
from tqdm import tqdm

import jaxloss

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = pathlib.Path(__file__).parent / "results"
PLOT = pathlib.Path(__file__).parent.parent / "docs" / "img" / "benchmark_losses.png"

try:  # optional column
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    torch = None


# --------------------------------------------------------------------------
# Baselines where optax has no function of the same name: the textbook jnp
# formula a user would write.


def naive_bce(p, y):
    return -(y * jnp.maximum(jnp.log(p), -100) + (1 - y) * jnp.maximum(jnp.log1p(-p), -100))


def naive_binary_focal(p, y, gamma=2.0):
    p_t = y * p + (1 - y) * (1 - p)
    return (1 - p_t) ** gamma * naive_bce(p, y)


def naive_categorical(p, y):
    return -jnp.sum(y * jnp.log(jnp.clip(p, 1e-7, 1.0)), -1)


def naive_softmax_focal(x, y, gamma=2.0):
    log_p = jax.nn.log_softmax(x, -1)
    return -jnp.sum(y * (1 - jnp.exp(log_p)) ** gamma * log_p, -1)


def naive_softmax_focal_int(x, y, gamma=2.0):
    log_p = jnp.take_along_axis(jax.nn.log_softmax(x, -1), y[:, None], -1)[:, 0]
    return -((1 - jnp.exp(log_p)) ** gamma) * log_p


# --------------------------------------------------------------------------
# Inputs.


def make(kind, shape, dtype, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    z = (jax.random.normal(k1, shape, jnp.float32) * 2).astype(dtype)
    n, c = shape
    if kind == "probs":  # binary probabilities, labels in [0, 1]
        return jax.nn.sigmoid(z), jax.random.bernoulli(k2, 0.3, shape).astype(dtype)
    if kind == "logits":
        return z, jax.random.bernoulli(k2, 0.3, shape).astype(dtype)
    if kind == "int":
        return z, jax.random.randint(k3, (n,), 0, c)
    t = jax.nn.softmax(jax.random.normal(k2, shape) * 3, -1).astype(dtype)
    if kind == "dist":
        return z, t
    return jax.nn.softmax(z.astype(jnp.float32), -1).astype(dtype), t  # "simplex"


OX = optax.losses
WEIGHTS = "per-class vector"  # replaced by a [C] array of weights
SPECS = [  # jaxloss function, options, baseline, input kind, family
    ("binary_cross_entropy", {}, naive_bce, "probs", "binary"),
    ("sigmoid_binary_cross_entropy", {}, OX.sigmoid_binary_cross_entropy, "logits", "binary"),
    (
        "sigmoid_binary_cross_entropy",
        {"pos_weight": WEIGHTS, "label_smoothing": 0.1},
        OX.sigmoid_binary_cross_entropy,
        "logits",
        "binary",
    ),
    ("binary_focal_loss", {}, naive_binary_focal, "probs", "binary"),
    ("sigmoid_focal_loss", {}, OX.sigmoid_focal_loss, "logits", "binary"),
    ("softmax_cross_entropy", {}, OX.softmax_cross_entropy, "dist", "softmax"),
    (
        "softmax_cross_entropy_with_integer_labels",
        {},
        OX.softmax_cross_entropy_with_integer_labels,
        "int",
        "softmax",
    ),
    (
        "softmax_cross_entropy_with_integer_labels",
        {"class_weight": WEIGHTS, "ignore_index": 0, "label_smoothing": 0.1},
        OX.softmax_cross_entropy_with_integer_labels,
        "int",
        "options",
    ),
    ("categorical_cross_entropy", {}, naive_categorical, "simplex", "softmax"),
    ("softmax_focal_loss", {}, naive_softmax_focal, "dist", "softmax"),
    ("softmax_focal_loss_with_integer_labels", {}, naive_softmax_focal_int, "int", "softmax"),
]


def cases(quick, rows=1):
    """(name, jaxloss fn, baseline name, baseline fn, input kind, shapes, options);
    the row counts divided by `rows`."""
    big, small, binary = (4096 // rows, 32768), (65536 // rows, 10), (8192 // rows, 4096)
    shapes = {"binary": [binary], "softmax": [big] if quick else [big, small], "options": [big]}
    out = []
    for name, opts, base, kind, family in SPECS:
        base_name = "optax" if base.__module__.startswith("optax") else "naive jnp"
        if opts:
            name += " " + " ".join("+" + k for k in opts)
            base_name += " (plain)"
        out.append(
            (name, getattr(jaxloss, name.split()[0]), base_name, base, kind, shapes[family], opts)
        )
    return out


def torch_fn(name, opts):
    """The PyTorch CPU equivalent (forward + backward of the mean), or None."""
    if torch is None:
        return None
    plain = not opts
    table = {
        "binary_cross_entropy": lambda x, y: F.binary_cross_entropy(x, y),
        "sigmoid_binary_cross_entropy": lambda x, y: F.binary_cross_entropy_with_logits(x, y),
        "softmax_cross_entropy": lambda x, y: F.cross_entropy(x, y),
        "softmax_cross_entropy_with_integer_labels": lambda x, y: F.cross_entropy(x, y),
    }
    base = name.split(" ")[0]
    return table.get(base) if plain else None


def time_torch(fn, x, y, reps):
    xt = torch.from_numpy(np.asarray(x.astype(jnp.float32))).to(
        torch.bfloat16 if x.dtype == jnp.bfloat16 else torch.float32
    )
    yt = torch.from_numpy(np.asarray(y.astype(jnp.float32) if y.dtype != jnp.int32 else y))
    if y.dtype == jnp.int32:
        yt = yt.long()
    else:
        yt = yt.to(xt.dtype)
    xt.requires_grad_(True)
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        fn(xt, yt).backward()
        times.append(time.perf_counter() - start)
        xt.grad = None
    return float(np.median(times[1:]))


def contenders(fn, base, kind, shape, dtype, opts):
    """Inputs, traced options and the mean losses of jaxloss and its baseline.

    Labels and weights are arguments, never constants folded into the
    program; integer options (ignore_index) are static.
    """
    x, y = make(kind, shape, dtype)
    kw = {k: (jnp.linspace(0.5, 2.0, shape[-1]) if v == WEIGHTS else v) for k, v in opts.items()}
    static = {k: v for k, v in kw.items() if isinstance(v, int)}
    kw = {k: v for k, v in kw.items() if k not in static}

    def ours(x, y, kw):
        return fn(x, y, reduction="mean", **kw, **static)

    def theirs(x, y, kw):
        return jnp.mean(base(x, y))

    return x, y, kw, ours, theirs


def run_case(name, fn, base_name, base, kind, shape, dtype, opts, reps):
    x, y, kw, ours, theirs = contenders(fn, base, kind, shape, dtype, opts)

    def copy(x):
        return x * 1.0 + 0.0

    exe_ours, t_compile = compiled(jax.value_and_grad(ours), x, y, kw)
    exe_base, _ = compiled(jax.value_and_grad(theirs), x, y, {})
    exe_copy, _ = compiled(copy, x)
    runs = [
        functools.partial(exe_ours, x, y, kw),
        functools.partial(exe_base, x, y, {}),
        functools.partial(exe_copy, x),
    ]
    (m_ours, t_ours), (m_base, t_base), (_, t_copy) = interleaved_times(runs, reps)
    hlo_shape = f"[{','.join(map(str, shape))}]"  # any element type
    tf = torch_fn(name, opts)
    t_torch = time_torch(tf, x, y, reps) if tf is not None else None
    return {
        "loss": name,
        "shape": "x".join(map(str, shape)),
        "dtype": jnp.dtype(dtype).name,
        "baseline": base_name,
        "t_ours": t_ours,
        "t_base": t_base,
        "m_ours": m_ours,
        "m_base": m_base,
        "passes": (full_passes(exe_ours, hlo_shape), full_passes(exe_base, hlo_shape)),
        "t_copy": t_copy,
        "t_torch": t_torch,
        "mem_ours": temp_bytes(exe_ours),
        "mem_base": temp_bytes(exe_base),
        "compile": t_compile,
    }


# The losses whose CPU program differs from the plain core's (jaxloss/_cpu.py).
CORE_SPECS = [s for s in SPECS if s[0] in ("softmax_cross_entropy", "softmax_focal_loss")] + [
    s for s in SPECS if s[0] == "softmax_cross_entropy_with_integer_labels"
]


def run_core_case(name, fn, base_name, base, kind, shape, dtype, opts, reps):
    """The same loss compiled with the XLA:CPU fast path and with the plain
    core forced (`jaxloss._core.plain_core`), and the baseline, interleaved."""
    from jaxloss._core import plain_core

    x, y, kw, ours, theirs = contenders(fn, base, kind, shape, dtype, opts)
    exe_fast, _ = compiled(jax.value_and_grad(ours), x, y, kw)
    with plain_core():
        exe_plain, _ = compiled(jax.value_and_grad(ours), x, y, kw)
    exe_base, _ = compiled(jax.value_and_grad(theirs), x, y, {})
    runs = [
        functools.partial(exe_fast, x, y, kw),
        functools.partial(exe_plain, x, y, kw),
        functools.partial(exe_base, x, y, {}),
    ]
    (m_fast, t_fast), (m_plain, t_plain), (m_base, t_base) = interleaved_times(runs, reps)
    hlo_shape = f"[{','.join(map(str, shape))}]"
    (rf, wf), (rp, wp), (rb, wb) = (
        full_passes(e, hlo_shape) for e in (exe_fast, exe_plain, exe_base)
    )
    return (
        f"| {name} | {'x'.join(map(str, shape))} | {jnp.dtype(dtype).name} "
        f"| {t_fast * 1e3:.0f} ms ({m_fast * 1e3:.0f}) "
        f"| {t_plain * 1e3:.0f} ms ({m_plain * 1e3:.0f}) "
        f"| {base_name} {t_base * 1e3:.0f} ms | **{t_plain / t_fast:.2f}x** "
        f"| {rf}/{wf} · {rp}/{wp} · {rb}/{wb} |"
    )


def core_table(reps):
    lines = [
        "# The XLA:CPU fast path against the plain core",
        "",
        f"{jax.devices()[0].device_kind}, {platform.machine()}, jax {jax.__version__}; forward + "
        f"backward of the mean, {reps} interleaved repetitions, best time (median in brackets). "
        "`plain / fast` is the plain core's best time over the fast path's, in the same run. "
        "Passes: full-size reads/writes of the fast path · the plain core · the baseline. "
        "Generated by `benchmarks/run.py --core`.",
        "",
        "| loss | shape | dtype | CPU fast path | plain core | baseline | plain / fast | passes |",
        "|---" * 8 + "|",
    ]
    big = (4096, 32768)
    for dtype in (jnp.float32, jnp.bfloat16):
        for name, opts, base, kind, _ in tqdm(CORE_SPECS, desc=jnp.dtype(dtype).name):
            base_name = "optax" if base.__module__.startswith("optax") else "naive jnp"
            label = name + "".join(" +" + k for k in opts)
            fn = getattr(jaxloss, name)
            lines.append(run_core_case(label, fn, base_name, base, kind, big, dtype, opts, reps))
    return "\n".join(lines) + "\n"


def target(r):
    """The issue's target for this row: (text, met on the best time, met on the median)."""
    if "+" in r["loss"]:
        goal, limit = "<= 1.1x plain optax", 1.1
    elif r["baseline"] == "optax":
        goal, limit = "<= 1.0x optax", 1.0
    else:
        return "", True, True
    return goal, r["t_ours"] / r["t_base"] <= limit, r["m_ours"] / r["m_base"] <= limit


def verdict(r):
    goal, best, median = target(r)
    if not goal:
        return ""
    if best and median:
        return f"{goal}: met"
    if best:
        return f"{goal}: met on the best time, not on the median"
    return f"{goal}: **missed**" + ("" if not median else " (met on the median)")


def markdown(rows, reps):
    lines = [
        "# Loss benchmarks: jaxloss vs optax / naive jnp",
        "",
        f"{jax.devices()[0].device_kind}, {platform.machine()}, jax {jax.__version__}, "
        f"optax {optax.__version__}; forward + backward of the mean "
        f"(`jax.jit(jax.value_and_grad(...))`), {reps} interleaved repetitions: best time "
        "(median in brackets). Ratios are within one run. `vs copy` is the best time over "
        "that of a copy pass (`z * 1.0 + 0.0`) of the same array. `passes` counts the "
        "full-size arrays (any element type) the compiled program's top-level ops read and write "
        "(jaxloss / baseline). Generated by `benchmarks/run.py`.",
        "",
        "| loss | shape | dtype | jaxloss | baseline | vs baseline: best (median) | vs copy "
        "| passes R/W | temp memory (jaxloss / baseline) | compile | PyTorch CPU | target |",
        "|---" * 12 + "|",
    ]
    for r in rows:
        torch_t = "" if r["t_torch"] is None else f"{r['t_torch'] * 1e3:.0f} ms"
        (ro, wo), (rb, wb) = r["passes"]
        lines.append(
            f"| {r['loss']} | {r['shape']} | {r['dtype']} "
            f"| {r['t_ours'] * 1e3:.0f} ms ({r['m_ours'] * 1e3:.0f}) "
            f"| {r['baseline']} {r['t_base'] * 1e3:.0f} ms ({r['m_base'] * 1e3:.0f}) "
            f"| **{r['t_ours'] / r['t_base']:.2f}x** ({r['m_ours'] / r['m_base']:.2f}x) "
            f"| {r['t_ours'] / r['t_copy']:.2f}x | {ro}/{wo} vs {rb}/{wb} "
            f"| {mib(r['mem_ours'])} / {mib(r['mem_base'])} "
            f"| {r['compile']:.2f} s | {torch_t} | {verdict(r)} |"
        )
    return "\n".join(lines) + "\n"


def short(loss):
    """A row label that stays legible at page width."""
    loss = loss.replace("_with_integer_labels", " (int)")
    return loss.replace(" +class_weight +ignore_index +label_smoothing", " +options").replace(
        " +pos_weight +label_smoothing", " +options"
    )


def plot(rows, path):
    """Two panels per case: best time and full-size passes (reads + writes),
    each over the baseline's."""
    fig, (ax_t, ax_p) = plt.subplots(
        1, 2, figsize=(10, 0.3 * len(rows) + 1.6), sharey=True, width_ratios=(3, 2)
    )
    labels = [f"{short(r['loss'])} {r['shape']}" for r in rows]
    colors = ["tab:blue" if r["dtype"] == "float32" else "tab:orange" for r in rows]
    passes = [sum(r["passes"][0]) / sum(r["passes"][1]) for r in rows]
    ax_t.barh(range(len(rows)), [r["t_ours"] / r["t_base"] for r in rows], color=colors)
    ax_p.barh(range(len(rows)), passes, color=colors)
    for ax in (ax_t, ax_p):
        ax.axvline(1.0, color="k", lw=1)
    ax_t.set_yticks(range(len(rows)), labels, fontsize=9)
    ax_t.invert_yaxis()
    ax_t.set(xlabel="best time / baseline's")
    ax_p.set(xlabel="reads + writes / baseline's")
    fig.suptitle("jaxloss over optax or naive jnp: blue float32, orange bfloat16", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")  # long labels stay whole


def rows_from_markdown(path):
    """The rows `plot` needs, read back from a results table."""
    rows = []
    for line in pathlib.Path(path).read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 8 or not re.fullmatch(r"\d+x\d+", cells[1]):
            continue
        ratio = float(re.match(r"\*\*([\d.]+)x", cells[5]).group(1))
        (ro, wo), (rb, wb) = (map(int, p.split("/")) for p in cells[7].split(" vs "))
        rows.append(
            dict(
                loss=cells[0],
                shape=cells[1],
                dtype=cells[2],
                t_ours=ratio,
                t_base=1.0,
                passes=((ro, wo), (rb, wb)),
            )
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--quarter", action="store_true")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--replot", action="store_true", help="redraw the plot from losses.md")
    parser.add_argument("--core", action="store_true", help="CPU fast path vs plain core")
    args = parser.parse_args()
    if args.replot:
        return plot(rows_from_markdown(RESULTS / "losses.md"), PLOT)
    reexec_with_steady_malloc()
    if args.core:
        text = core_table(args.reps or 7)
        print(text)
        return (RESULTS / "core_cpu.md").write_text(text)
    reps = args.reps or (3 if args.quick else 9 if args.quarter else 7)
    dtypes = [jnp.float32] if args.quick or args.quarter else [jnp.float32, jnp.bfloat16]
    todo = [
        (name, fn, bn, b, kind, shape, dtype, opts)
        for dtype in dtypes
        for name, fn, bn, b, kind, shapes, opts in cases(args.quick, 4 if args.quarter else 1)
        for shape in shapes
    ]
    rows = [run_case(*case, reps) for case in tqdm(todo, desc="losses", unit="case")]
    text = markdown(rows, reps)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    name = "losses_quick" if args.quick else "losses_quarter" if args.quarter else "losses"
    (RESULTS / f"{name}.md").write_text(text)
    if name == "losses":
        plot(rows, PLOT)


if __name__ == "__main__":
    main()
