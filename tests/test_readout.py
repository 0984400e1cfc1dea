"""The readout outside the dynamics (softmax / linear, after VFCNN): exact gradient, two-phase estimate,
driver, trainer, diagnostics, configuration and the drivers that refuse it."""
import numpy as np
import pytest

from analogprop.config import RunConfig, from_flat, load_toml
from analogprop.drivers.circuit import make_circuit_driver
from analogprop.drivers.ideal import IdealDriver
from analogprop.drivers.ngspice import make_ngspice_driver
from analogprop.drivers.visa import VisaDriver
from analogprop.errors import ConfigError
from analogprop.model import gradients as G
from analogprop.model.conv_network import create_network
from analogprop.model.dynamics import mu_beta, output_cost, projected_residual, softmax
from analogprop.model.network import Network
from analogprop.model.relax import EulerSolver, FastSolver
from analogprop.runs.build import build
from analogprop.training.diagnostics import ProbeDiagnostics
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer, one_hot

from conftest import central_difference

SOLVER = FastSolver(tol=1e-14, max_sweeps=5000)
DENSE, CONV = (6, 7, 5, 4), "1x7x7-c2k2-c3k3s2-4"


def problem(arch, readout, seed=0, n=6, tied=False):
    """A small network with its readout outside the dynamics, biases that keep most units active, and a batch."""
    net = create_network(arch, seed=seed, readout=readout, tied=tied)
    rng = np.random.default_rng(seed)
    for name, v in net.params.items():
        if name.startswith("bias"):
            v[:] = rng.uniform(0.1, 0.4, v.shape)
    x = rng.uniform(0, 1, (n, net.sizes[0]))
    y = one_hot(rng.integers(0, net.sizes[-1], n), net.sizes[-1])
    free = SOLVER.solve(net, x)
    assert free.converged.all()
    return net, x, y, G.FixedPoint.at(net, x, free.states)


def slope(betas, errors):
    return np.polyfit(np.log(betas), np.log(errors), 1)[0]


@pytest.mark.parametrize("arch", [DENSE, CONV])
def test_readout_networks_have_no_output_feedback(arch):
    for readout in ("softmax", "linear"):
        net = create_network(arch, readout=readout)
        last = net.n_layers - 1
        assert net.n_dynamic == last and f"fwd{last}" in net.params and f"bwd{last}" not in net.params
        assert f"bwd{last - 1}" in net.params and len(net.alignment()) == last - 1
        net.validate()
    assert f"bwd{last}" in create_network(arch).params
    with pytest.raises(ConfigError, match="unknown readout 'soft'.*dynamic, softmax, linear"):
        create_network(arch, readout="soft")
    with pytest.raises(ConfigError, match="no hidden layer"):
        Network.create((4, 3), readout="softmax")
    with pytest.raises(ConfigError, match="readout is a dense pair"):
        create_network("1x8x8-c2k3-c3k3", readout="linear")


@pytest.mark.parametrize("arch", [DENSE, CONV])
@pytest.mark.parametrize("readout", ["softmax", "linear"])
def test_output_follows_the_top_hidden_layer_and_solvers_agree(arch, readout):
    net, x, y, fp = problem(arch, readout)
    top = fp.states[net.n_dynamic - 1]
    z = top @ net.params[f"fwd{net.n_layers - 1}"].T + net.params[f"bias{net.n_layers}"]
    np.testing.assert_allclose(fp.states[-1], softmax(z) if readout == "softmax" else np.clip(z, 0, 1), atol=1e-12)
    # (a negative nudge of the clipped linear readout can chatter where z crosses 0 or 1: its force switches off)
    for beta in (0.0, 0.3, -0.3) if readout == "softmax" else (0.0, 0.3):
        fast = SOLVER.solve(net, x, y, beta)
        euler = EulerSolver(step=0.5, tol=1e-12, max_steps=20000).solve(net, x, y, beta)
        assert fast.converged.all() and euler.converged.all()
        for a, b in zip(fast.states, euler.states):
            np.testing.assert_allclose(a, b, atol=1e-9)
        field = mu_beta(net, x, fast.states, y, beta)  # a fixed point of Eq. 59 with the readout's nudge
        assert projected_residual(fast.states, field, net.bounds()).max() < 1e-12
    nudged = SOLVER.solve(net, x, y, 0.7, start=fp.states)  # the nudge moves the top hidden layer toward y
    assert output_cost(nudged.output, y, readout).mean() < output_cost(fp.states[-1], y, readout).mean()


