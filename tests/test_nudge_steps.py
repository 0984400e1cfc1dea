"""A nudged phase of a fixed number of Euler steps (Table 1's second-phase iterations)."""
import json

import numpy as np
import pytest

from analogprop.runs.build import build
from analogprop.cli import main
from analogprop.data import load_digits
from analogprop.model.dynamics import mu_beta
from analogprop.errors import ConfigError
from analogprop.training.trainer import one_hot

ARCH = "64-40-30-20-10"  # three hidden layers: the nudge needs steps to reach the first


def driver_and_batch(**cfg):
    data, driver, _ = build({"arch": ARCH, "lrs": [0.1], "tol": 1e-9, "dtype": "float64", **cfg})
    x, labels = data.x_train[:9], data.y_train[:9]
    return driver, x, one_hot(labels, 10)


def test_nudged_phase_is_that_many_clipped_euler_steps_from_the_free_point():
    driver, x, y = driver_and_batch(nudge_steps=3, euler_step=0.5)
    free = driver.relax_free(x)
    assert free.converged.all()
    nudged = driver.relax_nudged(x, y, 1.0, start=free)
    h = [s.copy() for s in free.states]
    for _ in range(3):  # Eq. 59: h <- 0 v (h + eps mu^beta) ^ 1
        h = [np.clip(hk + 0.5 * fk, 0, 1) for hk, fk in zip(h, mu_beta(driver.network, x, h, y, 1.0))]
    for got, want in zip(nudged.states, h):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(nudged.steps, np.full(9, 3))
    # the nudge moves one layer down per step: after 3 steps the first hidden layer is still at h0
    moved = [np.abs(a - b).max() for a, b in zip(nudged.states, free.states)]
    assert moved[0] < 1e-8 < 1e-4 < min(moved[1:])
    assert not nudged.converged.any()  # stopped by count, off the nudged fixed point, and reported so


def test_many_steps_reach_the_nudged_fixed_point():
    driver, x, y = driver_and_batch(nudge_steps=3000, euler_step=0.5)
    _, exact, _ = build({"arch": ARCH, "lrs": [0.1], "tol": 1e-10, "dtype": "float64"})
    free = exact.relax_free(x)
    want = exact.relax_nudged(x, y, 1.0, start=free)
    got = driver.relax_nudged(x, y, 1.0, start=driver.relax_free(x))
    assert got.converged.all()
    for g, w in zip(got.states, want.states):
        np.testing.assert_allclose(g, w, atol=1e-8)


@pytest.mark.parametrize("cfg, match", [
    ({"nudge_steps": -1}, r"nudge_steps \(--nudge-steps, config key .nudge_steps.\) must be an integer >= 0, got -1"),
    ({"nudge_steps": 2.5}, r"nudge_steps \(--nudge-steps.*\) must be an integer >= 0"),
    ({"nudge_steps": "8"}, r"nudge_steps \(--nudge-steps.*\) must be an integer >= 0"),
    ({"nudge_steps": True}, r"nudge_steps \(--nudge-steps.*\) must be an integer >= 0"),
    ({"nudge_steps": 4, "euler_step": 1.5}, r"euler_step \(--euler-step.*\) must be a finite number in \(0, 1\], got 1\.5"),
    ({"nudge_steps": 4, "driver": "circuit"}, "the circuit driver measures fixed points"),
])
def test_bad_nudge_settings_refused_before_any_work(cfg, match):
    with pytest.raises(ConfigError, match=match):
        build({"arch": ARCH, "lrs": [0.1], **cfg})


def test_training_with_a_truncated_nudge_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--arch", "64-16-10", "--epochs", "3", "--lrs", "0.5,0.2", "--nudge-steps", "4",
                 "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["nudge_steps"] == 4
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["test_error"] < 0.3 < records[0]["train_error"]
    assert records[-1]["unconverged_free"] == 0
    # stopped by count: most nudged phases end off their fixed point, unlike the free ones
    assert len(load_digits().y_train) / 2 < records[-1]["unconverged_nudged"] <= len(load_digits().y_train)
