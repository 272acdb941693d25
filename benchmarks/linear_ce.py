"""linear_softmax_cross_entropy against the naive matmul + optax cross-entropy.

    python benchmarks/linear_ce.py            # full (about 6 minutes on 2 quiet cores)
    python benchmarks/linear_ce.py --quick    # the target shapes only, 1 repetition

Measures, for `jax.jit(jax.value_and_grad(mean loss, argnums=(inputs, kernel)))`
in float32 on this machine's default device:

1. compiled temporary memory at N=4096, V=32768, D=256 and 512, as a fraction
   of the logits' N * V * 4 bytes;
2. time at N=4096, D=512, V=32768: naive, fused (gradients in the forward
   pass, used for "mean" / "sum"), fused with recomputation in the backward
   pass (what `reduction="none"` does), and the three matmuls alone (the
   compute floor);
3. the chunk size sweep behind the default;
4. a scaling table over V in {8k, 32k, 64k, 128k, 256k} x N in {1k, 4k, 16k}
   (D=128): the default plan (whole rows up to V = 65536, vocabulary tiles
   above) and, above V = 65536, whole rows of 128 tokens (`chunk_size=128`).

The script restarts itself with glibc keeping freed memory in the process
(`_measure.STEADY_MALLOC`), so that every contender reuses its buffers
between calls as XLA's GPU and TPU allocators do; under glibc's default the
naive loss would pay to fault its gigabytes of logits in on every call.

Writes benchmarks/results/linear_ce.md (and docs/img/linear_ce_scaling.png);
`--peers` writes benchmarks/results/linear_ce_peers.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import os
import pathlib
import platform
import sys

import jax
import jax.numpy as jnp
import optax
from _measure import compiled, interleaved_medians, mib, reexec_with_steady_malloc, temp_bytes
from tqdm import tqdm

import jaxloss

reexec_with_steady_malloc()

OUT = pathlib.Path(__file__).parent / "results" / "linear_ce.md"
# Naive programs needing more temporary memory than this are not run here.
MAX_RUN_BYTES = 10 * 2**30


def naive(x, kernel, labels):
    return optax.losses.softmax_cross_entropy_with_integer_labels(x @ kernel, labels).mean()


def fused(x, kernel, labels, chunk_size=None):
    return jaxloss.linear_softmax_cross_entropy(
        x, kernel, labels, reduction="mean", chunk_size=chunk_size
    )


def recompute(x, kernel, labels, chunk_size=None):
    """reduction="none" then a mean: the backward pass recomputes the logits."""
    return jaxloss.linear_softmax_cross_entropy(x, kernel, labels, chunk_size=chunk_size).mean()


def matmuls(x, kernel, g):
    """The three matmuls of a forward + backward pass, and nothing else."""
    return x @ kernel, g @ kernel.T, x.T @ g


def grad_fn(loss):
    return jax.value_and_grad(loss, argnums=(0, 1))


def data(n, d, v, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(k1, (n, d), jnp.float32)
    kernel = jax.random.normal(k2, (d, v), jnp.float32) * d**-0.5
    labels = jax.random.randint(k3, (n,), 0, v)
    return x, kernel, labels


def spec(n, d, v):
    f = jax.ShapeDtypeStruct
    return f((n, d), jnp.float32), f((d, v), jnp.float32), f((n,), jnp.int32)


def memory_rows(dims):
    rows = [
        "| N | D | V | logits N·V·4 | naive temp | fused temp | fused / logits |",
        "|---" * 7 + "|",
    ]
    for n, d, v in dims:
        logits = n * v * 4
        t_naive = temp_bytes(compiled(grad_fn(naive), *spec(n, d, v))[0])
        t_fused = temp_bytes(compiled(grad_fn(fused), *spec(n, d, v))[0])
        rows.append(
            f"| {n} | {d} | {v} | {mib(logits)} | {mib(t_naive)} | {mib(t_fused)} "
            f"| **{t_fused / logits:.3f}** (1/{logits / t_fused:.1f}) |"
        )
    return rows


def speed_rows(n, d, v, reps, bar):
    x, kernel, labels = data(n, d, v)
    g = jax.random.normal(jax.random.key(9), (n, v), jnp.float32)
    contenders = {
        "naive (optax on x @ W)": (grad_fn(naive), (x, kernel, labels)),
        "fused, gradients in forward (mean/sum)": (grad_fn(fused), (x, kernel, labels)),
        "fused, recompute in backward (none)": (grad_fn(recompute), (x, kernel, labels)),
        "three matmuls alone (floor)": (matmuls, (x, kernel, g)),
    }
    exes = {k: compiled(f, *a) for k, (f, a) in contenders.items()}
    runs = [functools.partial(exes[k][0], *a) for k, (_, a) in contenders.items()]
    times = interleaved_medians(runs, reps, bar.update)
    t_naive, t_floor = times[0], times[-1]
    rows = ["| contender | time | vs naive | vs 3 matmuls | temp memory |", "|---" * 5 + "|"]
    for (k, (exe, _)), t in zip(exes.items(), times, strict=True):
        ratios = f"{t / t_naive:.2f}x | {t / t_floor:.2f}x"
        rows.append(f"| {k} | {t:.2f} s | {ratios} | {mib(temp_bytes(exe))} |")
    return rows


def peer_rows(n, d, v, reps, bar):
    """jaxloss against the peers in one interleaved run: naive JAX, tokamax's
    `linear_softmax_cross_entropy_loss` (XLA path) where installed, and
    PyTorch's `F.cross_entropy(x @ W.T)` and chunked
    `F.linear_cross_entropy(options=LinearCrossEntropyOptions())` (value
    and gradients for inputs and weights, `.backward()`)."""
    x, kernel, labels = data(n, d, v)
    jax_contenders = {
        "naive JAX (optax on x @ W)": grad_fn(naive),
        "jaxloss, default plan": grad_fn(fused),
        "jaxloss, chunk_size=256": grad_fn(functools.partial(fused, chunk_size=256)),
    }
    try:
        import tokamax
        from absl import flags

        if not flags.FLAGS.is_parsed():  # tokamax reads absl flags: not this script's
            flags.FLAGS(sys.argv[:1])

        def tokamax_loss(x, kernel, labels):
            return tokamax.linear_softmax_cross_entropy_loss(
                x, labels, kernel, reduction="mean", implementation="xla"
            )

        version = importlib.metadata.version("tokamax")
        jax_contenders[f"tokamax {version} (XLA path)"] = grad_fn(tokamax_loss)
    except ImportError:
        pass
    exes = {k: compiled(f, x, kernel, labels)[0] for k, f in jax_contenders.items()}
    runs = {k: functools.partial(e, x, kernel, labels) for k, e in exes.items()}
    mem = {k: mib(temp_bytes(e)) for k, e in exes.items()}
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(os.cpu_count() or 1)
        xt = torch.tensor(np.asarray(x), requires_grad=True)
        wt = torch.tensor(np.asarray(kernel).T.copy(), requires_grad=True)  # [V, D]
        yt = torch.tensor(np.asarray(labels), dtype=torch.long)

        def torch_run(fn):
            def run():
                xt.grad = wt.grad = None
                fn().backward()
                return None

            return run

        runs[f"PyTorch {torch.__version__} cross_entropy(x @ W.T)"] = torch_run(
            lambda: F.cross_entropy(xt @ wt.T, yt)
        )
        runs[f"PyTorch {torch.__version__} linear_cross_entropy, chunked"] = torch_run(
            lambda: F.linear_cross_entropy(xt, wt, yt, options=torch.nn.LinearCrossEntropyOptions())
        )
    except ImportError:
        pass
    times = interleaved_medians(list(runs.values()), reps, bar.update)
    base = times[0]
    rows = ["| contender | time | vs naive JAX | temp memory |", "|---" * 4 + "|"]
    for k, t in zip(runs, times, strict=True):
        rows.append(f"| {k} | {t:.2f} s | **{t / base:.2f}x** | {mem.get(k, 'not measured')} |")
    return rows


def chunk_rows(n, d, v, chunks, reps, bar):
    x, kernel, labels = data(n, d, v)
    exes = [
        compiled(grad_fn(functools.partial(fused, chunk_size=c)), x, kernel, labels)[0]
        for c in chunks
    ]
    exes.append(compiled(grad_fn(naive), x, kernel, labels)[0])
    times = interleaved_medians(
        [functools.partial(e, x, kernel, labels) for e in exes], reps, bar.update
    )
    rows = [
        "| chunk (tokens) | logits per chunk | time vs naive | temp / logits |",
        "|---" * 4 + "|",
    ]
    for c, e, t in zip(chunks, exes, times, strict=False):
        rows.append(
            f"| {c} | {mib(c * v * 4)} | {t / times[-1]:.2f}x | {temp_bytes(e) / (n * v * 4):.3f} |"
        )
    return rows


def scaling_rows(ns, vs, d, reps, bar):
    rows = [
        "| V | N | naive temp | naive time | fused temp | fused / naive "
        "| rows of 128: temp | rows of 128 / naive |",
        "|---" * 8 + "|",
    ]
    for v in vs:
        for n in ns:
            x, kernel, labels = data(n, d, v)
            contenders = [grad_fn(fused)]
            if v > 65536:  # the default tiles the vocabulary: whole rows beside it
                contenders.append(grad_fn(functools.partial(fused, chunk_size=128)))
            exes = [compiled(f, x, kernel, labels)[0] for f in contenders]
            e_naive = compiled(grad_fn(naive), x, kernel, labels)[0]
            m_naive = temp_bytes(e_naive)
            runs = [functools.partial(e, x, kernel, labels) for e in exes]
            if m_naive <= MAX_RUN_BYTES:
                runs.append(functools.partial(e_naive, x, kernel, labels))
            times = interleaved_medians(runs, reps)
            bar.update()
            timed = m_naive <= MAX_RUN_BYTES
            naive_t = f"{times[-1]:.2f} s" if timed else f"not run: needs {mib(m_naive)}"

            def ratio(i, times=times, timed=timed):
                return f"**{times[i] / times[-1]:.2f}x**" if timed else f"({times[i]:.2f} s)"

            cells = [mib(m_naive), naive_t, mib(temp_bytes(exes[0])), ratio(0)]
            cells += [mib(temp_bytes(exes[1])), ratio(1)] if len(exes) == 2 else ["—", "—"]
            rows.append(f"| {v} | {n} | " + " | ".join(cells) + " |")
            POINTS.append((n, v, temp_bytes(exes[0]), times[0] / times[-1] if timed else None))
            del x, kernel, labels
    return rows


POINTS: list = []  # (N, V, fused temp bytes, fused / naive time) from the scaling table


def plot_scaling(path):
    """Time ratio and compiled memory of the fused loss against V, per N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.4))
    for n in sorted({p[0] for p in POINTS}):
        pts = [p for p in POINTS if p[0] == n]
        timed = [p for p in pts if p[3] is not None]
        ax_t.plot([p[1] for p in timed], [p[3] for p in timed], marker="o", label=f"N={n}")
        ax_m.plot([p[1] for p in pts], [p[2] / 2**20 for p in pts], marker="o", label=f"N={n}")
    ax_t.axhline(1.0, color="gray", linestyle=":")
    ax_t.set(xscale="log", xlabel="V", ylabel="fused / naive time", title="time (D=128)")
    ax_m.set(xscale="log", yscale="log", xlabel="V", ylabel="MiB", title="fused temp memory")
    ax_t.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="target shapes, 1 repetition")
    parser.add_argument("--reps", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument(
        "--peers", action="store_true",
        help="only the peer table (tokamax and PyTorch where installed) at the target shapes",
    )  # fmt: skip
    args = parser.parse_args()
    if args.peers:
        return peers_main(args.reps or 3)
    reps = args.reps or (1 if args.quick else 3)
    chunks = [32, 64, 128, 256, 512]
    ns, vs = [1024, 4096, 16384], [8192, 32768, 65536, 131072, 262144]
    total = reps + (0 if args.quick else 2 + len(ns) * len(vs))
    with tqdm(total=total, desc="linear CE") as bar:
        out = [
            "# Fused linear cross-entropy: memory and time",
            "",
            f"{jax.devices()[0].device_kind}, {platform.machine()}, jax {jax.__version__}, "
            f"float32, `jax.jit(jax.value_and_grad(mean loss, argnums=(inputs, kernel)))`, "
            f"medians of {reps} interleaved repetitions, glibc keeping freed memory for reuse "
            "(`_measure.STEADY_MALLOC`, as GPU/TPU allocators do). "
            "Generated by `benchmarks/linear_ce.py`.",
            "",
            "## Compiled temporary memory",
            "",
            *memory_rows([(4096, 256, 32768), (4096, 512, 32768)]),
            "",
            "## Time at N=4096, D=512, V=32768",
            "",
            *speed_rows(4096, 512, 32768, reps, bar),
        ]
        if not args.quick:
            out += [
                "",
                "## Chunk size (N=4096, D=512, V=32768)",
                "",
                *chunk_rows(4096, 512, 32768, chunks, 2, bar),
                "",
                "## Scaling (D=128, 1 repetition each)",
                "",
                "The default plan: whole rows of `max(128, 2**23 // V)` tokens up to "
                "V = 65536, vocabulary tiles above (2048 tokens by about 2048 classes). "
                "Beside the tiles, whole rows of 128 tokens (`chunk_size=128`). "
                "Times in parentheses: naive not run.",
                "",
                *scaling_rows(ns, vs, 128, 1, bar),
            ]
    text = "\n".join(out) + "\n"
    OUT.parent.mkdir(exist_ok=True)
    (OUT.with_name("linear_ce_quick.md") if args.quick else OUT).write_text(text)
    if POINTS:
        plot_scaling(
            pathlib.Path(__file__).parent.parent / "docs" / "img" / "linear_ce_scaling.png"
        )
    print(text)


def peers_main(reps):
    shapes = [(4096, 512, 32768), (8192, 256, 65536)]
    with tqdm(total=reps * len(shapes), desc="linear CE peers") as bar:
        out = [
            "# Fused linear cross-entropy against its peers",
            "",
            f"{jax.devices()[0].device_kind}, {platform.machine()}, jax {jax.__version__}, "
            "float32, value and gradients for inputs and kernel of the mean loss, medians of "
            f"{reps} interleaved repetitions (JAX and PyTorch contenders in one run, "
            "glibc keeping freed memory for reuse: `_measure.STEADY_MALLOC`). "
            "Temp memory from `memory_analysis()` (JAX only). "
            "Generated by `benchmarks/linear_ce.py --peers`.",
        ]
        for n, d, v in shapes:
            out += ["", f"## N={n}, D={d}, V={v} (logits {mib(n * v * 4)})", ""]
            out += peer_rows(n, d, v, reps, bar)
    text = "\n".join(out) + "\n"
    OUT.with_name("linear_ce_peers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
