"""A user's own neuron and synapse subcircuits: specification, characterization by ngspice, the tabulated
solver against ngspice, and the local rule of a non-linear programmable element."""
import math
import shutil
import subprocess

import numpy as np
import pytest

from analogprop.circuit.tabulated import SynapseTable, TabulatedSolver, UserNetwork, local_rule
from analogprop.circuit.user_spec import SpecError, load_spec, parse_spec
from analogprop.drivers.user_circuit import UserCircuitDriver
from analogprop.spice.characterize import characterize_neurons, characterize_synapses
from analogprop.spice.user_netlist import solve_in_ngspice, user_netlist

from conftest import ROOT

CMOS = ROOT / "netlists" / "user" / "cmos.toml"
DIODE = ROOT / "netlists" / "user" / "diode.toml"
CMOS_VG = ROOT / "netlists" / "user" / "cmos_vg.toml"

#: A neuron and a synapse of resistors only: rho(h) = h (unloaded output), I_in = h / rleak, and a synapse
#: delivering g (a - b) into b, programmed by the parameter g.
LINEAR_LIB = """* resistor-only neuron and synapse
.subckt rneuron in out vss params: rleak=10k
rleak in vss {rleak}
rout in out 1k
.ends rneuron
.subckt rsyn a b params: g=1e-5
r1 a b {1/g}
.ends rsyn
"""
LINEAR_SPEC = """library = "lin.lib"
[network]
g_unit = 1e-4
[neuron]
subckt = "rneuron"
pins = ["in", "out", "vss"]
input = "in"
output = "out"
supplies = { vss = 0.0 }
sweep = [-1.0, 2.0, 31]
[neuron.mismatch.rleak]
distribution = "lognormal"
nominal = 1e4
sigma = 0.1
[synapse]
subckt = "rsyn"
pins = ["a", "b"]
terminals = ["a", "b"]
sweep_a = [-0.5, 1.5, 9]
sweep_b = [-1.0, 2.0, 13]
[synapse.program]
name = "g"
kind = "param"
low = 1e-6
high = 1e-4
points = 5
"""


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ANALOGPROP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def linear(tmp_path):
    (tmp_path / "lin.lib").write_text(LINEAR_LIB)
    (tmp_path / "lin.toml").write_text(LINEAR_SPEC)
    return load_spec(tmp_path / "lin.toml")


def tables(spec, sizes, die=0):
    net = UserNetwork.build(spec, sizes, die)
    return net, characterize_neurons(spec, net.neuron_params), characterize_synapses(spec, net.synapse_params)


# -- the specification -------------------------------------------------------------------------------------
def test_shipped_specifications_load_with_their_port_contract():
    spec = load_spec(CMOS)
    assert spec.neuron.pins == ("in", "out", "vdd", "vss", "vneg", "vref", "vbn")
    assert (spec.neuron.input, spec.neuron.output, spec.neuron.supplies["vdd"]) == ("in", "out", 1.8)
    assert spec.synapse.terminals == ("a", "b") and spec.synapse.program.kind == "pin"
    dvt = {m.param: m for m in spec.neuron.mismatch}["dvt1"]
    assert dvt.sigma == pytest.approx(10e-9 / math.sqrt(40e-6 * 2e-6))       # Pelgrom: A_VT / sqrt(W L)
    assert load_spec(DIODE).neuron.subckt == "diode_neuron"


def _spec(**changes):
    data = {"library": "x.lib",
            "neuron": {"subckt": "n", "pins": ["in", "out", "vss"], "input": "in", "output": "out",
                       "supplies": {"vss": 0.0}, "sweep": [0, 1, 11]},
            "synapse": {"subckt": "s", "pins": ["a", "b", "g"], "terminals": ["a", "b"], "sweep_a": [0, 1, 5],
                        "sweep_b": [0, 1, 5], "program": {"name": "g", "kind": "pin", "low": 0, "high": 1}}}
    for key, value in changes.items():
        *path, last = key.split(".")
        table = data
        for p in path:
            table = table[p]
        if value is None:
            del table[last]
        else:
            table[last] = value
    return parse_spec(data, "spec.toml")


