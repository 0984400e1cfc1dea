import importlib.util
from pathlib import Path

import numpy as np
import pytest

from analogprop.model.network import Network, saturate

ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath):
    """A script of the repository (``benchmarks/...``, ``examples/...``) as a module, to call its ``main``."""
    spec = importlib.util.spec_from_file_location(Path(relpath).stem, ROOT / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def printed_values(text):
    """The ``name: value`` lines a benchmark prints, as a dict."""
    return dict(line.split(": ", 1) for line in text.splitlines())


def saturating_network(sizes, seed, gain=3.0, feedback=0.3):
    """A random untied network whose fixed points include units clipped at 0 and at 1."""
    return saturate(Network.create(sizes, seed=seed), seed, gain, feedback)


def central_difference(net, solver, x, y, eps=1e-6):
    """-dJ/dtheta by central differences of J (Eq. 11), one parameter entry at a time."""
    from analogprop.model.gradients import objective

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
