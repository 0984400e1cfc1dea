"""The vground level at a tiled MNIST size (784-128-10, four tiles per column) agrees with ngspice on every node."""
import numpy as np
import pytest

from conftest import load_script

bench = load_script("benchmarks/vground_agreement.py")
#: the op-amp, mismatch and temperature non-idealities of the benchmark; then with sinh devices and diode clamps
#: as well (the rails add a gain-stepped sweep per phase, about a minute: ``vground_agreement.py --all``)
CASES = {"op-amp, mismatch, temperature": ({}, False),
         "and sinh devices, diode clamps": (dict(device_v0=1.0, clamp_model="diode"), True)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiled_784_128_10_agrees_with_ngspice_on_every_node(case):
    extra, clamp = CASES[case]
    sizes = (784, 128, 10)
    circuit = bench.compile_circuit(sizes, bench.Network.create(sizes, seed=0).params, "vground", bench.SPREAD, die=2,
                                    clamp=clamp, nonideal=bench.Nonidealities(tile=256, **bench.NONIDEAL, **extra))
    assert circuit.nonideal.tile < sizes[0] and circuit.diode_clamped == clamp
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (1, sizes[0])) * (rng.uniform(0, 1, (1, sizes[0])) < 0.2)
    y = np.eye(sizes[-1])[[3]]
    solver = bench.VgroundSolver(tol=1e-12)
    free = solver.solve(circuit, x)
    nudged = solver.solve(circuit, x, y, 0.5, start=free.states)
    assert free.converged.all() and nudged.converged.all()
    s_free, s_nudged = bench.SpiceSolver().free_and_nudged(circuit, x, y, 0.5)
    for f, s in ((free, s_free), (nudged, s_nudged)):
        assert max(np.abs(p - q).max() for p, q in zip(f.states, s)) <= 1e-6
    # the nudge moved the outputs: the nudged comparison is not the free one again
    assert np.abs(nudged.states[-1] - free.states[-1]).max() > 1e-4
