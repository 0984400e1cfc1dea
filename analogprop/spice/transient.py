"""Transient mode: the physical relaxation of the same netlist, capacitors included.

For each sample one ``tran`` run holds the sample's inputs (``alter vsel``),
starts every capacitor at 0 V (``uic``), lets the free phase run for a
window, then switches the nudge resistors on (the ``vnb`` waveform) for a
second window.  Each phase is scored against the operating point that
:class:`~analogprop.spice.solver.SpiceSolver` finds on the same netlist:

* settling time: from the start of the phase until every state node stays
  within ``band`` (1 %) of the phase's change ``max |V_end - V_start|``
  (for the free phase, which starts at 0 V, 1 % of the final value);
* energy: the energy dissipated in the circuit's conductances (leaks,
  synapse conductances, bias and nudge resistors, conducting clamps) from the start of the
  phase until it settles, in joules, and the static power at the operating
  point, in watts.  Supply power of the ideal buffers, inverters and
  behavioural transconductors is not modelled.

Node waveforms are read from ngspice; the buffer and inverter outputs in the
dissipation are computed from them with the same device equations
(:class:`~analogprop.circuit.description.Circuit`) the netlist was written from.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .solver import SpiceSolver


@dataclass
class PhaseRecord:
    """Per sample: settling time (s; NaN if not settled in the window), energy (J), static power (W)."""

    settle_time: np.ndarray
    energy: np.ndarray
    power: np.ndarray


@dataclass
class TransientResult:
    free: PhaseRecord
    nudged: PhaseRecord
    window: float                      # seconds per phase
    time: np.ndarray                   # waveform of the first sample: time (s) ...
    waveform: np.ndarray               # ... and its output nodes' voltages (points, n_L)
    switch_time: float


def time_constant(circuit, beta: float = 0.0) -> float:
    """Slowest node time constant C / gtot (seconds)."""
    return max(float(np.max(circuit.values[f"cap{k}"] / circuit.conductance(k, beta)))
               for k in range(1, circuit.n_layers + 1)) * circuit.c_unit / circuit.g_unit


def dissipation(circuit, V, x, y=None, nudge=None) -> np.ndarray:
    """Power (W) dissipated in the conductances at node voltages V = [V1..VL] (T, n_k) each.

    ``x`` is one sample's input (n_0,), ``y`` its target, ``nudge`` the nudge
    strength at every time point (T,) (None: switch open).
    """
    c, v, L = circuit, circuit.values, circuit.n_layers
    r = c.outputs(V, np.broadcast_to(x, (V[0].shape[0], x.shape[-1])))
    p = sum((v[f"leak{k}"] * V[k - 1] ** 2).sum(axis=1) for k in range(1, L + 1))
    if c.clamped:
        for k in range(1, L + 1):
            over = np.maximum(V[k - 1] - v[f"clamp_hi{k}"], 0) + np.minimum(V[k - 1] - v[f"clamp_lo{k}"], 0)
            p = p + (v[f"clamp{k}"] * over ** 2).sum(axis=1)
    if nudge is not None:
        p = p + nudge * ((v["nudge"] * (c.target(y)[None] - V[-1]) ** 2).sum(axis=1))
    if c.crossbar:
        def pair(G, a, b):  # sum_ij G_ij (a_j - b_i)^2 over time
            return (a ** 2) @ G.sum(0) + (b ** 2) @ G.sum(1) - 2 * np.einsum("ti,ij,tj->t", b, G, a)
        rb = [c.inverter(k, r[k]) for k in range(L + 1)]
        for k in range(1, L + 1):
            h = V[k - 1]
            p = p + pair(v[f"fwd{k - 1}_p"], r[k - 1], h) + pair(v[f"fwd{k - 1}_n"], rb[k - 1], h)
            if k < L:
                p = p + pair(v[f"bwd{k}_p"], r[k + 1], h) + pair(v[f"bwd{k}_n"], rb[k + 1], h)
            if c.has_bias:
                vr = c.design.v_rail
                p = p + ((vr - h) ** 2) @ v[f"bias{k}_p"] + ((vr + h) ** 2) @ v[f"bias{k}_n"]
    return p * c.g_unit


def _score(t, flat, start, final, power, band):
    """Settling time and energy until settled of one phase (t from the phase start)."""
    dev = np.abs(flat - final).max(axis=1)
    tol = band * max(float(np.abs(final - start).max()), 1e-12)
    outside = np.flatnonzero(dev > tol)
    if outside.size and outside[-1] == len(t) - 1:
        return np.nan, np.nan
    k = 0 if outside.size == 0 else outside[-1] + 1
    return float(t[k]), float(np.trapezoid(power[:k + 1], t[:k + 1]))


def simulate(circuit, x, y, beta: float, window_taus: float = 30.0, points: int = 600, band: float = 0.01,
             solver: SpiceSolver | None = None) -> TransientResult:
    """Transient free and nudged phases of every sample of x (n, n_0) with targets y."""
    x, y = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(y, float))
    if not (np.isfinite(beta) and beta != 0):
        raise ConfigError(f"transient mode needs a finite nonzero nudge strength beta, got {beta}")
    if not (window_taus > 0 and points >= 10 and 0 < band < 1):
        raise ConfigError("transient mode needs window_taus > 0, points >= 10 and 0 < band < 1")
    solver = solver or SpiceSolver()
    free = solver.solve(circuit, x)
    nudged = solver.solve(circuit, x, y, beta, start=free.states)
    window = window_taus * max(time_constant(circuit, 0.0), time_constant(circuit, beta))
    step = window / points
    eng = solver.load(circuit, x, y, title="transient")
    names = [f"h{k}_{i}" for k in range(1, circuit.n_layers + 1) for i in range(circuit.sizes[k])]
    n = x.shape[0]
    rec = {ph: {"settle_time": np.full(n, np.nan), "energy": np.full(n, np.nan), "power": np.zeros(n)}
           for ph in ("free", "nudged")}
    first = None
    split = np.cumsum(circuit.sizes[1:-1])
    for i in range(n):
        eng.exec_command(f"alter vsel dc = {i}")
        eng.exec_command(f"alter @vnb[pwl] = [ 0 0 {window!r} 0 {window + step!r} {beta!r} {2 * window + step!r} {beta!r} ]")
        eng.exec_command(f"tran {step!r} {2 * window!r} 0 {step!r} uic")
        t, flat = eng.vector("time"), eng.vectors(names)
        eng.release()
        if len(t) < 3 or flat.shape[0] != len(t):
            raise ConfigError(f"ngspice transient of sample {i} failed: {eng.problems() or 'no time points'}")
        nb = np.where(t > window, beta, 0.0)
        nb[(t > window) & (t < window + step)] = beta * (t[(t > window) & (t < window + step)] - window) / step
        power = dissipation(circuit, np.split(flat, split, axis=1), x[i], y[i], nb)
        f_end = np.concatenate([s[i] for s in free.states])
        n_end = np.concatenate([s[i] for s in nudged.states])
        a = t <= window
        for ph, sel, start, end, beta_ in (("free", a, np.zeros_like(f_end), f_end, 0.0),
                                           ("nudged", ~a, f_end, n_end, beta)):
            ts = t[sel] - (0.0 if ph == "free" else window)
            rec[ph]["settle_time"][i], rec[ph]["energy"][i] = _score(ts, flat[sel], start, end, power[sel], band)
            rec[ph]["power"][i] = dissipation(circuit, np.split(end[None], split, axis=1), x[i], y[i],
                                              np.array([beta_]) if beta_ else None)[0]
        if first is None:
            first = (t, flat[:, -circuit.sizes[-1]:])
    return TransientResult(PhaseRecord(**rec["free"]), PhaseRecord(**rec["nudged"]), window,
                           first[0], first[1], window)
