"""The virtual-ground crossbar (level vground): its non-idealities, the fast Newton solver, ngspice and the local rule."""
import math

import numpy as np
import pytest

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.nonideal import Nonidealities, diode_branch
from analogprop.circuit.vground import Layer, VgroundSolver, _clamp, residual, split
from analogprop.cli import main
from analogprop.drivers.circuit import CircuitDriver
from analogprop.drivers.ideal import IdealDriver
from analogprop.errors import ConfigError
from analogprop.model.relax import FastSolver

from conftest import saturating_network
from test_circuit import assert_effective_weights_give_the_operating_point

IDEAL = Nonidealities(opamp_gain=math.inf)
#: each non-ideality on its own, then all together
CASES = {
    "ideal": {},
    "gain": dict(opamp_gain=1e4),
    "rout": dict(opamp_gain=1e4, opamp_rout=100.0),
    "rails": dict(opamp_gain=1e3, opamp_rail=0.8),
    "offset": dict(opamp_offset=1e-3),
    "sinh": dict(device_v0=1.0),
    "pelgrom": dict(pelgrom_a=0.02, device_area=0.1),
    "spatial": dict(gradient=0.2, field_std=0.05, field_length=4.0, tile=16),
    "temperature": dict(temp=60.0, tc1=2e-3, tc2=1e-6),
}
CASES["all"] = {k: v for case in CASES.values() for k, v in case.items()} | dict(opamp_gain=1e4, opamp_rail=3.0)


def batch(sizes, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.2, 1.2, (n, sizes[0])), np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


@pytest.mark.parametrize("clamp", [False, True])
def test_ideal_virtual_ground_realises_the_network(clamp):
    """No mismatch, ideal op-amps: h = -V_out is the ideal fixed point (clamped: within the clamp's softness)."""
    net = saturating_network((20, 15, 12, 5), seed=3)
    x, y = batch(net.sizes, 30)
    ideal = FastSolver(tol=1e-13).solve(net, x)
    ideal_b = FastSolver(tol=1e-13).solve(net, x, y, 0.7, start=ideal.states)
    c = compile_circuit(net.sizes, net.params, "vground", clamp=clamp, nonideal=IDEAL)
    solver = VgroundSolver(tol=1e-12)
    free = solver.solve(c, x)
    nudged = solver.solve(c, x, y, 0.7, start=free.states)
    for phase, ref in ((free, ideal), (nudged, ideal_b)):
        assert phase.converged.all()
        for k, (s, h) in enumerate(zip(phase.states, ref.states), start=1):
            vc, vo = split(c, k, s)
            assert np.array_equal(vc, np.zeros_like(vc))
            if clamp:
                np.testing.assert_allclose(-vo, h, atol=1e-6)
            else:
                np.testing.assert_allclose(np.clip(-vo, 0, 1), h, atol=1e-10)
    assert clamp or max(np.abs(-split(c, k, s)[1] - h).max()
                        for k, (s, h) in enumerate(zip(free.states, ideal.states), start=1)) > 0.1


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_solver_meets_kcl_with_each_nonideality(case):
    net = saturating_network((30, 20, 16, 6), seed=1)
    x, y = batch(net.sizes, 20, seed=2)
    c = compile_circuit(net.sizes, net.params, "vground", Mismatch(g_dtod=0.05, offset_dtod=1e-3), die=3,
                        clamp=True, nonideal=Nonidealities(**CASES[case]))
    solver = VgroundSolver(tol=1e-11)
    free = solver.solve(c, x)
    nudged = solver.solve(c, x, y, 0.5, start=free.states)
    assert free.converged.all() and nudged.converged.all()
    assert np.all(residual(c, free.states, x) <= 1e-11)
    assert np.all(residual(c, nudged.states, x, y, 0.5) <= 1e-11)
    # the nudge moves the outputs towards the targets
    out0, out1 = -split(c, 3, free.states[-1])[1], -split(c, 3, nudged.states[-1])[1]
    assert np.mean(np.abs(out1 - y)) < np.mean(np.abs(out0 - y))


