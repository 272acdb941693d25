"""Small helpers the examples share: the output folder, tables and plots."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

OUT = pathlib.Path(__file__).parent / "out"


def out_path(name: str) -> pathlib.Path:
    """`examples/out/<name>`, creating the (git-ignored) folder."""
    OUT.mkdir(exist_ok=True)
    return OUT / name


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table; floats with 3 decimals."""

    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
