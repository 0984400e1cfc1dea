"""analogprop sweep --circuit-spec: sweeps of a user's own circuit over temperature and mismatch scale."""
import json
import shutil

import numpy as np
import pytest

from analogprop.cli import main
from analogprop.errors import ConfigError
from analogprop.sweep import make_spec, run_sweep
from analogprop.sweep.own import own_driver
from analogprop.sweep.store import format_summary, read_results, summarize

from conftest import ROOT

CMOS_VG = ROOT / "netlists" / "user" / "cmos_vg.toml"
SMALL = dict(circuit_spec=str(CMOS_VG), arch="64-4-10", train_samples=40, test_samples=40, epochs=1, batch_size=20,
             beta=1.0, circuit_lrs=[3000.0, 30000.0], dies=1)
CLI = ["sweep", "--circuit-spec", str(CMOS_VG), "--arch", "64-4-10", "--train-samples", "40", "--test-samples", "40",
       "--epochs", "1", "--circuit-lrs", "3000,30000", "--dies", "1", "--serial", "--quiet", "--no-plots"]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """One characterization cache for the module (tables are keyed by content, so tests share them)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANALOGPROP_CACHE", str(tmp_path_factory.mktemp("characterization")))
        yield


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("own")
    spec = make_spec(None, ["temperature=27,85", "mismatch_scale=0,1"], **SMALL)
    return out, spec, run_sweep(spec, out, progress=False)


def test_rows_carry_the_knobs_and_leave_write_verify_empty(swept):
    out, spec, res = swept
    assert res["complete"] and res["computed"] == 4
    rows = read_results(out / "results.csv")
    assert [(r["level"], r["temperature"], r["mismatch_scale"]) for r in rows] == [
        ("own", 27.0, 0.0), ("own", 27.0, 1.0), ("own", 85.0, 0.0), ("own", 85.0, 1.0)]
    for r in rows:
        assert r["verified_accuracy"] is None and 0 <= r["transfer_accuracy"] <= 1 and 0 <= r["circuit_accuracy"] <= 1
        assert r["ideal_accuracy"] == rows[0]["ideal_accuracy"]            # one reference, trained once
    saved = json.loads((out / "sweep.json").read_text())
    assert (saved["circuit_spec"], saved["level"], saved["circuit_lrs"]) == (str(CMOS_VG), "own", [3000.0, 30000.0])
    table = format_summary(summarize(rows, spec.knob_names()), spec.knob_names())
    assert table.splitlines()[0].split()[:3] == ["temperature", "mismatch_scale", "dies"]
    assert all(line.split()[7] == "-" for line in table.splitlines()[1:])   # after "transferred m ± s"
    assert sorted(p.name for p in res["plots"]) == ["accuracy_vs_mismatch_scale.png", "accuracy_vs_temperature.png"]
    again = run_sweep(spec, out, progress=False, plots=False)
    assert (again["computed"], again["skipped"]) == (0, 4)


def test_temperature_changes_the_die_the_weights_are_transferred_to(swept):
    _, spec, _ = swept
    task = spec.points()[0]
    x = np.random.default_rng(0).uniform(0, 1, (8, 64))
    weights = {"fwd0": np.random.default_rng(1).normal(0, 1, (4, 64)),
               "fwd1": np.random.default_rng(2).normal(0, 1, (10, 4)),
               "bwd1": np.random.default_rng(3).normal(0, 1, (4, 10))}
    out = {}
    for celsius in (27.0, 85.0):
        with own_driver({**task, "knobs": {"temperature": celsius, "mismatch_scale": 1.0}}, weights) as drv:
            assert drv.net.spec.temperature == celsius
            free = drv.relax_free(x)
            assert free.converged.all()
            out[celsius] = free.probes["V"]
    hidden = np.abs(out[85.0][0] - out[27.0][0]).max()
    assert hidden > 1e-5        # the same programmed weights settle elsewhere at 85 C


def test_mismatch_scale_zero_is_the_nominal_die_and_scales_the_same_deviations(swept):
    _, spec, _ = swept
    task = spec.points()[0]
    nominal = {m.param: m.nominal for m in _spec().neuron.mismatch} | _spec().neuron.params
    drivers = {}
    for die, scale in ((0, 0.0), (3, 0.0), (3, 1.0), (3, 2.0)):
        drivers[die, scale] = own_driver({**task, "die": die, "knobs": {"mismatch_scale": scale}})
    for die in (0, 3):
        assert drivers[die, 0.0].net.neuron_params == [nominal]          # every neuron the nominal one
    x = np.random.default_rng(0).uniform(0, 1, (6, 64))
    np.testing.assert_array_equal(drivers[0, 0.0].relax_free(x).output, drivers[3, 0.0].relax_free(x).output)
    assert not np.allclose(drivers[3, 1.0].relax_free(x).output, drivers[3, 0.0].relax_free(x).output)
    one = np.array([[p[k] - nominal[k] for k in ("dvt0", "dvt1")] for p in drivers[3, 1.0].net.neuron_params])
    two = np.array([[p[k] - nominal[k] for k in ("dvt0", "dvt1")] for p in drivers[3, 2.0].net.neuron_params])
    np.testing.assert_allclose(two, 2 * one, rtol=1e-12)
    assert np.abs(one).min() > 0


def _spec():
    from analogprop.circuit.user_spec import load_spec

    return load_spec(CMOS_VG)


def test_rows_depend_on_the_specifications_files(tmp_path):
    for name in ("cmos_vg.toml", "vg_neuron.lib", "tgate_synapse.lib"):
        shutil.copy(ROOT / "netlists" / "user" / name, tmp_path / name)
    copy = {**SMALL, "circuit_spec": str(tmp_path / "cmos_vg.toml")}
    before = make_spec(None, ["temperature=27"], **copy).points()[0]
    lib = tmp_path / "tgate_synapse.lib"
    lib.write_text(lib.read_text() + "\n* edited\n")
    after = make_spec(None, ["temperature=27"], **copy).points()[0]
    assert before["spec_digest"] != after["spec_digest"] and before["key"] != after["key"]


@pytest.mark.parametrize("args, message", [
    (["--grid", "wire_r=0,100"], "grid knob wire_r describes the built-in circuit; with circuit_spec (--circuit-spec) "
                                 "the knobs are temperature, mismatch_scale"),
    (["--grid", "g_dtod=0.1"], "grid knob g_dtod describes the built-in circuit"),
    (["--grid", "temperature=27,-300"], "grid knob temperature: -300 C is at or below absolute zero"),
    (["--grid", "mismatch_scale=1,-0.5"], "grid knob mismatch_scale: mismatch_scale must be a finite number >= 0"),
    (["--level", "vground"], "sweep setting level (vground) selects a built-in circuit"),
    (["--opamp-gain", "none"], "sweep setting opamp_gain (None) applies to the virtual-ground crossbar: leave "
                              "opamp_gain out"),
])
def test_refusals_name_the_knob_in_one_line(args, message, tmp_path, capsys):
    assert main(CLI + args + ["--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analogprop: error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "s").exists()


def test_own_knobs_and_settings_need_a_specification(tmp_path, capsys):
    assert main(["sweep", "--grid", "temperature=27,85", "--out", str(tmp_path / "s")]) == 2
    assert "grid knob temperature applies to a circuit of your own: give circuit_spec (--circuit-spec FILE)" in \
        capsys.readouterr().err
    with pytest.raises(ConfigError, match="circuit_lrs: with circuit_spec give the in-circuit learning rates"):
        make_spec(None, ["temperature=27"], **{**SMALL, "circuit_lrs": None})
    with pytest.raises(ConfigError, match="circuit specification .*missing.toml"):
        make_spec(None, [], **{**SMALL, "circuit_spec": str(tmp_path / "missing.toml")})