@pytest.mark.parametrize("change, key", [
    ({"neuron": None}, "[neuron]"),
    ({"neuron.pins": ["in", "out"]}, "neuron pin 'vss'"),
    ({"neuron.pins": ["in", "out", "vss", "x"]}, "neuron.pins 'x' has no role"),
    ({"neuron.sweep": [1, 0, 11]}, "neuron.sweep"),
    ({"neuron.sweep": [0, 1, 1]}, "neuron.sweep[2]"),
    ({"neuron.mismatch": {"vt": {"distribution": "uniform"}}}, "neuron.mismatch.vt.distribution"),
    ({"neuron.mismatch": {"vt": {"distribution": "pelgrom", "a_vt": 5e-9, "w": 1e-6}}}, "neuron.mismatch.vt.l"),
    ({"synapse.program.kind": "width"}, "synapse.program.kind"),
    ({"synapse.program.high": -1}, "synapse.program.high"),
    ({"synapse.terminals": ["a"]}, "synapse.terminals"),
    ({"synapse.colour": 1}, "synapse.colour"),
    ({"temperature": "hot"}, "temperature"),
    ({"network": {"v_low": 1.0, "v_high": 0.5}}, "network.v_high"),
    ({"network": {"target_low": 0.503, "target_high": 0.497}}, "network.target_high must exceed"),
    ({"network": {"target_low": float("nan")}}, "network.target_low"),
    ({"network": {"target_high": "1 V"}}, "network.target_high"),
])
def test_specification_errors_are_one_line_naming_the_key(change, key):
    with pytest.raises(SpecError) as err:
        _spec(**change)
    message = str(err.value)
    assert "\n" not in message and message.startswith("spec.toml: ") and key in message, message


def test_mismatch_draws_depend_on_the_die_only():
    spec = _spec(**{"neuron.mismatch": {"vt": {"distribution": "pelgrom", "a_vt": 5e-9, "w": 1e-6, "l": 1e-6}}})
    a, b, c = (spec.neuron.instance_params(die, 2000) for die in (3, 3, 4))
    assert a == b and a != c
    assert np.std([p["vt"] for p in a]) == pytest.approx(5e-3, rel=0.1)


def test_library_outside_the_specification_directory_is_refused(tmp_path):
    (tmp_path / "lin.lib").write_text(LINEAR_LIB)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "lin.toml").write_text(LINEAR_SPEC.replace('"lin.lib"', '"../lin.lib"'))
    spec = load_spec(tmp_path / "sub" / "lin.toml")
    with pytest.raises(SpecError, match="outside the specification's directory"):
        tables(spec, (2, 2))
    (tmp_path / "sub" / "lin.toml").write_text("allow_outside = true\n" + LINEAR_SPEC.replace('"lin.lib"', '"../lin.lib"'))
    assert tables(load_spec(tmp_path / "sub" / "lin.toml"), (2, 2))[1].out.shape[1] == 31


def test_pins_must_match_the_subcircuit(tmp_path, linear):
    (tmp_path / "lin.toml").write_text(LINEAR_SPEC.replace('pins = ["a", "b"]', 'pins = ["b", "a"]'))
    with pytest.raises(SpecError, match=r"synapse.pins \['b', 'a'\] do not match .subckt rsyn a b"):
        tables(load_spec(tmp_path / "lin.toml"), (2, 2))


# -- characterization --------------------------------------------------------------------------------------
def test_characterization_of_resistors_is_exact_and_cached(linear, cache):
    net, neurons, synapses = tables(linear, (3, 4, 2))
    rleak = np.array([p["rleak"] for p in net.neuron_params])
    assert len(rleak) == 6 and len(set(rleak)) == 6                      # each neuron its own draw
    np.testing.assert_allclose(neurons.out, np.broadcast_to(neurons.v, neurons.out.shape), atol=1e-9)
    np.testing.assert_allclose(neurons.iin, neurons.v[None] / rleak[:, None], rtol=1e-6, atol=1e-15)
    a, b, g = np.meshgrid(*synapses.axes, indexing="ij")
    np.testing.assert_allclose(synapses.current[0], g * (a - b), rtol=1e-6, atol=1e-15)
    files = sorted(cache.iterdir())
    assert len(files) == 2
    stats = {}
    characterize_neurons(linear, net.neuron_params, stats)
    assert stats["neuron"]["cached"] is True
    characterize_neurons(linear.at_temperature(85.0), net.neuron_params, stats)
    assert stats["neuron"]["cached"] is False and len(list(cache.iterdir())) == 3


