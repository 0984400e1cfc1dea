"""The vector field of the paper (Eq. 3, 6-15), batched over samples.

States are lists ``h[0..L-1]`` of arrays (batch, n_k) for dynamic layers
1..L; ``h[-1]`` is the output layer.  ``x`` is the clamped input (batch, n_0).

With a readout outside the dynamics (``net.readout`` "softmax" or "linear",
after Laborieux et al. 2021, VFCNN) layers 1..L-1 follow Eq. 6-8 without the
output's feedback, the output is the function ``h_L = out(z)``, ``z = W_{L,L-1}
rho(h_{L-1}) + b_L``, and the cost of Eq. 10 becomes the readout's loss L(out(z), y)
of the top hidden layer's state; its nudge (Eq. 12-15 with that cost) is
``-beta dL/dh_{L-1} = beta W_{L,L-1}^T e``, ``e = -dL/dz``, on layer L-1 alone.
"""
from __future__ import annotations

import numpy as np

from .network import Network


def rho(v):
    """Hard sigmoid 0 v h ^ 1 (Appendix C)."""
    return np.clip(v, 0.0, 1.0)


def drive(net: Network, rx, rh, k: int):
    """Synaptic input to dynamic layer k (1-based): sum_j W_kj rho(h_j) (+ bias)."""
    r_next = rh[k] if k < net.n_dynamic else None
    if k == 1:
        return net.input_drive(rx) + net.drive(1, None, r_next)
    return net.drive(k, rh[k - 2], r_next)


def mu_beta(net: Network, x, h, y=None, beta: float = 0.0):
    """mu^beta = mu - beta dC/dh (Eq. 12-15); mu_k = drive_k - h_k (Eq. 6-8).

    With a readout, the output's entry is ``out(z) - h_L`` (zero once the output
    follows the top hidden layer) and the nudge acts on layer L-1 (module docstring)."""
    rx, rh = rho(x), [rho(v) for v in h]
    top = net.n_dynamic
    out = [drive(net, rx, rh, k) - h[k - 1] for k in range(1, top + 1)]
    if net.readout == "dynamic":
        if beta:
            out[-1] += beta * (y - h[-1])
        return out
    z = readout_input(net, rh[top - 1])
    out.append(readout_output(net, z) - h[-1])
    if beta:
        out[top - 1] += beta * readout_force(net, readout_error(net, z, y))
    return out


def cost(output, y):
    """C = 1/2 ||y - h_0||^2 per sample (Eq. 10)."""
    return 0.5 * np.sum((y - output) ** 2, axis=1)


def output_cost(output, y, readout: str = "dynamic"):
    """Per-sample cost of the output state: Eq. 10, or the cross-entropy -sum y log p of a softmax readout."""
    if readout == "softmax":
        return -np.sum(y * np.log(np.maximum(output, np.finfo(float).tiny)), axis=1)
    return cost(output, y)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def readout_input(net: Network, r_top):
    """z = W_{L,L-1} rho(h_{L-1}) + b_L: the readout's input from the top hidden layer's rates."""
    return net.drive(net.n_layers, r_top, None)


def readout_output(net: Network, z):
    """The output of a readout outside the dynamics: softmax(z), or z clipped to the output's range."""
    if net.readout == "softmax":
        return softmax(z)
    return np.clip(z, *net.bounds()[-1])


def readout_error(net: Network, z, y):
    """e = -dL/dz: y - softmax(z) (cross-entropy), or (y - clip(z)) where the clip is inactive (Eq. 10)."""
    out = readout_output(net, z)
    if net.readout == "softmax":
        return y - out
    lo, hi = net.bounds()[-1]
    return (y - out) * ((z > lo) & (z < hi))


def readout_force(net: Network, e):
    """-dL/d rho(h_{L-1}) = W_{L,L-1}^T e: the readout's error sent to the top hidden layer."""
    return net.transfer_T(net.n_dynamic, None, e)


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
