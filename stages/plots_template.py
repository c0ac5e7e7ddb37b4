"""plots_template: write the offline HTML template that ``dvc plots show`` uses (.dvc/config plots.html_template),
with Vega, Vega-Lite and Vega-Embed inlined from the vl-convert-python package."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.reports.offline import REPLAY, offline_template


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="HTML file to write")
    args = parser.parse_args(argv)
    import vl_convert  # the libraries' own bundle, versions pinned with the package

    page = offline_template(vl_convert.javascript_bundle(REPLAY))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf8")
    tmp.replace(args.out)
    print(f"plots_template: Vega {vl_convert.get_vega_version()} inlined ({len(page) // 1024} KiB) -> {args.out}")


if __name__ == "__main__":
    main()
