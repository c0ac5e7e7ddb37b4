"""`dvc plots show` renders without network: the project's template inlines the chart libraries."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pipeline.reports.offline import offline_template
from tests.conftest import ROOT, dvc

REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=", re.I)


def test_template_keeps_dvc_placeholders_and_refuses_a_closing_tag():
    page = offline_template("console.log(1);")
    assert "{plot_divs}" in page and "{refresh_tag}" in page and "{scripts}" not in page  # no CDN scripts
    with pytest.raises(ValueError):
        offline_template("let s = '</script>';")


def test_dvc_plots_show_page_references_no_remote_script(dvc_repo, tmp_path):
    shutil.copy2(ROOT / ".dvc" / "config", dvc_repo / ".dvc" / "config")  # plots.html_template as committed
    dvc(dvc_repo, "repro", "plots_template")
    (dvc_repo / "m.csv").write_text("step,dice\n0,0.1\n1,0.4\n2,0.7\n")
    dvc(dvc_repo, "plots", "show", "m.csv", "-x", "step", "-y", "dice", "-o", "out")
    page = (dvc_repo / "out" / "index.html").read_text()
    assert not REMOTE_SCRIPT.search(page), "a <script src=...> would need the network"
    assert "cdn.jsdelivr" not in page and "vegaEmbed('#" in page and "__vegaQueue" in page
    assert '"dice"' in page  # the data is inlined in the chart's spec
    # the chart compiles and draws with the Vega-Lite the page inlines (vl-convert renders it offline)
    import json

    import vl_convert

    spec = json.loads(re.search(r"var spec = (\{.*?\});\s*vegaEmbed", page, re.S).group(1))
    svg = vl_convert.vegalite_to_svg(spec)
    assert "<path" in svg and "dice" in svg
    node = shutil.which("node")
    if node:  # the inlined bundle must at least parse as the module the page declares
        module = page.split('<script type="module">', 1)[1].rsplit("</script>", 1)[0]
        (tmp_path / "bundle.mjs").write_text(module)
        subprocess.run([node, "--check", str(tmp_path / "bundle.mjs")], check=True, capture_output=True)
