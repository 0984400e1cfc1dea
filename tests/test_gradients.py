"""True gradient (Eq. 17), nu (Eq. 18) and the two-phase estimate (Eq. 56) on tiny networks."""
import numpy as np
import pytest

from analogprop.model import gradients as G
from analogprop.errors import ConfigError
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver

from conftest import central_difference, saturating_network

SOLVER = FastSolver(tol=1e-14, max_sweeps=5000)


def problem(seed, sizes=(6, 5, 4, 3), n=7, linear_output=False):
    """A small untied network with units saturated at 0 and at 1 at its (converged) free fixed points."""
    net = saturating_network(sizes, seed=seed, gain=1.5)
    net.linear_output = linear_output
    for name, w in net.params.items():
        if name.startswith("bias"):
            w *= 0.3
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (2 * n, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 2 * n)]
    ok = SOLVER.solve(net, x).converged  # keep samples whose free phase reaches a fixed point
    assert ok.sum() >= n
    x, y = x[ok][:n], y[ok][:n]
    free = SOLVER.solve(net, x)
    return net, x, y, G.FixedPoint.at(net, x, free.states)


@pytest.mark.parametrize("seed", [0, 4])
def test_gradient_matches_finite_differences_with_saturated_units(seed):
    net, x, y, fp = problem(seed)
    states = np.concatenate([h.ravel() for h in fp.states])
    assert np.any(states == 0.0) and np.any(states == 1.0)
    assert 0 < np.mean(np.concatenate([m.ravel() for m in fp.active])) < 1
    grad, fd = G.neg_gradient(net, fp, y), central_difference(net, SOLVER, x, y)
    scale = max(np.abs(v).max() for v in fd.values())
    for name in net.params:
        np.testing.assert_allclose(grad[name], fd[name], atol=1e-7 * scale, err_msg=name)


@pytest.mark.parametrize("seed", [0, 4])
def test_gradient_with_unclipped_output_matches_finite_differences(seed):
    """linear_output (Eq. 6): outputs beyond [0, 1] still carry the cost's gradient, but pass
    nothing back through rho(h_0) to the layer below."""
    net, x, y, fp = problem(seed, linear_output=True)
    out = fp.states[-1]
    assert np.any((out < 0) | (out > 1)) and np.all(fp.active[-1])
    assert not np.array_equal(fp.slope[-1], fp.active[-1])
    grad, fd = G.neg_gradient(net, fp, y), central_difference(net, SOLVER, x, y)
    scale = max(np.abs(v).max() for v in fd.values())
    for name in net.params:
        np.testing.assert_allclose(grad[name], fd[name], atol=1e-7 * scale, err_msg=name)
    long = G.flat(G.recurrent_backprop(net, fp, y, step=0.5, steps=400))
    assert np.linalg.norm(long - G.flat(grad)) <= 1e-9 * np.linalg.norm(G.flat(grad))


def test_two_phase_estimate_with_unclipped_output_tends_to_nu():
    net, x, y, fp = problem(0, linear_output=True)
    target = G.flat(G.nu(net, fp, y))
    betas = np.array([4e-3, 2e-3, 1e-3, 5e-4])
    errors = [np.linalg.norm(G.flat(G.two_phase_estimate(net, SOLVER, x, y, b)[0]) - target) for b in betas]
    assert slope(betas, errors) == pytest.approx(1.0, abs=0.05)


def test_rows_of_saturated_units_are_zero():
    net, x, y, fp = problem(0)
    saturated_rows = 0
    for s in range(len(x)):
        one = G.FixedPoint(x[s:s + 1], [h[s:s + 1] for h in fp.states], [m[s:s + 1] for m in fp.active])
        for d in (G.neg_gradient(net, one, y[s:s + 1]), G.nu(net, one, y[s:s + 1])):
            for k in range(net.n_layers):
                dead = ~one.active[k][0]
                saturated_rows += dead.sum()
                assert np.all(d[f"fwd{k}"][dead] == 0) and np.all(d[f"bias{k + 1}"][dead] == 0)
                if k >= 1:
                    assert np.all(d[f"bwd{k}"][~one.active[k - 1][0]] == 0)
    assert saturated_rows > 0


def slope(betas, errors):
    return np.polyfit(np.log(betas), np.log(errors), 1)[0]


