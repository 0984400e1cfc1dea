"""analogprop summary: final and best errors, and how each pair's alignment moved (start, end, peak, falls)."""
import json

import pytest

from analogprop.cli import main
from analogprop.errors import DataError
from analogprop.runs.summary import markdown_summary, pair_history, summarize, summarize_runs
from analogprop.runs.directory import RunDir
from conftest import ROOT


def _record(epoch, test, alignment, **extra):
    return {"epoch": epoch, "train_error": test / 2, "test_error": test, "alignment": alignment, **extra}


RECORDS = [
    _record(1, 0.08, [0.02, 0.010], alignment_start=[0.001, -0.002], cpu_seconds=180.0),
    _record(2, 0.05, [0.03, 0.012], cpu_seconds=170.0),
    _record(3, 0.04, [0.04, 0.011], cpu_seconds=175.0),
    _record(4, 0.045, [0.05, 0.0105], cpu_seconds=160.0),
]


def test_pair_history_counts_falls_from_the_initial_weights():
    first, middle = pair_history(RECORDS, 0), pair_history(RECORDS, 1)
    assert (first["start"], first["end"], first["fall_epochs"], first["largest_fall"]) == (0.001, 0.05, [], 0.0)
    assert (middle["peak"], middle["peak_epoch"], middle["fall_epochs"]) == (0.012, 2, [3, 4])
    assert middle["largest_fall"] == pytest.approx(0.001)
    falls_at_once = [{**RECORDS[0], "alignment_start": [0.03, 0.0]}] + RECORDS[1:]
    assert pair_history(falls_at_once, 0)["fall_epochs"] == [1]  # below the initial weights after epoch 1


def test_a_resumed_record_without_its_start_still_summarises():
    s = pair_history(RECORDS[1:], 1)  # first record is epoch 2: no alignment_start to compare with
    assert s["start"] is None and s["fall_epochs"] == [3, 4]


def test_summary_of_a_run_directory(tmp_path, capsys):
    run = RunDir(tmp_path / "r")
    run.write_metrics(RECORDS)
    s = summarize(RECORDS)
    assert (s["epochs"], s["test_error"], s["best_test_error"], s["best_epoch"]) == (4, 0.045, 0.04, 3)
    assert s["cpu_seconds"] == (160.0, 180.0)
    assert main(["summary", str(run.path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "r: 4 epochs, train 2.25% (running), test 4.50% (best 4.00%, epoch 3), 160-180 s CPU per epoch"
    assert out[1] == "  alignment layers 1-2: 0.0010 -> 0.0500, peak 0.0500 (epoch 4), falls in no epoch"
    assert out[2] == ("  alignment layers 2-3: -0.0020 -> 0.0105, peak 0.0120 (epoch 2), "
                      "falls in 2 epochs (largest 0.001: 3, 4)")


def test_summary_of_a_kept_record_matches_its_metrics():
    path = ROOT / "experiments" / "mnist-784-512-512-512-10-beta035" / "run"
    records = RunDir(path).metrics()
    text = summarize_runs([path])
    assert text.startswith(f"mnist-784-512-512-512-10-beta035 (two-phase): {len(records)} epochs")
    assert f"test {100 * records[-1]['test_error']:.2f}%" in text
    assert len(text.splitlines()) == 1 + len(records[-1]["alignment"])


def test_a_directory_without_metrics_is_named(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}: no metrics.jsonl"):
        summarize_runs([tmp_path])
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"metrics.jsonl: (line 1 is )?malformed"):
        summarize_runs([tmp_path])



def test_markdown_summary_tables_name_each_run_its_settings_and_pairs(tmp_path, capsys):
    run = RunDir(tmp_path / "r")
    run.write_metrics(RECORDS)
    run.config_path.write_text(json.dumps({"dataset": "digits", "arch": "64-32-10", "epochs": 4, "seed": 0,
                                           "beta": 1.0, "lrs": [0.4, 0.1], "shift": 1, "centered": True,
                                           "lr_decay": 1.0, "lr_decay_start": 5, "weight_decay": 0.0,
                                           "driver_die": 3, "keep_every": 5, "rule": "two-phase"}))
    assert main(["summary", "--markdown", str(run.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # the settings in a fixed order, without bookkeeping (epochs, keep_every) or inert ones (lr_decay 1)
    assert lines[2] == (f"| r (two-phase)<br>`{run.path}` | digits, `64-32-10` | 4 | **4.50%** | 4.00% (3) "
                        "| 2.25% | seed 0, lrs 0.4,0.1, beta 1, shift 1, centered true, driver_die 3 |")
    assert lines[3] == ""
    assert lines[6:] == ["| r (two-phase) | 1-2 | 0.0010 | 0.0500 | 0.0500 (4) | none |",
                         "| r (two-phase) | 2-3 | -0.0020 | 0.0105 | 0.0120 (2) | 2 (0.001) |"]


def test_markdown_summary_of_a_run_without_config_or_recorded_start(tmp_path):
    run = RunDir(tmp_path / "r")
    run.write_metrics(RECORDS[1:])
    lines = markdown_summary([run.path]).splitlines()
    assert lines[2].endswith("| ?, `?` | 4 | **4.50%** | 4.00% (3) | 2.25% | - |")
    assert lines[6].startswith("| r | 1-2 | - | 0.0500 |")
