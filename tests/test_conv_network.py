"""Convolutional network: architecture text, conv maps, fixed points, Eq. 18 and Eq. 56."""
import numpy as np
import pytest
from scipy.signal import correlate
from threadpoolctl import threadpool_limits

from analogprop.model.conv_network import ConvNetwork, arch_sizes, create_network, normalize_arch
from analogprop.model.conv_ops import avg_pool, avg_pool_transpose, conv2d, conv2d_kernel_grad, conv2d_transpose
from analogprop.model.dynamics import mu_beta, rho
from analogprop.errors import ConfigError
from analogprop.model.network import Network, saturate
from analogprop.model.relax import EulerSolver, FastSolver
from conftest import central_difference

# pooling; stride 2 with an unused last row; two dense layers on top
ARCHS = ["1x8x8-c3k3p2-c4k2-5", "2x8x8-c3k3s2-c2k2-6-4"]


def saturating_conv(arch, seed, gain=1.5, feedback=0.3):
    """A random untied conv network whose fixed points include units clipped at 0 and at 1."""
    return saturate(ConvNetwork.create(arch, seed=seed), seed, gain, feedback, bias_std=0.6)


def linear_maps(net):
    """Dense matrices of every forward map A_k (n_{k+1} x n_k) and feedback map B_k (n_k x n_{k+1}),
    obtained by applying the network's connections to identity matrices."""
    s = net.sizes
    fwd = [(net.input_drive(np.eye(s[0])) - net.input_drive(np.zeros((1, s[0])))).T]
    for k in range(1, net.n_layers):
        eye, zero = np.eye(s[k]), np.zeros((1, s[k]))
        fwd.append((net.drive(k + 1, eye, None) - net.drive(k + 1, zero, None)).T)
    bwd = {k: net.drive(k, None, np.eye(s[k + 1])).T for k in range(1, net.n_layers)}
    return fwd, bwd


# -- architecture text -----------------------------------------------------------
def test_arch_parsing_and_sizes():
    assert arch_sizes("1x28x28-c32k5p2-c64k5p2-10") == (784, 32 * 12 * 12, 64 * 4 * 4, 10)
    assert arch_sizes("2x8x8-c3k3s2-c2k2-6-4") == (128, 27, 8, 6, 4)
    assert normalize_arch("1x28x28-c32k5s1p1-c64k5p2-10") == "1x28x28-c32k5-c64k5p2-10"
    assert normalize_arch("64-32-10") == "64-32-10"  # dense architectures unchanged
    assert type(create_network("64-32-10")) is Network
    net = create_network("1x8x8-c3k3p2-c4k2-5", seed=1)
    assert isinstance(net, ConvNetwork)
    assert net.params["fwd0"].shape == (3, 1, 3, 3) and net.params["bwd1"].shape == (4, 3, 2, 2)
    assert net.params["fwd2"].shape == (5, 16) and net.params["bias1"].shape == (3,)
    net.validate()


@pytest.mark.parametrize("text, problem", [
    ("28x28-c32k5-10", "CxHxW"),
    ("1x8x8-c4k9-10", "does not fit"),
    ("1x8x8-c4k3p4-10", "not divisible"),
    ("1x8x8-10-c4k3", "follows a dense layer"),
    ("1x8x8-c4k3-q7", "neither a size"),
    ("1x8x8-c0k3-10", ">= 1"),
])
def test_bad_arch_is_refused(text, problem):
    with pytest.raises(ConfigError, match=problem):
        normalize_arch(text)


def test_bad_parameters_are_refused():
    net = ConvNetwork.create("1x8x8-c3k3p2-c4k2-5")
    net.params["bwd1"] = np.zeros((3, 4, 2, 2))
    with pytest.raises(ConfigError, match="bwd1"):
        net.validate()
    net = ConvNetwork.create("1x8x8-c3k3p2-c4k2-5")
    net.params["fwd0"][0, 0, 0, 0] = np.nan
    with pytest.raises(ConfigError, match="fwd0"):
        net.validate()


