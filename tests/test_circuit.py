"""Compiled circuits, mismatch, the fast circuit solver and the circuit driver."""
import numpy as np
import pytest

from analogprop.circuit import CrossbarDesign, Mismatch, compile_circuit
from analogprop.circuit.solver import CircuitSolver
from analogprop.cli import main
from analogprop.data import load_digits
from analogprop.drivers.circuit import CircuitDriver
from analogprop.runs.build import make_driver
from analogprop.errors import ConfigError
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer

from conftest import saturating_network

LEVELS = ["behavioural", "crossbar"]
SPREAD = Mismatch(g_dtod=0.05, gain_dtod=0.05, offset_dtod=2e-3, leak_dtod=0.1, cap_dtod=0.1)


def batch(sizes, n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.2, 1.2, (n, sizes[0])), np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


def spread_for(level):
    """Offsets are input-referred: the crossbar's buffers amplify them by unit_gain."""
    return SPREAD if level == "behavioural" else Mismatch(g_dtod=0.01, gain_dtod=0.05, offset_dtod=1e-4,
                                                          leak_dtod=0.1)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("clamp", [False, True])
def test_zero_mismatch_operating_point_is_the_ideal_fixed_point(level, clamp):
    net = saturating_network((20, 15, 12, 5), seed=3)
    x, y = batch(net.sizes, 30)
    ideal = FastSolver(tol=1e-13).solve(net, x)
    ideal_b = FastSolver(tol=1e-13).solve(net, x, y, 0.7, start=ideal.states)
    c = compile_circuit(net.sizes, net.params, level, clamp=clamp)
    solver = CircuitSolver(tol=1e-13)
    free = solver.solve(c, x)
    nudged = solver.solve(c, x, y, 0.7, start=free.states)
    assert free.converged.all() and nudged.converged.all()
    saturated = 0
    for phase, ref in ((free, ideal), (nudged, ideal_b)):
        for k, (v, h) in enumerate(zip(phase.states, ref.states), start=1):
            u = c.unit_gain[k - 1] * v
            np.testing.assert_allclose(np.clip(u, 0, 1), h, atol=1e-9)
            if clamp:  # the node itself follows the projected dynamics
                np.testing.assert_allclose(u, h, atol=1e-6)
            saturated += np.count_nonzero((h == 0) | (h == 1))
    assert saturated > 100


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("clamp", [False, True])
def test_kcl_holds_at_the_solution_with_mismatch(level, clamp):
    net = saturating_network((16, 12, 8, 4), seed=5)
    x, y = batch(net.sizes)
    c = compile_circuit(net.sizes, net.params, level, spread_for(level), die=7, clamp=clamp)
    solver = CircuitSolver(tol=1e-12)
    free = solver.solve(c, x)
    nudged = solver.solve(c, x, y, 0.5, start=free.states)
    for phase, yy, beta in ((free, None, 0.0), (nudged, y, 0.5)):
        assert phase.converged.all()
        currents = c.currents(phase.states, x, yy, beta)
        for k, (i, v) in enumerate(zip(currents, phase.states), start=1):
            # residual in volts: current over the node's conductance (the clamp's included where it conducts)
            g = c.conductance(k, beta if k == c.n_layers else 0) * np.ones_like(v)
            if clamp:
                past = (v > c.values[f"clamp_hi{k}"]) | (v < c.values[f"clamp_lo{k}"])
                g = g + past * c.values[f"clamp{k}"]
            assert np.abs(i / g).max() < 1e-11
        assert phase.residual.max() <= 1e-12