def test_each_nonideality_changes_the_operating_point():
    net = saturating_network((30, 20, 6), seed=1)
    x, _ = batch(net.sizes, 10)
    base = VgroundSolver(tol=1e-12).solve(compile_circuit(net.sizes, net.params, "vground", nonideal=IDEAL), x)
    for case, kw in CASES.items():
        if case == "ideal":
            continue
        c = compile_circuit(net.sizes, net.params, "vground", nonideal=Nonidealities(**({"opamp_gain": math.inf} | kw)))
        moved = VgroundSolver(tol=1e-12).solve(c, x)
        assert max(np.abs(a - b).max() for a, b in zip(moved.states, base.states)) > 1e-5, case


def test_newton_gmin_and_source_stepping_finish_what_the_sweeps_leave():
    net = saturating_network((20, 15, 12, 5), seed=3, gain=2.0, feedback=0.6)
    x, y = batch(net.sizes, 12)
    c = compile_circuit(net.sizes, net.params, "vground", Mismatch(g_dtod=0.1), clamp=True,
                        nonideal=Nonidealities(opamp_gain=1e4, device_v0=1.0))
    swept = VgroundSolver(tol=1e-11, max_sweeps=3, newton_iters=0).solve(c, x)
    assert not swept.converged.all()          # three sweeps are not enough ...
    full = VgroundSolver(tol=1e-11, max_sweeps=3).solve(c, x)
    assert full.converged.all()               # ... Newton (and its fallbacks) finishes every sample
    ref = VgroundSolver(tol=1e-12).solve(c, x)
    assert max(np.abs(a - b).max() for a, b in zip(full.states, ref.states)) < 1e-9


@pytest.mark.parametrize("devices", [{}, {"device_v0": 1.0}])
def test_newton_steps_by_lu_and_by_gmres_agree(devices, monkeypatch):
    """Newton's linear solves: LU on the unsaturated neurons, or GMRES when there are more than _DENSE_MAX of them
    (shared drive Jacobian for linear devices, per sample for sinh devices)."""
    import analogprop.circuit.vground as vground
    net = saturating_network((20, 15, 12, 5), seed=3, gain=2.0, feedback=0.6)
    x, _ = batch(net.sizes, 8)
    c = compile_circuit(net.sizes, net.params, "vground", Mismatch(g_dtod=0.1), clamp=True,
                        nonideal=Nonidealities(opamp_gain=1e4, **devices))
    assert not VgroundSolver(tol=1e-11, max_sweeps=3, newton_iters=0).solve(c, x).converged.all()
    solver = VgroundSolver(tol=1e-11, max_sweeps=3)
    lu = solver.solve(c, x)
    monkeypatch.setattr(vground, "_DENSE_MAX", 0)
    krylov = solver.solve(c, x)
    assert lu.converged.all() and krylov.converged.all()
    assert max(np.abs(a - b).max() for a, b in zip(lu.states, krylov.states)) < 1e-9


def test_unconverged_samples_are_reported_honestly():
    net = saturating_network((20, 15, 12, 5), seed=3)
    x, _ = batch(net.sizes, 6)
    c = compile_circuit(net.sizes, net.params, "vground", nonideal=Nonidealities(opamp_gain=1e4, device_v0=0.3))
    out = VgroundSolver(tol=1e-14, max_sweeps=1, newton_iters=0).solve(c, x)
    assert out.n_unconverged >= 4
    np.testing.assert_array_equal(out.converged, out.residual <= 1e-14)


def test_local_rule_equals_the_ideal_two_phase_estimate():
    """No mismatch: (dtheta_p - dtheta_n) / 2 is Eq. 56's r_j (h_beta - h_0), within the op-amps' finite gain."""
    net = saturating_network((20, 15, 12, 5), seed=3)
    x, y = batch(net.sizes, 30)
    ideal = IdealDriver(net, FastSolver(tol=1e-13))
    f0 = ideal.relax_free(x)
    ref = ideal.local_update(x, f0, ideal.relax_nudged(x, y, 0.5, f0))
    for nid, tol in ((IDEAL, 1e-6), (Nonidealities(), 1e-3)):   # exact virtual ground; A = 1e6
        drv = CircuitDriver.from_network(net.sizes, net.params, "vground", nonideal=nid,
                                         solver=VgroundSolver(tol=1e-13))
        free = drv.relax_free(x)
        upd = drv.local_update(x, free, drv.relax_nudged(x, y, 0.5, free))
        assert set(upd) == set(drv.circuit.programmable)
        for k, v in ref.items():
            np.testing.assert_allclose((upd[f"{k}_p"] - upd[f"{k}_n"]) / 2, v, atol=tol * max(1, np.abs(v).max()))
        if nid is IDEAL:   # ideal virtual ground: the negative device's update is the positive one's negated
            np.testing.assert_allclose(upd["fwd0_n"], -upd["fwd0_p"], atol=1e-12)


