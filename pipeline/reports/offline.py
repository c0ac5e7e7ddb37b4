"""An HTML template for ``dvc plots show``/``diff`` that renders without network: the Vega, Vega-Lite and
Vega-Embed libraries inlined (dvc-render's default page loads them from a CDN, so offline it stays blank)."""

from __future__ import annotations

# dvc-render writes each chart as ``<script>var spec = ...; vegaEmbed('#id', spec);</script>``. The
# classic script below queues those calls; the inlined bundle is an ES module (deferred, runs after the
# page is parsed) that replays the queue with the real vegaEmbed. No {scripts}: nothing remote is added.
QUEUE = "<script>window.__vegaQueue = []; function vegaEmbed(id, spec) { window.__vegaQueue.push([id, spec]); }</script>"
REPLAY = "window.__vegaQueue.forEach(([id, spec]) => vegaEmbed(id, spec, {actions: false}));"

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>DVC plots (offline)</title>
<style>table {{ border-spacing: 15px; }} img {{ max-width: 100%; }}</style>
{queue}
</head>
<body>
{plot_divs}
<script type="module">
{bundle}
</script>
</body>
</html>
"""


def offline_template(bundle: str) -> str:
    """The page around ``bundle`` (Vega-Embed, Vega-Lite and Vega as one module ending with ``REPLAY``)."""
    if "</script" in bundle.lower():
        raise ValueError("the JavaScript bundle contains '</script' and cannot be inlined as is")
    page = PAGE.format(queue=QUEUE, bundle=bundle, refresh_tag="{refresh_tag}", plot_divs="{plot_divs}")
    return page
