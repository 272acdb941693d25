"""The README's and the docs' code runs as written.

Python blocks run here; blocks written as `>>>` sessions (docs/index.md,
docs/migration.md) and the docstrings run as doctests (pytest's
--doctest-glob and --doctest-modules, see pyproject.toml).
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def _script_blocks(path):
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    return [b for b in blocks if not b.lstrip().startswith(">>>")]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(path):
    for block in _script_blocks(path):
        exec(compile(block, str(path), "exec"), {})


def test_readme_has_code():
    assert _script_blocks(README)


def test_every_page_is_in_the_site():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name in nav, page.name


def test_readme_quickstart_is_two_commands():
    first = re.search(r"```\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(first.strip().splitlines()) == 2


def test_focal_curve_script_runs(tmp_path):
    import runpy
    import sys

    script = pathlib.Path(__file__).parent.parent / "examples" / "focal_curve.py"
    out = tmp_path / "curve.png"
    argv, sys.argv = sys.argv, [str(script), "--out", str(out)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    assert out.stat().st_size > 10_000


# --------------------------------------------------------------------------
# The built site: what a reader sees, offline.

LEFT_AS_TEXT = {
    "a doctest prompt outside a code block": r"&gt;&gt;&gt;",
    "a Sphinx role": r":(?:func|class|meth|mod|attr):`",
    "a reST literal-block marker": r"\w::(?:\s|<)",
    "a math delimiter": r"\$\$|\\\[|\\\]|\\\(|\\\)",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    out = tmp_path_factory.mktemp("site")
    build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(out), strict=True))
    return {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.html")}


def _prose(html):
    """The page without its code, scripts and styles."""
    html = re.sub(r"<(pre|code|script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_site_renders_examples_math_and_nothing_raw(site):
    api = site["api/index.html"]
    assert api.count('<span class="gp">&gt;&gt;&gt; </span>') > 20  # examples are code
    assert "<math" in site["numerics/index.html"]  # math rendered at build time
    for page, html in site.items():
        text = _prose(html)
        for what, pattern in LEFT_AS_TEXT.items():
            found = re.findall(pattern, text)
            assert not found, f"{page}: {what} shown as text: {found[:3]}"


def test_site_loads_nothing_from_another_site(site):
    for page, html in site.items():
        remote = re.findall(r'<(?:link|script|img)\b[^>]*(?:href|src)="(https?://[^"]+)"', html)
        assert not remote, (page, remote)


def test_site_check_sees_a_raw_prompt():
    # The same check on a page whose example is not a code block.
    assert re.findall(LEFT_AS_TEXT["a doctest prompt outside a code block"], _prose(
        "<blockquote><p>&gt;&gt;&gt; import jaxloss</p></blockquote>"
    ))  # fmt: skip


def test_all_lists_every_public_function_and_the_api_page_shows_it():
    import jaxloss

    public = {n for n in dir(jaxloss) if not n.startswith("_") and callable(getattr(jaxloss, n))}
    assert set(jaxloss.__all__) == public
    api = (ROOT / "docs" / "api.md").read_text()
    assert [n for n in jaxloss.__all__ if f"::: jaxloss.{n}\n" not in api] == []
