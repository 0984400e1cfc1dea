"""Bad input to every command: exit status 2, one line on stderr naming the problem, no traceback,
and every run involved byte for byte as it was.  Then the data-safety rules: no run replaced without
--overwrite, no setting of a resumed run silently ignored, stale temporary files cleaned, failed writes
and diverging steps leaving the last checkpoint intact."""
import errno
import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from analogprop.runs import directory as runs_module
from analogprop.runs.build import complete
from analogprop.cli import main
from analogprop.drivers.ideal import IdealDriver
from analogprop.errors import ConfigError, DivergedError
from analogprop.model.network import Network
from analogprop.runs.directory import RunDir, load_checkpoint
from analogprop.training.trainer import PARAMETER_LIMIT, TrainConfig, TwoPhaseTrainer

TINY = ["--arch", "64-8-10", "--quiet"]


def _copy(root, name, checkpoint=None, config=None, metrics=None, snapshot=None):
    """A copy of the fixture run ``base`` with some of its files replaced by bytes (or edited)."""
    run = root / name
    shutil.copytree(root / "base", run)
    for path, new in ((run / "checkpoint.npz", checkpoint), (run / "config.json", config),
                      (run / "metrics.jsonl", metrics), (run / "snapshots" / "epoch-001.npz", snapshot)):
        if new is not None:
            path.write_bytes(new(path.read_bytes()) if callable(new) else new)
    return run


