import numpy as np
import pytest

from analogprop.network import Network, saturate


def saturating_network(sizes, seed, gain=3.0, feedback=0.3):
    """A random untied network whose fixed points include units clipped at 0 and at 1."""
    return saturate(Network.create(sizes, seed=seed), seed, gain, feedback)


def central_difference(net, solver, x, y, eps=1e-6):
    """-dJ/dtheta by central differences of J (Eq. 11), one parameter entry at a time."""
    from analogprop.gradients import objective

    out = {}
    for name, w in net.params.items():
        g = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            old = w[i]
            w[i] = old + eps
            jp = objective(net, solver, x, y)
            w[i] = old - eps
            jm = objective(net, solver, x, y)
            w[i] = old
            g[i] = -(jp - jm) / (2 * eps)
        out[name] = g
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
