"""analogprop sweep: grid validation, serial vs Dask rows, resume after interruption, plots, CLI."""
import json
from unittest.mock import ANY

import numpy as np

import pytest

from analogprop.cli import main
from analogprop.errors import ConfigError
from analogprop.sweep import KNOBS, make_spec, read_spec_file, run_sweep
from analogprop.sweep.store import read_results

SMALL = dict(arch="64-8-10", train_samples=120, test_samples=80, epochs=1, dies=2, finetune_epochs=1)


def small_spec(**kw):
    return make_spec(None, ["g_dtod=0,0.3", "offset_dtod=0.002"], **{**SMALL, **kw})


def strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, run_sweep(small_spec(), out, progress=False)


def test_grid_expansion_and_keys():
    spec = make_spec(None, ["g_dtod=0,0.1,0.2", "resolution_bits=4,8"], level="crossbar", dies=3, seeds=[0, 1])
    points = spec.points()
    assert len(points) == 3 * 2 * 2 * 3
    assert len({p["key"] for p in points}) == len(points)
    assert points[0]["knobs"] == {"g_dtod": 0.0, "resolution_bits": 4}
    assert [p["key"] for p in points] == [p["key"] for p in spec.points()]
    other = make_spec(None, ["g_dtod=0,0.1,0.2", "resolution_bits=4,8"], level="crossbar", dies=3, seeds=[0, 1],
                      epochs=11)
    assert not {p["key"] for p in points} & {p["key"] for p in other.points()}
    assert set(KNOBS) >= {"g_dtod", "offset_dtod", "read_noise_std", "resolution_bits"}


def test_grid_file(tmp_path):
    f = tmp_path / "grid.toml"
    f.write_text('level = "crossbar"\ndies = 2\nepochs = 3\n[grid]\ng_dtod = [0, 0.15]\nresolution_bits = 6\n')
    spec = make_spec(read_spec_file(f), ["offset_dtod=0,0.001"], epochs=4)
    assert spec.grid == {"g_dtod": [0, 0.15], "resolution_bits": [6], "offset_dtod": [0.0, 0.001]}
    assert spec.epochs == 4 and spec.level == "crossbar" and len(spec.points()) == 2 * 2 * 2
    same = make_spec(None, ["g_dtod=0.0,0.15", "resolution_bits=6.0", "offset_dtod=0,1e-3"], level="crossbar",
                     dies=2, epochs=4)
    assert [p["key"] for p in same.points()] == [p["key"] for p in spec.points()]