@pytest.mark.parametrize("level", LEVELS)
def test_newton_finds_the_sweeps_solution(level):
    net = saturating_network((16, 12, 8, 4), seed=6)
    x, y = batch(net.sizes)
    c = compile_circuit(net.sizes, net.params, level, spread_for(level), die=2, clamp=True)
    sweeps = CircuitSolver(tol=1e-12).solve(c, x, y, 0.4)
    newton = CircuitSolver(tol=1e-12, max_sweeps=2, newton_iters=30).solve(c, x, y, 0.4)
    assert newton.converged.all() and newton.steps.max() < sweeps.steps.max()
    for a, b in zip(sweeps.states, newton.states):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_unconverged_samples_are_reported():
    net = saturating_network((16, 12, 8, 4), seed=6)
    x, _ = batch(net.sizes)
    c = compile_circuit(net.sizes, net.params, "behavioural")
    res = CircuitSolver(tol=1e-14, max_sweeps=1, newton_iters=0).solve(c, x)
    assert np.count_nonzero(~res.converged) >= 10
    np.testing.assert_array_equal(res.converged, res.residual <= 1e-14)
    assert np.isfinite(res.residual).all() and (res.steps == 1).all()


def kcl_volts(c, V, x, y, beta):
    """Per sample max |I| / g from Circuit.currents, g counting every clamp that conducts at V."""
    out = []
    for k, (i, v) in enumerate(zip(c.currents(V, x, y, beta), V), start=1):
        g = c.conductance(k, beta) + c.values[f"clamp{k}"] * (
            (v > c.values[f"clamp_hi{k}"]) * 1.0 + (v < c.values[f"clamp_lo{k}"]))
        out.append(np.abs(i / g).max(axis=1))
    return np.max(out, axis=0)


@pytest.mark.parametrize("max_sweeps", [200, 3])
def test_inverted_clamp_windows_satisfy_kcl(max_sweeps):
    """offset_dtod ~ 1/unit_gain inverts some clamp windows (hi < lo): both clamps conduct between the levels."""
    net = saturating_network((20, 12, 5), 0, gain=2.0, feedback=0.5)
    mm = Mismatch(g_dtod=0.1, gain_dtod=0.05, offset_dtod=0.01, leak_dtod=0.05)
    c = compile_circuit(net.sizes, net.params, "crossbar", mm, die=4, clamp=True)
    assert np.count_nonzero(c.values["clamp_hi1"] < c.values["clamp_lo1"]) >= 2
    x = np.random.default_rng(0).uniform(0, 1, (30, 20))
    y = np.eye(5)[np.arange(30) % 5]
    solver = CircuitSolver(tol=1e-11, max_sweeps=max_sweeps)
    free = solver.solve(c, x)
    nudged = solver.solve(c, x, y, 0.5, start=free.states)
    inside = 0
    for phase, yy, beta in ((free, None, 0.0), (nudged, y, 0.5)):
        true = kcl_volts(c, phase.states, x, yy, beta)
        assert phase.converged.all()
        np.testing.assert_array_equal(phase.converged, true <= 1e-11)   # judged by the true residual
        np.testing.assert_allclose(phase.residual, true, rtol=1e-6, atol=1e-15)
        v, lo, hi = phase.states[0], c.values["clamp_lo1"], c.values["clamp_hi1"]
        inside += np.count_nonzero((hi < lo) & (v > hi) & (v < lo))
    assert inside > 0   # some nodes do sit inside an inverted window, held by both clamps


def test_stiff_clamped_crossbar_converges():
    """Strong feedback: samples the sweeps leave are carried over the clamps' corners by pseudo-transient Newton."""
    net = saturating_network((30, 20, 12, 5), 1, gain=4.0, feedback=2.0)
    mm = Mismatch(g_dtod=0.1, gain_dtod=0.05, offset_dtod=0.01, leak_dtod=0.05)
    c = compile_circuit(net.sizes, net.params, "crossbar", mm, die=1, clamp=True)
    x = np.random.default_rng(1).uniform(-0.2, 1.2, (60, 30))
    y = np.eye(5)[np.arange(60) % 5]
    solver = CircuitSolver(tol=1e-10)
    free = solver.solve(c, x)
    nudged = solver.solve(c, x, y, 0.5, start=free.states)
    assert free.steps.max() > solver.max_sweeps // 10   # some samples did need Newton
    for phase, yy, beta in ((free, None, 0.0), (nudged, y, 0.5)):
        assert phase.converged.all()
        assert kcl_volts(c, phase.states, x, yy, beta).max() <= 1e-10


