"""Pseudo-arclength continuation of the Newton homotopy (analogprop.circuit.homotopy) on random strongly coupled
networks, where damped Newton from the same start often stalls."""
import numpy as np
import pytest

from analogprop.circuit.homotopy import _newton, follow_path


def network(n, seed, gain, kind):
    """F(v) = v - phi(G v + b) with phi = tanh (smooth) or clip to [0, 1] (piecewise linear, with its pieces)."""
    rng = np.random.default_rng(seed)
    G, b = gain * rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal(n)
    u = lambda v: G @ v + b
    if kind == "tanh":
        F = lambda v: v - np.tanh(u(v))
        slope = lambda v: 1 - np.tanh(u(v)) ** 2
        region = None
    else:
        F = lambda v: v - np.clip(u(v), 0, 1)
        slope = lambda v: ((u(v) > 0) & (u(v) < 1)) * 1.0
        region = lambda v: (u(v) > 0) * 1.0 + (u(v) >= 1)

    def solve(v, R):
        J = np.eye(n) - slope(v)[:, None] * G
        return np.linalg.solve(J, R), float(np.sign(np.linalg.det(J)))

    return F, solve, region


@pytest.mark.parametrize("kind", ["tanh", "clip"])
def test_reaches_every_root_newton_misses(kind):
    reached = newton = 0
    for seed in range(12):
        F, solve, region = network(30, seed, 4.0, kind)
        v0 = np.random.default_rng(100 + seed).uniform(-1, 2, 30)
        out = follow_path(F, solve, v0, 1e-10, region=region)
        reached += out.reached and np.abs(F(out.v)).max() <= 1e-10
        newton += np.abs(F(_newton(F, solve, v0, 1e-10, 50))).max() <= 1e-10
    assert reached == 12
    assert newton <= 6   # the same starts: damped Newton stalls on half of them or more


def test_start_at_a_root_is_kept():
    F, solve, region = network(10, 0, 1.0, "clip")
    root = follow_path(F, solve, np.zeros(10), 1e-12, region=region).v
    again = follow_path(F, solve, root, 1e-12, region=region)
    assert again.reached and np.allclose(again.v, root, atol=1e-12)