@pytest.mark.parametrize("grid, kw, message", [
    (["g_dtod=0,-0.1"], {}, "g_dtod must be a finite number >= 0, got -0.1"),
    (["resolution_bits=0,4"], {"level": "crossbar"}, "resolution_bits must be an integer in 1..32"),
    (["resolution_bits=4.5"], {"level": "crossbar"}, "resolution_bits must be an integer"),
    (["g_spread=0.1"], {}, "unknown sweep knob 'g_spread'"),
    (["resolution_bits=4"], {}, "crossbar design knob; sweep it with level crossbar"),
    (["g_dtod=0,0"], {}, "repeats a value"),
    (["g_dtod=0,abc"], {}, "value 'abc' is not a number"),
    (["g_dtod"], {}, "is not KNOB=V1,V2"),
    (["g_min=0.5", "g_max=0.4,1"], {"level": "crossbar"}, "must exceed g_min"),
    ([], {"dies": 0}, "dies must be a whole number >= 1"),
    ([], {"finetune_epochs": -1}, "finetune_epochs must be a whole number >= 0"),
    ([], {"level": "bogus"}, "circuit level 'bogus'"),
    ([], {"lrs": [0.1, 0.2, 0.3]}, "for architecture 64-32-10, got 3 learning rates"),
    ([], {"arch": "1x8x8-c4k3-10"}, "dense layered networks only"),
])
def test_invalid_grids_refused(grid, kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        make_spec(None, grid, **kw)


def test_invalid_grid_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[grid]\ng_dtod = [0, 0.1\n")
    with pytest.raises(ConfigError, match="malformed sweep file"):
        read_spec_file(f)
    f.write_text("workers = 3\n")
    with pytest.raises(ConfigError, match=r"unknown sweep settings \['workers'\]"):
        read_spec_file(f)


def test_cli_refuses_bad_grid_in_one_line(tmp_path, capsys):
    assert main(["sweep", "--serial", "--grid", "offset_dtod=-0.001", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["analogprop: error: grid knob offset_dtod: mismatch knob offset_dtod must be a finite number >= 0, "
                   "got -0.001"]
    assert not (tmp_path / "s").exists()


def test_serial_rows_and_plot(serial):
    out, res = serial
    assert res["complete"] and res["computed"] == 4 and res["skipped"] == 0
    rows = read_results(out / "results.csv")
    assert [(r["g_dtod"], r["die"]) for r in rows] == [(0.0, 0), (0.0, 1), (0.3, 0), (0.3, 1)]
    assert all(r["offset_dtod"] == 0.002 for r in rows)
    for r in rows:
        assert all(0 <= r[k] <= 1 for k in ("transfer_accuracy", "verified_accuracy", "circuit_accuracy",
                                                   "finetune_accuracy"))
    # a 2 mV offset on a behavioural die barely moves a 64-8-10 network: transfer keeps the ideal accuracy
    assert abs(rows[0]["transfer_accuracy"] - rows[0]["ideal_accuracy"]) <= 1 / 80 + 1e-12
    assert len(list((out / "rows").glob("*.json"))) == 4
    assert len(list((out / "references").glob("*.npz"))) == 1
    assert [p.name for p in res["plots"]] == ["accuracy_vs_g_dtod.png"]
    assert res["plots"][0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "sweep.json").read_text())["grid"] == {"g_dtod": [0.0, 0.3], "offset_dtod": [0.002]}


def test_interrupted_sweep_resumes_without_recomputing(serial, tmp_path):
    _, full = serial
    res = run_sweep(small_spec(), tmp_path, progress=False, stop=lambda: any((tmp_path / "rows").glob("*.json")))
    assert res["computed"] == 1 and not res["complete"]
    assert len(read_results(tmp_path / "results.csv")) == 1
    first = next((tmp_path / "rows").glob("*.json"))
    first_text, ref = first.read_text(), next((tmp_path / "references").glob("*.npz"))
    ref_mtime = ref.stat().st_mtime_ns
    res = run_sweep(small_spec(), tmp_path, progress=False)
    assert (res["computed"], res["skipped"], res["complete"]) == (3, 1, True)
    assert first.read_text() == first_text and ref.stat().st_mtime_ns == ref_mtime
    assert strip(res["rows"]) == strip(full["rows"])
    again = run_sweep(small_spec(), tmp_path, progress=False, plots=False)
    assert (again["computed"], again["skipped"]) == (0, 4)
    # a new value of a knob computes only the new points
    wider = run_sweep(make_spec(None, ["g_dtod=0,0.3,0.6", "offset_dtod=0.002"], **SMALL), tmp_path,
                      progress=False, plots=False)
    assert (wider["computed"], wider["skipped"]) == (2, 4)


def test_interrupted_reference_resumes(serial, tmp_path):
    _, full = serial
    calls = []
    res = run_sweep(small_spec(), tmp_path, progress=False, stop=lambda: len(calls) > 2 or calls.append(1))
    assert (res["computed"], res["complete"]) == (0, False)
    ref = next((tmp_path / "references").glob("*.npz"))
    with np.load(ref) as z:
        assert json.loads(str(z["meta"]))["state"] == {"epoch": 0, "batch": 4, "stats": ANY, "alignment_start": ANY}
    res = run_sweep(small_spec(), tmp_path, progress=False, plots=False)
    assert res["computed"] == 4 and strip(res["rows"]) == strip(full["rows"])


def test_dask_local_cluster_matches_serial(serial, tmp_path):
    _, full = serial
    res = run_sweep(small_spec(), tmp_path, workers=2, progress=False, plots=False)
    assert res["computed"] == 4
    assert strip(res["rows"]) == strip(full["rows"])


def test_cli_sweep_serial(tmp_path, capsys):
    args = ["sweep", "--serial", "--quiet", "--level", "crossbar", "--grid", "g_dtod=0.1", "--bits", "3,8",
            "--dies", "1", "--arch", "64-8-10", "--train-samples", "100", "--test-samples", "50", "--epochs", "1",
            "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["g_dtod", "resolution_bits", "dies", "ideal", "transferred", "write-verified",
                              "in-circuit", "recovered"]
    assert out[-2] == f"2/2 rows (2 computed, 0 already stored) in {tmp_path / 'results.csv'}"
    assert out[-1] == str(tmp_path / "accuracy_vs_resolution_bits.png")
    rows = read_results(tmp_path / "results.csv")
    assert [r["resolution_bits"] for r in rows] == [3, 8] and rows[0]["finetune_accuracy"] is None
    assert main(args) == 0
    assert "(0 computed, 2 already stored)" in capsys.readouterr().out


def test_sweep_defaults_are_the_configuration_trees():
    """A sweep's run settings default as `analogprop train`'s do, learning rates by the rule for any depth."""
    from analogprop.config import RunConfig
    run = RunConfig().to_flat()
    spec = make_spec(None, (), arch="64-16-16-10")
    assert spec.lrs == pytest.approx([0.5, 0.2, 0.08])
    assert {k: spec.settings[k] for k in ("beta", "epochs", "batch_size", "tol", "max_steps")} == \
        {k: run[k] for k in ("beta", "epochs", "batch_size", "tol", "max_steps")}
