"""examples/custom_driver.py: a user's own black-box system trained by the unchanged two-phase trainer."""
import numpy as np

from conftest import load_script

example = load_script("examples/custom_driver.py")


def test_local_update_is_dmu_dtheta_times_the_change_of_the_nodes():
    """For a random direction D in parameter space: sum_k <update_k, D_k> = d/de [mu(theta + e D)(s0) . ds]."""
    rng = np.random.default_rng(1)
    system = example.SoftNeuronSystem((6, 5, 4, 3), seed=2)
    x, y = rng.random((7, 6)), np.eye(3)[rng.integers(0, 3, 7)]
    free = system.relax_free(x)
    nudged = system.relax_nudged(x, y, 0.3, free)
    assert free.converged.all() and nudged.converged.all()
    upd = system.local_update(x, free, nudged)
    assert set(upd) == set(system.get_parameters())
    ds = [b - a for a, b in zip(free.states, nudged.states)]
    theta = system.get_parameters()
    direction = {k: rng.standard_normal(v.shape) for k, v in theta.items()}

    def mu_dot_ds(e):
        system.set_parameters({k: theta[k] + e * direction[k] for k in theta})
        return sum(np.sum(f * d) for f, d in zip(system.field(x, free.states), ds))

    eps = 1e-6
    expected = (mu_dot_ds(eps) - mu_dot_ds(-eps)) / (2 * eps)
    got = sum(np.sum(upd[k] * direction[k]) for k in upd)
    assert abs(expected) > 1e-3
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_settle_reaches_a_fixed_point_of_the_field():
    system = example.SoftNeuronSystem((6, 5, 3), seed=0)
    x = np.random.default_rng(0).random((4, 6))
    phase = system.relax_free(x)
    assert phase.converged.all()
    assert max(np.abs(f).max() for f in system.field(x, phase.states)) <= system.tol * 1.01
    # the nudged fixed point moves the output toward the target
    y = np.eye(3)[[0, 1, 2, 0]]
    nudged = system.relax_nudged(x, y, 0.5, phase)
    assert np.all(np.abs(nudged.output - y) < np.abs(phase.output - y))


def test_the_unchanged_trainer_trains_the_custom_system(capsys):
    out = example.main(["--epochs", "4"])
    last = out["records"][-1]
    assert out["before"] > 0.7                    # untrained: near chance on 10 classes
    assert last["test_error"] < 0.3 and last["train_error"] < out["records"][0]["train_error"]
    assert last["alignment"][0] > out["records"][0]["alignment"][0] > 0
    assert "epoch 4: train error" in capsys.readouterr().out
