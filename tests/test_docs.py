"""The documentation site builds with ``mkdocs build --strict``, and its generated pages follow the code and
the committed run records: every command's help, every module's page, every shipped run's final test error."""
import html
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from analogprop.cli import COMMANDS, make_parser
from analogprop.runs.directory import RunDir
from analogprop.training.trainer import TwoPhaseTrainer
from conftest import ROOT


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out


def _text(page) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_results_page_holds_each_shipped_runs_final_test_error(site):
    rows = re.findall(r"<tr>.*?</tr>", (site / "results" / "index.html").read_text(), flags=re.S)
    shipped = sorted(p.parent for p in (ROOT / "experiments").glob("*/run/metrics.jsonl"))
    assert shipped
    for run in shipped:
        final = RunDir(run).metrics()[-1]["test_error"]
        row = [r for r in rows if f"experiments/{run.parent.name}/run<" in r]
        assert len(row) == 1, run
        assert f"{100 * final:.2f}%" in row[0], (run, final)


def test_cli_reference_is_the_parsers_help(site):
    text = _text(site / "cli" / "index.html")
    for name in COMMANDS:
        assert f"analogprop {name}" in text
    assert "--markdown" in text and "documentation's results page" in text


def test_every_module_has_an_api_page(site):
    names = _hooks().modules()
    assert {TwoPhaseTrainer.__module__, make_parser.__module__, "analogprop"} <= set(names)
    assert not any(n.endswith("__main__") for n in names)
    for name in names:
        assert (site / "api" / name / "index.html").exists(), name
    # a page is rendered from the module's docstrings, not left as a bare directive
    assert "TwoPhaseTrainer" in _text(site / "api" / TwoPhaseTrainer.__module__ / "index.html")


def test_api_navigation_groups_subpackages():
    nav = _hooks().api_nav(["analogprop", "analogprop.bench", "analogprop.bench.emulator", "analogprop.cli"])
    assert nav == [{"analogprop": "api/analogprop.md"},
                   {"analogprop.bench": [{"analogprop.bench": "api/analogprop.bench.md"},
                                         {"analogprop.bench.emulator": "api/analogprop.bench.emulator.md"}]},
                   {"analogprop.cli": "api/analogprop.cli.md"}]
