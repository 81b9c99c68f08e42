"""The page template of ``dvc plots show`` with its chart libraries inside, so the page opens offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN: on a cluster node without internet
its charts stay blank. ``.dvc/config`` points ``plots.html_template`` at ``.dvc/plots.html``, which this
script writes: DVC's page with the three libraries (the releases DVC's page asks for) inlined, and
their BSD-3-Clause licences kept. It downloads the npm tarballs once and checks each against its
registry integrity hash::

    python -m pipeline.plots_page          # rewrite .dvc/plots.html (committed: nothing to fetch at install)
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / ".dvc" / "plots.html"

# (package, version, npm integrity): the releases dvc-render's page loads from the CDN
LIBRARIES = [
    ("vega", "5.20.2",
     "sha512-qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw=="),
    ("vega-lite", "5.2.0",
     "sha512-Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw=="),
    ("vega-embed", "6.18.2",
     "sha512-wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg=="),
]

HEAD = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
"""
TAIL = """    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def fetch(package: str, version: str, integrity: str) -> tuple[str, str]:
    """(minified build, licence text) of one npm release, its tarball checked against ``integrity``."""
    url = f"https://registry.npmjs.org/{package}/-/{package}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        blob = response.read()
    algo, expected = integrity.split("-", 1)
    if base64.b64encode(hashlib.new(algo, blob).digest()).decode() != expected:
        raise SystemExit(f"{url}: the download does not match its integrity hash {integrity}")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        def read(name: str) -> str:
            member = tar.extractfile(f"package/{name}")
            assert member is not None, f"{url}: no {name}"
            return member.read().decode()
        return read(f"build/{package}.min.js"), read("LICENSE")


def page(libraries: list[tuple[str, str, str, str]]) -> str:
    """The template: DVC's placeholders (``{refresh_tag}``, ``{plot_divs}``) and each library inline.

    No ``{scripts}`` placeholder: that is where DVC would put its CDN script tags."""
    parts = [HEAD]
    for package, version, code, licence in libraries:
        if "</script" in code.lower():
            raise SystemExit(f"{package}: its build contains '</script', which would end the inline script")
        parts.append(f"    <!-- {package} {version} (npm), BSD-3-Clause:\n{licence.replace('--', '- -')}\n    -->\n"
                     f"    <script>{code}</script>\n")
    parts.append(TAIL)
    return "".join(parts)


def main() -> None:
    libraries = []
    for package, version, integrity in LIBRARIES:
        code, licence = fetch(package, version, integrity)
        libraries.append((package, version, code, licence))
    PAGE.write_text(page(libraries))
    print(f"wrote {PAGE} ({PAGE.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
