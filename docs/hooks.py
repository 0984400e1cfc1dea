"""Pages of the documentation site made at build time, so they cannot drift from the code and the records.

* ``cli.md``: the help of every ``analogprop`` command, from the parser itself (``analogprop.cli.make_parser``);
* ``results.md``: the tables of ``analogprop summary --markdown`` over the committed run records;
* ``api/<module>.md``: one mkdocstrings page per module, found by walking the package's files, and the
  "API reference" section of the navigation listing them.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "analogprop"
#: the committed run directories: each experiment's shipped run and its records of variants
RUN_RECORDS = ("experiments/*/run", "experiments/*/records/*", "examples/*/records/*")
MARKERS = {"cli.md": "<!-- cli-reference -->", "results.md": "<!-- run-records -->"}


def modules() -> list[str]:
    """Dotted names of the package, its subpackages and their modules (``__main__`` left out), sorted; a
    directory without ``__init__.py`` is not a subpackage and is skipped."""
    names = set()
    for path in (ROOT / PACKAGE).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        in_packages = all((ROOT.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(1, len(parts)))
        if parts[-1] != "__main__" and in_packages:
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def run_records() -> list[str]:
    """The committed run directories (``config.json`` + ``metrics.jsonl``), relative to the repository."""
    return [str(p.parent.relative_to(ROOT)) for pattern in RUN_RECORDS
            for p in sorted(ROOT.glob(f"{pattern}/metrics.jsonl"))]


def _commands(parser: argparse.ArgumentParser, prog: str):
    """(command line, parser) of every sub-command, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prog} {name}", sub
                yield from _commands(sub, f"{prog} {name}")


def cli_reference() -> str:
    from analogprop.cli import make_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps help to the terminal width; fix it for the page
    try:
        parser = make_parser()
        out = ["```text", parser.format_help().rstrip(), "```"]
        for line, sub in _commands(parser, "analogprop"):
            out += ["", f"## `{line}`", "", "```text", sub.format_help().rstrip(), "```"]
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(out)


def results_tables() -> str:
    from analogprop.runs.summary import markdown_summary

    cwd = os.getcwd()
    os.chdir(ROOT)  # the tables name each record by its path in the repository
    try:
        return markdown_summary(run_records())
    finally:
        os.chdir(cwd)


def api_nav(names: list[str]) -> list:
    """Navigation entries of the API pages: a module of the package, or a subpackage's section."""
    groups: dict[str, list] = {}
    for name in names:
        groups.setdefault(".".join(name.split(".")[:2]), []).append({name: f"api/{name}.md"})
    return [entries[0] if len(entries) == 1 else {group: entries} for group, entries in groups.items()]


def on_config(config):
    config.nav.append({"API reference": api_nav(modules())})
    return config


def on_files(files, config):
    for name in modules():
        files.append(File.generated(config, f"api/{name}.md", content=f"# `{name}`\n\n::: {name}\n"))
    return files


def on_page_markdown(markdown, page, config, files):
    marker = MARKERS.get(page.file.src_uri)
    if marker is None:
        return markdown
    if marker not in markdown:
        raise ValueError(f"docs/{page.file.src_uri}: the marker {marker} of its generated part is missing")
    return markdown.replace(marker, cli_reference() if page.file.src_uri == "cli.md" else results_tables())
