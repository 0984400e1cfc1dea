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

Virtual-ground level: the state nodes are every column and stage output; the
window follows the slowest column's closed-loop pole
(:func:`~analogprop.circuit.nonideal.closed_loop_poles`: the feedback
``R_f C_f``, or with a gain-bandwidth product the op-amp's GBW times the
column's feedback factor); the dissipation is that of the programmable
devices, feedback and nudge resistors, clamps and op-amp output resistances
(not the op-amps' supply power).  Wire resistance is not modelled here.  ngspice integrates it by Gear's
method: the fast closed-loop poles make it stiff, and trapezoidal steps can ring on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..circuit.nonideal import closed_loop_poles, diode_branch
from ..circuit.vground import Layer, drives, split
from ..errors import ConfigError
from .netlist import state_nodes
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
    """Slowest node time constant C / gtot (seconds); vground: -1 / the slowest column's closed-loop pole."""
    if circuit.vground:
        return max(float(np.max(-1.0 / _column_poles(circuit, k, beta)[0])) for k in range(1, circuit.n_layers + 1))
    return max(float(np.max(circuit.values[f"cap{k}"] / circuit.conductance(k, beta)))
               for k in range(1, circuit.n_layers + 1)) * circuit.c_unit / circuit.g_unit


def _column_poles(circuit, k, beta):
    """(slow, fast) closed-loop poles (1/s) of layer k's columns with the nudge switches at ``beta``."""
    v, nid = circuit.values, circuit.nonideal
    g_in = sum(G.sum(1) for G, _, _ in Layer(circuit, k).groups) + (
        v[f"bias{k}_p"] + v[f"bias{k}_n"] if circuit.has_bias else 0.0)
    bn = beta * v["nudge"] if k == circuit.n_layers else 0.0
    gu = circuit.g_unit
    return closed_loop_poles((g_in + bn) * gu, (v[f"gf{k}"] + bn) * gu, v[f"cf{k}"] * circuit.c_unit,
                             nid.opamp_gain, nid.opamp_gbw)


def _vground_power(circuit, V, x, y, nudge):
    """:func:`dissipation` of the virtual-ground level, V = [(T, 2 n_k)] (columns, stage outputs)."""
    L, v = circuit.n_layers, circuit.values
    r, rb = drives(circuit, V, np.broadcast_to(x, (V[0].shape[0], x.shape[-1])))
    nb = 0.0 if nudge is None else np.asarray(nudge, float)[:, None]
    p = 0.0
    for k in range(1, L + 1):
        lay = Layer(circuit, k)
        vc, vo = split(circuit, k, V[k - 1])
        for G, j, kind in lay.groups:
            d = (r if kind == "r" else rb)[j]
            if lay.linear:   # sum_ij G_ij (d_j - vc_i)^2
                p = p + (d ** 2) @ G.sum(0) + (vc ** 2) @ G.sum(1) - 2 * np.einsum("ti,ij,tj->t", vc, G, d)
            else:
                p = p + np.array([(G * lay.v0 * np.sinh(u / lay.v0) * u).sum()
                                  for u in d[:, None, :] - vc[:, :, None]])
        for G, u in lay.rails:
            du = u - vc
            p = p + ((G * lay.v0 * np.sinh(du / lay.v0) * du) if not lay.linear else G * du ** 2).sum(1)
        bn = nb * v["nudge"] if k == L else 0.0
        xx = vc - vo
        p = p + ((lay.gf + bn) * xx ** 2).sum(1)
        if k == L and nudge is not None:
            p = p + (bn * (circuit.target(y)[None] - vc) ** 2).sum(1)
        cl = 0.0
        if lay.diode is not None:   # Shockley branches beyond their bias sources
            lo, hi, i_s, nvt, rs = lay.diode
            up, down = diode_branch(xx - hi, i_s, nvt, rs)[0], diode_branch(lo - xx, i_s, nvt, rs)[0]
            p, cl = p + (up * (xx - hi) + down * (lo - xx)).sum(1), up - down
        elif lay.clamp is not None:   # conductance g beyond the clamp levels
            g, lo, hi = lay.clamp
            over = np.maximum(xx - hi, 0.0) + np.minimum(xx - lo, 0.0)
            p, cl = p + (g * over ** 2).sum(1), g * over
        if lay.R:   # the output current, through R_out
            p = p + (lay.R * ((lay.gf + bn) * xx + cl) ** 2).sum(1)
    return p * circuit.g_unit


def dissipation(circuit, V, x, y=None, nudge=None) -> np.ndarray:
    """Power (W) dissipated in the conductances at node voltages V = [V1..VL] (T, n_k) each.

    ``x`` is one sample's input (n_0,), ``y`` its target, ``nudge`` the nudge
    strength at every time point (T,) (None: switch open).
    """
    if circuit.vground:
        return _vground_power(circuit, V, x, y, nudge)
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
    if circuit.vground and (circuit.nonideal.wire_r_row or circuit.nonideal.wire_r_col):
        raise ConfigError("transient mode does not model wire resistance: wire_r_row and wire_r_col must be 0, got "
                          f"{circuit.nonideal.wire_r_row} and {circuit.nonideal.wire_r_col} ohm")
    solver = solver or SpiceSolver()
    free = solver.solve(circuit, x)
    nudged = solver.solve(circuit, x, y, beta, start=free.states)
    window = window_taus * max(time_constant(circuit, 0.0), time_constant(circuit, beta))
    step = window / points
    eng = solver.load(circuit, x, y, title="transient")
    if circuit.vground:   # stiff: the op-amps' fast closed-loop poles next to the slow ones (L-stable Gear steps)
        eng.exec_command("option method=gear")
    names = state_nodes(circuit)
    n = x.shape[0]
    rec = {ph: {"settle_time": np.full(n, np.nan), "energy": np.full(n, np.nan), "power": np.zeros(n)}
           for ph in ("free", "nudged")}
    first = None
    edges = np.cumsum([(2 if circuit.vground else 1) * n for n in circuit.sizes[1:-1]])
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
        power = dissipation(circuit, np.split(flat, edges, axis=1), x[i], y[i], nb)
        f_end = np.concatenate([s[i] for s in free.states])
        n_end = np.concatenate([s[i] for s in nudged.states])
        a = t <= window
        for ph, sel, start, end, beta_ in (("free", a, np.zeros_like(f_end), f_end, 0.0),
                                           ("nudged", ~a, f_end, n_end, beta)):
            ts = t[sel] - (0.0 if ph == "free" else window)
            rec[ph]["settle_time"][i], rec[ph]["energy"][i] = _score(ts, flat[sel], start, end, power[sel], band)
            rec[ph]["power"][i] = dissipation(circuit, np.split(end[None], edges, axis=1), x[i], y[i],
                                              np.array([beta_]) if beta_ else None)[0]
        if first is None:
            first = (t, flat[:, -circuit.sizes[-1]:])
    return TransientResult(PhaseRecord(**rec["free"]), PhaseRecord(**rec["nudged"]), window,
                           first[0], first[1], window)