def test_synapse_table_interpolates_values_and_slopes():
    a, b, p = np.linspace(0, 1, 6), np.linspace(-1, 1, 9), np.linspace(0.5, 2, 7)
    A, B, P = np.meshgrid(a, b, p, indexing="ij")
    f = lambda a, b, p: np.tanh(p * (a - b)) + 0.1 * a * p ** 2   # noqa: E731
    table = SynapseTable(a, b, p, f(A, B, P)[None])
    rng = np.random.default_rng(0)
    q = [rng.uniform(0, 1, 50), rng.uniform(-1, 1, 50), rng.uniform(0.5, 2, 50)]
    value, da, db, dp = table(np.zeros(50, int), *q)
    from scipy.interpolate import RegularGridInterpolator

    linear = RegularGridInterpolator((a, b, p), f(A, B, P))(np.stack(q, axis=1))
    err = np.abs(value - f(*q)).max()
    assert err < 1e-2 and err < 0.5 * np.abs(linear - f(*q)).max()     # cubic: well below trilinear's error
    np.testing.assert_allclose(table(np.zeros(1, int), a[2], b[3], p[4])[0], f(a[2], b[3], p[4]), rtol=1e-12)
    eps = 1e-6
    for k, d in enumerate((da, db, dp)):
        hi, lo = [list(q) for _ in range(2)]
        hi[k], lo[k] = q[k] + eps, q[k] - eps
        np.testing.assert_allclose(d, (table(np.zeros(50, int), *hi)[0] - table(np.zeros(50, int), *lo)[0]) / (2 * eps),
                                   rtol=1e-4, atol=1e-6)
    # monotone along a grid line of increasing data
    line = table(np.zeros(200, int), np.linspace(0, 1, 200), 0.0, 1.0)[0]
    assert np.all(np.diff(line) > 0)


# -- the tabulated solver against ngspice ------------------------------------------------------------------
@pytest.mark.parametrize("path", [CMOS, DIODE, CMOS_VG])
def test_tabulated_solver_agrees_with_ngspice_free_and_nudged(path):
    spec = load_spec(path)
    net, neurons, synapses = tables(spec, (16, 8, 4), die=1)
    solver = TabulatedSolver(net, neurons, synapses)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (6, 16)), np.eye(4)[rng.integers(0, 4, 6)]
    free = solver.solve(x)
    nudged = solver.solve(x, y, 0.5, start=free.states)
    assert free.converged.all() and nudged.converged.all()
    spice_free, spice_nudged = solve_in_ngspice(net, x), solve_in_ngspice(net, x, y, 0.5)
    for ours, theirs in ((free.states, spice_free), (nudged.states, spice_nudged)):
        for a, b in zip(ours, theirs):
            assert np.abs(a - b).max() <= 1e-4
    # the nudge moved the outputs (by microvolts for cmos_vg, whose targets sit 3 mV either side of 0.5 V)
    # and ngspice moved them by the same amount
    moved, spice_moved = nudged.states[-1] - free.states[-1], spice_nudged[-1] - spice_free[-1]
    assert np.abs(moved).max() > 5e-6 and np.abs(moved - spice_moved).max() <= 0.01 * np.abs(moved).max()


@pytest.mark.parametrize("path", [CMOS, CMOS_VG])
def test_network_netlist_runs_in_plain_ngspice(tmp_path, path):
    if not shutil.which("ngspice"):
        pytest.skip("ngspice is not installed")
    spec = load_spec(path)
    net, neurons, synapses = tables(spec, (4, 3, 2))
    x = np.array([[0.1, 0.9, 0.3, 0.6], [0.8, 0.2, 0.5, 0.4]])
    path = tmp_path / "net.cir"
    path.write_text(user_netlist(net, x))
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=60).stdout
    rows = [ln.split() for ln in out.splitlines() if ln[:1].isdigit()]
    printed = np.array([[float(v) for v in r[2:]] for r in rows[:2]])
    expected = TabulatedSolver(net, neurons, synapses).solve(x).states[-1]
    np.testing.assert_allclose(printed, expected, atol=1e-4)


