"""Wire resistance of the vground level's tiles: the reduced tiles against a direct solve, ngspice on the ladder
netlist, and the local rule at the crosspoints."""
import math

import numpy as np
import pytest

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.nonideal import Nonidealities
from analogprop.circuit.vground import Layer, VgroundSolver, drives, split
from analogprop.circuit import wires as wires_module
from analogprop.circuit.wires import SinhTile, _laplacian, _network, build_tile
from analogprop.cli import main
from analogprop.drivers.circuit import CircuitDriver
from analogprop.spice.netlist import netlist

from conftest import saturating_network
from test_vground import batch
from test_vground_spice import spice_free_and_nudged

SIZES = (16, 8, 4)
#: g_unit 1 mS (1 kohm devices) so that 1-10 ohm segments drop a visible share of the row and column voltages
G_UNIT = 1e-3


def wired(rr, rc, sizes=SIZES, net=None, **kw):
    net = net or saturating_network(sizes, seed=3)
    return compile_circuit(sizes, net.params, "vground", Mismatch(g_dtod=0.05), die=2, clamp=kw.pop("clamp", False),
                           g_unit=G_UNIT, nonideal=Nonidealities(**{"opamp_gain": math.inf, **kw}, tile=8,
                                                                 wire_r_row=rr, wire_r_col=rc))


@pytest.mark.parametrize("keep_map", [True, False])
def test_tile_reduction_matches_a_direct_solve_of_the_ladders(monkeypatch, keep_map):
    """Gd, Gc of a 3 x 4 tile give the column currents of the full resistor network (dense solve of every node),
    and so do its crosspoint voltages, from the kept map or (tiles above ``MAP_BYTES``) by solving the factor."""
    if not keep_map:
        monkeypatch.setattr(wires_module, "MAP_BYTES", 0)
    rng = np.random.default_rng(0)
    w, h, gr, gc = 3, 4, 7.0, 5.0
    G = rng.uniform(0.1, 1.0, (w, h))
    t = build_tile(G, gr, gc, slice(0, w), slice(0, h))
    assert (t.X is not None) == keep_map and (t.factor is None) == keep_map
    vd, vc = rng.normal(size=h), rng.normal(scale=0.1, size=w)
    # nodes: a (h, w) row side, b (h, w) column side; boundary voltages fixed
    n = 2 * h * w
    A, rhs = np.zeros((n, n)), np.zeros(n)
    ai = lambda j, i: j * w + i
    bi = lambda j, i: h * w + j * w + i

    def conduct(p, q, g):   # q may be a boundary voltage (None, value)
        A[p, p] += g
        if isinstance(q, tuple):
            rhs[p] += g * q[1]
        else:
            A[p, q] -= g
    for j in range(h):
        for i in range(w):
            conduct(ai(j, i), bi(j, i), G[i, j]), conduct(bi(j, i), ai(j, i), G[i, j])
            conduct(ai(j, i), ai(j, i - 1) if i else (None, vd[j]), gr)
            if i + 1 < w:
                conduct(ai(j, i), ai(j, i + 1), gr)
            conduct(bi(j, i), bi(j + 1, i) if j + 1 < h else (None, vc[i]), gc)
            if j:
                conduct(bi(j, i), bi(j - 1, i), gc)
    x = np.linalg.solve(A, rhs)
    current = gc * (x[[bi(h - 1, i) for i in range(w)]] - vc)
    np.testing.assert_allclose(t.Gd @ vd - t.Gc @ vc, current, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t.Gd.sum(1), t.Gc.sum(1), rtol=1e-12)   # no current at equal voltages
    across = t.crosspoints(vd[None], vc[None])[0]
    np.testing.assert_allclose(across, (x[:h * w] - x[h * w:]).reshape(h, w).T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rr, rc, gain, v0", [(5.0, 0.0, math.inf, math.inf), (0.0, 10.0, math.inf, math.inf),
                                              (1.0, 3.0, math.inf, math.inf), (1.0, 3.0, 1e3, math.inf),
                                              (1.0, 3.0, math.inf, 1.0), (1.0, 3.0, 1e3, 1.0)])