def test_same_seed_same_devices():
    net = Network.create((10, 6, 4), seed=1)
    mm = Mismatch(g_dtod=0.1, gain_dtod=0.02, offset_dtod=1e-3, leak_dtod=0.05, cap_dtod=0.1, write_noise_std=0.01)
    a = compile_circuit(net.sizes, net.params, "crossbar", mm, die=11, clamp=True)
    b = compile_circuit(net.sizes, net.params, "crossbar", mm, die=11, clamp=True)
    other = compile_circuit(net.sizes, net.params, "crossbar", mm, die=12, clamp=True)
    assert sorted(a.values) == sorted(b.values)
    for k in a.values:
        np.testing.assert_array_equal(a.values[k], b.values[k])
    assert not np.array_equal(a.values["offset1"], other.values["offset1"])
    assert not np.array_equal(a.values["fwd0_p"], other.values["fwd0_p"])
    # a device's draw depends on the die and its key only: doubling a spread doubles its log-deviation
    doubled = compile_circuit(net.sizes, net.params, "behavioural", Mismatch(leak_dtod=0.1), die=11)
    single = compile_circuit(net.sizes, net.params, "behavioural", Mismatch(leak_dtod=0.05), die=11)
    np.testing.assert_allclose(np.log(doubled.values["leak1"]), 2 * np.log(single.values["leak1"]))
    np.testing.assert_array_equal(single.values["fwd0"], net.params["fwd0"])


def test_programming_quantises_clips_and_adds_fresh_write_noise():
    net = Network.create((10, 6, 4), seed=1)
    design = CrossbarDesign(g_min=0.2, g_max=1.0, resolution_bits=3)
    c = compile_circuit(net.sizes, net.params, "crossbar", Mismatch(write_noise_std=0.01), die=3, design=design)
    step = 0.8 / 7
    for k in c.programmable:
        codes = (c.nominal[k] - 0.2) / step
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-9)
        assert c.nominal[k].min() >= 0.2 - 1e-12 and c.nominal[k].max() <= 1.0 + 1e-12
    c.program({"fwd0_p": np.full((6, 10), 5.0)})
    np.testing.assert_array_equal(c.nominal["fwd0_p"], 1.0)
    first = c.values["fwd0_p"].copy()
    assert 0.001 < np.std(first - 1.0) < 0.02
    c.program({"fwd0_p": np.full((6, 10), 5.0)})
    assert not np.array_equal(first, c.values["fwd0_p"])


@pytest.mark.parametrize("level", LEVELS)
def test_local_rule_is_dmu_dtheta_dot_ds(level):
    """Every element's update equals d(field)/d(theta) . (s_beta - s0), by finite differences of the KCL currents."""
    net = saturating_network((5, 4, 3, 3), seed=2, gain=1.5)
    x, y = batch(net.sizes, 6, seed=4)
    drv = CircuitDriver.from_network(net.sizes, net.params, level, spread_for(level), die=5,
                                     solver=CircuitSolver(tol=1e-13))
    c = drv.circuit
    free = drv.relax_free(x)
    nudged = drv.relax_nudged(x, y, 0.3, free)
    upd = drv.local_update(x, free, nudged)
    V0 = free.probes["exact_V"]
    du = [c.unit_gain[k] * (b - a) for k, (a, b) in enumerate(zip(V0, nudged.probes["exact_V"]))]
    # field in network units: current times unit_gain / g_node (crossbar) or 1 (behavioural)
    scale = [c.unit_gain[k] / c.g_node[k] if c.crossbar else 1.0 for k in range(c.n_layers)]
    unit = c.design.g_w if c.crossbar else 1.0
    eps = 1e-6
    base = c.currents(V0, x)
    assert set(upd) == set(c.programmable)
    for key in c.programmable:
        expect = np.zeros_like(c.values[key])
        for idx in np.ndindex(expect.shape):
            saved = c.values[key][idx]
            c.values[key][idx] = saved + eps
            moved = c.currents(V0, x)
            c.values[key][idx] = saved
            expect[idx] = sum(np.sum(s * unit * (m - b) / eps * d)
                              for s, m, b, d in zip(scale, moved, base, du))
        np.testing.assert_allclose(upd[key], expect, atol=1e-6 * max(1.0, np.abs(expect).max()), err_msg=key)
        assert np.abs(expect).max() > 0 or key.startswith("bias")


