"""Two-phase trainer (Eq. 56) through the ideal driver."""
import numpy as np
import pytest

from analogprop.data import load_digits
from analogprop.drivers import IdealDriver
from analogprop.errors import ConfigError
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def make(sizes=(64, 32, 10), seed=0, **cfg):
    driver = IdealDriver(Network.create(sizes, seed=seed), FastSolver(tol=1e-6))
    return TwoPhaseTrainer(driver, TrainConfig(**{"lrs": (0.5, 0.2), "beta": 0.5, **cfg}))


def test_short_training_lowers_error_and_cost(digits):
    tr = make(epochs=3)
    before = tr.evaluate(digits.x_train, digits.y_train)
    records = []
    tr.fit(digits, on_epoch=records.append)
    after = tr.evaluate(digits.x_train, digits.y_train)
    assert after["error"] < before["error"] - 0.3
    assert after["cost"] < before["cost"]
    assert records[-1]["train_cost"] < records[0]["train_cost"]
    assert records[-1]["test_error"] < 0.3
    assert len(records[-1]["alignment"]) == 1
    assert records[-1]["unconverged_free"] == 0


@pytest.mark.parametrize("opts", [{"symmetric": True}, {"random_sign": True}, {"lrs": (0.3,)}])
def test_nudging_variants_learn(digits, opts):
    tr = make(epochs=3, **opts)
    rec = []
    tr.fit(digits, on_epoch=rec.append)
    assert rec[-1]["train_cost"] < rec[0]["train_cost"] - 0.05
    assert rec[-1]["train_error"] < rec[0]["train_error"]


def test_lr_schedule_decays_from_its_start_epoch():
    cfg = TrainConfig(lr_decay=0.5, lr_decay_start=3)
    assert [cfg.lr_scale(e) for e in range(5)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    assert TrainConfig().lr_scale(7) == 1.0


def test_update_is_eq56():
    """The driver's update equals rho(h_j^0)(h_i^beta - h_i^0) summed over the batch."""
    rng = np.random.default_rng(0)
    net = Network.create((5, 4, 3), seed=1)
    drv = IdealDriver(net, FastSolver(tol=1e-12))
    x = rng.uniform(0, 1, (6, 5))
    y = np.eye(3)[rng.integers(0, 3, 6)]
    free = drv.relax_free(x)
    nudged = drv.relax_nudged(x, y, 0.1, free)
    upd = drv.local_update(x, free, nudged)
    h0, hb = free.states, nudged.states
    expect_fwd1 = sum(np.outer(hb[1][s] - h0[1][s], np.clip(h0[0][s], 0, 1)) for s in range(6))
    expect_bwd1 = sum(np.outer(hb[0][s] - h0[0][s], np.clip(h0[1][s], 0, 1)) for s in range(6))
    np.testing.assert_allclose(upd["fwd1"], expect_fwd1, atol=1e-14)
    np.testing.assert_allclose(upd["bwd1"], expect_bwd1, atol=1e-14)
    np.testing.assert_allclose(upd["fwd0"], sum(np.outer(hb[0][s] - h0[0][s], x[s]) for s in range(6)), atol=1e-14)


def test_weight_decay_adds_the_back_moving_force(digits):
    """With lambda the step gains exactly -lr * lambda * W on every weight, nothing on the biases."""
    x, labels = digits.x_train[:20], digits.y_train[:20]
    plain, decayed = make(), make(weight_decay=0.01)
    w = plain.driver.get_parameters()
    plain.step(x, labels)
    decayed.step(x, labels)
    a, b = plain.driver.get_parameters(), decayed.driver.get_parameters()
    for k in w:
        expect = 0.0 if k.startswith("bias") else -plain.lr(k) * 0.01 * w[k]
        np.testing.assert_allclose(b[k] - a[k], expect, atol=1e-12, err_msg=k)
    assert any(np.abs(b[k] - a[k]).max() > 1e-5 for k in w if not k.startswith("bias"))


def test_weight_decay_in_place_matches_the_generic_driver_write(digits):
    """The ideal driver scales its weights in place; a driver on the base class's one-write path
    (get, decay and add, set) ends at the same parameters, and a tied network stays tied."""
    from analogprop.drivers.base import Driver

    class OneWrite(IdealDriver):
        update_parameters = Driver.update_parameters

    x, labels = digits.x_train[:40], digits.y_train[:40]
    cfg = TrainConfig(lrs=(0.5, 0.2), weight_decay=0.05)
    fast, generic = (TwoPhaseTrainer(d(Network.create((64, 20, 10), seed=0)), cfg) for d in (IdealDriver, OneWrite))
    for tr in (fast, generic):
        tr.step(x[:20], labels[:20])
        tr.step(x[20:], labels[20:])
    a, b = fast.driver.get_parameters(), generic.driver.get_parameters()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-13, err_msg=k)
    tied = IdealDriver(Network.create((64, 20, 10), seed=0, tied=True))
    TwoPhaseTrainer(tied, cfg).step(x[:20], labels[:20])
    np.testing.assert_array_equal(tied.get_parameters()["bwd1"], tied.get_parameters()["fwd1"].T)