# -- the convolution primitives ------------------------------------------------
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_ops_match_scipy_and_are_adjoint(stride, rng):
    x = rng.normal(size=(3, 9, 8, 2))
    w = rng.normal(size=(4, 2, 3, 3))
    y = conv2d(x, w, stride)
    for n in range(3):
        for o in range(4):
            ref = correlate(x[n], w[o].transpose(1, 2, 0), mode="valid")[:, :, 0][::stride, ::stride]
            np.testing.assert_allclose(y[n, :, :, o], ref, atol=1e-12)
    dy = rng.normal(size=y.shape)
    assert np.isclose(np.sum(y * dy), np.sum(x * conv2d_transpose(dy, w, (9, 8), stride)))
    g = conv2d_kernel_grad(x, dy, 3, stride)
    w2 = w.copy()
    w2[2, 1, 0, 2] += 1.0  # <dy, conv2d(x, w)> is linear in w
    assert np.isclose(np.sum(conv2d(x, w2, stride) * dy) - np.sum(y * dy), g[2, 1, 0, 2])
    u = rng.normal(size=(3, 4, 4, 2))
    v = rng.normal(size=(3, 2, 2, 2))
    assert np.isclose(np.sum(avg_pool(u, 2) * v), np.sum(u * avg_pool_transpose(v, 2)))
    np.testing.assert_allclose(avg_pool(u, 2)[1, 0, 1], u[1, :2, 2:].mean(axis=(0, 1)))


def test_feedback_has_the_transposed_shape_and_is_independent():
    for arch in ARCHS:
        tied = ConvNetwork.create(arch, seed=2, tied=True)
        fwd, bwd = linear_maps(tied)
        for k, b in bwd.items():
            np.testing.assert_allclose(b, fwd[k].T, atol=1e-12)  # tied kernels: exact transpose
        assert tied.alignment() == pytest.approx([1.0] * (tied.n_layers - 1))
        free = ConvNetwork.create(arch, seed=2)
        fwd, bwd = linear_maps(free)
        for k, b in bwd.items():
            assert b.shape == fwd[k].T.shape and not np.allclose(b, fwd[k].T)
        assert all(abs(a) < 0.9 for a in free.alignment())


def test_tied_update_keeps_directions_tied(rng):
    net = ConvNetwork.create("1x8x8-c3k3p2-c4k2-5", seed=0, tied=True)
    delta = {k: rng.normal(size=v.shape) for k, v in net.params.items()}
    net.apply_update(delta)
    np.testing.assert_allclose(net.params["bwd1"], net.params["fwd1"])
    np.testing.assert_allclose(net.params["bwd2"], net.params["fwd2"].T)


@pytest.mark.parametrize("arch", ARCHS + ["64-16-8-10"])
def test_mirrored_feedback_starts_as_the_forward_weights_and_stays_untied(arch, rng):
    net = create_network(arch, seed=0, feedback_init="mirrored")
    assert not net.tied
    assert np.allclose(net.alignment(), 1.0)
    for k in range(1, net.n_layers):
        fwd = net.params[f"fwd{k}"]
        np.testing.assert_array_equal(net.params[f"bwd{k}"], fwd.T if fwd.ndim == 2 else fwd)
    net.apply_update({k: rng.normal(size=v.shape) for k, v in net.params.items()})
    assert max(net.alignment()) < 0.99
    random = create_network(arch, seed=0)
    assert max(abs(a) for a in random.alignment()) < 0.5


def test_unknown_feedback_init_is_refused():
    with pytest.raises(ConfigError, match="feedback_init 'transposed'"):
        create_network("1x8x8-c3k3p2-c4k2-5", feedback_init="transposed")
    with pytest.raises(ConfigError, match="feedback_init 'transposed'"):
        create_network("8-4-2", feedback_init="transposed")


