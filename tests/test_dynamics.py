"""Fixed points of mu^beta (Eq. 12-15, 59) found by both solvers."""
import numpy as np
import pytest

from analogprop.model.dynamics import cost, mu_beta
from analogprop.model.relax import EulerSolver, FastSolver
from conftest import saturating_network

SIZES = [(12, 9, 7, 4), (20, 15, 10, 8, 5), (6, 3)]


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_fixed_point_conditions(sizes, beta, rng):
    net = saturating_network(sizes, seed=len(sizes))
    x = rng.uniform(0, 1, (16, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 16)]
    for solver in (FastSolver(tol=1e-10), EulerSolver(step=0.5, tol=1e-10, max_steps=20000)):
        r = solver.solve(net, x, y, beta)
        assert r.converged.all()
        field = mu_beta(net, x, r.states, y, beta)
        saturated_low = saturated_high = 0
        for h, f in zip(r.states, field):
            free = (h > 1e-12) & (h < 1 - 1e-12)
            assert np.all(np.abs(f[free]) < 1e-9)
            assert np.all(f[h <= 1e-12] <= 1e-9)       # held at 0: pushed down or not at all
            assert np.all(f[h >= 1 - 1e-12] >= -1e-9)  # held at 1: pushed up or not at all
            saturated_low += np.count_nonzero(h <= 1e-12)
            saturated_high += np.count_nonzero(h >= 1 - 1e-12)
        assert saturated_low > 0 and saturated_high > 0


@pytest.mark.parametrize("seed", range(4))
def test_euler_and_fast_solver_agree(seed, rng):
    sizes = (15, 12, 10, 6)
    net = saturating_network(sizes, seed=seed)
    x = rng.uniform(0, 1, (25, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 25)]
    for beta in (0.0, 0.5):
        a = FastSolver(tol=1e-9).solve(net, x, y, beta)
        b = EulerSolver(step=0.3, tol=1e-9, max_steps=50000).solve(net, x, y, beta)
        assert a.converged.all() and b.converged.all()
        diff = max(np.max(np.abs(p - q)) for p, q in zip(a.states, b.states))
        assert diff <= 1e-5
        assert np.mean(b.steps) > np.mean(a.steps)


def test_nudged_point_has_lower_cost(rng):
    """Proposition 5: for small beta the nudged fixed point costs less than the free one."""
    sizes = (10, 8, 6)
    net = saturating_network(sizes, seed=3, gain=1.0, feedback=0.5)
    x = rng.uniform(0, 1, (40, 10))
    y = np.eye(6)[rng.integers(0, 6, 40)]
    solver = FastSolver(tol=1e-12)
    free = solver.solve(net, x)
    nudged = solver.solve(net, x, y, 0.05, start=free.states)
    c0, c1 = cost(free.output, y), cost(nudged.output, y)
    assert np.all(c1 <= c0 + 1e-12)
    assert np.mean(c1) < np.mean(c0)


def test_unconverged_samples_are_reported(rng):
    net = saturating_network((10, 8, 6), seed=1)
    x = rng.uniform(0, 1, (8, 10))
    r = EulerSolver(step=0.01, max_steps=3, tol=1e-9).solve(net, x)
    assert r.n_unconverged == 8
    assert np.all(r.residual > 1e-9) and np.all(r.steps == 3)
    r = FastSolver(tol=1e-9, max_sweeps=1).solve(net, x)
    assert not r.converged.all()


def test_solver_refuses_bad_settings():
    from analogprop.errors import ConfigError

    with pytest.raises(ConfigError, match="step size"):
        EulerSolver(step=0.0)
    with pytest.raises(ConfigError, match="tolerance"):
        FastSolver(tol=float("nan"))