def test_tied_network_stays_tied(digits):
    driver = IdealDriver(Network.create((64, 20, 10), seed=0, tied=True))
    tr = TwoPhaseTrainer(driver, TrainConfig(lrs=(0.5, 0.2), epochs=1))
    tr.fit(digits.subset(200, 50))
    p = driver.get_parameters()
    np.testing.assert_array_equal(p["bwd1"], p["fwd1"].T)
    assert driver.alignment()[0] == pytest.approx(1.0)


@pytest.mark.parametrize("cfg, match", [
    ({"beta": 0.0}, "beta"), ({"beta": -0.5}, "beta"), ({"beta": float("nan")}, "beta"),
    ({"lrs": (0.1, -0.2)}, "learning rate 1"), ({"lrs": (0.1, 0.1, 0.1)}, "3 learning rates"),
    ({"batch_size": 0}, "batch_size"), ({"lr_decay": 1.5}, "lr_decay"), ({"lr_decay": 0.0}, "lr_decay"),
    ({"lr_decay_start": 0}, "lr_decay_start"), ({"weight_decay": -1e-4}, "weight_decay"),
    ({"weight_decay": float("nan")}, "weight_decay"),
])
def test_bad_hyperparameters_refused(cfg, match):
    with pytest.raises(ConfigError, match=match):
        make(**cfg)


def test_diverging_training_stops_with_a_clear_error(digits, monkeypatch):
    from analogprop.errors import DivergedError

    tr = make()
    tr.step(digits.x_train[:20], digits.y_train[:20])
    before = tr.driver.get_parameters()
    local_update = tr.driver.local_update

    def overflowing(*a):
        out = local_update(*a)
        out["fwd0"][0, 0] = np.inf
        return out

    monkeypatch.setattr(tr.driver, "local_update", overflowing)
    with pytest.raises(DivergedError, match=r"training diverged: the update of fwd0 is not finite"):
        tr.step(digits.x_train[20:40], digits.y_train[20:40])
    after = tr.driver.get_parameters()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing was applied


def test_bad_data_refused(digits):
    tr = make()
    x = digits.x_train[:10].copy()
    x[3, 5] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        tr.evaluate(x, digits.y_train[:10])
    with pytest.raises(ConfigError, match="shape"):
        tr.evaluate(digits.x_train[:10, :50], digits.y_train[:10])
    with pytest.raises(ConfigError, match="output layer has 10"):
        tr.evaluate(digits.x_train[:3], np.array([0, 1, 12]))


def test_empty_layer_refused():
    with pytest.raises(ConfigError, match="layer 1 has size 0"):
        Network.create("64-0-10")