@pytest.mark.parametrize("arch", [DENSE, CONV])
@pytest.mark.parametrize("readout", ["softmax", "linear"])
def test_gradient_of_the_readout_system_matches_finite_differences(arch, readout):
    net, x, y, fp = problem(arch, readout)
    grad, fd = G.neg_gradient(net, fp, y), central_difference(net, SOLVER, x, y)
    scale = max(np.abs(v).max() for v in fd.values())
    for name in net.params:
        np.testing.assert_allclose(grad[name], fd[name], atol=1e-6 * scale, err_msg=name)
    rbp = G.recurrent_backprop(net, fp, y, step=0.5, steps=400)
    assert np.linalg.norm(G.flat(rbp) - G.flat(grad)) <= 1e-8 * np.linalg.norm(G.flat(grad))
    assert G.objective(net, SOLVER, x, y) == pytest.approx(output_cost(fp.states[-1], y, readout).mean())


@pytest.mark.parametrize("arch", [DENSE, CONV])
@pytest.mark.parametrize("readout", ["softmax", "linear"])
def test_symmetric_estimate_tends_to_nu_and_the_readout_gradient_is_exact(arch, readout):
    net, x, y, fp = problem(arch, readout)
    field, grad = G.nu(net, fp, y), G.neg_gradient(net, fp, y)
    last = net.n_layers - 1
    for name in (f"fwd{last}", f"bias{last + 1}"):
        np.testing.assert_allclose(field[name], grad[name], atol=1e-15)
    betas = np.array([4e-3, 2e-3, 1e-3, 5e-4])
    errors = []
    for beta in betas:
        est, _, nudged = G.two_phase_estimate(net, SOLVER, x, y, beta, symmetric=True)
        assert all(r.converged.all() for r in nudged)
        for name in (f"fwd{last}", f"bias{last + 1}"):
            np.testing.assert_allclose(est[name], grad[name], atol=1e-12)
        errors.append(np.linalg.norm(G.flat(est) - G.flat(field)))
    assert slope(betas, errors) == pytest.approx(2.0, abs=0.15)
    assert errors[-1] < 1e-3 * np.linalg.norm(G.flat(field))