# -- fixed points, Eq. 56 and Eq. 18 --------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_conv_fixed_point_conditions(arch, beta, rng):
    net = saturating_conv(arch, seed=3)
    x = rng.uniform(0, 1, (12, net.sizes[0]))
    y = np.eye(net.sizes[-1])[rng.integers(0, net.sizes[-1], 12)]
    for solver in (FastSolver(tol=1e-10), EulerSolver(step=0.5, tol=1e-10, max_steps=20000)):
        r = solver.solve(net, x, y, beta)
        assert r.converged.all()
        low = high = 0
        for h, f in zip(r.states, mu_beta(net, x, r.states, y, beta)):
            free = (h > 1e-12) & (h < 1 - 1e-12)
            assert np.all(np.abs(f[free]) < 1e-8)
            assert np.all(f[h <= 1e-12] <= 1e-8)
            assert np.all(f[h >= 1 - 1e-12] >= -1e-8)
            low += np.count_nonzero(h <= 1e-12)
            high += np.count_nonzero(h >= 1 - 1e-12)
        assert low > 0 and high > 0


def _dmu_dtheta_dot(net, x, states, v):
    """sum_i dmu_i/dtheta v_i for every parameter entry, by differences of mu (mu is affine in theta)."""
    base = sum(np.sum(m * vk) for m, vk in zip(mu_beta(net, x, states), v))
    out = {}
    for name, p in net.params.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + 1.0
            g[idx] = sum(np.sum(m * vk) for m, vk in zip(mu_beta(net, x, states), v)) - base
            p[idx] = old
        out[name] = g
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_hebbian_is_dmu_dtheta_dot_dh(arch, rng):
    net = saturating_conv(arch, seed=5)
    x = rng.uniform(0, 1, (4, net.sizes[0]))
    h = [rng.uniform(-0.3, 1.3, (4, n)) for n in net.sizes[1:]]
    dh = [rng.normal(size=(4, n)) for n in net.sizes[1:]]
    ref = _dmu_dtheta_dot(net, x, h, dh)
    got = net.hebbian([rho(x)] + [rho(v) for v in h], dh)
    assert set(got) == set(ref)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("arch", ARCHS)
def test_two_phase_estimate_matches_closed_form_nu(arch, rng):
    """(Eq. 56) / beta -> nu = dmu/dtheta . (I - W_AA)^-1 (-dC/dh) (Eq. 16, 18) for small beta."""
    net = saturating_conv(arch, seed=7, gain=1.0)
    n = 6
    x = rng.uniform(0, 1, (n, net.sizes[0]))
    y = np.eye(net.sizes[-1])[rng.integers(0, net.sizes[-1], n)]
    solver = FastSolver(tol=1e-13, max_sweeps=5000)
    free = solver.solve(net, x)
    assert free.converged.all()
    fwd, bwd = linear_maps(net)
    sizes = net.sizes[1:]
    off = np.concatenate([[0], np.cumsum(sizes)])
    w = np.zeros((off[-1], off[-1]))
    for k in range(1, net.n_layers):
        w[off[k]:off[k + 1], off[k - 1]:off[k]] = fwd[k]
        w[off[k - 1]:off[k], off[k]:off[k + 1]] = bwd[k]
    h0 = np.concatenate(free.states, axis=1)
    active = (h0 > 1e-9) & (h0 < 1 - 1e-9)
    assert active.mean() > 0.2 and (~active).any()
    delta = np.zeros_like(h0)
    for s in range(n):
        a = active[s]
        c = np.zeros(off[-1])
        c[off[-2]:] = y[s] - free.states[-1][s]  # -dC/dh (Eq. 14)
        delta[s, a] = np.linalg.solve(np.eye(a.sum()) - w[np.ix_(a, a)], c[a])
    delta_layers = np.split(delta, off[1:-1], axis=1)
    nu = _dmu_dtheta_dot(net, x, free.states, delta_layers)

    beta = 1e-4
    nudged = solver.solve(net, x, y, beta, start=free.states)
    dh = [(b - a) / beta for a, b in zip(free.states, nudged.states)]
    np.testing.assert_allclose(np.concatenate(dh, axis=1), delta, atol=1e-3 * np.abs(delta).max())
    est = net.hebbian([rho(x)] + [rho(v) for v in free.states], dh)
    for name in nu:
        scale = np.abs(nu[name]).max()
        assert scale > 0, name
        np.testing.assert_allclose(est[name], nu[name], atol=1e-3 * scale, err_msg=name)