def test_local_rule_keeps_the_measured_column_voltage():
    """Finite gain and offsets: every update is dmu/dtheta . (h_beta - h_0) with dmu_i/dtheta = V_a - V_col,i."""
    net = saturating_network((6, 5, 3), seed=2)
    x, y = batch(net.sizes, 5)
    drv = CircuitDriver.from_network(net.sizes, net.params, "vground", Mismatch(g_dtod=0.05), die=2,
                                     nonideal=Nonidealities(opamp_gain=300.0, opamp_offset=0.01),
                                     solver=VgroundSolver(tol=1e-13))
    c = drv.circuit
    free = drv.relax_free(x)
    nudged = drv.relax_nudged(x, y, 0.3, free)
    upd = drv.local_update(x, free, nudged)
    vc = split(c, 1, free.probes["exact_V"][0])[0]
    assert np.abs(vc).min() > 1e-4                       # the columns are not at 0 V
    dh = free.probes["V"][0] - nudged.probes["V"][0]
    r0 = c.inputs(x)
    expect = np.einsum("bi,bij->ij", dh, r0[:, None, :] - vc[:, :, None])
    np.testing.assert_allclose(upd["fwd0_p"], expect, atol=1e-12)
    expect_n = np.einsum("bi,bij->ij", dh, c.inverter(0, r0)[:, None, :] - vc[:, :, None])
    np.testing.assert_allclose(upd["fwd0_n"], expect_n, atol=1e-12)


def test_same_die_same_devices_and_spatial_correlation():
    net = saturating_network((300, 20, 4), seed=0)
    nid = Nonidealities(gradient=0.3, field_std=0.1, field_length=8.0, tile=256, pelgrom_a=0.01, device_area=0.25)
    a = compile_circuit(net.sizes, net.params, "vground", Mismatch(g_dtod=0.02), die=7, nonideal=nid)
    b = compile_circuit(net.sizes, net.params, "vground", Mismatch(g_dtod=0.02), die=7, nonideal=nid)
    assert all(np.array_equal(a.values[k], b.values[k]) for k in a.values)
    g = np.log(a.values["fwd0_p"] / a.nominal["fwd0_p"])
    # neighbours along a tile row are correlated; the two tiles of the 300 columns are drawn independently
    near = np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1]
    assert near > 0.5
    assert not np.allclose(g[:, 250:256].mean(), g[:, 256:262].mean(), atol=1e-4)


def test_temperature_scales_the_programmable_devices():
    net = saturating_network((10, 6, 3), seed=0)
    hot = compile_circuit(net.sizes, net.params, "vground", nonideal=Nonidealities(temp=77.0, tc1=1e-3))
    cold = compile_circuit(net.sizes, net.params, "vground")
    for k in ("fwd0_p", "bwd1_n", "bias2_n"):
        np.testing.assert_allclose(hot.values[k], cold.values[k] / 1.05)
    np.testing.assert_array_equal(hot.values["gf1"], cold.values["gf1"])


@pytest.mark.parametrize("kw, match", [
    (dict(opamp_gain=0), "opamp_gain"),
    (dict(opamp_rail=2.0, opamp_gain=math.inf), "finite opamp_gain"),
    (dict(opamp_rout=-1), "opamp_rout"),
    (dict(device_v0=float("nan")), "device_v0"),
    (dict(tile=0), "tile"),
    (dict(tc1=-0.1, temp=100.0), "resistance"),
    (dict(wire_r_row=-1.0), "wire_r_row"),
    (dict(wire_r_col=math.inf, opamp_gain=math.inf), "wire_r_col"),
])
def test_bad_nonidealities_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        Nonidealities(**kw)