@pytest.mark.parametrize("arch", [DENSE, CONV])
def test_tied_estimate_tends_to_the_true_gradient(arch):
    """Tied hidden pairs: nu = -dJ/dtheta, so the symmetric estimate converges to the true gradient."""
    net, x, y, fp = problem(arch, "softmax", seed=2, tied=True)
    grad = G.flat(G.neg_gradient(net, fp, y))
    np.testing.assert_allclose(G.flat(G.nu(net, fp, y)), grad, atol=1e-10 * np.abs(grad).max())
    errors = [np.linalg.norm(G.flat(G.two_phase_estimate(net, SOLVER, x, y, b, symmetric=True)[0]) - grad)
              for b in (4e-3, 2e-3, 1e-3)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3 * np.linalg.norm(grad)
    assert G.angle(G.two_phase_estimate(net, SOLVER, x, y, 1e-3, symmetric=True)[0], G.neg_gradient(net, fp, y)) < 0.1


@pytest.mark.parametrize("arch", [DENSE, CONV])
def test_driver_update_is_the_estimate_and_training_lowers_the_cross_entropy(arch):
    """(Some samples have no fixed point at beta -0.5 or -1: a sweep limit of 300 keeps them from taking
    most of the time.)"""
    net, x, y, fp = problem(arch, "softmax", n=10)
    labels = y.argmax(axis=1)
    solver = FastSolver(tol=1e-14, max_sweeps=300)
    drv = IdealDriver(net.copy(), solver)
    free = drv.relax_free(x)
    beta = 0.5
    plus, minus = drv.relax_nudged(x, y, beta, free), drv.relax_nudged(x, y, -beta, free)
    upd = {k: (a - drv.local_update(x, free, minus)[k]) / (2 * beta * len(x))
           for k, a in drv.local_update(x, free, plus).items()}
    est, _, _ = G.two_phase_estimate(net, solver, x, y, beta, symmetric=True)
    assert set(upd) == set(net.params)
    for k in upd:
        np.testing.assert_allclose(upd[k], est[k], atol=1e-12, err_msg=k)
    trainer = TwoPhaseTrainer(drv, TrainConfig(beta=1.0, lrs=(0.5,), symmetric=True, epochs=1))
    before = trainer.evaluate(x, labels)
    assert before["cost"] == pytest.approx(output_cost(free.output, y, "softmax").mean())
    for _ in range(20):
        trainer.step(x, labels)
    assert trainer.evaluate(x, labels)["cost"] < 0.95 * before["cost"]


@pytest.mark.parametrize("readout", ["softmax", "linear", "dynamic"])
@pytest.mark.parametrize("solver", [FastSolver(tol=1e-12, max_sweeps=5000), EulerSolver(step=0.5, tol=1e-11, max_steps=20000)])
def test_per_sample_beta_solves_each_sample_as_its_own_beta_does(readout, solver):
    """A solve with one beta per sample (+beta and -beta rows in one batch) reaches, row by row, the fixed
    points of the solves with that beta alone."""
    net, x, y, fp = problem(DENSE, readout, seed=1, n=6)  # seed 1: every sample has a -beta fixed point
    free = solver.solve(net, x)
    betas = np.array([0.8, -0.8, 0.8, -0.3, 0.3, 0.8])
    both = solver.solve(net, x, y, betas, start=free.states)
    assert both.converged.all()
    for b in np.unique(betas):
        rows = np.flatnonzero(betas == b)
        alone = solver.solve(net, x[rows], y[rows], b, start=[s[rows] for s in free.states])
        for got, want in zip(both.states, alone.states):
            np.testing.assert_allclose(got[rows], want, atol=1e-9)
    assert np.abs(both.states[-2][0] - both.states[-2][1]).max() > 1e-3  # the signs reach different states


def test_per_sample_beta_of_the_wrong_shape_or_value_is_refused():
    net, x, y, fp = problem(DENSE, "softmax", n=4)
    with pytest.raises(ConfigError, match=r"shape \(3,\).*\(4,\)"):
        SOLVER.solve(net, x, y, np.ones(3))
    with pytest.raises(ConfigError, match="beta=nan"):
        SOLVER.solve(net, x, y, np.array([1.0, np.nan, 1.0, 1.0]))
    dyn = create_network(DENSE, seed=0)
    with pytest.raises(ConfigError, match="beta=-1.5"):
        SOLVER.solve(dyn, x, y, np.array([0.5, -1.5, 0.5, 0.5]))


@pytest.mark.parametrize("arch", [DENSE, CONV])
def test_ideal_driver_settles_both_symmetric_phases_in_one_batch(arch):
    """relax_symmetric gives what two relax_nudged calls give: states, convergence and the readout's factor."""
    net, x, y, fp = problem(arch, "softmax", seed=2, n=6)
    drv = IdealDriver(net.copy(), SOLVER)
    free = drv.relax_free(x)
    plus, minus = drv.relax_symmetric(x, y, 0.5, free)
    for got, want in ((plus, drv.relax_nudged(x, y, 0.5, free)), (minus, drv.relax_nudged(x, y, -0.5, free))):
        assert got.converged.all() and len(got.residual) == len(x)
        for a, b in zip(got.states, want.states):
            np.testing.assert_allclose(a, b, atol=1e-10)
        np.testing.assert_allclose(got.probes["readout"], want.probes["readout"], atol=1e-14)
    assert np.abs(plus.states[-2] - minus.states[-2]).max() > 1e-3


def test_probe_diagnostics_report_the_readout_formulation():
    net, x, y, fp = problem(CONV, "softmax", n=8)
    out = ProbeDiagnostics(x, y.argmax(axis=1), net.sizes[-1], 1.0, symmetric=True)(IdealDriver(net, SOLVER))
    assert out["probe_cost"] == pytest.approx(output_cost(fp.states[-1], y, "softmax").mean())
    assert len(out["angle_nu_grad_layers"]) == net.n_layers
    assert out["angle_nu_grad_layers"][-1] == pytest.approx(0.0, abs=1e-5)
    assert len(out["angle_update_grad_layers"]) == net.n_layers
    assert out["angle_update_grad_layers"][-1] == pytest.approx(0.0, abs=1e-5)  # the readout's exact gradient
    assert all(0 < a < 180 for a in out["angle_update_grad_layers"][:-1])
    assert 0 < out["angle_update_grad"] < 90


def test_readout_in_the_configuration_round_trips(tmp_path):
    cfg = from_flat({"arch": "64-16-10", "readout": "softmax"})
    flat = cfg.to_flat()
    assert flat["readout"] == "softmax" and from_flat(flat).model == cfg.model and from_flat(flat).to_flat() == flat
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert from_flat({}).model.readout == "dynamic"
    path = tmp_path / "run.toml"
    path.write_text('[model]\nreadout = "linear"\n')
    assert load_toml(path)["model"]["readout"] == "linear"
    with pytest.raises(ConfigError, match="readout.*'dynamic', 'softmax', 'linear'.*'soft'"):
        from_flat({"readout": "soft"})
    _, driver, _ = build({"arch": "64-16-10", "readout": "softmax", "epochs": 1})
    assert driver.network.readout == "softmax" and "bwd1" not in driver.network.params


def test_non_ideal_drivers_refuse_a_readout():
    net = Network.create((6, 5, 3), readout="softmax")
    for make, name in ((make_circuit_driver, "circuit"), (make_ngspice_driver, "ngspice"),
                       (lambda n: VisaDriver(None, n), "visa")):
        with pytest.raises(ConfigError, match=f"readout 'softmax' needs the ideal driver: the {name} driver"):
            make(net)
    with pytest.raises(ConfigError, match="readout 'linear' needs the ideal driver: the circuit driver"):
        build({"arch": "64-16-10", "readout": "linear", "driver": "circuit"})


@pytest.mark.parametrize("arch", [DENSE, CONV])
def test_same_update_gives_forward_and_feedback_weights_their_mean_change(arch):
    net, x, y, _ = problem(arch, "softmax", n=8)
    labels = y.argmax(axis=1)
    cfg = dict(beta=0.5, lrs=(0.3,), symmetric=True, epochs=1)
    plain = TwoPhaseTrainer(IdealDriver(net.copy(), SOLVER), TrainConfig(**cfg))
    same = TwoPhaseTrainer(IdealDriver(net.copy(), SOLVER), TrainConfig(**cfg, same_update=True))
    plain.step(x, labels)
    same.step(x, labels)
    pairs = [k for k in range(1, net.n_dynamic) if f"bwd{k}" in net.params]
    assert pairs  # the hidden pairs with their own feedback weights
    for k in pairs:
        d = {name: plain.driver.network.params[name] - net.params[name] for name in (f"fwd{k}", f"bwd{k}")}
        mean = 0.5 * (d[f"fwd{k}"] + net._mirror(k, d[f"bwd{k}"]))
        assert not np.allclose(d[f"fwd{k}"], mean)
        np.testing.assert_allclose(same.driver.network.params[f"fwd{k}"] - net.params[f"fwd{k}"], mean, atol=1e-12)
        np.testing.assert_allclose(same.driver.network.params[f"bwd{k}"] - net.params[f"bwd{k}"],
                                   net._mirror(k, mean), atol=1e-12)
    for name in ("fwd0", f"fwd{net.n_layers - 1}", "bias1"):  # the other parameters take their own updates
        np.testing.assert_allclose(same.driver.network.params[name], plain.driver.network.params[name], atol=1e-12)


def test_same_update_needs_an_ideal_network():
    drv = make_circuit_driver(Network.create((6, 5, 3)))
    with pytest.raises(ConfigError, match="same_update needs a driver with an ideal network"):
        TwoPhaseTrainer(drv, TrainConfig(lrs=(0.1,), same_update=True))
    with pytest.raises(ConfigError, match="same_update must be true or false, got 1"):
        TrainConfig(same_update=1).validate()
    assert from_flat({"same_update": True}).training.same_update


@pytest.mark.parametrize("readout", ["softmax", "linear"])
def test_a_strong_readout_nudge_is_solved_exactly_in_each_sweep(readout):
    """beta c ||W||^2 >> 1, where a plain step on the top hidden layer oscillates: with one dynamic layer
    its exact solve given the (fixed) drive reaches the nudged fixed point within a few sweeps (for the
    softmax the layer's problem is convex: the one Euler reaches; the clipped linear readout's can have
    several)."""
    net = create_network((6, 30, 4), seed=0, readout=readout)
    net.params["fwd1"] *= 3.0
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (8, 6)), one_hot(rng.integers(0, 4, 8), 4)
    free = SOLVER.solve(net, x)
    fast = FastSolver(tol=1e-10, max_sweeps=50).solve(net, x, y, 2.0, start=free.states)
    euler = EulerSolver(step=0.05, tol=1e-10, max_steps=400000).solve(net, x, y, 2.0, start=free.states)
    # (the clipped linear readout's force switches off where z crosses its bounds: a sample can chatter there)
    ok = euler.converged & fast.converged
    assert ok.sum() >= (8 if readout == "softmax" else 7) and fast.steps[ok].max() <= 5
    field = mu_beta(net, x, fast.states, y, 2.0)
    assert projected_residual(fast.states, field, net.bounds())[ok].max() < 1e-9
    if readout == "softmax":
        for a, b in zip(fast.states, euler.states):
            np.testing.assert_allclose(a, b, atol=1e-8)


def test_a_strong_negative_nudge_stays_on_the_free_state_s_branch():
    """Under -beta the top layer's problem is not convex; its solve keeps to stable solutions near the
    current state, so the fast solver lands where the physical (Euler) dynamics from the free state do."""
    net = create_network((6, 30, 4), seed=0, readout="softmax")
    net.params["fwd1"] *= 3.0
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (8, 6)), one_hot(rng.integers(0, 4, 8), 4)
    free = SOLVER.solve(net, x)
    fast = FastSolver(tol=1e-10, max_sweeps=5000).solve(net, x, y, -0.5, start=free.states)
    euler = EulerSolver(step=0.05, tol=1e-10, max_steps=400000).solve(net, x, y, -0.5, start=free.states)
    assert fast.converged.all() and euler.converged.all()
    assert fast.steps.sum() < 0.1 * euler.steps.sum()
    for a, b in zip(fast.states, euler.states):
        np.testing.assert_allclose(a, b, atol=1e-8)
