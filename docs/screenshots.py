"""Screenshots of the built docs site in headless Chromium, for a person to look at.

    python docs/screenshots.py [OUT_DIR]      # default: docs/screenshots/ (git-ignored)

Builds the site (`mkdocs build --strict`) into a temporary folder, serves it
on 127.0.0.1 and saves a 1280-pixel-wide PNG of each main page. Needs the
docs extra and Chromium (Debian: `apt-get install chromium`); nothing is
loaded from the network: the site loads nothing from another site.
"""

from __future__ import annotations

import functools
import http.server
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading

ROOT = pathlib.Path(__file__).parent.parent
PAGES = ["", "api/", "numerics/", "imbalance/", "performance/", "migration/"]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1280,2400",
]  # fmt: skip


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request
        pass


def main(out: pathlib.Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Chromium not found (Debian: apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = pathlib.Path(tmp) / "site"
        build = ["mkdocs", "build", "--strict", "--site-dir", str(site)]
        subprocess.run(build, cwd=ROOT, check=True)
        handler = functools.partial(Quiet, directory=str(site))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for page in PAGES:
                png = out / f"{page.strip('/') or 'index'}.png"
                url = f"http://127.0.0.1:{server.server_port}/{page}"
                profile = pathlib.Path(tmp) / "profile"
                subprocess.run(
                    [chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", url],
                    check=True, capture_output=True, timeout=120,
                )  # fmt: skip
                print(png)
        finally:
            server.shutdown()


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