def test_cli_trains_the_vground_level(tmp_path, capsys):
    rc = main(["train", "--driver", "circuit", "--level", "vground", "--g-dtod", "0.05", "--opamp-gain", "1e4",
               "--opamp-offset", "1e-3", "--epochs", "1", "--lrs", "0.25,0.1", "--quiet",
               "--out", str(tmp_path)])
    assert rc == 0
    assert "test error" in capsys.readouterr().out
    assert main(["train", "--driver", "circuit", "--level", "vground", "--opamp-rout", "-3", "--epochs", "1",
                 "--quiet", "--out", str(tmp_path / "bad")]) == 2
    assert "opamp_rout" in capsys.readouterr().err


def test_effective_weights_give_the_operating_point():
    """Ideal virtual ground, linear devices: r = clip(W_eff r + b_eff) with the reported weights, offsets included."""
    net = saturating_network((12, 8, 6, 4), seed=8, gain=1.0)
    drv = CircuitDriver.from_network(net.sizes, net.params, "vground", Mismatch(g_dtod=0.05, offset_dtod=1e-3),
                                     die=4, clamp=False, nonideal=Nonidealities(opamp_gain=math.inf, opamp_offset=2e-3),
                                     solver=VgroundSolver(tol=1e-13))
    assert_effective_weights_give_the_operating_point(drv, net, batch(net.sizes, 10)[0])


def test_every_nonideality_setting_reaches_the_circuit():
    from dataclasses import fields

    from analogprop.config.sections import CircuitConfig
    from analogprop.config import merge
    from analogprop.model.network import Network
    from analogprop.runs.build import circuit_settings
    from analogprop.drivers.circuit import make_circuit_driver

    values = dict(opamp_gain=2e5, opamp_rout=10.0, opamp_rail=4.0, opamp_offset=1e-4, opamp_gbw=1e6,
                  device_v0=2.0, pelgrom_a=0.01, device_area=0.5, gradient=0.1, field_std=0.02, field_length=8.0,
                  tile=64,
                  die_temp=40.0, tc1=1e-3, tc2=1e-6, clamp_model="diode", diode_is=2e-14, diode_n=1.2, diode_rs=5.0)
    wires = dict(wire_r_row=2.0, wire_r_col=3.0)   # need linear devices
    assert set(values) | set(wires) == set(CircuitConfig.NONIDEAL)
    for extra in ({}, dict(wires, opamp_gain=None, opamp_rail=None, device_v0=None)):
        run = merge({"driver": {"name": "circuit"}, "circuit": {"level": "vground", **values, **extra}})
        drv = make_circuit_driver(Network.create((6, 4, 3), seed=0), **circuit_settings(run))
        nid = drv.circuit.nonideal
        got = {f.name: getattr(nid, f.name) for f in fields(nid)}
        none_inf = {k: math.inf if v is None else v for k, v in extra.items()}
        assert got == {**{k: v for k, v in values.items() if k != "die_temp"}, "temp": 40.0,
                       "wire_r_row": 0.0, "wire_r_col": 0.0, **none_inf}
        assert isinstance(drv.solver, VgroundSolver)


@pytest.mark.parametrize("kw, match", [(dict(tol=-1.0), "tolerance"), (dict(max_sweeps=0), "sweep count"),
                                       (dict(newton_iters=-1), "Newton iteration count")])
def test_bad_solver_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        VgroundSolver(**kw)


@pytest.mark.parametrize("rs", [0.0, 1e-4, 0.3])
def test_diode_branch_is_shockleys_law_with_series_resistance(rs):
    """I = Is (exp((v - I Rs) / (n V_T)) - 1): forward in log form, reverse against Is; slope by differences."""
    i_s, nvt = 1e-9, 0.0259
    v = np.linspace(-2.0, 3.0 if rs else 2.0, 501)   # (Rs = 0: exponents below the linear continuation)
    i, di = diode_branch(v, i_s, nvt, rs)
    assert np.all(np.diff(i) >= 0) and np.all(np.diff(i[v > 0]) > 0) and i[-1] > (1.0 if rs else 1e20)
    fwd = i > 1e3 * i_s
    np.testing.assert_allclose(v[fwd] - i[fwd] * rs, nvt * np.log1p(i[fwd] / i_s), rtol=0, atol=1e-12)
    np.testing.assert_allclose(i[~fwd], i_s * np.expm1((v[~fwd] - i[~fwd] * rs) / nvt), rtol=1e-9, atol=1e-22)
    h = 1e-7
    num = (diode_branch(v + h, i_s, nvt, rs)[0] - diode_branch(v - h, i_s, nvt, rs)[0]) / (2 * h)
    np.testing.assert_allclose(di, num, rtol=1e-5, atol=1e-16)   # (differences of -Is lose 1e-18)


