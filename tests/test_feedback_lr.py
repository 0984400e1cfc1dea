"""feedback_lr_factor: the feedback weights' learning rates relative to the forward ones."""
import numpy as np
import pytest

from analogprop.runs.build import build, complete
from analogprop.errors import ConfigError
from analogprop.runs.directory import load_checkpoint
from analogprop.runs.training import train
from analogprop.training.trainer import TwoPhaseTrainer

CFG = {"arch": "64-24-16-10", "epochs": 1, "lrs": [0.5, 0.2, 0.05], "weight_decay": 1e-3}


def test_factor_0_keeps_the_feedback_fixed_and_trains_the_forward_weights(tmp_path):
    start = build(complete(CFG))[1].get_parameters()
    train({**CFG, "feedback_lr_factor": 0.0}, tmp_path / "run", progress=False)
    end = load_checkpoint(tmp_path / "run" / "checkpoint.npz")[0]
    for name in start:
        same = np.array_equal(start[name], end[name])
        assert same == name.startswith("bwd"), name  # weight decay included: fixed means fixed


def test_the_feedback_step_scales_with_the_factor_and_the_forward_step_does_not():
    data = build(complete(CFG))[0]
    x, labels = data.x_train[:20], data.y_train[:20]
    steps = {}
    for factor in (1.0, 0.25):
        cfg = complete({**CFG, "weight_decay": 0.0, "feedback_lr_factor": factor})
        _, driver, tc = build(cfg)
        before = driver.get_parameters()
        TwoPhaseTrainer(driver, tc).step(x, labels)
        steps[factor] = {k: v - before[k] for k, v in driver.get_parameters().items()}
    for name, step in steps[1.0].items():
        expected = 0.25 * step if name.startswith("bwd") else step
        np.testing.assert_allclose(steps[0.25][name], expected, rtol=1e-9, atol=1e-15)
    assert any(np.abs(s).max() > 0 for k, s in steps[1.0].items() if k.startswith("bwd"))


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "1", True])
def test_bad_factors_are_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"feedback_lr_factor \(--feedback-lr-factor, config key .feedback_lr_factor.\) must be a finite number >= 0, got "):
        train({**CFG, "feedback_lr_factor": bad}, tmp_path / "run", progress=False)
