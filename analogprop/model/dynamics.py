"""The vector field of the paper (Eq. 3, 6-15), batched over samples.

States are lists ``h[0..L-1]`` of arrays (batch, n_k) for dynamic layers
1..L; ``h[-1]`` is the output layer.  ``x`` is the clamped input (batch, n_0).
"""
from __future__ import annotations

import numpy as np

from .network import Network


def rho(v):
    """Hard sigmoid 0 v h ^ 1 (Appendix C)."""
    return np.clip(v, 0.0, 1.0)


def drive(net: Network, rx, rh, k: int):
    """Synaptic input to dynamic layer k (1-based): sum_j W_kj rho(h_j) (+ bias)."""
    r_next = rh[k] if k < net.n_layers else None
    if k == 1:
        return net.input_drive(rx) + net.drive(1, None, r_next)
    return net.drive(k, rh[k - 2], r_next)


def mu_beta(net: Network, x, h, y=None, beta: float = 0.0):
    """mu^beta = mu - beta dC/dh (Eq. 12-15); mu_k = drive_k - h_k (Eq. 6-8)."""
    rx, rh = rho(x), [rho(v) for v in h]
    out = [drive(net, rx, rh, k) - h[k - 1] for k in range(1, net.n_layers + 1)]
    if beta:
        out[-1] += beta * (y - h[-1])
    return out


def cost(output, y):
    """C = 1/2 ||y - h_0||^2 per sample (Eq. 10)."""
    return 0.5 * np.sum((y - output) ** 2, axis=1)


def projected_residual(h, field, bounds=None):
    """Per-sample max |h - clip(h + mu)|: zero exactly at a fixed point of Eq. 59.

    It is |mu| on unsaturated units and vanishes on a unit held at 0 (1) when
    mu <= 0 (mu >= 0) there, the clipping conditions.  ``bounds`` gives each
    layer's range (default [0, 1] for all, see :meth:`Network.bounds`).
    """
    r = np.zeros(h[0].shape[0])
    for k, (hk, mk) in enumerate(zip(h, field)):
        lo, hi = (0.0, 1.0) if bounds is None else bounds[k]
        np.maximum(r, np.max(np.abs(hk - np.clip(hk + mk, lo, hi)), axis=1), out=r)
    return r
