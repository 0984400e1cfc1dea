"""experiments/<name>/: each paper result's config.toml reproduces its shipped run's configuration, its README
gives the command and the shipped run's final test error, and every kept run directory still loads."""
import json
import re
from pathlib import Path

import pytest

from analogprop.cli import make_parser
from analogprop.cli.config_options import config_from_args
from analogprop.config import from_flat, load_toml, merge
from analogprop.runs.directory import RunDir
from conftest import ROOT

EXPERIMENTS = sorted(p for p in (ROOT / "experiments").iterdir() if (p / "config.toml").exists())
SHIPPED = [p for p in EXPERIMENTS if (p / "run" / "config.json").exists()]
#: runs of an experiment's own configuration still training, kept with their checkpoint under records/
IN_PROGRESS = [(exp, run) for exp in EXPERIMENTS if exp not in SHIPPED
               for run in sorted((exp / "records").glob("*/checkpoint.npz"))]
RUN_CONFIGS = sorted((ROOT / "experiments").glob("**/config.json"))
#: where a run read its data and how often it kept snapshots: no trained parameter depends on them
BOOKKEEPING = {"data_dir", "download", "checkpoint_every"}


def _without(flat: dict) -> dict:
    return {k: v for k, v in flat.items() if k not in BOOKKEEPING}


def test_the_paper_results_have_experiments_with_shipped_runs():
    assert {"mnist-784-512-512-10", "mnist-784-512-512-512-10", "mnist-784-512-512-512-10-beta035",
            "conv-frozen-readout", "conv-table2-readout", "digits-demo"} <= {p.name for p in SHIPPED}


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda p: p.name)
def test_every_config_toml_is_a_valid_run_configuration(exp):
    merge(load_toml(exp / "config.toml"))


@pytest.mark.parametrize("exp", SHIPPED, ids=lambda p: p.name)
def test_config_toml_gives_the_shipped_runs_configuration(exp):
    shipped = json.loads((exp / "run" / "config.json").read_text())
    toml = merge(load_toml(exp / "config.toml")).to_flat()
    assert _without(toml) == _without(from_flat(shipped).to_flat())
    # and so does the command line of its README
    args = make_parser().parse_args(["train", "--config", str(exp / "config.toml"), "--data-dir", "DATA"])
    assert _without(config_from_args(args).to_flat()) == _without(toml)


@pytest.mark.parametrize("exp, checkpoint", IN_PROGRESS, ids=lambda p: p.parent.name)
def test_a_run_in_progress_follows_its_experiments_config_toml(exp, checkpoint):
    kept = json.loads((checkpoint.parent / "config.json").read_text())
    toml = merge(load_toml(exp / "config.toml")).to_flat()
    assert _without(toml) == _without(from_flat(kept).to_flat())


@pytest.mark.parametrize("exp", SHIPPED, ids=lambda p: p.name)
def test_readme_gives_the_command_the_result_and_the_figure(exp):
    text = (exp / "README.md").read_text()
    assert f"analogprop train --config experiments/{exp.name}/config.toml" in text
    assert f"--out runs/{exp.name}" in text
    final = RunDir(exp / "run").metrics()[-1]["test_error"]
    assert f"**{100 * final:.2f}%**" in text
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (exp / image).exists(), image
    assert re.search(r"!\[[^]]*\]\(", text)


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: str(p.parent.relative_to(ROOT / "experiments")))
def test_every_kept_run_directory_loads(path):
    cfg = RunDir(path.parent).read_config()
    assert from_flat(cfg).to_flat() == from_flat(json.loads(path.read_text())).to_flat()
    assert RunDir(path.parent).metrics()