@pytest.mark.parametrize("level", LEVELS)
def test_deployed_weights_are_realised(level):
    net = saturating_network((12, 8, 6, 4), seed=8, gain=1.0)
    drv = CircuitDriver.from_network(net.sizes, net.params, level, clamp=False, solver=CircuitSolver(tol=1e-13))
    w_max = drv.circuit.design.w_max if level == "crossbar" else np.inf
    clipped = 0
    for k, w in drv.effective_weights().items():  # the crossbar represents |W| <= w_max
        np.testing.assert_allclose(w, np.clip(net.params[k], -w_max, w_max), atol=1e-12)
        clipped += np.count_nonzero(np.abs(net.params[k]) > w_max)
    assert clipped > 0 or level == "behavioural"
    # with mismatch the operating point obeys r = clip(W_eff r + b_eff) with the reported weights
    drv = CircuitDriver.from_network(net.sizes, net.params, level, spread_for(level), die=4, clamp=False,
                                     solver=CircuitSolver(tol=1e-13))
    assert_effective_weights_give_the_operating_point(drv, net, batch(net.sizes)[0])


def assert_effective_weights_give_the_operating_point(drv, net, x):
    """r = clip(W_eff r + b_eff) at the driver's free operating point, with W_eff away from the nominal weights."""
    r = drv.relax_free(x).probes["r"]
    eff = Network(net.sizes, drv.effective_weights())
    for k in range(1, len(net.sizes)):
        pre = eff.drive(k, r[k - 1], r[k + 1] if k + 1 < len(net.sizes) else None)
        np.testing.assert_allclose(np.clip(pre, 0, 1), r[k], atol=1e-9)
    assert any(not np.allclose(eff.params[k], net.params[k], atol=1e-3) for k in net.params)


def test_read_noise_is_fresh_per_read_and_reproducible_per_die():
    net = Network.create((10, 6, 4), seed=1)
    x, _ = batch(net.sizes)
    drv = CircuitDriver.from_network(net.sizes, net.params, "behavioural", Mismatch(read_noise_std=1e-3), die=9)
    a, b = drv.relax_free(x), drv.relax_free(x)
    noise = a.states[0] - a.probes["exact_V"][0]
    assert 2e-4 < noise.std() < 3e-3
    assert not np.array_equal(a.states[0], b.states[0])
    again = CircuitDriver.from_network(net.sizes, net.params, "behavioural", Mismatch(read_noise_std=1e-3), die=9)
    np.testing.assert_array_equal(again.relax_free(x).states[0], a.states[0])


@pytest.fixture(scope="module")
def digits():
    return load_digits().subset(600, 300)


@pytest.mark.parametrize("level, lrs", [("behavioural", (0.5, 0.2)), ("crossbar", (0.25, 0.1))])
def test_training_through_the_circuit_lowers_the_error(digits, level, lrs):
    cfg = {"driver": "circuit", "driver_level": level, "driver_die": 3, "driver_g_dtod": 0.03, "driver_gain_dtod": 0.05,
           "driver_offset_dtod": 0.01 if level == "behavioural" else 2e-5, "driver_write_noise_std": 1e-4,
           "driver_read_noise_std": 1e-5 if level == "behavioural" else 1e-7, "tol": 1e-6}
    if level == "crossbar":
        cfg["driver_resolution_bits"] = 12
    drv = make_driver(cfg, Network.create((64, 32, 10), seed=0))
    tr = TwoPhaseTrainer(drv, TrainConfig(lrs=lrs, beta=0.5, epochs=4))
    before = tr.evaluate(digits.x_train, digits.y_train)
    tr.fit(digits)
    after = tr.evaluate(digits.x_train, digits.y_train)
    assert after["error"] < before["error"] - 0.4
    assert after["unconverged"] == 0


