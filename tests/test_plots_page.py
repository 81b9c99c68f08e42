"""`dvc plots show` writes a page that opens offline: its chart libraries are inside it (pipeline/plots_page.py)."""

from __future__ import annotations

import re

from pipeline.plots_page import LIBRARIES, PAGE
from tests.conftest import REPO, run


def test_the_plots_page_loads_no_remote_script(tmp_path):
    template = PAGE.read_text()
    for package, version, _ in LIBRARIES:
        assert f"<!-- {package} {version} (npm), BSD-3-Clause" in template
    assert "{scripts}" not in template  # where DVC would put its CDN script tags
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], REPO)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert not re.findall(r"<script[^>]*\bsrc=", page), "a script loaded from elsewhere"
    assert not re.findall(r"<link[^>]*\bhref=\"?https?:", page), "a stylesheet loaded from elsewhere"
    assert page.count("vegaEmbed('#") >= 3  # the training curves, per-class IoU, ... each drawn by the inlined library
    assert "vega-embed 6.18.2" in page