def test_low_impedance_neuron_makes_synapse_currents_add():
    """cmos_vg.toml: the neuron's small-signal input resistance (from its table) is a small part of the
    resistance of the synapses a hidden node of the digits network (64 inputs and 10 outputs, two devices
    each) puts on it, so the node stays near 0.5 V and its neuron responds to the sum of their currents; on
    a 4-3-2 network the tables agree with ngspice within 1e-4 V and every state stays within 10 mV of 0.5 V."""
    spec = load_spec(CMOS_VG)
    net, neurons, synapses = tables(spec, (4, 3, 2), die=1)
    i0 = np.argmin(np.abs(neurons.iin), axis=1)
    rows = np.arange(len(i0))
    r_in = (neurons.v[i0 + 1] - neurons.v[i0 - 1]) / (neurons.iin[rows, i0 + 1] - neurons.iin[rows, i0 - 1])
    assert np.all(np.abs(neurons.v[i0] - 0.5) < 5e-3)          # held near 0.5 V with no input current
    assert np.all(r_in < 12e3)
    prog = spec.synapse.program
    g_syn = -synapses(0, 0.5, 0.5, (prog.low + prog.high) / 2)[2]   # one device's conductance on the node
    assert np.all(r_in * 2 * 74 * g_syn < 0.4)
    gain = np.diff(neurons.out, axis=1).max(axis=1) / (neurons.v[1] - neurons.v[0])
    assert np.all(gain > 100)                                    # rho(h) is steep: the node barely moves
    solver = TabulatedSolver(net, neurons, synapses)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 1, (4, 4)), np.eye(2)[[0, 1, 1, 0]]
    free = solver.solve(x)
    nudged = solver.solve(x, y, 0.5, start=free.states)
    for ours, theirs in ((free.states, solve_in_ngspice(net, x)), (nudged.states, solve_in_ngspice(net, x, y, 0.5))):
        for a, b in zip(ours, theirs):
            assert np.abs(a - b).max() <= 1e-4 and np.abs(a - 0.5).max() < 0.01


@pytest.mark.parametrize("celsius", [27.0, 85.0])
def test_replica_biased_neuron_keeps_its_operating_point_at_27_and_85_c(celsius):
    """cmos_vg.toml's neuron, measured through its characterization on die 1: at 27 and at 85 C the node it
    holds with no input current stays within 3 mV of vref (0.5 V: the replica pair cancels the thresholds'
    fall), rho there stays mid-range, rho = 0.5 needs less than 50 nA of input current (rho spans 0.1 to 0.9
    over about +-230 nA), and rho covers 0 .. 1 without leaving the rails."""
    spec = load_spec(CMOS_VG).at_temperature(celsius)
    net = UserNetwork.build(spec, (4, 3, 2), die=1)
    neurons = characterize_neurons(spec, net.neuron_params)
    v = neurons.v
    for out, iin in zip(neurons.out, neurons.iin):
        assert np.all(np.diff(iin) > 0) and np.all(np.diff(out) > -1e-9)   # draws more current, rho rises
        node = np.interp(0.0, iin, v)
        assert abs(node - spec.neuron.supplies["vref"]) < 3e-3
        assert abs(np.interp(node, v, out) - 0.5) < 0.1
        half = np.interp(0.5, out, v)
        assert abs(np.interp(half, v, iin)) < 50e-9
        assert out.min() < 0.1 and out.max() > 0.9 and -0.05 < out.min() and out.max() < 1.05


def test_benchmark_spreads_synapses_without_their_own_mismatch():
    """benchmarks/own_circuit.py times distinct synapse instances: a 1% spread of the first fixed parameter
    (the transmission gate's width) when the specification draws no synapse mismatch."""
    from conftest import load_script

    bench = load_script("benchmarks/own_circuit.py")
    role = bench.distinct_synapses(load_spec(CMOS_VG).synapse)
    widths = [p["w"] for p in role.instance_params(1, 20)]
    assert len(set(widths)) == 20 and np.std(widths) == pytest.approx(1e-8, rel=0.4)
    assert {p["l"] for p in role.instance_params(1, 20)} == {100e-6}
    mismatched = load_spec(CMOS_VG).neuron
    assert bench.distinct_synapses(mismatched) is mismatched          # a role with its own draws is kept


