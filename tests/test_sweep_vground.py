"""analogprop sweep --level vground: the virtual-ground crossbar's knobs (wire resistance), their validation, rows."""
import json

import pytest

from analogprop.cli import main
from analogprop.config import RunConfig
from analogprop.config.tree import from_flat
from analogprop.errors import ConfigError
from analogprop.sweep import make_spec, read_spec_file, run_sweep
from analogprop.sweep.grid import nonideal_settings
from analogprop.sweep.point import circuit_lrs, circuit_settings
from analogprop.sweep.store import read_results

SMALL = dict(level="vground", opamp_gain="none", tile=64, arch="64-16-10", train_samples=200, test_samples=100,
             epochs=1, dies=1)


@pytest.fixture(scope="module")
def wired(tmp_path_factory):
    out = tmp_path_factory.mktemp("vground")
    spec = make_spec(None, ["g_dtod=0", "wire_r=0,2000"], **SMALL)
    return out, run_sweep(spec, out, progress=False)


def test_rows_carry_the_knobs_and_wire_resistance_moves_accuracy(wired):
    out, res = wired
    assert res["complete"] and res["computed"] == 2
    rows = read_results(out / "results.csv")
    assert [(r["level"], r["g_dtod"], r["wire_r"]) for r in rows] == [("vground", 0.0, 0.0), ("vground", 0.0, 2000.0)]
    clean, ir = rows
    # no spread, ideal wires, an exact virtual ground: the die realises the ideal weights
    assert clean["transfer_accuracy"] == pytest.approx(clean["ideal_accuracy"], abs=1 / 100 + 1e-12)
    assert ir["transfer_accuracy"] != clean["transfer_accuracy"]
    assert ir["circuit_accuracy"] != clean["circuit_accuracy"]
    assert [p.name for p in res["plots"]] == ["accuracy_vs_wire_r.png"]
    spec = json.loads((out / "sweep.json").read_text())
    assert (spec["tile"], spec["opamp_gain"], spec["grid"]["wire_r"]) == (64, None, [0.0, 2000.0])


def test_wire_r_sets_both_segments_and_the_fixed_settings_reach_the_circuit():
    spec = make_spec(None, ["g_dtod=0.05", "wire_r=7", "opamp_offset=0.001"], **SMALL)
    task = spec.points()[0]
    assert (task["tile"], task["opamp_gain"]) == (64, None)
    cfg = circuit_settings(task)
    assert cfg == {"driver": "circuit", "driver_level": "vground", "driver_die": 0, "driver_g_dtod": 0.05,
                   "driver_tile": 64, "driver_opamp_gain": None, "driver_wire_r_row": 7.0, "driver_wire_r_col": 7.0,
                   "driver_opamp_offset": 0.001}
    c = from_flat(cfg).circuit
    assert (c.opamp_gain, c.wire_r_row, c.wire_r_col, c.tile) == (None, 7.0, 7.0, 64)
    assert nonideal_settings({"wire_r_row": 3.0}, spec.settings)["driver_wire_r_row"] == 3.0
    assert circuit_lrs(task) == pytest.approx([lr / 2 for lr in spec.lrs])   # both devices of a pair move


def test_vground_settings_enter_the_keys_only_at_that_level():
    base = {p["key"] for p in make_spec(None, ["g_dtod=0,0.1"], dies=1).points()}
    assert base == {p["key"] for p in make_spec(None, ["g_dtod=0,0.1"], dies=1).points()}
    a = make_spec(None, ["wire_r=0"], **SMALL).points()[0]["key"]
    b = make_spec(None, ["wire_r=0"], **{**SMALL, "tile": 32}).points()[0]["key"]
    assert a != b


def test_saved_exact_virtual_ground_reads_back():
    flat = RunConfig.from_flat({"driver_level": "vground", "driver_opamp_gain": None}).to_flat()
    assert flat["driver_opamp_gain"] is None and from_flat(flat).circuit.opamp_gain is None
    assert from_flat({}).circuit.opamp_gain == 1e6


@pytest.mark.parametrize("grid, kw, message", [
    (["wire_r=5"], {"level": "crossbar"}, "grid knob wire_r is a virtual-ground crossbar knob; sweep it with level "
                                          "vground"),
    (["wire_r=-1"], {}, "grid knob wire_r: wire_r must be a finite number >= 0, got -1"),
    (["wire_r=1", "wire_r_row=1"], {}, "wire_r sets both wire_r_row and wire_r_col"),
    ([], {"level": "crossbar", "tile": 32}, "sweep setting tile (32) applies to the virtual-ground crossbar"),
    ([], {"tile": 0}, "sweep setting tile must be a whole number >= 1"),
    ([], {"opamp_gain": -3.0}, "sweep setting opamp_gain must be a finite number > 0 (V/V) or none"),
    (["field_std=0.1"], {"tile": 64.5}, "sweep setting tile must be a whole number"),
])
def test_invalid_vground_grids_refused(grid, kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        make_spec(None, grid, **{**SMALL, **kw})


def test_cli_refuses_a_bad_wire_knob_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "s")
    assert main(["sweep", "--serial", "--level", "vground", "--grid", "wire_r=0,-10", "--out", out]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "analogprop: error: grid knob wire_r: wire_r must be a finite number >= 0, got -10"]
    assert not (tmp_path / "s").exists()


def test_cli_and_grid_file_give_the_same_rows(wired, tmp_path, capsys):
    out, res = wired
    f = tmp_path / "ir.toml"
    f.write_text('level = "vground"\nopamp_gain = "none"\ntile = 64\narch = "64-16-10"\ntrain_samples = 200\n'
                 'test_samples = 100\nepochs = 1\ndies = 1\n[grid]\ng_dtod = [0]\nwire_r = [0, 2000]\n')
    spec = make_spec(read_spec_file(f))
    assert [p["key"] for p in spec.points()] == [r["key"] for r in res["rows"]]
    args = ["sweep", "--serial", "--quiet", "--level", "vground", "--opamp-gain", "none", "--tile", "64",
            "--grid", "g_dtod=0", "--grid", "wire_r=0,2000", "--dies", "1", "--arch", "64-16-10",
            "--train-samples", "200", "--test-samples", "100", "--epochs", "1", "--no-plots", "--out", str(out)]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["g_dtod", "wire_r", "dies"]
    assert "(0 computed, 2 already stored)" in lines[-1]