def test_diode_temperature_follows_ngspices_law():
    cold, hot = Nonidealities(clamp_model="diode"), Nonidealities(clamp_model="diode", temp=80.0, diode_n=1.5)
    t, t0 = 353.15, 300.15   # k / q as ngspice has it (CODATA 2014)
    assert cold.diode_is_t == cold.diode_is and cold.diode_nvt == pytest.approx(8.6173303e-5 * t0, rel=1e-7)
    assert hot.diode_nvt == pytest.approx(1.5 * 8.6173303e-5 * t, rel=1e-7)
    expect = 1e-14 * math.exp((t / t0 - 1) * 1.11 / hot.diode_nvt + 3.0 / 1.5 * math.log(t / t0))
    assert hot.diode_is_t == pytest.approx(expect, rel=1e-12)


def diode_currents(c, states):
    """Largest |clamp current| per layer (g_unit * 1 V) of a vground circuit's states."""
    out = []
    for k in range(1, c.n_layers + 1):
        vc, vo = split(c, k, states[k - 1])
        out.append(np.abs(_clamp(Layer(c, k), vc - vo)[0]))
    return out


@pytest.mark.parametrize("kw", [dict(opamp_gain=1e4), dict(opamp_gain=math.inf, diode_rs=0.0),
                                dict(opamp_gain=1e3, opamp_rail=3.0, opamp_rout=50.0, device_v0=1.0, temp=60.0)])
def test_fast_solver_meets_kcl_with_diode_clamps(kw):
    net = saturating_network((30, 20, 16, 6), seed=1)
    x, y = batch(net.sizes, 20, seed=2)
    nid = Nonidealities(clamp_model="diode", **kw)
    c = compile_circuit(net.sizes, net.params, "vground", Mismatch(g_dtod=0.05, offset_dtod=1e-3), die=3,
                        clamp=True, nonideal=nid)
    assert c.diode_clamped and "clamp1" not in c.values
    solver = VgroundSolver(tol=1e-11)
    free = solver.solve(c, x)
    nudged = solver.solve(c, x, y, 0.5, start=free.states)
    assert free.converged.all() and nudged.converged.all()
    assert np.all(residual(c, free.states, x) <= 1e-11) and np.all(residual(c, nudged.states, x, y, 0.5) <= 1e-11)
    # saturated neurons are held by conducting diodes (about 0.5 V past the clamp levels 0 and 1 V) ...
    assert max(i.max() for i in diode_currents(c, free.states)) > 0.3
    h = np.concatenate([-split(c, k, s)[1] for k, s in enumerate(free.states, start=1)], axis=1)
    assert h.min() > -0.8 and h.max() < 1.8
    # ... where without clamps they run further
    bare = compile_circuit(net.sizes, net.params, "vground", Mismatch(g_dtod=0.05, offset_dtod=1e-3), die=3,
                           clamp=False, nonideal=nid)
    hb = np.concatenate([-split(bare, k, s)[1] for k, s in enumerate(solver.solve(bare, x).states, start=1)], axis=1)
    assert hb.max() - hb.min() > h.max() - h.min() + 0.5


@pytest.mark.parametrize("kw, key", [(dict(diode_is=0.0), "diode_is"), (dict(diode_is=-1e-14), "diode_is"),
                                     (dict(diode_n=0.0), "diode_n"), (dict(diode_rs=-1.0), "diode_rs"),
                                     (dict(diode_is=float("nan")), "diode_is"), (dict(diode_n=float("nan")), "diode_n"),
                                     (dict(diode_rs=float("nan")), "diode_rs"), (dict(clamp_model="zener"), "clamp_model")])
def test_bad_diode_clamps_are_refused(kw, key):
    from analogprop.config import merge

    with pytest.raises(ConfigError, match=key):
        Nonidealities(**kw)
    with pytest.raises(ConfigError, match=rf"circuit\.{key} \(--{key.replace('_', '-')}"):
        merge({"driver": {"name": "circuit"}, "circuit": {"level": "vground", **kw}})