def test_nudge_pulls_the_outputs_toward_the_specified_target_voltages(tmp_path):
    """``target_low``/``target_high`` are the volts a target 0 / 1 means at the output nodes (default
    ``v_low``/``v_high``): the nudged fixed point moves toward them, as far as beta lets it, and ngspice's
    nudge sources pull toward the same voltages."""
    (tmp_path / "lin.lib").write_text(LINEAR_LIB)
    (tmp_path / "lin.toml").write_text(LINEAR_SPEC)
    assert load_spec(tmp_path / "lin.toml").targets == (0.0, 1.0)
    (tmp_path / "lin.toml").write_text(LINEAR_SPEC.replace("g_unit = 1e-4", "g_unit = 1e-4\ntarget_low = 0.3\n"
                                                                          "target_high = 0.45"))
    spec = load_spec(tmp_path / "lin.toml")
    assert (spec.v_low, spec.v_high, spec.targets) == (0.0, 1.0, (0.3, 0.45))
    net, neurons, synapses = tables(spec, (3, 4, 2))
    solver = TabulatedSolver(net, neurons, synapses)
    x, y = np.array([[0.2, 0.9, 0.5], [0.7, 0.1, 0.4]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    goal = np.where(y == 1, 0.45, 0.3)
    free = solver.solve(x)
    out = [free.states[-1]]
    for beta in (0.5, 1e4):
        nudged = solver.solve(x, y, beta, start=free.states)
        assert nudged.converged.all()
        out.append(nudged.states[-1])
        for a, b in zip(nudged.states, solve_in_ngspice(net, x, y, beta)):
            assert np.abs(a - b).max() <= 1e-4
    gaps = [np.abs(o - goal) for o in out]
    assert np.all(gaps[1] < gaps[0]) and np.all(gaps[2] < 1e-3) and gaps[0].min() > 0.03
    assert np.all(np.abs(out[2] - np.where(y == 1, 1.0, 0.0)) > 0.25)  # not the v_low/v_high levels


# -- the local rule --------------------------------------------------------------------------------------
def test_local_rule_is_eq26_with_the_tables_programming_slope():
    """Eq. 26 computed independently: dmu/dp by central differences of the field in each device's
    programming value at the free fixed point, dotted with the change of the states."""
    spec = load_spec(CMOS)
    net, neurons, synapses = tables(spec, (5, 4, 3), die=2)
    solver = TabulatedSolver(net, neurons, synapses)
    rng = np.random.default_rng(1)
    x, y, beta = rng.uniform(0, 1, (3, 5)), np.eye(3)[[0, 2, 1]], 0.4
    free = solver.solve(x)
    nudged = solver.solve(x, y, beta, start=free.states)
    rule = local_rule(solver, x, free.states, nudged.states)
    ds = np.concatenate([(b - a) / spec.span for a, b in zip(free.states, nudged.states)], axis=1)
    eps = 1e-4
    for arr in net.arrays:
        expected = np.zeros_like(arr.program)
        for i, j in np.ndindex(arr.program.shape):
            keep = arr.program[i, j]
            arr.program[i, j] = keep + eps
            plus = solver.field(free.states, x)[0]
            arr.program[i, j] = keep - eps
            minus = solver.field(free.states, x)[0]
            arr.program[i, j] = keep
            dmu = (plus - minus) / (2 * eps) / (spec.g_unit * spec.span)
            expected[i, j] = np.sum(dmu * ds)
        np.testing.assert_allclose(rule[arr.name], expected, rtol=1e-5, atol=1e-9 * np.abs(expected).max())


def test_local_rule_of_a_programmed_conductance_is_voltage_across_times_change(linear):
    """For the resistor synapse g (a - b): dmu/dg = (a - b), the note's level-1 rule."""
    net, neurons, synapses = tables(linear, (3, 4, 2))
    solver = TabulatedSolver(net, neurons, synapses)
    x, y = np.array([[0.2, 0.9, 0.5], [0.7, 0.1, 0.4]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    free = solver.solve(x)
    nudged = solver.solve(x, y, 0.3, start=free.states)
    rule = local_rule(solver, x, free.states, nudged.states)
    drives = [net.drive_of_inputs(x)] + [v for v in free.states]     # rho(h) = h for this neuron
    span, total = linear.span, linear.v_low + linear.v_high
    for arr in net.arrays:
        a = total - drives[arr.src] if arr.inverted else drives[arr.src]
        across = a[:, None, :] - free.states[arr.dst - 1][:, :, None]
        dV = nudged.states[arr.dst - 1] - free.states[arr.dst - 1]
        expected = np.einsum("bij,bi->ij", across, dV) / (linear.g_unit * span ** 2)
        np.testing.assert_allclose(rule[arr.name], expected, rtol=1e-4, atol=1e-12)


def test_driver_training_lowers_the_cost_and_spot_checks_ngspice(linear):
    drv = UserCircuitDriver.from_spec(linear, (3, 4, 2), die=1, spot_checks=2)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (16, 3))
    y = 0.25 + 0.2 * np.stack([x[:, 0] > x[:, 1], x[:, 0] <= x[:, 1]], axis=1)   # reachable by averaging

    def cost():
        return float(np.sum((drv.relax_free(x).output - y) ** 2))

    before = cost()
    for _ in range(30):
        free = drv.relax_free(x)
        upd = drv.local_update(x, free, drv.relax_nudged(x, y, 0.5, free))
        drv.update_parameters({k: 5e-9 * v / 0.5 for k, v in upd.items()})   # siemens
    assert cost() < 0.8 * before
    assert drv.stats["spot_checks"] > 0 and drv.stats["spot_max_dv"] < 1e-4
    assert set(drv.parameter_groups()) == {"fwd0_p", "fwd0_n", "fwd1_p", "fwd1_n", "bwd1_p", "bwd1_n"}
    assert drv.parameter_groups()["bwd1_p"] == 1


# -- the command line --------------------------------------------------------------------------------------
def test_netlist_command_writes_the_user_network(tmp_path, capsys):
    from analogprop.cli import main
    from analogprop.model.network import Network

    out = tmp_path / "user.cir"
    assert main(["netlist", "--circuit-spec", str(CMOS), "--arch", "64-4-3", "--samples", "0", "--die", "3",
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "xn1_0 h1_0 r1_0 sup_vdd sup_vss sup_vneg sup_vref sup_vbn cmos_neuron" in text
    assert ".model nsyn nmos level=1 vto={0.5+dvt}" in text and "vto={0.45" not in text   # the tt section only
    assert not [ln for ln in text.splitlines() if ln.lstrip().lower().startswith((".lib", ".endl", ".inc"))]
    net = UserNetwork.build(load_spec(CMOS), (64, 4, 3), die=3)
    net.program(net.programs_from_weights(Network.create((64, 4, 3), seed=0).params))
    assert text == user_netlist(net, np.zeros((1, 64)), np.zeros((1, 3)), title="analogprop")
    assert main(["netlist", "--circuit-spec", str(CMOS), "--include", str(CMOS), "--out", str(out)]) == 2
    assert "with --circuit-spec the libraries come from the specification" in capsys.readouterr().err


def test_train_command_trains_the_user_circuit(tmp_path, capsys):
    from analogprop.cli import main
    from analogprop.model.network import Network

    args = ["train", "--driver", "circuit", "--circuit-spec", str(CMOS), "--arch", "64-4-10", "--train-subset", "20",
            "--test-subset", "20", "--epochs", "1", "--batch-size", "10", "--lrs", "20,10", "--quiet", "--spot-checks",
            "1"]
    assert main(args + ["--out", str(tmp_path / "run")]) == 0
    from analogprop.runs.directory import load_checkpoint

    params, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    net = UserNetwork.build(load_spec(CMOS), (64, 4, 10))
    initial = net.programs_from_weights(Network.create((64, 4, 10), seed=0).params)
    assert set(params) == set(initial) and not np.allclose(params["fwd1_p"], initial["fwd1_p"])   # it learned
    # the run's netlist holds the trained programming values
    assert main(["netlist", str(tmp_path / "run"), "--samples", "1", "--out", str(tmp_path / "run.cir")]) == 0
    assert f"vp_fwd1_p_0_0 p_fwd1_p_0_0 0 dc {float(params['fwd1_p'][0, 0])!r}\n" in (tmp_path / "run.cir").read_text()
    assert main(args + ["--g-dtod", "0.1", "--out", str(tmp_path / "bad")]) == 2
    assert "with --circuit-spec the devices" in capsys.readouterr().err
    assert main(["train", "--driver", "circuit", "--spot-checks", "2", "--out", str(tmp_path / "bad")]) == 2
    assert "give --circuit-spec FILE" in capsys.readouterr().err


def test_netlist_to_standard_output_pipes_into_plain_ngspice(capsys):
    """``analogprop netlist --circuit-spec ... --out - | ngspice -b``: the printed outputs are the tables' fixed point."""
    if not shutil.which("ngspice"):
        pytest.skip("ngspice is not installed")
    from analogprop.cli import main
    from analogprop.model.network import Network

    assert main(["netlist", "--circuit-spec", str(CMOS), "--arch", "64-4-3", "--samples", "0", "--die", "3",
                 "--out", "-"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("* analogprop: 64-4-3 network") and text.endswith(".end\n")
    out = subprocess.run(["ngspice", "-b"], input=text, capture_output=True, text=True, timeout=60).stdout
    printed = np.array([float(v) for v in next(ln for ln in out.splitlines() if ln.startswith("0\t")).split()[2:]])
    spec = load_spec(CMOS)
    net, neurons, synapses = tables(spec, (64, 4, 3), die=3)
    net.program(net.programs_from_weights(Network.create((64, 4, 3), seed=0).params))
    expected = TabulatedSolver(net, neurons, synapses).solve(np.zeros((1, 64))).states[-1][0]
    np.testing.assert_allclose(printed, expected, atol=1e-4)


# -- the digits study's run records ------------------------------------------------------------------------
def test_digits_study_records_load_as_run_records(tmp_path, capsys):
    """The records ``examples/own_circuit/train_digits.py --records DIR`` writes (and the committed ones) are
    run records: valid settings, per-epoch metrics, read by ``analogprop summary``."""
    from analogprop.cli import main
    from analogprop.errors import ConfigError
    from analogprop.runs.directory import RunDir
    from analogprop.training.trainer import TrainConfig
    from conftest import load_script

    study = load_script("examples/own_circuit/train_digits.py")
    args = study.parser().parse_args(["--train-subset", "40", "--die", "2", "--spot-checks", "1"])
    cfg = TrainConfig(beta=0.5, lrs=(100.0, 20.0), epochs=1, batch_size=20)
    epoch = {"epoch": 1, "train_error": 0.75, "test_error": 0.625, "spot_max_dv": 2e-4}
    for name, temperature in (("nominal", 27.0), ("retrained-hot", 85.0)):
        study.write_record(tmp_path / name, study.record_config(args, name, temperature, cfg), [epoch])
    hot = RunDir(tmp_path / "retrained-hot").read_config()
    assert (hot["driver_circuit_spec"], hot["driver_die"], hot["driver_temperature"]) == ("netlists/user/cmos_vg.toml", 2, 85.0)
    assert "driver_die" not in RunDir(tmp_path / "nominal").read_config()   # the nominal design has no die
    assert main(["summary", str(tmp_path / "nominal"), str(tmp_path / "retrained-hot")]) == 0
    assert "retrained-hot: 1 epochs, train 75.00% (running), test 62.50%" in capsys.readouterr().out
    args.die = -1
    with pytest.raises(ConfigError, match="die"):   # a setting a run record may not hold is refused
        study.record_config(args, "in-circuit", 27.0, cfg)

    committed = sorted(p.parent for p in (ROOT / "examples" / "own_circuit" / "records").glob("*/metrics.jsonl"))
    assert [p.name for p in committed] == ["in-circuit", "nominal", "retrained-hot"]
    assert main(["summary", "--markdown", *map(str, committed)]) == 0
    table = capsys.readouterr().out
    assert all(f"| {p.name}<br>" in table for p in committed) and "driver_circuit_spec netlists/user/cmos_vg.toml" in table
