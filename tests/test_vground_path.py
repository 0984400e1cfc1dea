"""The vground solver's path following on operating points the sweeps, damped Newton and gmin / source stepping
miss: a 784-128-128-10 crossbar with a 10 % device spread, whose 128 x 128 loop has a gain well above 1."""
import numpy as np
import pytest

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.nonideal import Nonidealities
from analogprop.circuit.vground import VgroundSolver, residual
from analogprop.errors import ConfigError
from analogprop.model.network import Network

SIZES = (784, 128, 128, 10)


@pytest.fixture(scope="module")
def case():
    circuit = compile_circuit(SIZES, Network.create(SIZES, seed=0).params, "vground", Mismatch(g_dtod=0.1), die=1,
                              clamp=True, nonideal=Nonidealities())
    rng = np.random.default_rng(0)   # sparse inputs in [0, 1]; samples 4 and 6 are the hard ones
    x = rng.uniform(0, 1, (8, 784)) * (rng.uniform(0, 1, (8, 784)) < 0.2)
    return circuit, x[[4, 6]]


def test_newton_and_stepping_miss_them(case):
    circuit, x = case
    solver = VgroundSolver(tol=1e-6)
    swept = VgroundSolver(tol=1e-6, newton_iters=0).solve(circuit, x)
    assert not swept.converged.any()
    lays = solver.layers(circuit)
    for mode in ("newton", "gmin", "source"):
        V, _ = solver._continue(circuit, lays, [v.copy() for v in swept.states], x, None, 0.0, mode)
        assert (residual(circuit, V, x) > 1e-6).all(), mode


def test_the_path_reaches_them(case):
    circuit, x = case
    out = VgroundSolver(tol=1e-6).solve(circuit, x)
    assert out.converged.all()
    assert (residual(circuit, out.states, x) <= 1e-6).all()


def test_path_settings_are_checked():
    with pytest.raises(ConfigError, match="path_pieces"):
        VgroundSolver(path_pieces=-1)