@pytest.mark.parametrize("seed", [0, 5])
def test_two_phase_estimate_error_is_linear_one_sided_and_quadratic_symmetric(seed):
    net, x, y, fp = problem(seed)
    target = G.flat(G.nu(net, fp, y))
    betas = np.array([4e-3, 2e-3, 1e-3, 5e-4])
    one, sym = [], []
    for beta in betas:
        est, _, _ = G.two_phase_estimate(net, SOLVER, x, y, beta)
        one.append(np.linalg.norm(G.flat(est) - target))
        est, _, nudged = G.two_phase_estimate(net, SOLVER, x, y, beta, symmetric=True)
        assert all(r.converged.all() for r in nudged)
        sym.append(np.linalg.norm(G.flat(est) - target))
    assert slope(betas, one) == pytest.approx(1.0, abs=0.05)
    assert slope(betas, sym) == pytest.approx(2.0, abs=0.1)
    assert sym[-1] < one[-1] * 1e-2


def test_tied_network_nu_is_minus_the_gradient():
    """W_{k,k+1} = W_{k+1,k}^T: mu is a gradient field and nu = -dJ/dW (Equilibrium Propagation)."""
    net = Network.create((6, 5, 4, 3), seed=2, tied=True)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (5, 6))
    y = np.eye(3)[rng.integers(0, 3, 5)]
    free = SOLVER.solve(net, x)
    fp = G.FixedPoint.at(net, x, free.states)
    field, fd = G.flat(G.nu(net, fp, y)), G.flat(central_difference(net, SOLVER, x, y))
    assert np.linalg.norm(field - fd) <= 1e-6 * np.linalg.norm(fd)
    assert G.angle(G.nu(net, fp, y), G.neg_gradient(net, fp, y)) < 1e-4


def test_untied_network_nu_differs_from_gradient():
    net, x, y, fp = problem(0)
    assert G.angle(G.nu(net, fp, y), G.neg_gradient(net, fp, y)) > 1.0


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("gain", [0.5, 4.0])
@pytest.mark.parametrize("own_slope", [False, True])
def test_linear_solve_matches_dense_even_when_sweeps_diverge(transpose, gain, own_slope):
    """Gauss-Seidel for contracting systems, the dense fallback for the rest; with a rho' mask
    of its own, W carries it on its presynaptic side."""
    net = Network.create((3, 6, 5, 4), seed=7)
    for name in net.params:
        net.params[name] *= gain
    rng = np.random.default_rng(0)
    n = 4
    active = [rng.uniform(0, 1, (n, s)) < 0.8 for s in net.sizes[1:]]
    rates = [rng.uniform(0, 1, (n, s)) < 0.6 for s in net.sizes[1:]] if own_slope else active
    fp = G.FixedPoint(np.zeros((n, 3)), [np.zeros((n, s)) for s in net.sizes[1:]], active, rates)
    c = [rng.normal(size=(n, s)) for s in net.sizes[1:]]
    z = G.solve_active(net, fp, c, transpose=transpose)
    w = G._dense(net, False)
    for s in range(n):
        act = np.concatenate([m[s] for m in active])
        r = np.concatenate([m[s] for m in rates]).astype(float)
        m = w * r[None, :]  # W diag(R)
        m = m.T if transpose else m
        rhs = np.concatenate([ck[s] for ck in c])
        expect = np.zeros(act.size)
        expect[act] = np.linalg.solve(np.eye(act.sum()) - m[np.ix_(act, act)], rhs[act])
        np.testing.assert_allclose(np.concatenate([zk[s] for zk in z]), expect, atol=1e-9)


def test_bad_targets_refused():
    net, x, y, fp = problem(0)
    with pytest.raises(ConfigError, match="targets have shape"):
        G.neg_gradient(net, fp, y[:, :2])


def test_recurrent_backprop_tends_to_the_implicit_gradient():
    net, x, y, fp = problem(4)
    grad = G.flat(G.neg_gradient(net, fp, y))
    short = G.flat(G.recurrent_backprop(net, fp, y, step=0.5, steps=3))
    long = G.flat(G.recurrent_backprop(net, fp, y, step=0.5, steps=400))
    assert np.linalg.norm(long - grad) <= 1e-9 * np.linalg.norm(grad)
    assert np.linalg.norm(short - grad) > 1e-3 * np.linalg.norm(grad)


def test_singular_system_gets_a_least_squares_solution():
    net = Network.create((1, 1, 1), seed=0)
    net.params["fwd1"][:] = 1.0
    net.params["bwd1"][:] = 1.0
    fp = G.FixedPoint(np.zeros((1, 1)), [np.zeros((1, 1))] * 2, [np.ones((1, 1), bool)] * 2)
    z = G.solve_active(net, fp, [np.array([[1.0]]), np.array([[-1.0]])], max_sweeps=20)
    assert z[0][0, 0] - z[1][0, 0] == pytest.approx(1.0)  # consistent: Gauss-Seidel finds a solution
    z = G.solve_active(net, fp, [np.array([[1.0]]), np.array([[1.0]])], max_sweeps=20)
    np.testing.assert_allclose([z[0][0, 0], z[1][0, 0]], [0.0, 0.0], atol=1e-12)  # inconsistent: least squares