def test_wired_netlist_agrees_with_ngspice_and_the_wires_matter(rr, rc, gain, v0):
    """Every node within 1e-6 V of ngspice, free and nudged; the outputs move far more than that from the
    wire-free circuit.  A finite op-amp gain lets the column nodes move, and the wires couple them.  Sinh
    devices (``v0``) make each tile's network nonlinear: it is solved per sample instead of reduced."""
    x, y = batch(SIZES, 4, seed=1)
    c, plain = wired(rr, rc, opamp_gain=gain, device_v0=v0), wired(0.0, 0.0, opamp_gain=gain, device_v0=v0)
    text = netlist(c, x, analysis=False)
    if rr:   # each row wire starts at its driver and runs along the columns
        assert "rwr_fp1_0_8 r0_8 wr_fp1_0_8 " in text and "rwr_fp1_1_3 wr_fp1_0_3 wr_fp1_1_3 " in text
        assert ("r_fp1_1_3 wr_fp1_1_3 " if math.isinf(v0) else "d_fp1_1_3f wr_fp1_1_3 ") in text
    if rc:   # each tile's column wire (rows 0-7, 8-15) ends at the column node
        assert "rwc_fp1_2_6 wc_fp1_2_6 wc_fp1_2_7 " in text
        assert "rwc_fp1_2_7 wc_fp1_2_7 c1_2 " in text and "rwc_fp1_2_15 wc_fp1_2_15 c1_2 " in text
    fast = VgroundSolver(tol=1e-12)
    f0 = fast.solve(c, x)
    f1 = fast.solve(c, x, y, 0.5, start=f0.states)
    assert f0.converged.all() and f1.converged.all()
    s0, s1 = spice_free_and_nudged(c, x, y, 0.5)
    diff = [max(np.abs(p - q).max() for p, q in zip(f.states, s)) for f, s in ((f0, s0), (f1, s1))]
    ref = fast.solve(plain, x).states
    moved = max(np.abs(split(c, k, a)[1] - split(c, k, b)[1]).max()
                for k, (a, b) in enumerate(zip(f0.states, ref), start=1))
    print(f"\nrow {rr:g} ohm, column {rc:g} ohm, gain {gain:g}, V0 {v0:g}: fast vs ngspice, free {diff[0]:.1e} V, "
          f"nudged {diff[1]:.1e} V; "
          f"outputs moved by up to {moved:.2f} V from the wire-free circuit")
    assert max(diff) <= 1e-6
    assert moved > 1e-2
    if math.isfinite(gain):   # the column nodes move (V_out / A), so the wires couple them
        lays = [Layer(c, k) for k in range(1, c.n_layers + 1)]
        assert all(lay.coupling is not None or lay.sinh_tiles is not None for lay in lays)
        shift = [np.abs(split(c, k, s)[0] - lay.vos).max() for k, (s, lay) in enumerate(zip(f0.states, lays), 1)]
        assert max(shift) > 1e-3


@pytest.mark.parametrize("rr, rc", [(2.0, 3.0), (0.2, 0.3)])
def test_local_rule_is_the_two_phase_estimate_of_the_wired_network(rr, rc):
    """(V across the device at its crosspoint) x dh against dmu/dtheta . dh of the reduced network (dmu/dtheta by
    finite differences of its column currents): they differ by the share of a device's current change that
    returns through the wires, first order in the wire resistance (3 % at 2-3 ohm per segment against 1 kohm
    devices, 0.3 % at a tenth of that), and the crosspoint voltage is closer than the row voltage."""
    sizes = (6, 5, 3)
    net = saturating_network(sizes, seed=2)
    x, y = batch(sizes, 5)
    drv = CircuitDriver(wired(rr, rc, sizes, net), VgroundSolver(tol=1e-13))
    c = drv.circuit
    free = drv.relax_free(x)
    nudged = drv.relax_nudged(x, y, 0.3, free)
    upd = drv.local_update(x, free, nudged)["fwd0_p"]
    dh = free.probes["V"][0] - nudged.probes["V"][0]
    r, rb = drives(c, free.probes["exact_V"], x)
    vc = split(c, 1, free.probes["exact_V"][0])[0]

    def column_current():
        lay = Layer(c, 1)
        return lay.device_current(lay.aggregate(r, rb, vc), vc)[0]

    base, eps = column_current(), 1e-6
    fd = np.zeros_like(c.values["fwd0_p"])
    for i in range(sizes[1]):
        for j in range(sizes[0]):
            c.values["fwd0_p"][i, j] += eps
            c.revision += 1
            fd[i, j] = (dh[:, i] * (column_current()[:, i] - base[:, i])).sum() / eps
            c.values["fwd0_p"][i, j] -= eps
            c.revision += 1
    scale = np.abs(fd).max()
    assert scale > 1e-3
    err = np.abs(upd - fd).max() / scale
    assert err <= 0.05 * rr / 2.0
    plain = np.einsum("bi,bij->ij", dh, c.inputs(x)[:, None, :] - vc[:, :, None])   # the row voltage itself
    assert np.abs(plain - fd).max() / scale > 1.5 * err


def test_cli_refuses_a_negative_wire_resistance(tmp_path, capsys):
    assert main(["train", "--driver", "circuit", "--level", "vground", "--wire-r-col", "-1", "--epochs", "1",
                 "--quiet", "--out", str(tmp_path / "b")]) == 2
    assert "wire_r_col" in capsys.readouterr().err