def _with(**changes):
    def edit(data):
        return json.dumps({**json.loads(data), **changes}, indent=2).encode()
    return edit


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    """A tiny 64-8-10 run of 2 epochs with snapshots, its damaged copies, sweep files and a plain file."""
    root = tmp_path_factory.mktemp("bad_inputs")
    assert main(["train", *TINY, "--epochs", "2", "--keep-every", "1", "--out", str(root / "base")]) == 0
    npy = io.BytesIO()
    np.save(npy, np.zeros(3))
    _copy(root, "trunc", checkpoint=lambda b: b[:len(b) // 2])
    _copy(root, "empty", checkpoint=b"")
    _copy(root, "crc", checkpoint=lambda b: b[:2000] + bytes(100) + b[2100:])
    _copy(root, "text", checkpoint=b"not a checkpoint\n")
    _copy(root, "npy", checkpoint=npy.getvalue())
    _copy(root, "badmeta", checkpoint=_npz(meta=np.array("{not json")))
    _copy(root, "nostate", checkpoint=lambda b: _npz(**{**dict(np.load(io.BytesIO(b))),
                                                        "meta": np.array(json.dumps({"config": {}}))}))
    _copy(root, "badsnap", snapshot=lambda b: b[:100])
    for name, edit in {"c_beta": _with(beta="abc"), "c_lrs": _with(lrs=5), "c_lrs_text": _with(lrs="0.1,abc"),
                       "c_arch": _with(arch=3), "c_arch_token": _with(arch="64-8-10x"), "c_seed": _with(seed=1.5),
                       "c_epochs": _with(epochs=True), "c_dtype": _with(dtype="int8"), "c_tol": _with(tol=0),
                       "c_unknown": _with(bta=0.5), "c_list": b"[1, 2]", "c_number": b"3", "c_invalid": b"{bad",
                       "c_utf8": b"\xff\xfe{", "c_empty": b""}.items():
        _copy(root, name, config=edit)
    _copy(root, "m_bad", metrics=lambda b: b + b"{torn\n")
    (root / "nometrics").mkdir()
    shutil.copytree(root / "base", root / "demo" / "ideal")
    (root / "afile").write_text("a file, not a directory\n")
    sweeps = root / "sweeps"
    sweeps.mkdir()
    for name, text in {"lrs_text": 'lrs = "0.1,abc"\n', "epochs_frac": "epochs = 1.5\n", "beta_text": 'beta = "x"\n',
                       "unknown": "bogus = 1\n", "grid_text": '[grid]\ng_dtod = ["a"]\n', "torn": "epochs = \n",
                       "tol_zero": "tol = 0\n", "workers": "dies = 0\n"}.items():
        (sweeps / f"{name}.toml").write_text(text)
    return root


def _tree(root: Path) -> dict:
    """Path -> SHA-256 of every file under ``root`` (and the directories, as None)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def _run(argv):
    try:
        return main(argv)
    except SystemExit as e:  # argparse
        return e.code


C = "corrupt or truncated checkpoint"
CASES = [
    # corrupt, truncated or empty checkpoints, through every command that reads one
    (["evaluate", "{trunc}"], rf"{{trunc}}/checkpoint\.npz: {C} \(File is not a zip file\)"),
    (["evaluate", "{empty}"], rf"{{empty}}/checkpoint\.npz: {C} \(No data left in file\)"),
    (["evaluate", "{crc}"], rf"{{crc}}/checkpoint\.npz: {C} \(Bad CRC-32"),
    (["evaluate", "{text}"], rf"{{text}}/checkpoint\.npz: {C}"),
    (["evaluate", "{npy}"], rf"{{npy}}/checkpoint\.npz: {C} \(a single array"),
    (["evaluate", "{badmeta}"], rf"{{badmeta}}/checkpoint\.npz: {C} \(Expecting"),
    (["train", "--resume", "--out", "{trunc}", "--epochs", "3", "--quiet"], rf"{{trunc}}/checkpoint\.npz: {C}"),
    (["train", "--resume", "--out", "{crc}", "--epochs", "3", "--quiet"], rf"{{crc}}/checkpoint\.npz: {C}"),
    (["train", "--resume", "--out", "{empty}", "--epochs", "3", "--quiet"], rf"{{empty}}/checkpoint\.npz: {C}"),
    (["train", "--resume", "--out", "{nostate}", "--epochs", "3", "--quiet"],
     r"{nostate}/checkpoint\.npz: corrupt checkpoint \(no valid run state"),
    (["diagnose", "{trunc}"], rf"{{trunc}}/checkpoint\.npz: {C}"),
    (["diagnose", "{empty}"], rf"{{empty}}/checkpoint\.npz: {C}"),
    (["export", "{trunc}", "--out", "{new}"], rf"{{trunc}}/checkpoint\.npz: {C}"),
    (["export", "{crc}", "--out", "{new}"], rf"{{crc}}/checkpoint\.npz: {C}"),
    (["netlist", "{trunc}", "--out", "{new}/c.cir"], rf"{{trunc}}/checkpoint\.npz: {C}"),
    (["netlist", "{empty}/checkpoint.npz", "--out", "{new}/c.cir"], rf"{{empty}}/checkpoint\.npz: {C}"),
    (["branch", "{badsnap}", "--epoch", "1", "--out", "{new}"], rf"{{badsnap}}/snapshots/epoch-001\.npz: {C}"),
    (["average", "{badsnap}", "--epochs", "1-2", "--out", "{new}"], rf"{{badsnap}}/snapshots/epoch-001\.npz: {C}"),
    # config.json of the wrong types, or not a JSON object at all
    (["evaluate", "{c_beta}"], r"{c_beta}/config\.json: beta must be a finite number > 0, got 'abc'"),
    (["evaluate", "{c_lrs}"], r"{c_lrs}/config\.json: lrs must be a list of finite numbers >= 0.*got 5"),
    (["evaluate", "{c_lrs_text}"], r"{c_lrs_text}/config\.json: lrs must be a list of finite numbers >= 0.*got '0\.1,abc'"),
    (["evaluate", "{c_arch}"], r"{c_arch}/config\.json: arch must be an architecture such as 64-32-10.*, got 3$"),
    (["evaluate", "{c_arch_token}"], r"{c_arch_token}/config\.json: arch must be an architecture .*\(architecture '64-8-10x': layer 2 '10x'"),
    (["evaluate", "{c_seed}"], r"{c_seed}/config\.json: seed must be an integer >= 0, got 1\.5"),
    (["evaluate", "{c_epochs}"], r"{c_epochs}/config\.json: epochs must be an integer >= 1, got True"),
    (["evaluate", "{c_dtype}"], r"{c_dtype}/config\.json: dtype must be one of 'float64', 'float32', got 'int8'"),
    (["evaluate", "{c_tol}"], r"{c_tol}/config\.json: tol must be a finite number > 0"),
    (["evaluate", "{c_unknown}"], r"{c_unknown}/config\.json: unknown configuration keys \['bta'\]"),
    (["evaluate", "{c_list}"], r"{c_list}/config\.json: holds a JSON list, not an object of settings"),
    (["evaluate", "{c_number}"], r"{c_number}/config\.json: holds a JSON int, not an object of settings"),
    (["evaluate", "{c_invalid}"], r"{c_invalid}/config\.json: malformed JSON"),
    (["evaluate", "{c_utf8}"], r"{c_utf8}/config\.json: corrupt run configuration \(not UTF-8 text"),
    (["evaluate", "{c_empty}"], r"{c_empty}/config\.json: malformed JSON"),
    (["train", "--resume", "--out", "{c_beta}", "--epochs", "3", "--quiet"], r"{c_beta}/config\.json: beta"),
    (["train", "--resume", "--out", "{c_list}", "--epochs", "3", "--quiet"], r"{c_list}/config\.json: holds a JSON list"),
    (["diagnose", "{c_seed}"], r"{c_seed}/config\.json: seed"),
    (["export", "{c_lrs}", "--out", "{new}"], r"{c_lrs}/config\.json: lrs"),
    (["branch", "{c_arch}", "--epoch", "1", "--out", "{new}"], r"{c_arch}/config\.json: arch"),
    (["average", "{c_utf8}", "--epochs", "1-2", "--out", "{new}"], r"{c_utf8}/config\.json: corrupt"),
    (["netlist", "{c_epochs}", "--out", "{new}/c.cir"], r"{c_epochs}/config\.json: epochs"),
    # metrics and run directories that are not there
    (["summary", "{m_bad}"], r"{m_bad}/metrics\.jsonl: line 3 is malformed"),
    (["plot", "{m_bad}", "--out", "{new}"], r"{m_bad}/metrics\.jsonl: line 3 is malformed"),
    (["train", "--resume", "--out", "{m_bad}", "--epochs", "3", "--quiet"], r"{m_bad}/metrics\.jsonl: line 3"),
    (["summary", "{nometrics}"], r"{nometrics}: no metrics\.jsonl"),
    (["evaluate", "{nometrics}"], r"{nometrics}: not a run directory \(no config\.json\)"),
    (["train", "--resume", "--out", "{nometrics}", "--quiet"], r"{nometrics}: not a run directory"),
    # outputs that cannot be written
    (["train", *TINY, "--out", "{file}"], r"cannot write a run into {file}: it is a file, not a directory"),
    (["train", *TINY, "--out", "{file}/run"], r"cannot create directory {file}/run: {file} is a file"),
    (["branch", "{base}", "--epoch", "1", "--out", "{file}"], r"cannot write a run into {file}: it is a file"),
    (["average", "{base}", "--epochs", "1-2", "--out", "{file}/avg"], r"cannot create directory {file}/avg: {file} is a file"),
    (["export", "{base}", "--out", "{file}"], r"cannot write a run into {file}: it is a file"),
    (["plot", "{base}", "--out", "{file}"], r"cannot create directory {file}: {file} is a file"),
    (["netlist", "--samples", "0", "--out", "{file}/c.cir"], r"cannot create directory {file}: {file} is a file"),
    (["sweep", "--serial", "--out", "{file}"], r"cannot create directory {file}/rows: {file} is a file"),
    (["plot", "{base}", "--out", "/proc/analogprop/plots"], r"cannot create directory /proc/analogprop/plots: \w+"),
    # out-of-range numbers, wherever they are given
    (["train", *TINY, "--seed", "-1", "--out", "{new}"], r"seed must be an integer >= 0, got -1$"),
    (["train", *TINY, "--batch-size", "0", "--out", "{new}"], r"batch_size must be an integer >= 1, got 0$"),
    (["train", *TINY, "--epochs", "-1", "--out", "{new}"], r"epochs must be an integer >= 1, got -1$"),
    (["train", *TINY, "--epochs", "0", "--out", "{new}"], r"epochs must be an integer >= 1, got 0$"),
    (["train", *TINY, "--tol", "0", "--out", "{new}"], r"tol must be a finite number > 0.*got 0\.0$"),
    (["train", *TINY, "--tol", "nan", "--out", "{new}"], r"tol must be a finite number > 0.*got nan$"),
    (["train", *TINY, "--max-steps", "0", "--out", "{new}"], r"max_steps must be an integer >= 1, got 0$"),
    (["train", *TINY, "--beta", "0", "--out", "{new}"], r"beta must be a finite number > 0, got 0\.0$"),
    (["train", *TINY, "--beta", "-0.5", "--out", "{new}"], r"beta must be a finite number > 0, got -0\.5$"),
    (["train", *TINY, "--beta", "nan", "--out", "{new}"], r"beta must be a finite number > 0, got nan$"),
    (["train", *TINY, "--beta", "inf", "--out", "{new}"], r"beta must be a finite number > 0, got inf$"),
    (["train", *TINY, "--beta", "1e-300", "--out", "{new}"],
     r"beta 1e-300 is below the resolution of the fixed points, max\(tol, eps of float64\) = 1e-05"),
    (["train", *TINY, "--lrs", "nan", "--out", "{new}"], r"lrs must be a list of finite numbers >= 0.*\(item 0 is nan\)$"),
    (["train", *TINY, "--lrs", "0.1,inf", "--out", "{new}"], r"lrs must be a list of finite numbers >= 0.*\(item 1 is inf\)$"),
    (["train", *TINY, "--lrs", "-0.1", "--out", "{new}"], r"lrs must be a list of finite numbers >= 0.*\(item 0 is -0\.1\)$"),
    (["train", *TINY, "--lrs", "0.1,abc", "--out", "{new}"], r"argument --lrs: expected comma-separated numbers"),
    (["train", *TINY, "--lrs", "0.1,0.1,0.1", "--out", "{new}"], r"got 3 learning rates .*; the network has 2 layer pairs \(give one rate for every pair, 2 rates, or none"),
    (["train", *TINY, "--keep-every", "-1", "--out", "{new}"], r"keep_every must be an integer >= 0, got -1$"),
    (["train", *TINY, "--checkpoint-every", "-1", "--out", "{new}"], r"checkpoint_every must be an integer >= 0"),
    (["train", *TINY, "--lr-decay", "0", "--out", "{new}"], r"lr_decay must be a finite number in \(0, 1\], got 0\.0$"),
    (["train", *TINY, "--lr-decay-start", "0", "--out", "{new}"], r"lr_decay_start must be an integer >= 1"),
    (["train", *TINY, "--weight-decay", "nan", "--out", "{new}"], r"weight_decay must be a finite number >= 0"),
    (["train", *TINY, "--shift", "-1", "--out", "{new}"], r"shift must be an integer >= 0"),
    (["train", *TINY, "--probe", "-1", "--out", "{new}"], r"probe must be an integer >= 0"),
    (["train", *TINY, "--nudge-steps", "-1", "--out", "{new}"], r"nudge_steps must be an integer >= 0"),
    (["train", *TINY, "--solver", "euler", "--euler-step", "0", "--out", "{new}"], r"euler_step must be a finite number in \(0, 1\]"),
    (["train", *TINY, "--optimizer", "adam", "--adam-eps", "0", "--out", "{new}"], r"adam_eps must be a finite number > 0"),
    (["train", *TINY, "--optimizer", "adam", "--adam-betas", "1,1", "--out", "{new}"], r"adam_betas must be 2 finite numbers in \[0, 1\)"),
    (["train", *TINY, "--feedback-lr-factor", "-1", "--out", "{new}"], r"feedback_lr_factor must be a finite number >= 0"),
    (["train", "--arch", "64-32-10x", "--out", "{new}"], r"architecture '64-32-10x': layer 2 '10x' is not a whole number"),
    (["train", "--arch", "64--10", "--out", "{new}"], r"architecture '64--10': layer 1 '' is not a whole number"),
    (["train", "--seed", "x", "--out", "{new}"], r"argument --seed: invalid int value: 'x' \(see analogprop train --help\)"),
    (["train", "--dtype", "float16", "--out", "{new}"], r"argument --dtype: invalid choice: 'float16'"),
    (["train", "--out", ""], r"argument --out: an empty path would write into the current directory"),
    (["diagnose", "{base}", "--probe", "0"], r"the probe batch needs at least 1 sample, got 0$"),
    (["diagnose", "{base}", "--seed", "-1"], r"the probe batch's seed must be a whole number >= 0, got -1$"),
    (["diagnose", "{base}", "--tol", "0"], r"tol must be a finite number > 0"),
    (["diagnose", "{base}", "--max-steps", "0"], r"max_steps must be an integer >= 1, got 0$"),
    (["plot", "{base}", "--dpi", "0", "--out", "{new}"], r"dpi must be a whole number in 1\.\.1200 \(fine print\), got 0$"),
    (["plot", "{base}", "--dpi", "-3", "--out", "{new}"], r"dpi must be a whole number in 1\.\.1200 .*got -3$"),
    (["plot", "{base}", "--dpi", "100000", "--out", "{new}"], r"dpi must be a whole number in 1\.\.1200 .*got 100000$"),
    (["netlist", "--seed", "-1", "--samples", "0", "--out", "{new}/c.cir"], r"seed must be an integer >= 0, got -1$"),
    (["netlist", "--arch", "64-32-10x", "--samples", "0", "--out", "{new}/c.cir"], r"layer 2 '10x' is not a whole number"),
    (["netlist", "--samples", "-1", "--out", "{new}/c.cir"], r"--samples must be >= 0, got -1$"),
    (["sweep", "--workers", "0", "--out", "{new}"], r"--workers must be a whole number >= 1 .*got 0$"),
    (["sweep", "--workers", "-2", "--out", "{new}"], r"--workers must be a whole number >= 1 .*got -2$"),
    (["sweep", "--serial", "--workers", "2", "--out", "{new}"], r"--serial runs in this process and --workers 2"),
    (["sweep", "--serial", "--epochs", "0", "--out", "{new}"], r"sweep settings: epochs must be an integer >= 1"),
    (["sweep", "--serial", "--tol", "0", "--out", "{new}"], r"sweep settings: tol must be a finite number > 0"),
    (["sweep", "--serial", "--beta", "nan", "--out", "{new}"], r"sweep settings: beta must be a finite number > 0"),
    (["sweep", "--serial", "--lrs", "0.1,nan", "--out", "{new}"], r"sweep settings: lrs must be a list of finite numbers >= 0.*\(item 1 is nan\)$"),
    (["sweep", "--serial", "--grid-file", "{sweeps}/lrs_text.toml", "--out", "{new}"],
     r"sweep settings: lrs must be a list of numbers.*got '0\.1,abc'"),
    (["sweep", "--serial", "--grid-file", "{sweeps}/epochs_frac.toml", "--out", "{new}"],
     r"sweep settings: epochs must be an integer >= 1, got 1\.5"),
    (["sweep", "--serial", "--grid-file", "{sweeps}/beta_text.toml", "--out", "{new}"],
     r"sweep settings: beta must be a finite number > 0, got 'x'"),
    (["sweep", "--serial", "--grid-file", "{sweeps}/tol_zero.toml", "--out", "{new}"], r"sweep settings: tol must be"),
    (["sweep", "--serial", "--grid-file", "{sweeps}/unknown.toml", "--out", "{new}"], r"unknown sweep settings \['bogus'\]"),
    (["sweep", "--serial", "--grid-file", "{sweeps}/grid_text.toml", "--out", "{new}"], r"grid knob g_dtod: value 'a' is not a number"),
    (["sweep", "--serial", "--grid-file", "{sweeps}/torn.toml", "--out", "{new}"], r"torn\.toml: malformed sweep file"),
    (["sweep", "--serial", "--grid-file", "{sweeps}/workers.toml", "--out", "{new}"], r"dies must be a whole number >= 1"),
    (["sweep", "--serial", "--grid", "g_dtod=0.1,abc", "--out", "{new}"], r"grid knob g_dtod: value 'abc' is not a number"),
    (["average", "{base}", "--epochs", "1-1000000000", "--out", "{new}"],
     r"{base}: 1000000000 epochs asked for, but only 2 snapshots are kept \(kept: \[1, 2\]\)"),
    (["average", "{base}", "--epochs", "2-1", "--out", "{new}"], r"give at least one epoch to average"),
    (["average", "{base}", "--epochs", "0-1", "--out", "{new}"], r"no snapshot after epoch\(s\) \[0\] \(kept: \[1, 2\]\)"),
    (["average", "{base}", "--epochs", "x", "--out", "{new}"], r"argument --epochs: expected epochs as A-B or A,B,C"),
    (["branch", "{base}", "--epoch", "-1", "--out", "{new}"], r"{base}: no snapshot after epoch -1 \(kept: \[1, 2\]\)"),
    (["branch", "{base}", "--epoch", "7", "--out", "{new}"], r"{base}: no snapshot after epoch 7 \(kept: \[1, 2\]\)"),
    (["demo", "--epochs", "0", "--out", "{new}"], r"epochs must be an integer >= 1, got 0$"),
    (["demo", "--circuit-epochs", "-1", "--out", "{new}"], r"epochs must be an integer >= 1, got -1$"),
    # runs that would be replaced
    (["train", *TINY, "--epochs", "1", "--out", "{base}"],
     r"{base} already holds a run; train into a new directory or give --overwrite to replace it"),
    (["train", "--resume", "--overwrite", "--out", "{base}"], r"--resume continues .* --overwrite replaces it"),
    (["branch", "{base}", "--epoch", "1", "--out", "{trunc}"], r"{trunc} already holds a run; branch into a new directory$"),
    (["average", "{base}", "--epochs", "1-2", "--out", "{crc}"], r"{crc} already holds a run; average into a new"),
    (["export", "{base}", "--out", "{empty}"], r"{empty} already holds a run; export into a new directory$"),
    (["export", "{base}", "--out", ""], r"argument --out: an empty path"),
    (["demo", "--out", "{demo}"], r"{demo}/ideal already holds a run; demo into a new directory or give --overwrite"),
    # a resumed run continues the same training
    (["train", "--resume", "--out", "{base}", "--arch", "64-16-10"],
     r"--resume continues the saved run, whose arch is '64-8-10'; got '64-16-10'"),
    (["train", "--resume", "--out", "{base}", "--seed", "3"], r"whose seed is 0; got 3 "),
    (["train", "--resume", "--out", "{base}", "--lrs", "0.1"], r"whose lrs is \[0\.5, 0\.2\]; got \[0\.1, 0\.1\]"),
    (["train", "--resume", "--out", "{base}", "--dataset", "mnist"], r"whose dataset is 'digits'; got 'mnist'"),
    (["train", "--resume", "--out", "{base}", "--beta", "0.25"], r"whose beta is 0\.5; got 0\.25"),
    (["train", "--resume", "--out", "{base}", "--tied"], r"whose tied is False; got True"),
    (["train", "--resume", "--out", "{base}", "--optimizer", "adam"], r"whose optimizer is 'sgd'; got 'adam'"),
    (["train", "--resume", "--out", "{base}", "--tol", "1e-3"], r"whose tol is 1e-05; got 0\.001"),
    (["train", "--resume", "--out", "{base}", "--driver", "circuit"], r"whose driver is 'ideal'; got 'circuit'"),
    (["train", "--resume", "--out", "{base}", "--lr-decay", "0.5", "--lr-decay-start", "2"],
     r"the new learning-rate schedule changes epoch 2, which the checkpoint has already trained"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_and_changes_nothing(fixture_root, tmp_path, capsys, argv, message):
    names = {p.name: str(p) for p in fixture_root.iterdir()}
    names.update(new=str(tmp_path / "new"), file=names["afile"])
    argv = [a.format(**names) for a in argv]
    before = _tree(fixture_root)
    rc = _run(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    # the configuration tree names a setting as 'section.key (--flag, config key ...)': match on the key
    line = re.sub(r"\b(?:\w+\.)?(\w+) \(--[\w-]+, config key '\w+'\)", r"\1", lines[0])
    assert re.search(message.format(**{k: re.escape(v) for k, v in names.items()}), line), lines[0]
    assert lines[0].startswith(("analogprop: error: ", "analogprop ")), lines[0]
    assert _tree(fixture_root) == before
    assert not (tmp_path / "new").exists()


# -- runs replaced only on request ---------------------------------------------------------------------------------
def test_overwrite_replaces_the_whole_run(fixture_root, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(fixture_root / "base", run)
    assert _run(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 2
    assert _run(["train", *TINY, "--epochs", "1", "--out", str(run), "--overwrite"]) == 0
    d = RunDir(run)
    assert [r["epoch"] for r in d.metrics()] == [1] and d.read_config()["epochs"] == 1
    assert d.snapshots() == []  # the old run's snapshots do not outlive it


def test_default_run_directory_is_not_replaced(fixture_root, tmp_path, monkeypatch, capsys):
    shutil.copytree(fixture_root / "base", tmp_path / "runs" / "latest")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    assert _run(["train", *TINY, "--epochs", "1"]) == 2
    assert "runs/latest already holds a run" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_resume_accepts_the_saved_values_and_location_changes(fixture_root, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fixture_root / "base", run)
    assert _run(["train", "--resume", "--out", str(run), "--arch", "64-8-10", "--seed", "0", "--lrs", "0.5,0.2",
                 "--dataset", "digits", "--data-dir", str(tmp_path), "--epochs", "3", "--quiet"]) == 0
    assert [r["epoch"] for r in RunDir(run).metrics()] == [1, 2, 3]
    assert RunDir(run).read_config()["data_dir"] == str(tmp_path)


# -- temporary files, failed writes ----------------------------------------------------------------------------------
def test_stale_temporary_files_are_cleaned_on_the_next_start(fixture_root, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fixture_root / "base", run)
    stale = [run / ".checkpoint.npz.k2j8x_1q.tmp", run / ".metrics.csv.abc12345.tmp",
             run / "snapshots" / ".epoch-002.npz.zz9_yy8x.tmp"]
    kept = [run / ".notes.abc12345.tmp", run / "mine.tmp", run / ".checkpoint.npz.backup"]
    for p in stale + kept:
        p.write_bytes(b"partial")
    assert _run(["train", "--resume", "--out", str(run), "--epochs", "3", "--quiet"]) == 0
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_keeps_the_last_checkpoint(fixture_root, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(fixture_root / "base", run)
    checkpoint = (run / "checkpoint.npz").read_bytes()

    def savez_on_full_disk(f, **arrays):
        f.write(b"PK\x03\x04 the first bytes")
        _no_space()

    monkeypatch.setattr(np, "savez", savez_on_full_disk)
    assert _run(["train", "--resume", "--out", str(run), "--epochs", "3", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == f"analogprop: error: cannot write {run}/checkpoint.npz: No space left on device"
    assert (run / "checkpoint.npz").read_bytes() == checkpoint
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert _run(["train", "--resume", "--out", str(run), "--epochs", "3", "--quiet"]) == 0
    assert [r["epoch"] for r in RunDir(run).metrics()] == [1, 2, 3]


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_a_directory_that_refuses_files_is_one_line(fixture_root, tmp_path, monkeypatch, capsys, error):
    run = tmp_path / "run"
    shutil.copytree(fixture_root / "base", run)
    before = _tree(run)
    monkeypatch.setattr(runs_module.tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(
        OSError(error, os.strerror(error))))
    assert _run(["train", "--resume", "--out", str(run), "--epochs", "3", "--quiet"]) == 2
    assert capsys.readouterr().err == f"analogprop: error: cannot write {run}/config.json: {os.strerror(error)}\n"
    assert _tree(run) == before


# -- divergence, beta's floor ------------------------------------------------------------------------------------------
def test_divergence_stops_before_the_weights_are_ruined(fixture_root, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(fixture_root / "base", run)
    (run / "config.json").write_bytes(_with(lrs=[1e308, 1e308])((run / "config.json").read_bytes()))
    checkpoint = (run / "checkpoint.npz").read_bytes()
    assert _run(["train", "--resume", "--out", str(run), "--epochs", "3", "--checkpoint-every", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"analogprop: error: training diverged: the update of \w+ would take it to magnitude \S+, "
                        r"beyond 2\^23 = 8\.39e\+06 .*; lower them and resume from the last checkpoint", err), err
    assert (run / "checkpoint.npz").read_bytes() == checkpoint
    params, _ = load_checkpoint(run / "checkpoint.npz")
    assert all(np.all(np.isfinite(v)) and np.abs(v).max() <= PARAMETER_LIMIT for v in params.values())
    assert [r["epoch"] for r in RunDir(run).metrics()] == [1, 2]

    assert _run(["train", *TINY, "--lrs", "1e308", "--out", str(tmp_path / "fresh")]) == 2
    assert "training diverged" in capsys.readouterr().err
    assert not (tmp_path / "fresh" / "checkpoint.npz").exists()


@pytest.mark.parametrize("target, problem", [(np.inf, r"the update of fwd1 is not finite"),
                                             (1e9, r"the update of fwd1 would take it to magnitude 1e\+09, beyond 2\^23"),
                                             (PARAMETER_LIMIT * 0.999, None)])
def test_a_step_is_applied_only_when_it_keeps_every_parameter_finite_and_bounded(target, problem):
    driver = IdealDriver(Network.create((4, 3, 2), seed=0))
    trainer = TwoPhaseTrainer(driver, TrainConfig(lrs=(0.1, 0.1)))
    before = driver.get_parameters()
    step = {k: np.zeros_like(v) for k, v in before.items()}
    step["fwd1"][0, 0] = target - before["fwd1"][0, 0]
    if problem is None:
        trainer.apply(step)
        assert driver.get_parameters()["fwd1"][0, 0] == pytest.approx(target)
        return
    with pytest.raises(DivergedError, match=problem):
        trainer.apply(step)
    for k, v in driver.get_parameters().items():
        np.testing.assert_array_equal(v, before[k])


def test_beta_floor_follows_the_solver_tolerance_and_dtype():
    assert complete({"beta": 1e-6, "tol": 1e-7})["beta"] == 1e-6
    with pytest.raises(ConfigError, match=r"max\(tol, eps of float64\) = 1e-05"):
        complete({"beta": 1e-5})
    with pytest.raises(ConfigError, match=r"max\(tol, eps of float32\) = 1\.19209e-07"):
        complete({"beta": 1e-7, "tol": 1e-9, "dtype": "float32"})
