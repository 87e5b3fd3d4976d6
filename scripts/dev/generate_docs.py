#!/usr/bin/env python
"""Regenerate the parts of the docs that the code defines: every recipe field (from the dataclasses) and the reference
table (from ``r2kd_hf/reference.py``). ``tests/test_docs.py`` fails when the committed docs differ from what this
writes, so the docs cannot drift from the code.

    python scripts/dev/generate_docs.py            # rewrite the generated blocks in docs/
    python scripts/dev/generate_docs.py --check    # exit 1 if a generated block is out of date
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
PAPER_RECIPES = ("recipes/tinyimagenet/*.yaml", "recipes/cifar100/*.yaml")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _table(fields) -> str:
    lines = ["| field | default | what it does |", "|---|---|---|"]
    for field in fields:
        default = _default(field)
        shown = f"`{_cell(default)}`" if default not in (None, "", [], {}) else "unset"
        lines.append(f"| `{field.name}` | {shown} | {_cell(field.metadata.get('help', ''))} |")
    return "\n".join(lines) + "\n"


def model_fields() -> str:
    from r2kd_hf.app.recipe import ModelArguments

    return _table(f for f in dataclasses.fields(ModelArguments) if f.init)


def data_fields() -> str:
    from r2kd_hf.app.recipe import DataArguments

    return _table(f for f in dataclasses.fields(DataArguments) if f.init)


def training_fields() -> str:
    """R2KDConfig's own fields; the TrainingArguments ones are transformers' (linked from the guide)."""
    from transformers import TrainingArguments

    from r2kd_hf import R2KDConfig

    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    return _table(f for f in dataclasses.fields(R2KDConfig) if f.init and f.name not in inherited)


def _resolved(recipe: str) -> dict:
    from r2kd_hf.app.recipe import parse_recipe

    _, data_args, training_args, _ = parse_recipe(["--recipe", recipe, "--output_dir", os.path.join(ROOT, ".docs_tmp")])
    return {**dataclasses.asdict(data_args), **training_args.to_dict()}


def reference_points() -> str:
    from r2kd_hf import R2KDConfig
    from r2kd_hf.reference import REFERENCE_POINTS, differences

    defaults = {**R2KDConfig(output_dir=os.path.join(ROOT, ".docs_tmp")).to_dict()}
    from r2kd_hf.app.recipe import DataArguments

    defaults.update(dataclasses.asdict(DataArguments()))
    default_notes = differences(defaults)
    recipes = sorted(path for pattern in PAPER_RECIPES for path in glob.glob(os.path.join(ROOT, pattern)))
    recipe_notes = {os.path.relpath(path, ROOT): differences(_resolved(path)) for path in recipes}
    lines = ["| field | reference value | why it matters (where in the reference code) | `R2KDConfig` default | the 12 paper recipes |",
             "|---|---|---|---|---|"]
    for point in REFERENCE_POINTS:
        if point.field not in default_notes:
            default = "same"
        elif point.field == "loss_kwargs":
            default = "same (the loss's own defaults)"
        else:
            value = defaults.get(point.field)
            default = f"`{_cell(value)}`" if value not in (None, "", [], {}) else "unset"
        differing = [name for name, notes in recipe_notes.items() if point.field in notes]
        in_recipes = "same" if not differing else f"differ in {len(differing)}"
        lines.append(f"| `{point.field}` | `{_cell(point.reference)}` | {_cell(point.why)} ({point.source}) | {default} | {in_recipes} |")
    return "\n".join(lines) + "\n"


GENERATORS = {"model-fields": model_fields, "data-fields": data_fields, "training-fields": training_fields,
              "reference-points": reference_points}


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + GENERATORS[m.group("name")]() + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated block differs")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        text = open(path, encoding="utf-8").read()
        if not BLOCK.search(text):
            continue
        new = render(text)
        if new != text:
            stale.append(os.path.relpath(path, ROOT))
            if not args.check:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(new)
    if stale:
        print(("out of date: " if args.check else "rewrote: ") + ", ".join(stale))
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
