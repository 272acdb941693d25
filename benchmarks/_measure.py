"""Timing and compiled memory, measured the same way for every contender.

Times are medians over repetitions; within a repetition the contenders run
in turn, each once untimed right before its timed call, so that all of them
meet the same allocator and cache state. Only ratios between contenders of
the same run are meaningful on a shared, noisy machine.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np


def compiled(fn: Callable, *args):
    """`jax.jit(fn)` lowered and compiled for `args` (arrays or ShapeDtypeStructs)."""
    start = time.perf_counter()
    exe = jax.jit(fn).lower(*args).compile()
    return exe, time.perf_counter() - start


def temp_bytes(exe) -> int:
    """Temporary (non-argument, non-output) bytes of a compiled program."""
    return exe.memory_analysis().temp_size_in_bytes


# glibc settings under which a freed buffer stays in the process and the next
# call reuses it, as XLA's GPU and TPU allocators do. By default glibc hands
# every large buffer back to the kernel and each call faults its pages in
# again, which on a virtual machine costs more than the loss itself.
STEADY_MALLOC = (
    "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
    "glibc.malloc.trim_threshold=68719476736:glibc.malloc.top_pad=1073741824"
)


def reexec_with_steady_malloc() -> None:
    """Restart this script with `STEADY_MALLOC` unless it is set already."""
    if os.environ.get("GLIBC_TUNABLES") != STEADY_MALLOC:
        os.environ["GLIBC_TUNABLES"] = STEADY_MALLOC
        os.execv(sys.executable, [sys.executable, *sys.argv])


def full_passes(exe, shape: str) -> tuple[int, int]:
    """Reads and writes of a full-size array (`shape`, e.g. "[4096,32768]")
    by the top-level ops of a compiled program: a noise-free count of its
    passes over memory, read off `exe.as_text()`."""
    text = exe.as_text()
    shapes: dict[str, str] = {}
    reads = writes = 0
    for line in text[text.index("\nENTRY") :].splitlines()[1:]:
        m = re.match(r"\s*(?:ROOT )?(%[\w.\-]+) = (\S+) ([\w\-]+)\((.*?)\)", line)
        if not m:
            continue
        name, out, op, args = m.groups()
        shapes[name] = out
        if op in ("parameter", "tuple", "get-tuple-element", "bitcast", "constant"):
            continue
        reads += sum(shape in shapes.get(a, "") for a in re.findall(r"%[\w.\-]+", args))
        writes += out.count(shape)
    return reads, writes


def interleaved_times(
    runs: Sequence[Callable[[], object]], reps: int, progress: Callable[[], None] | None = None
) -> list[tuple[float, float]]:
    """(median, best) seconds of each thunk, interleaved: warm call, timed
    call, next thunk."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(reps):
        for i, run in enumerate(runs):
            jax.block_until_ready(run())  # untimed, right before the timed call
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[i].append(time.perf_counter() - start)
        if progress:
            progress()
    return [(float(np.median(t)), float(np.min(t))) for t in times]


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def interleaved_medians(
    runs: Sequence[Callable[[], object]], reps: int, progress: Callable[[], None] | None = None
) -> list[float]:
    """Median seconds of each thunk (see `interleaved_times`)."""
    return [med for med, _ in interleaved_times(runs, reps, progress)]