@pytest.mark.parametrize("arch", ARCHS)
def test_transfer_T_is_the_adjoint_of_transfer(arch, rng):
    """<z, W v> = <W^T z, v> over all dynamic layers: the transposed connections of Eq. 17's adjoint."""
    net = ConvNetwork.create(arch, seed=3)
    sizes, L = net.sizes[1:], net.n_layers
    v = [rng.normal(size=(2, s)) for s in sizes]
    z = [rng.normal(size=(2, s)) for s in sizes]
    wv = [net.transfer(k, v[k - 2] if k >= 2 else None, v[k] if k < L else None) for k in range(1, L + 1)]
    wtz = [net.transfer_T(k, z[k - 2] if k >= 2 else None, z[k] if k < L else None) for k in range(1, L + 1)]
    lhs = sum(np.sum(a * b, axis=1) for a, b in zip(z, wv))
    rhs = sum(np.sum(a * b, axis=1) for a, b in zip(wtz, v))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.parametrize("arch", ARCHS)
def test_true_gradient_of_a_conv_network_matches_finite_differences(arch, rng):
    """Eq. 17 through transfer_T, with saturated units, against central differences of J."""
    from analogprop.model import gradients as G

    net = saturating_conv(arch, seed=7, gain=1.0)
    solver = FastSolver(tol=1e-14, max_sweeps=5000)
    x = rng.uniform(0, 1, (4, net.sizes[0]))
    y = np.eye(net.sizes[-1])[rng.integers(0, net.sizes[-1], 4)]
    free = solver.solve(net, x)
    assert free.converged.all()
    fp = G.FixedPoint.at(net, x, free.states)
    assert 0 < np.mean(np.concatenate([m.ravel() for m in fp.active])) < 1
    grad, fd = G.neg_gradient(net, fp, y), central_difference(net, solver, x, y)
    for name in net.params:
        np.testing.assert_allclose(grad[name], fd[name], atol=1e-6 * max(np.abs(fd[name]).max(), 1e-3), err_msg=name)


def test_conv_linear_solve_falls_back_to_gmres_when_sweeps_diverge(rng, monkeypatch):
    from analogprop.model import gradients as G

    rows = []
    krylov = G._krylov
    monkeypatch.setattr(G, "_krylov", lambda *a: (rows.append(len(a[4])), krylov(*a))[1])

    net = ConvNetwork.create(ARCHS[0], seed=1)
    for name in net.params:
        net.params[name] *= 6.0
    n = 3
    active = [rng.uniform(0, 1, (n, s)) < 0.8 for s in net.sizes[1:]]
    fp = G.FixedPoint(np.zeros((n, net.sizes[0])), [np.zeros((n, s)) for s in net.sizes[1:]], active)
    c = [rng.normal(size=(n, s)) for s in net.sizes[1:]]
    for transpose in (False, True):
        z = G.solve_active(net, fp, c, transpose=transpose, max_sweeps=50)
        mask = [m.astype(float) for m in active]
        rhs = [ck * mk for ck, mk in zip(c, mask)]
        again = [G._sweep_layer(net, z, rhs, mask, mask, k, transpose) for k in range(1, net.n_layers + 1)]
        assert max(np.max(np.abs(a - b)) for a, b in zip(z, again)) < 1e-7 * max(np.abs(r).max() for r in rhs)
    assert rows == [n, n]  # every sample went to GMRES, in both directions


# -- end to end: CLI, trainer, ideal driver, checkpoints ----------------------------
def test_conv_network_learns_digits_through_the_cli(tmp_path, capsys):
    from analogprop.cli import main
    from analogprop.runs.directory import RunDir

    out = tmp_path / "conv"
    args = ["train", "--arch", "1x8x8-c8k3-c16k3p2-10", "--lrs", "0.1,0.05,0.2", "--beta", "1.0",
            "--epochs", "2", "--out", str(out), "--quiet"]
    with threadpool_limits(1):  # small matmuls: threaded BLAS only adds contention
        assert main(args) == 0
    records = RunDir(out).metrics()
    assert len(records) == 2
    assert records[1]["train_cost"] < records[0]["train_cost"]
    assert records[1]["test_error"] < 0.35  # chance is 0.9
    assert len(records[1]["alignment"]) == 2
    assert RunDir(out).read_config()["arch"] == "1x8x8-c8k3-c16k3p2-10"
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    assert '"test_error"' in capsys.readouterr().out