def test_sinh_tile_starts_from_its_nearest_solved_samples(monkeypatch):
    """A tile solved again at boundary voltages near those it solved (a later sweep) starts from their inner
    voltages: the same answer as a fresh tile's, in fewer band factorizations."""
    import analogprop.circuit.wires as wires
    rng = np.random.default_rng(1)
    G = rng.uniform(0.1, 1.0, (5, 4))
    vd, vc = rng.uniform(-1, 1, (3, 4)), rng.uniform(-0.05, 0.05, (3, 5))
    moved = vd[::-1] + 1e-4   # other order, moved a little: the nearest stored sample, not the same row
    count = [0]
    factor = wires.cholesky_banded

    def counted(*args, **kw):
        count[0] += 1
        return factor(*args, **kw)

    monkeypatch.setattr(wires, "cholesky_banded", counted)
    fresh = SinhTile(G, 2.0, 3.0, slice(0, 5), slice(0, 4), 0.5)
    cold = count[0]
    want = fresh.solve(moved, vc[::-1])
    cold = count[0] - cold
    warm = SinhTile(G, 2.0, 3.0, slice(0, 5), slice(0, 4), 0.5)
    warm.solve(vd, vc)
    before = count[0]
    got = warm.solve(moved, vc[::-1])
    assert count[0] - before < cold
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_sinh_tile_solve_meets_kirchhoff_and_reduces_to_the_linear_tile():
    """A sinh tile's inner nodes satisfy KCL with the devices' sinh law; its column currents and their slopes
    match finite differences; with a large V0 (nearly linear devices) it gives the reduced linear tile's."""
    rng = np.random.default_rng(0)
    G = rng.uniform(0.1, 1.0, (5, 4))
    vd, vc = rng.uniform(-1, 1, (3, 4)), rng.uniform(-0.05, 0.05, (3, 5))
    t = SinhTile(G, 2.0, 3.0, slice(0, 5), slice(0, 4), 0.5)
    i, d, u = t.solve(vd, vc)
    _, _, (p, q, g), wires, n = _network(G, 2.0, 3.0)
    Lw = _laplacian(*wires, n).toarray()

    def currents(v):   # leaving every node, and their Jacobian (dense, independent of the tile's own solve)
        i = g * 0.5 * np.sinh((v[p] - v[q]) / 0.5)
        return (Lw @ v + np.bincount(p, i, n) - np.bincount(q, i, n),
                Lw + _laplacian(p, q, g * np.cosh((v[p] - v[q]) / 0.5), n).toarray())

    f_inner = []
    for s in range(3):   # the node voltages by dense Newton from the linear network's, and KCL
        vb = np.concatenate([vd[s], vc[s]])
        lin = Lw + _laplacian(p, q, g, n).toarray()
        v = np.concatenate([vb, -np.linalg.solve(lin[9:, 9:], lin[9:, :9] @ vb)])
        for _ in range(60):
            f, jac = currents(v)
            v[9:] -= np.linalg.solve(jac[9:, 9:], f[9:])
        f, _ = currents(v)
        f_inner.append(np.abs(f[9:]).max())
        np.testing.assert_allclose(-f[4:9], i[s], atol=1e-12)
    assert max(f_inner) <= 1e-12
    eps = 1e-6
    for b in range(9):
        vd2, vc2 = vd.copy(), vc.copy()
        (vd2 if b < 4 else vc2)[:, b % 4 if b < 4 else b - 4] += eps
        np.testing.assert_allclose((t.solve(vd2, vc2)[0] - i) / eps, d[:, :, b], atol=1e-5)
    lin = build_tile(G, 2.0, 3.0, slice(0, 5), slice(0, 4))
    near = SinhTile(G, 2.0, 3.0, slice(0, 5), slice(0, 4), 1e4)
    np.testing.assert_allclose(near.solve(vd, vc)[0], vd @ lin.Gd.T - vc @ lin.Gc.T, atol=1e-7)
    np.testing.assert_allclose(near.solve(vd, vc)[2], lin.crosspoints(vd, vc), atol=1e-7)
    assert np.abs(i - (vd @ lin.Gd.T - vc @ lin.Gc.T)).max() > 1e-2   # V0 0.5 is far from linear here


def test_local_rule_with_sinh_devices_takes_the_crosspoint_voltages_of_the_solved_tiles():
    """Sinh devices with wires: the rule's device voltages come from each tile's solved network.  With wires of
    a thousandth of an ohm the update is the wire-free circuit's; with 3 ohm segments it moves."""
    sizes = (6, 5, 3)
    net = saturating_network(sizes, seed=2)
    x, y = batch(sizes, 5)

    def update(rr, rc):
        drv = CircuitDriver(wired(rr, rc, sizes, net, device_v0=1.0), VgroundSolver(tol=1e-13))
        free = drv.relax_free(x)
        return drv.local_update(x, free, drv.relax_nudged(x, y, 0.3, free))

    plain, tiny, wide = update(0.0, 0.0), update(1e-3, 1e-3), update(3.0, 3.0)
    scale = {k: np.abs(v).max() for k, v in plain.items()}
    assert min(scale.values()) > 0
    for key in plain:
        assert np.abs(tiny[key] - plain[key]).max() <= 1e-3 * scale[key], key
    assert max(np.abs(wide[k] - plain[k]).max() / scale[k] for k in plain) > 1e-2
