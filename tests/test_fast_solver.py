"""FastSolver: sweep efficiency, float32 solves, refusal of ill-posed nudging."""
import numpy as np
import pytest

from analogprop.config import RunConfig
from analogprop.model.conv_network import create_network
from analogprop.model.dynamics import mu_beta, projected_residual
from analogprop.errors import ConfigError
from analogprop.model.network import Network
from analogprop.model.relax import EulerSolver, FastSolver
from conftest import saturating_network


def _data(rng, sizes, n=30):
    return rng.uniform(0, 1, (n, sizes[0])), np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


@pytest.mark.parametrize("seed", range(3))
def test_fast_solver_reaches_the_euler_fixed_point_in_far_fewer_iterations(seed, rng):
    """A forward Gauss-Seidel sweep contracts like two Jacobi steps; Euler at step 0.5 like half of one."""
    sizes = (30, 25, 20, 8)
    net = saturating_network(sizes, seed=seed, gain=2.0, feedback=0.4)
    x, y = _data(rng, sizes)
    for beta in (0.0, 0.8):
        euler = EulerSolver(step=0.5, tol=1e-10, max_steps=100000).solve(net, x, y, beta)
        fast = FastSolver(tol=1e-10).solve(net, x, y, beta)
        assert euler.converged.all() and fast.converged.all()
        assert np.all(projected_residual(fast.states, mu_beta(net, x, fast.states, y, beta)) <= 1e-10)
        assert max(np.max(np.abs(a - b)) for a, b in zip(fast.states, euler.states)) <= 1e-8
        assert fast.steps.sum() < 0.4 * euler.steps.sum()


def test_float32_solve_of_a_float64_network(rng):
    sizes = (20, 16, 12, 5)
    net = saturating_network(sizes, seed=7)
    x, y = _data(rng, sizes)
    before = {k: v.copy() for k, v in net.params.items()}
    r64 = FastSolver(tol=1e-9).solve(net, x, y, 0.5)
    r32 = FastSolver(tol=1e-5, dtype=np.float32).solve(net, x, y, 0.5)
    assert all(s.dtype == np.float32 for s in r32.states) and r32.converged.all()
    assert max(np.max(np.abs(a - b)) for a, b in zip(r32.states, r64.states)) <= 1e-4
    assert all(net.params[k].dtype == np.float64 and np.array_equal(net.params[k], before[k]) for k in before)


def test_float32_keeps_subclass_connections(rng):
    """A Network subclass overriding the connection methods is still used after the cast to float32."""
    calls = []

    class Scaled(Network):
        def drive(self, k, r_prev, r_next):
            calls.append(self.params["fwd1"].dtype)
            return 0.5 * super().drive(k, r_prev, r_next)

    base = saturating_network((10, 8, 6), seed=2)
    net = Scaled(base.sizes, base.params)
    x, _ = _data(rng, (10, 8, 6), 5)
    r = FastSolver(tol=1e-6, dtype=np.float32).solve(net, x)
    assert calls and set(calls) == {np.dtype(np.float32)}
    ref = EulerSolver(step=0.5, tol=1e-9, max_steps=100000).solve(net, x)
    assert max(np.max(np.abs(a - b)) for a, b in zip(r.states, ref.states)) <= 1e-4


@pytest.mark.parametrize("solver", [FastSolver(), EulerSolver()])
def test_nudging_at_or_below_minus_one_is_refused(solver, rng):
    net = saturating_network((6, 5, 3), seed=0)
    x, y = _data(rng, (6, 5, 3), 4)
    with pytest.raises(ConfigError, match="beta=-1.0 .*stable fixed point"):
        solver.solve(net, x, y, -1.0)
    assert solver.solve(net, x, y, -0.5).converged.all()


def test_unclipped_output_solvers_agree(rng):
    """linear_output (Eq. 6): both solvers reach h_0 = drive (nudged: (drive + beta y)/(1 + beta)), beyond [0, 1]."""
    sizes = (30, 25, 20, 8)
    net = saturating_network(sizes, seed=1, gain=2.0, feedback=0.4)
    net.linear_output = True
    x, y = _data(rng, sizes)
    for beta in (0.0, 0.8):
        euler = EulerSolver(step=0.5, tol=1e-10, max_steps=100000).solve(net, x, y, beta)
        fast = FastSolver(tol=1e-10).solve(net, x, y, beta)
        assert euler.converged.all() and fast.converged.all()
        assert np.any((fast.output < 0) | (fast.output > 1))
        field = mu_beta(net, x, fast.states, y, beta)
        assert np.max(np.abs(field[-1])) <= 1e-10
        assert max(np.max(np.abs(a - b)) for a, b in zip(fast.states, euler.states)) <= 1e-8


def _slow_tied_network():
    """A tied network whose loop is nearly marginal: plain sweeps converge slowly along one real mode."""
    net = create_network((20, 30, 30), seed=0, tied=True)
    for name, v in net.params.items():
        if name.startswith("bias"):
            v[:] = 0.3
    return net


def test_over_relaxation_takes_fewer_sweeps_to_the_same_fixed_point(rng):
    net = _slow_tied_network()
    x = rng.uniform(0, 1, (16, 20))
    plain = FastSolver(tol=1e-9, max_sweeps=3000).solve(net, x)
    over = FastSolver(tol=1e-9, max_sweeps=3000, over_relax=1.5).solve(net, x)
    assert plain.converged.all() and over.converged.all()
    assert over.steps.mean() < 0.75 * plain.steps.mean()
    for a, b in zip(plain.states, over.states):
        np.testing.assert_allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_over_relaxation_leaves_fast_converging_networks_as_they_were(seed, rng):
    """Untied random networks, whose sweeps do not slow to one aligned mode, keep plain sweeps."""
    sizes = (30, 25, 20, 8)
    net = saturating_network(sizes, seed=seed, gain=2.0, feedback=0.4)
    x, y = _data(rng, sizes)
    for beta in (0.0, 0.8):
        plain = FastSolver(tol=1e-10).solve(net, x, y, beta)
        over = FastSolver(tol=1e-10, over_relax=1.9).solve(net, x, y, beta)
        assert over.converged.all()
        assert over.steps.sum() <= 1.1 * plain.steps.sum()
        for a, b in zip(plain.states, over.states):
            np.testing.assert_allclose(a, b, atol=1e-8)


@pytest.mark.parametrize("factor", [0.9, 2.0, float("nan")])
def test_over_relaxation_factor_outside_its_range_is_refused(factor):
    with pytest.raises(ConfigError, match="over-relaxation"):
        FastSolver(over_relax=factor)


@pytest.mark.parametrize("flat, where", [({"driver": "circuit"}, "the circuit driver"),
                                         ({"solver": "euler"}, "solver euler")])
def test_over_relaxation_is_refused_where_the_fast_solver_does_not_run(flat, where):
    with pytest.raises(ConfigError, match=f"over_relax.*1.5 over-relaxes the ideal model's fast solver; {where}"):
        RunConfig.from_flat({**flat, "over_relax": 1.5})
    assert RunConfig.from_flat({"over_relax": 1.5}).solver.over_relax == 1.5