def test_bad_conv_arch_is_one_line_error(tmp_path, capsys):
    from analogprop.cli import main

    assert main(["train", "--arch", "1x8x8-c4k9-10", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit" in err[0]
    assert main(["train", "--arch", "1x9x9-c4k3-10", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "64 inputs but the architecture's input layer has 81" in capsys.readouterr().err


# -- removing a pooling ---------------------------------------------------------------
def _blocks(r, shape, p):
    """(N, C*H*W) channels-last states of maps ``shape`` = (C, H, W) with each unit repeated over a p x p block."""
    c, h, w = shape
    return (avg_pool_transpose(r.reshape(len(r), h, w, c), p) * (p * p)).reshape(len(r), -1)


def test_without_pooling_keeps_every_drive_on_block_constant_states(rng):
    net = ConvNetwork.create("1x14x14-c3k3p2-c4k3p2-5", seed=1)
    wide = net.without_pooling(1)
    assert wide.arch == "1x14x14-c3k3p2-c4k3-5" and wide.sizes == (196, 108, 64, 5)
    wide.validate()
    r0, r1, r3 = rng.uniform(size=(4, 196)), rng.uniform(size=(4, 108)), rng.uniform(size=(4, 5))
    r2 = rng.uniform(size=(4, 16))
    r2_wide = _blocks(r2, net.shapes[2], 2)
    np.testing.assert_allclose(wide.drive(3, r2_wide, None), net.drive(3, r2, None), atol=1e-12)
    np.testing.assert_allclose(wide.drive(1, r0, r2_wide), net.drive(1, r0, r2), atol=1e-12)
    layer2 = wide.drive(2, r1, r3).reshape(4, 4, 4, 4)
    pooled = avg_pool(layer2, 2).reshape(4, -1)
    np.testing.assert_allclose(pooled, net.drive(2, r1, r3), atol=1e-12)
    # the feedback from the output is the block's own, on every unit of the block
    np.testing.assert_allclose(wide.drive(2, None, r3), _blocks(net.drive(2, None, r3), net.shapes[2], 2), atol=1e-12)
    assert net.arch == "1x14x14-c3k3p2-c4k3p2-5"  # the original is untouched


def test_without_pooling_refuses_pairs_it_cannot_widen():
    net = ConvNetwork.create("1x14x14-c3k3p2-c4k3p2-5", seed=1)
    with pytest.raises(ConfigError, match="pair after pair 0 must be dense"):
        net.without_pooling(0)
    with pytest.raises(ConfigError, match="pair 2 is not a pooled convolution"):
        net.without_pooling(2)
    with pytest.raises(ConfigError, match="pair 1 is not a pooled convolution"):
        ConvNetwork.create("1x8x8-c3k3p2-c4k2-5").without_pooling(1)
    with pytest.raises(ConfigError, match="pair 0 is not a pooled convolution"):
        Network.create([64, 16, 10]).without_pooling(0)


def test_unpool_script_widens_a_trained_run(tmp_path, capsys):
    from analogprop.cli import main as cli
    from analogprop.runs.directory import load_checkpoint
    from conftest import load_script, printed_values
    run = tmp_path / "run"
    assert cli(["train", "--arch", "1x8x8-c4k3p2-10", "--lrs", "0.1,0.2", "--epochs", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    script = load_script("experiments/conv-frozen-readout/unpool_conv.py")
    out = tmp_path / "wide.npz"
    assert script.main([str(run), "--pair", "0", "--out", str(out)]) == 0
    printed = printed_values(capsys.readouterr().out)
    assert printed["architecture"] == "1x8x8-c4k3-10"
    wide = ConvNetwork.create("1x8x8-c4k3-10")
    wide.params = load_checkpoint(out)[0]
    wide.validate()
    trained = load_checkpoint(run / "checkpoint.npz")[0]
    np.testing.assert_array_equal(wide.params["fwd0"], trained["fwd0"])
    np.testing.assert_allclose(wide.params["fwd1"].sum(axis=1), trained["fwd1"].sum(axis=1))
    assert script.main([str(run), "--pair", "1", "--out", str(out)]) == 2
    assert "pair 1 is not a pooled convolution" in capsys.readouterr().err


def test_conv_readout_benchmark_fits_both_feature_sets(tmp_path, capsys):
    from analogprop.cli import main as cli
    from conftest import load_script
    run = tmp_path / "run"
    assert cli(["train", "--arch", "1x8x8-c4k3p2-10", "--lrs", "0.1,0.2", "--epochs", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    script = load_script("experiments/conv-frozen-readout/conv_readout.py")
    assert script.main([str(run), "--pair", "0", "--lambdas", "1e-3,1e6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "(1x8x8-c4k3p2-10, 36 features)" in lines[0] and "(1x8x8-c4k3-10, 144 features)" in lines[2]
    err = [float(line.rsplit("test error ", 1)[1].rstrip("%")) for line in lines]
    assert err[0] < 20 and err[2] < 20  # a fitted readout classifies digits
    assert err[1] > err[0] + 10 and err[3] > err[2] + 10  # an overwhelming ridge starves the readout
    assert script.main([str(run), "--lambdas", "1e-3"]) == 0  # without --pair: the features as trained only
    assert capsys.readouterr().out.splitlines() == lines[:1]
    assert script.main([str(run), "--pair", "1"]) == 2
    assert "pair 1 is not a pooled convolution" in capsys.readouterr().err
    assert script.main(["--fresh", "1x8x8-c4k3p2-10", "--dataset", "digits", "--pair", "0", "--lambdas", "1e-3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("untrained (1x8x8-c4k3p2-10, 36 features)")
    assert float(lines[1].rsplit("test error ", 1)[1].rstrip("%")) < 20  # random features classify digits too


def test_conv_readout_relaxed_reads_the_fixed_points_of_the_trained_and_the_initial_network(tmp_path, capsys):
    """--relaxed: features of the layer below the output at the free fixed point, of the run and of its initial
    parameters (the run's seed): the trained ones are those the driver's own relaxation gives."""
    from analogprop.cli import main as cli
    from analogprop.runs.build import build, load_run
    from analogprop.runs.directory import RunDir
    from conftest import load_script
    run = tmp_path / "run"
    assert cli(["train", "--arch", "1x8x8-c4k3p2-10", "--lrs", "0.1,0.2", "--epochs", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    script = load_script("experiments/conv-frozen-readout/conv_readout.py")
    assert script.main([str(run), "--relaxed", "--lambdas", "1e-3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("as trained, at the free fixed point (36 features)")
    assert lines[1].startswith("initial parameters, at the free fixed point (36 features)")
    data, trained, _, _ = load_run(run)
    initial = build(RunDir(run).read_config())[1]
    x = data.x_test[:50]
    f_trained, f_initial = script.relaxed_features(trained, x, batch=20), script.relaxed_features(initial, x)
    np.testing.assert_allclose(f_trained, rho(trained.relax_free(x).states[-2]), atol=1e-6)
    assert np.abs(f_trained - f_initial).max() > 1e-3   # training moved the features
    assert script.main([str(run), "--relaxed", "--pair", "0"]) == 2
    assert "--relaxed reads a run's features" in capsys.readouterr().err


def test_unpool_script_widens_a_fresh_network(tmp_path, capsys):
    """--fresh: the widened checkpoint is the fresh pooled network's widening (same seed and dtype),
    and it settles; a malformed architecture is refused with a message."""
    from analogprop.model.relax import FastSolver
    from analogprop.runs.directory import load_checkpoint
    from conftest import load_script, printed_values
    script = load_script("experiments/conv-frozen-readout/unpool_conv.py")
    out = tmp_path / "wide.npz"
    assert script.main(["--fresh", "1x14x14-c4k3p2-c6k3p2-10", "--seed", "3", "--dtype", "float32",
                        "--pair", "1", "--out", str(out)]) == 0
    assert printed_values(capsys.readouterr().out)["architecture"] == "1x14x14-c4k3p2-c6k3-10"
    expected = ConvNetwork.create("1x14x14-c4k3p2-c6k3p2-10", seed=3, dtype=np.float32).without_pooling(1)
    wide = ConvNetwork.create("1x14x14-c4k3p2-c6k3-10")
    wide.params = load_checkpoint(out)[0]
    assert wide.params.keys() == expected.params.keys()
    for k, v in expected.params.items():
        assert wide.params[k].dtype == np.float32
        np.testing.assert_array_equal(wide.params[k], v)
    x = np.random.default_rng(0).uniform(0, 1, (8, 196))
    assert FastSolver(tol=1e-6).solve(wide, x).converged.all()
    assert script.main(["--fresh", "1x14x14-c4k3p2-bogus", "--pair", "1", "--out", str(out)]) == 2
    assert "error:" in capsys.readouterr().err


def test_frozen_readout_equals_the_two_phase_rule_on_the_whole_network(tmp_path, capsys):
    """experiments/conv-frozen-readout/frozen_readout.py (cached features, a one-pair net) gives the output pair that the trainer
    gives on the whole conv network with the output's feedback at zero and the conv pair's rate 0."""
    from analogprop.runs.build import load_run
    from analogprop.cli import main as cli
    from analogprop.runs.directory import RunDir, load_checkpoint
    from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer
    from conftest import load_script
    run, out = tmp_path / "run", tmp_path / "readout"
    assert cli(["train", "--arch", "1x8x8-c4k3p2-10", "--lrs", "0.1,0.2", "--epochs", "1", "--out", str(run)]) == 0
    script = load_script("experiments/conv-frozen-readout/frozen_readout.py")
    assert script.main([str(run), "--lr", "0.3", "--epochs", "2", "--train-subset", "300", "--test-subset", "100",
                        "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    got = load_checkpoint(out / "checkpoint.npz")[0]
    data, driver, tc, _ = load_run(run)
    driver.network.params["bwd1"][:] = 0
    TwoPhaseTrainer(driver, TrainConfig(beta=tc.beta, lrs=(0.0, 0.3), epochs=2)).fit(data.subset(300, 100))
    whole = driver.network.params
    assert np.abs(whole["fwd1"] - load_checkpoint(run / "checkpoint.npz")[0]["fwd1"]).max() > 0.05  # it learned
    for k in ("fwd0", "bias1", "bwd1"):
        np.testing.assert_array_equal(got[k], whole[k])  # frozen, feedback still zero
    np.testing.assert_allclose(got["fwd1"], whole["fwd1"], atol=1e-6)
    np.testing.assert_allclose(got["bias2"], whole["bias2"], atol=1e-6)
    test_error = float(printed.split("network test error: ")[1].split("%")[0])
    records = RunDir(out).metrics()
    assert len(records) == 2 and records[-1]["network_test_error"] == records[-1]["test_error"]
    assert load_checkpoint(out / "checkpoint.npz")[1]["state"]["epoch"] == 2
    last_epoch = float(printed.split("epoch 2: ")[1].split("test error ")[1].split("%")[0])
    assert test_error == last_epoch  # the network relaxed by its own solver classifies as the readout net
    assert script.main([str(run), "--lr", "0.3", "--out", str(out), "--train-subset", "300",
                        "--test-subset", "100"]) == 0  # rerun: features read from the cache
    assert "features:" not in capsys.readouterr().out
    assert script.main([str(tmp_path / "missing"), "--lr", "0.3", "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err


def test_prepared_network_has_the_same_connections_and_follows_no_later_change(rng):
    net = ConvNetwork.create("1x12x12-c3k3p2-c4k2-5", seed=4)
    ready = net.prepared()
    r = [rng.uniform(size=(2, n)) for n in net.sizes]
    for k in (1, 2):
        r_next = r[k + 1] if k < net.n_dynamic else None
        np.testing.assert_allclose(ready.drive(k, r[k - 1], r_next), net.drive(k, r[k - 1], r_next), rtol=1e-12)
    net.params["fwd1"] += 1.0  # a solve holds its parameters fixed; the network itself is not cached
    assert not np.allclose(net.drive(2, r[1], r[3]), ready.drive(2, r[1], r[3]))
    assert not net._folded and set(ready._folded) == {"fwd0", "fwd1", "bwd1"}
