"""Bench profiles: the shipped ones load; malformed ones give errors naming the field."""
from pathlib import Path

import pytest

from analogprop.bench.profile import load_profile, parse_profile
from analogprop.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent / "instruments"
SMALL = (ROOT / "emulated-6-4-3.toml").read_text()


@pytest.mark.parametrize("name", ["emulated-6-4-3.toml", "emulated-64-32-10.toml", "emulated-64-32-10-circuit.toml"])
def test_shipped_profiles_load(name):
    p = load_profile(ROOT / name)
    n_dyn = sum(p.sizes[1:])
    assert p.states_channels[1] - p.states_channels[0] + 1 == n_dyn
    assert p.inputs.count == p.sizes[0] and p.targets.count == p.sizes[-1]
    assert set(p.parameter_shapes()) == set(p.conductances.base)
    assert p.conductances.lsb == pytest.approx(0.001)
    assert {s.kind for s in p.instruments.values()} == {"voltage_source", "dmm_scanner", "smu", "board"}


def edit(old, new, text=SMALL):
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("text, message", [
    ("name = [", "not valid TOML"),
    (edit('name = "emulated 6-4-3 board"\n', ""), "field 'name': missing"),
    (edit("sizes = [6, 4, 3]", "sizes = [6]"), "field 'sizes': expected at least two"),
    (edit('kind = "dmm_scanner"', 'kind = "oscilloscope"'), "field 'instruments.dmm.kind': unknown instrument kind 'oscilloscope'"),
    (edit('resource = "TCPIP::127.0.0.1::56202::SOCKET"', 'resource = "127.0.0.1:56202"'), "field 'instruments.dmm.resource'"),
    (edit('resource = "TCPIP::127.0.0.1::56202::SOCKET"', 'resource = "TCPIP::127.0.0.1::56201::SOCKET"'), "field 'instruments.dmm.resource'"),
    (edit("timeout_ms = 2000", "timeout_ms = 0"), "field 'instruments.source.timeout_ms': must be >= 1"),
    (edit("timeout_ms = 2000", 'timeout_ms = "fast"'), "field 'instruments.source.timeout_ms': expected int, got str"),
    (edit("channels = [1, 6]", "channels = [1, 7]"), "field 'inputs.channels': 1..7 is 7 channels; the board has 6 inputs"),
    (edit("channels = [9, 11]", "channels = [15, 17]"), "field 'targets.channels': 15..17 is outside instrument 'source'"),
    (edit("channels = [9, 11]", "channels = [5, 7]"), "field 'targets.channels'"),
    (edit("limits = [0.0, 1.0]", "limits = [1.0, 0.0]"), "field 'inputs.limits': lower limit 1.0 is above upper limit 0.0"),
    (edit("compliance_a = 0.005", "compliance_a = -1"), "field 'inputs.compliance_a': must be > 0"),
    (edit('instrument = "dmm"', 'instrument = "scope"'), "field 'states.instrument': no instrument named 'scope'"),
    (edit('instrument = "dmm"', 'instrument = "source"'), "field 'states.instrument': instrument 'source' is a voltage_source"),
    (edit("channels = [101, 107]", "channels = [101, 106]"), "field 'states.channels'"),
    (edit("beta_max = 2.0", "beta_max = nan"), "field 'nudge.beta_max': must be finite"),
    (edit("weight_range = [-2.0, 2.0]", "weight_range = [2.0, 2.0]"), "field 'conductances.weight_range'"),
    (edit("fwd1 = 24", "fwd1 = 20"), "field 'conductances.base.fwd1': block fwd1 at 20 overlaps fwd0"),
    (edit("bias2 = 52", "bias2 = 62"), "field 'conductances.base.bias2': block bias2 ends at address 64, beyond address_count 64"),
    (edit("bias2 = 52\n", ""), "field 'conductances.base.bias2': missing"),
    (edit("bwd1 = 36\n", ""), "field 'conductances.base.bwd1': missing"),
    (edit("voltage = 3.3", "voltage = 5.0"), "field 'supply.voltage': 5.0 V is outside supply.limits"),
    (edit("settle_free_ms = 0.3", "settle_free_ms = -1"), "field 'timing.settle_free_ms': must be >= 0"),
    (edit("repeats = 1", "repeats = 1.5"), "field 'timing.repeats': expected int"),
    (edit("[timing]", "[timing]\nsettle_ms = 1"), "field 'timing.settle_ms': unknown field"),
    (edit("[timing]", "[timing]\nsettle_check_ms = -2"), "field 'timing.settle_check_ms': must be >= 0"),
    (edit("[timing]", "[timing]\nsettle_tol_v = 0"), "field 'timing.settle_tol_v': must be > 0"),
    (edit("[inputs]\n", ""), "field 'instruments.board.compliance_a': unknown field"),
    (edit("seed = 7", 'seed = 7\nphysics = "spice"'), "field 'emulator.physics': expected 'ideal' or 'circuit', got 'spice'"),
    (edit("seed = 7", "seed = 7\noffset_dtod = 0.01"), "field 'emulator.offset_dtod': only used with physics = \"circuit\""),
    (edit("seed = 7", 'seed = 7\nsmu_language = "tsp2"'), "field 'emulator.smu_language': expected one of SCPI, SCPI2400, TSP"),
    *[(edit("::56202::", f"::{port}::"), f"field 'instruments.dmm.resource': 'TCPIP::127.0.0.1::{port}::SOCKET': "
       f"port '{port}' is not a TCP port (an integer in 1..65535)") for port in ("99999", "0", "-1", "65536", "")],
    *[(edit("limits = [0.0, 1.0]", f"limits = {bad}"), f"field 'inputs.limits': limits must be finite, got {shown}")
      for bad, shown in [("[nan, 1.0]", "[nan, 1.0]"), ("[0.0, inf]", "[0.0, inf]"), ("[-inf, 1.0]", "[-inf, 1.0]")]],
    (edit("limits = [0.0, 3.6]", "limits = [0.0, nan]"), "field 'supply.limits': limits must be finite"),
    (edit("weight_range = [-2.0, 2.0]", "weight_range = [-inf, 2.0]"), "field 'conductances.weight_range': limits must be finite"),
])
def test_malformed_profiles_name_the_field(text, message):
    with pytest.raises(ConfigError) as e:
        parse_profile(text, "bench.toml")
    assert str(e.value).startswith("bench.toml: ") and message in str(e.value), str(e.value)


def test_missing_profile_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_profile(tmp_path / "nope.toml")
