import numpy as np
import pytest

from analogprop.network import Network


def saturating_network(sizes, seed, gain=3.0, feedback=0.3):
    """A random untied network whose fixed points include units clipped at 0 and at 1."""
    net = Network.create(sizes, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    for name, w in net.params.items():
        if name.startswith("fwd"):
            w *= gain
        elif name.startswith("bwd"):
            w *= feedback
        else:
            w[:] = rng.normal(0.3, 0.8, w.shape)
    return net


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
