"""Deepening a dense network by a copy of a hidden layer (Network.deepened, experiments/mnist-784-512-512-512-10/deepen.py)."""
import numpy as np
import pytest

from analogprop.model.conv_network import ConvNetwork
from analogprop.errors import ConfigError
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver


def _unsaturated(seed=0):
    """8-6-5-3 with small weights and layer-1 biases 0.5: layer 1's feed-forward drive stays in [0, 1]."""
    net = Network.create("8-6-5-3", seed=seed)
    for k, v in net.params.items():
        net.params[k] = 0.2 * v
    net.params["bias1"][:] = 0.5
    return net


def test_copy_of_layer_1_keeps_every_fixed_point_where_its_drive_is_unsaturated():
    net = _unsaturated()
    deep = net.deepened(1)
    assert deep.sizes == (8, 6, 6, 5, 3)
    x = np.random.default_rng(1).uniform(0, 1, (16, 8))
    solver = FastSolver(tol=1e-10)
    a, b = solver.solve(net, x), solver.solve(deep, x)
    assert a.converged.all() and b.converged.all()
    ff = x @ net.params["fwd0"].T + net.params["bias1"]
    assert ff.min() > 0 and ff.max() < 1
    np.testing.assert_allclose(b.states[0], ff, atol=1e-9)  # layer 1 keeps its feed-forward state
    for old, new in zip(a.states, b.states[1:]):  # the copy and every layer above: the old states
        np.testing.assert_allclose(new, old, atol=1e-9)
    assert not np.allclose(a.states[0], ff, atol=1e-3)  # the old layer 1 did receive feedback


def test_deepened_parameters_move_up_around_an_identity_pair():
    net = Network.create("8-6-5-3", seed=2)
    deep = net.deepened(2)
    assert deep.sizes == (8, 6, 5, 5, 3) and not deep.tied
    np.testing.assert_array_equal(deep.params["fwd2"], np.eye(5))
    assert not deep.params["bwd2"].any() and not deep.params["bias3"].any()
    moved = {"fwd0": "fwd0", "fwd1": "fwd1", "bwd1": "bwd1", "bias1": "bias1", "bias2": "bias2",
             "fwd2": "fwd3", "bwd2": "bwd3", "bias3": "bias4"}
    for old, new in moved.items():
        np.testing.assert_array_equal(deep.params[new], net.params[old])
    assert set(deep.params) == set(moved.values()) | {"fwd2", "bwd2", "bias3"}
    nobias = Network.create("8-6-3", seed=0, bias=False).deepened(1)
    assert not any(k.startswith("bias") for k in nobias.params)


def test_deepening_refuses_what_it_cannot_copy():
    net = Network.create("8-6-5-3")
    for k in (0, 3, -1):
        with pytest.raises(ConfigError, match=f"layer {k} is not a hidden layer"):
            net.deepened(k)
    with pytest.raises(ConfigError, match="tied network cannot be deepened"):
        Network.create("8-6-5-3", tied=True).deepened(1)
    with pytest.raises(ConfigError, match="only dense networks"):
        ConvNetwork.create("1x8x8-c4k3p2-10").deepened(1)


def test_deepen_script_grows_a_trained_run_that_keeps_its_function(tmp_path, capsys):
    """A trained digits run deepened after its top hidden layer classifies as before (within 2 points;
    the copy of layer 1 loses more here, as layer 1's drives saturate) and trains on as a deeper run."""
    from analogprop.cli import main as cli
    from analogprop.runs.build import build
    from analogprop.runs.directory import load_checkpoint
    from analogprop.runs.training import evaluate
    from analogprop.training.trainer import TwoPhaseTrainer
    from conftest import load_script, printed_values
    run = tmp_path / "run"
    assert cli(["train", "--arch", "64-32-32-10", "--lrs", "1.0,0.4,0.2", "--beta", "1", "--epochs", "6", "--out", str(run)]) == 0
    capsys.readouterr()
    before = evaluate(run)["test_error"]
    assert before < 0.1
    script = load_script("experiments/mnist-784-512-512-512-10/deepen.py")
    out = tmp_path / "deep.npz"
    assert script.main([str(run), "--after", "2", "--out", str(out)]) == 0
    assert printed_values(capsys.readouterr().out)["architecture"] == "64-32-32-32-10"
    data, driver, tc = build({"arch": "64-32-32-32-10", "lrs": [0.1, 0.04, 0.04, 0.02], "beta": 1.0, "epochs": 1},
                             load_checkpoint(out)[0])
    trainer = TwoPhaseTrainer(driver, tc)
    assert abs(trainer.evaluate(data.x_test, data.y_test)["error"] - before) <= 0.02
    trainer.fit(data)
    assert trainer.evaluate(data.x_test, data.y_test)["error"] < 0.1
    assert script.main([str(run), "--after", "3", "--out", str(out)]) == 2
    assert "layer 3 is not a hidden layer" in capsys.readouterr().err
