"""Timing and compiled memory, measured the same way for every contender.

Times are medians over repetitions; within a repetition the contenders run
in turn, each once untimed right before its timed call, so that all of them
meet the same allocator and cache state. Only ratios between contenders of
the same run are meaningful on a shared, noisy machine.
"""

from __future__ import annotations

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


def interleaved_medians(
    runs: Sequence[Callable[[], object]], reps: int, progress: Callable[[], None] | None = None
) -> list[float]:
    """Median seconds of each thunk, interleaved: warm call, timed call, next thunk."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(reps):
        for i, run in enumerate(runs):
            jax.block_until_ready(run())  # untimed, right before the timed call
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[i].append(time.perf_counter() - start)
        if progress:
            progress()
    return [float(np.median(t)) for t in times]


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"