@pytest.mark.parametrize("make, match", [
    (lambda: Mismatch(g_dtod=-0.1), "g_dtod"),
    (lambda: Mismatch(offset_dtod=float("nan")), "offset_dtod"),
    (lambda: Mismatch(read_noise_std="x"), "read_noise_std"),
    (lambda: CrossbarDesign(resolution_bits=0), "resolution_bits"),
    (lambda: CrossbarDesign(g_min=1.0, g_max=1.0), "g_max"),
    (lambda: CrossbarDesign(g_min=-0.1), "g_min"),
    (lambda: CrossbarDesign(w_max=0), "w_max"),
    (lambda: compile_circuit((4, 3), {"fwd0": np.zeros((3, 4))}, "memristor"), "level"),
    (lambda: compile_circuit((4, 3), {"fwd0": np.zeros((4, 3))}), "shape"),
    (lambda: compile_circuit((4, 3), {"fwd0": np.full((3, 4), np.nan)}), "NaN"),
    (lambda: compile_circuit((4, 3), {"fwd0": np.zeros((3, 4))}, die=-1), "die"),
    (lambda: make_driver({"driver": "circuit", "driver_level": 1, "driver_gdtod": 0.1}, Network.create((4, 3))),
     "driver_gdtod"),
    (lambda: make_driver({"driver": "circuit", "driver_resolution_bits": 2.5}, Network.create((4, 3))),
     "resolution_bits"),
    (lambda: CircuitSolver(tol=-1), "tolerance"),
    (lambda: make_driver({"driver": "circuit", "driver_newton_iters": -1}, Network.create((4, 3))), "newton_iters"),
])
def test_bad_knobs_are_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_driver_refuses_bad_parameters_and_inputs():
    net = Network.create((4, 3), seed=0)
    drv = CircuitDriver.from_network(net.sizes, net.params, "crossbar")
    with pytest.raises(ConfigError, match="fwd0_p has shape"):
        drv.set_parameters({"fwd0_p": np.zeros((4, 3))})
    with pytest.raises(ConfigError, match="not programmable"):
        drv.set_parameters({"fwd0": np.zeros((3, 4))})
    with pytest.raises(ConfigError, match="inputs have shape"):
        drv.relax_free(np.zeros((2, 5)))


def test_cli_trains_a_mismatched_crossbar(tmp_path, capsys):
    rc = main(["train", "--driver", "circuit", "--level", "crossbar", "--g-dtod", "0.02", "--die", "4",
               "--resolution-bits", "10", "--epochs", "1", "--lrs", "0.25,0.1", "--quiet", "--out", str(tmp_path)])
    assert rc == 0
    assert "test error" in capsys.readouterr().out
    assert main(["train", "--driver", "circuit", "--g-dtod", "-1", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "g_dtod" in capsys.readouterr().err


@pytest.mark.parametrize("level", LEVELS)
def test_write_verify_compensates_device_spread(level):
    net = Network.create((12, 8, 4), seed=3)
    drv = CircuitDriver.from_network(net.sizes, net.params, level, Mismatch(g_dtod=0.05), die=6, clamp=False)
    plain = drv.effective_weights()
    drv.deploy(net.params, verify=True)
    verified = drv.effective_weights()
    for k in net.params:
        np.testing.assert_allclose(verified[k], net.params[k], atol=1e-12)
    assert max(np.abs(plain[k] - net.params[k]).max() for k in net.params) > 0.02
