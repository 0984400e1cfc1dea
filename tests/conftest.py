import numpy as np
import pytest

from analogprop.network import Network, saturate


def saturating_network(sizes, seed, gain=3.0, feedback=0.3):
    """A random untied network whose fixed points include units clipped at 0 and at 1."""
    return saturate(Network.create(sizes, seed=seed), seed, gain, feedback)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
