"""Check params.yaml against its schema (exit 2 listing every problem), show a dataset's effective
settings, or write the settings reference (docs/params.md)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from pipeline.errors import UsageError
from stages.schema import SECTIONS, DatasetSettings, Settings

PARAMS_FILE = Path("params.yaml")
SYMBOLS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "length >=", "max_length": "length <="}


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            if field.description:
                rows.append((key, "mapping", "", field.description))
            rows += _rows(sub, key + ".")
            continue
        default = field.get_default(call_default_factory=True)
        shown = "" if field.is_required() else yaml.safe_dump(default, default_flow_style=True, width=200).strip()
        shown = shown.removesuffix("\n...").removesuffix("...").strip()
        kind = str(sub).replace("typing.", "").replace("<class '", "").replace("'>", "")
        limits = [f"{SYMBOLS[f.name]} {getattr(m, f.name)}" for m in field.metadata if dataclasses.is_dataclass(m)
                  for f in dataclasses.fields(m) if f.name in SYMBOLS]
        rows.append((key, kind + (f" ({', '.join(limits)})" if limits else ""), shown, field.description or ""))
    return rows


def checks(key: str, reader: str | None = None) -> dict[str, Any]:
    """Every check a stage may ask for: the reader's options (``reader:`` of the block, else the key's
    source) and the augment transforms."""
    from pipeline.dataset.augment import spec_problems
    from pipeline.sources import GENERIC, READERS, get_reader

    name = reader or key
    if name not in READERS and name not in GENERIC:
        raise UsageError(f"datasets.{key}: no reader for this dataset; known: {', '.join(READERS)} "
                         f"(a new source needs pipeline/sources/{key}.py and its entry in READERS, or a "
                         f"`reader:` of {', '.join(GENERIC)} for a dataset in MSD or nnU-Net v2 layout)")
    return {"reader_options": get_reader(name).Options, "spec_problems": spec_problems}


def markdown() -> str:
    """The settings reference, generated from stages/schema.py (docs/params.md)."""
    lines = [
        "# Settings (params.yaml)",
        "",
        "Generated from `stages/schema.py` by `python -m stages.config --markdown > docs/params.md`; do not edit.",
        "",
        "`params.yaml` holds the globals below, a `defaults:` block with every section, and one",
        "`datasets.<key>:` block per dataset holding `raw` and only the settings that differ from the",
        "defaults (mappings merge into the defaults, lists and values replace them). Each dataset block",
        "keeps all five section keys (`{}` when nothing differs), because DVC refuses to track a missing key.",
        "`python -m stages.config` checks the file (exit 2 lists every problem);",
        "`python -m stages.config --dataset lasc --show` prints one dataset's effective settings.",
        "",
        "Reader options (`prepare.reader`) are the fields of the `Options` dataclass of",
        "`pipeline/sources/<key>.py`.",
        "",
    ]
    groups = {"globals": [r for r in _rows(DatasetSettings, "") if r[0].split(".")[0] not in SECTIONS]}
    for section in SECTIONS:
        groups[section] = [r for r in _rows(DatasetSettings, "") if r[0].split(".")[0] == section]
    for title, rows in groups.items():
        lines += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{k}` | {t.replace('|', '&#124;')} | {f'`{d}`' if d else ''} | {m.replace('|', '&#124;')} |"
                  for k, t, d, m in rows]
        lines.append("")
    from pipeline.sources import READERS, get_reader

    lines += ["## prepare.reader, per dataset", "", "| dataset | option | type | default |", "|---|---|---|---|"]
    for key in READERS:
        lines += [f"| {key} | `{f.name}` | {f.type} | `{f.default!r}` |"
                  for f in dataclasses.fields(get_reader(key).Options)]
    lines += ["", "## prepare.reader, generic readers (`reader: msd` or `reader: nnunet` in a dataset block)", "",
              "| reader | option | type | default |", "|---|---|---|---|"]
    from pipeline.sources import GENERIC

    for name in GENERIC:
        lines += [f"| {name} | `{f.name}` | {str(f.type).replace('|', '&#124;')} | `{f.default!r}` |"
                  for f in dataclasses.fields(get_reader(name).Options)]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file (default: params.yaml)")
    parser.add_argument("--dataset", help="check only this dataset")
    parser.add_argument("--show", action="store_true", help="print the dataset's effective settings as YAML")
    parser.add_argument("--markdown", action="store_true", help="print the settings reference (docs/params.md)")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(), end="")
        return
    if args.show and not args.dataset:
        parser.error("--show needs --dataset")
    try:
        settings = Settings(args.params)
    except UsageError as err:
        print(err, file=sys.stderr)
        raise SystemExit(2) from None
    keys = [args.dataset] if args.dataset else [str(k) for k in settings.datasets]
    problems = settings.top_level_problems()
    for key in keys:
        try:
            block = settings.datasets.get(key)
            extra = checks(key, block.get("reader") if isinstance(block, dict) else None)
        except UsageError as err:
            problems.append(f"{args.params}: {err}")
            continue
        problems += [p for p in settings.problems(key, **extra) if p not in problems]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(2)
    if args.show:
        block = settings.datasets.get(args.dataset)
        reader = block.get("reader") if isinstance(block, dict) else None
        shown: dict[str, Any] = settings.dataset(args.dataset, **checks(args.dataset, reader))
        print(yaml.safe_dump(shown, sort_keys=False, default_flow_style=None, width=100), end="")
        return
    print(f"{args.params}: ok ({len(keys)} dataset(s): {', '.join(keys)})")


if __name__ == "__main__":
    main()
