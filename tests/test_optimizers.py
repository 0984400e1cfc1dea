"""Optimizers: SGD is the paper's step, Adam normalises each synapse's step, and both resume exactly."""
import numpy as np
import pytest

from analogprop.runs.build import build, complete
from analogprop.errors import ConfigError, DataError
from analogprop.training.optimizers import SGD, Adam, make_optimizer
from analogprop.runs.directory import RunDir, export, load_checkpoint, load_optimizer_state
from analogprop.runs.training import train
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer


def _grads(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return {"fwd0": scale * rng.normal(size=(4, 3)), "bias1": scale * rng.normal(size=4)}


def test_sgd_step_is_lr_times_the_estimate():
    raw = _grads(0)
    step = SGD().step(raw, 2.0, {"fwd0": 0.3, "bias1": 0.1})
    np.testing.assert_allclose(step["fwd0"], 0.15 * raw["fwd0"])
    np.testing.assert_allclose(step["bias1"], 0.05 * raw["bias1"])


def test_adam_first_step_is_lr_times_the_sign_and_steps_ignore_the_gradient_scale():
    lrs = {"fwd0": 0.01, "bias1": 0.02}
    first = Adam().step(_grads(0), 1.0, lrs)
    for k, g in _grads(0).items():
        np.testing.assert_allclose(first[k], lrs[k] * np.sign(g), rtol=1e-6)
    small, large = Adam(), Adam()  # gradients 1e4 apart give the same steps (eps aside)
    for seed in range(5):
        a, b = small.step(_grads(seed, 1e-2), 1.0, lrs), large.step(_grads(seed, 1e2), 1.0, lrs)
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4)
    # a steady gradient keeps the step at lr; one that flips sign every step shrinks it
    steady, flip = Adam(), Adam()
    g = {"w": np.array([1.0])}
    for t in range(50):
        s1 = steady.step(g, 1.0, {"w": 1.0})
        s2 = flip.step({"w": g["w"] * (-1) ** t}, 1.0, {"w": 1.0})
    assert s1["w"][0] == pytest.approx(1.0) and abs(s2["w"][0]) < 0.2


@pytest.mark.parametrize("bad, message", [({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
                                          ({"optimizer": "adam", "adam_betas": (0.9, 1.0)}, "adam_betas"),
                                          ({"optimizer": "adam", "adam_betas": (0.9,)}, "adam_betas"),
                                          ({"optimizer": "adam", "adam_betas": 0.9}, "adam_betas"),
                                          ({"optimizer": "adam", "adam_eps": 0.0}, "adam_eps")])
def test_bad_optimizer_settings_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**bad).validate(2)


def test_state_of_another_optimizer_is_refused():
    with pytest.raises(DataError, match="no Adam moments"):
        make_optimizer("adam").load_state_dict({})
    adam = Adam()
    adam.step(_grads(0), 1.0, {"fwd0": 0.1, "bias1": 0.1})
    with pytest.raises(DataError, match="run uses sgd"):
        SGD().load_state_dict(adam.state_dict())


def test_adam_trains_the_digits_and_moves_every_parameter_by_its_rate_at_first():
    cfg = complete({"arch": "64-32-10", "optimizer": "adam", "lrs": [0.003, 0.003], "epochs": 5})
    data, driver, tc = build(cfg)
    trainer = TwoPhaseTrainer(driver, tc)
    before = driver.get_parameters()
    trainer.step(data.x_train[:20], data.y_train[:20])
    moved = {k: np.abs(driver.get_parameters()[k] - v) for k, v in before.items()}
    for k, d in moved.items():  # Adam's first step: lr |g| / (|g| + eps), lr for all but the tiniest estimates
        assert d.max() <= 0.003 * (1 + 1e-6) and np.median(d[d > 0]) == pytest.approx(0.003, rel=1e-4), k
    trainer.fit(data)
    assert trainer.evaluate(data.x_test, data.y_test)["error"] < 0.15  # untrained: ~90%


def test_adam_run_resumes_exactly_and_its_export_keeps_the_moments(tmp_path):
    cfg = {"arch": "64-16-10", "optimizer": "adam", "lrs": [0.003, 0.003], "epochs": 2, "checkpoint_every": 7}
    train(cfg, tmp_path / "full", progress=False)
    calls = {"n": 0}

    def stop_mid_epoch():
        calls["n"] += 1
        return calls["n"] == 30

    train(cfg, tmp_path / "cut", progress=False, stop=stop_mid_epoch)
    assert load_optimizer_state(RunDir(tmp_path / "cut").checkpoint_path)["t"] == 30
    train({}, tmp_path / "cut", resume=True, progress=False, stop=lambda: False)
    a, b = (load_checkpoint(RunDir(tmp_path / d).checkpoint_path)[0] for d in ("full", "cut"))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    export(tmp_path / "full", tmp_path / "ship", "float64")
    assert load_optimizer_state(RunDir(tmp_path / "ship").checkpoint_path).keys() == \
        load_optimizer_state(RunDir(tmp_path / "full").checkpoint_path).keys()
    train({"epochs": 3}, tmp_path / "ship", resume=True, progress=False)
    train({"epochs": 3}, tmp_path / "full", resume=True, progress=False)
    a, b = (load_checkpoint(RunDir(tmp_path / d).checkpoint_path)[0] for d in ("full", "ship"))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_adam_from_the_command_line_is_saved_with_the_run(tmp_path):
    from analogprop.cli import main

    out = tmp_path / "run"
    assert main(["train", "--arch", "64-32-10", "--epochs", "1", "--optimizer", "adam", "--adam-betas", "0.8,0.99",
                 "--lrs", "0.003", "--out", str(out), "--quiet"]) == 0
    cfg = RunDir(out).read_config()
    assert cfg["optimizer"] == "adam" and cfg["adam_betas"] == [0.8, 0.99]
    assert load_optimizer_state(RunDir(out).checkpoint_path)["t"] == 72  # 1,438 training digits, 20 per batch
    assert main(["train", "--arch", "64-32-10", "--optimizer", "adam", "--adam-betas", "0.9,1.5",
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert not (tmp_path / "bad").exists()
