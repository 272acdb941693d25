"""MkDocs hook: TeX between `$$ ... $$` (display) or `$...$` (inline) becomes
MathML when the site is built, so math renders in any current browser
without a script or a network connection (the renderer, latex2mathml, is a
build dependency from PyPI)."""

from __future__ import annotations

import re

from latex2mathml.converter import convert

DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
INLINE = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=\S)\$(?![\w$])")
FENCE = re.compile(r"(^```.*?^```)", re.S | re.M)


def _render(markdown: str) -> str:
    markdown = DISPLAY.sub(lambda m: convert(m.group(1).strip(), display="block"), markdown)
    return INLINE.sub(lambda m: convert(m.group(1)), markdown)


def on_page_markdown(markdown: str, **kwargs) -> str:
    # Leave code blocks alone: only prose holds math.
    parts = FENCE.split(markdown)
    return "".join(p if p.startswith("```") else _render(p) for p in parts)
