"""ngspice netlists of a compiled circuit (:mod:`analogprop.circuit.description`).

The netlist is self-contained: the subcircuit libraries of ``netlists/``
(op-amp buffer, inverter, neuron) and any user include are copied into it,
devices are written with their sampled (as-built) values as plain numbers,
so ``ngspice -b file.cir`` runs it unchanged.

Batching (one circuit, many samples): the inputs ``r0_*`` and the targets
``y*`` are tabulated against the voltage of the sample-index source ``vsel``
(``pwl(v(sel), ...)``) and the nudge resistors' conductance is scaled by the
voltage of ``vnb`` (beta; 0 = switch open).  ``dc vsel 0 N-1 1`` gives the
free operating points of all N samples; ``dc vnb 0 b b vsel 0 N-1 1`` the
free and then the nudged point of each sample in turn, so the nudged point
continues from the sample's free one (Eq. 13, 25).

Gain stepping: started from 0 V, ngspice's Newton method stalls on
virtual-ground stages whose high-gain op-amps hit hard output rails.  Those
op-amps' gain is written as ``A 10^(v(gs) / 5)`` with the source ``vgs`` at
0 (the design's gain); :func:`sweep` steps ``vgs`` from -10 to 0 inside the
sample sweep, so each operating point is reached from the same circuit at a
hundredth of the gain, a continuation in the op-amp gain (as SPICE
simulators step a transistor's gain).  Each sample's operating point is its
row at ``vgs`` = 0.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..circuit.nonideal import DIODE_EG, DIODE_XTI, K_OVER_Q, TNOM
from .include import read_include

#: The subcircuit libraries (repository's ``netlists/``), in inclusion order.
LIBRARY_DIR = Path(__file__).resolve().parents[2] / "netlists"
LIBRARIES = ("buffer.lib", "inverter.lib", "neuron.lib")
#: open-loop gain written for an ideal op-amp (infinite gain): V_col = -V_out / 1e12
IDEAL_GAIN = 1e12
OPTIONS = ".options reltol=1e-6 vntol=1e-9 abstol=1e-15 pivrel=1e-10 itl1=200 itl2=100"
#: the virtual-ground level's stage outputs swing several volts: a tighter relative tolerance keeps every
#: node within 1e-6 V of the exact operating point
VGROUND_OPTIONS = ".options reltol=1e-9 vntol=1e-12 abstol=1e-15 pivrel=1e-10 itl1=200 itl2=100"

#: ngspice puts gmin (default 1e-12 S) across every diode junction, which the device equations do not have
DIODE_OPTIONS = ".options gmin=1e-20"
#: significant digits of the ``.print`` rows (``set numdgt`` in a ``.control`` block: ``.options numdgt`` does not
#: reach ``.print`` in ngspice 39)
PRINT_DIGITS = 12
#: gain stepping: ``vgs`` from -GAIN_STEPS to 0 in unit steps scales the op-amps' gain by 10^(v(gs) / 5)
GAIN_STEPS = 10


def gain_stepped(circuit) -> bool:
    """Whether the netlist steps its op-amps' gain: the virtual-ground level with op-amp rails."""
    return bool(circuit.vground and np.isfinite(circuit.nonideal.opamp_rail))


def sweep(circuit, first: int, last: int) -> tuple[str, int]:
    """The ``dc`` sweep over samples first..last (gain-stepped where :func:`gain_stepped`), and the number
    of rows it gives per sample (the last is the sample's operating point)."""
    samples = f"vsel {first} {last} 1"
    if gain_stepped(circuit):
        return f"dc vgs {-GAIN_STEPS} 0 1 {samples}", GAIN_STEPS + 1
    return f"dc {samples}", 1


def printed_operating_points(stdout: str, circuit) -> np.ndarray:
    """The output neurons' operating points that ``ngspice -b`` printed for :func:`netlist` (one row per
    sample, :data:`PRINT_DIGITS` significant digits): the ``.print`` rows, at ``vgs`` = 0 where gain-stepped."""
    rows = [line.split() for line in stdout.splitlines() if line.strip()[:1].isdigit()]
    rows = [r for r in rows if len(r) == 2 + circuit.sizes[-1]]
    if gain_stepped(circuit):
        rows = [r for r in rows if float(r[1]) == 0.0]
    return np.array([[float(v) for v in r[2:]] for r in rows]).reshape(len(rows), circuit.sizes[-1])


def sanitise(name: str) -> str:
    """A SPICE-safe lower-case token: letters, digits and '_' only, starting with a letter."""
    token = re.sub(r"[^a-z0-9_]+", "_", str(name).strip().lower()).strip("_")
    return token if token[:1].isalpha() else f"n_{token}"


def library_text() -> str:
    parts = []
    for name in LIBRARIES:
        path = LIBRARY_DIR / name
        if not path.exists():
            raise ConfigError(f"subcircuit library {path} is missing (it ships in the repository's netlists/)")
        parts.append(f"* ---- {name} ----\n{path.read_text().strip()}")
    return "\n".join(parts)


def _num(v) -> str:
    return repr(float(v))


def _table(values) -> str:
    """pwl over v(sel) through (i, values[i]), flat outside [0, N-1] (pwl extrapolates its end segments)."""
    v = [repr(a) for a in np.asarray(values, float).tolist()]
    pts = [f"-1,{v[0]}"] + [f"{i},{a}" for i, a in enumerate(v)] + [f"{len(v)},{v[-1]}"]
    rows = [",".join(pts[i:i + 8]) for i in range(0, len(pts), 8)]
    return "pwl(v(sel),\n+ " + ",\n+ ".join(rows) + ")"


def _matrix(prefix, W, out_node, in_node, scale, kind):
    """One device per nonzero entry of W (rows: receiving nodes, columns: driving nodes)."""
    rows, cols = np.nonzero(W)
    vals = (W[rows, cols] * scale).tolist()
    if kind == "g":   # VCCS injecting W * V(in) into out
        return [f"g{prefix}_{i}_{j} 0 {out_node}{i} {in_node}{j} 0 {v!r}" for i, j, v in zip(rows.tolist(), cols.tolist(), vals)]
    return [f"r{prefix}_{i}_{j} {in_node}{j} {out_node}{i} {1.0 / v!r}" for i, j, v in zip(rows.tolist(), cols.tolist(), vals)]


def state_nodes(circuit) -> list[str]:
    """Names of the state nodes in the layout of a solver's states: per layer h{k}_i, or (vground) the
    columns c{k}_i then the stage outputs o{k}_i."""
    out = []
    for k in range(1, circuit.n_layers + 1):
        kinds = ("c", "o") if circuit.vground else ("h",)
        out += [f"{a}{k}_{i}" for a in kinds for i in range(circuit.sizes[k])]
    return out


def _vground_header(circuit) -> list[str]:
    nid = circuit.nonideal
    return ["*   c{k}_i: column (virtual ground) of neuron i of layer k; o{k}_i: its transimpedance stage's "
            "output; the neuron's state is h = -V(o)",
            "*   r{k}_i: row drive rho(h) (V_r = 1 V), rb{k}_i: inverted row drive; vp / vn: bias rails",
            "*   p{k}_i: pole node of the op-amp of column i (with a gain-bandwidth product: g_p, or b_p with rails; r_p, c_p)",
            "*   sinh devices (device_v0): two antiparallel junctions d*f / d*r of .model apsinh, area = G / g_unit",
            "*   wr_* / wc_*: row / column wire node at a device's crosspoint (wire resistance: segments "
            "rwr_* into it along the row, rwc_* out of it along the column)",
            f"*   non-idealities: {', '.join(f'{k}={v:g}' if not isinstance(v, str) else f'{k}={v}' for k, v in nid.to_dict().items())}"]


def _vground_devices(circuit) -> list[str]:
    """Element lines of the virtual-ground level (see analogprop.circuit.vground)."""
    c, v, L, s, nid = circuit, circuit.values, circuit.n_layers, circuit.sizes, circuit.nonideal
    gu, cu, tf = c.g_unit, c.c_unit, nid.temp_factor
    tc = (f" tc1={_num(nid.tc1)} tc2={_num(nid.tc2)}" if (nid.tc1 or nid.tc2) else "")
    lines = [f".temp {_num(nid.temp)}"]
    sinh = np.isfinite(nid.device_v0)
    if c.diode_clamped or sinh:   # no junction gmin: the fast solver's diodes have none
        lines.append(DIODE_OPTIONS)
    if sinh:   # G V0 sinh(V / V0) = G V0 / 2 (exp(V / V0) - exp(-V / V0)): two antiparallel junctions with
        # n V_T = V0 at the die temperature and a temperature-free Is (ngspice's built-in diode limits each
        # Newton step across a junction, which its B sources do not)
        lines.append(f".model apsinh D(IS={_num(gu * nid.device_v0 / 2)} "
                     f"N={_num(nid.device_v0 / (K_OVER_Q * nid.kelvin))} EG=0 XTI=0 TNOM={_num(TNOM)})")
    if c.diode_clamped:   # ngspice's diode; EG and XTI as the fast solver's Is(T) (analogprop.circuit.nonideal)
        lines.append(f".model apclamp D(IS={_num(nid.diode_is)} N={_num(nid.diode_n)} RS={_num(nid.diode_rs)} "
                     f"EG={_num(DIODE_EG)} XTI={_num(DIODE_XTI)} TNOM={_num(TNOM)})")
    for k in range(L + 1):
        lines += [f"xi{k}_{i} r{k}_{i} rb{k}_{i} ap_inverter gain={_num(v[f'inv_gain{k}'][i])} "
                  f"offset={_num(v[f'inv_offset{k}'][i])}" for i in range(s[k])]
    if c.has_bias:
        lines += [f"vp vp 0 dc {_num(c.design.v_rail)}", f"vn vn 0 dc {_num(-c.design.v_rail)}"]

    def device(name, a, b, g):
        if not g > 0:
            return []
        if sinh:   # the junctions' area is the device's conductance in g_unit
            return [f"d{name}f {a} {b} apsinh area={_num(g)}", f"d{name}r {b} {a} apsinh area={_num(g)}"]
        return [f"r{name} {a} {b} {_num(1.0 / (g * gu * tf))}{tc}"]

    wires = nid.wire_r_row > 0 or nid.wire_r_col > 0
    for k in range(1, L + 1):
        for i in range(s[k]):
            col, out, mid = f"c{k}_{i}", f"o{k}_{i}", (f"oi{k}_{i}" if nid.opamp_rout else f"o{k}_{i}")
            sense = col   # the op-amp's inverting input: the column, or behind the offset source
            if v[f"vos{k}"][i]:   # (in series, so the sensed node stays near 0 V and keeps its precision)
                sense = f"n{k}_{i}"
                lines.append(f"v_os{k}_{i} {col} {sense} dc {_num(v[f'vos{k}'][i])}")
            lines += _opamp(k, i, sense, mid, nid)
            if nid.opamp_rout:
                lines.append(f"r_out{k}_{i} {mid} {out} {_num(nid.opamp_rout)}")
            lines.append(f"r_f{k}_{i} {out} {col} {_num(1.0 / (v[f'gf{k}'][i] * gu))}")
            lines.append(f"c_f{k}_{i} {out} {col} {_num(v[f'cf{k}'][i] * cu)}")
            lines.append(f"b_r{k}_{i} r{k}_{i} 0 v=min(max({_num(v[f'gain{k}'][i])}*(-v({out})-"
                         f"{_num(v[f'offset{k}'][i])}),0),1)")
            if c.diode_clamped:   # col -> (out + hi) and out + lo -> col
                lines += [f"v_dh{k}_{i} dh{k}_{i} {out} dc {_num(v[f'clamp_hi{k}'][i])}",
                          f"d_h{k}_{i} {col} dh{k}_{i} apclamp",
                          f"v_dl{k}_{i} dl{k}_{i} {out} dc {_num(v[f'clamp_lo{k}'][i])}",
                          f"d_l{k}_{i} dl{k}_{i} {col} apclamp"]
            elif c.clamped:
                lines.append(f"b_cl{k}_{i} {col} {out} i={_num(v[f'clamp{k}'][i] * gu)}*(max(v({col},{out})-"
                             f"{_num(v[f'clamp_hi{k}'][i])},0)+min(v({col},{out})-{_num(v[f'clamp_lo{k}'][i])},0))")
            if wires:
                continue   # the arrays are written tile by tile below
            for name, src, j in ((f"fwd{k - 1}", k - 1, "f"), (f"bwd{k}", k + 1, "b")):
                if src > L:
                    continue
                for pol, drive in (("p", "r"), ("n", "rb")):
                    G = v[f"{name}_{pol}"][i]
                    for jj in range(G.size):
                        lines += device(f"_{j}{pol}{k}_{i}_{jj}", f"{drive}{src}_{jj}", col, G[jj])
            if c.has_bias:
                for pol in "pn":
                    lines += device(f"_bias{pol}{k}_{i}", f"v{pol}", col, v[f"bias{k}_{pol}"][i])
        if wires:
            for name, src, j in ((f"fwd{k - 1}", k - 1, "f"), (f"bwd{k}", k + 1, "b")):
                if src > L:
                    continue
                for pol, drive in (("p", "r"), ("n", "rb")):
                    lines += _wired_array(v[f"{name}_{pol}"], lambda i, jj: f"_{j}{pol}{k}_{i}_{jj}",
                                          lambda jj: f"{drive}{src}_{jj}", lambda i: f"c{k}_{i}", nid, device)
            if c.has_bias:
                for pol in "pn":
                    lines += _wired_array(v[f"bias{k}_{pol}"][:, None], lambda i, jj: f"_bias{pol}{k}_{i}",
                                          lambda jj: f"v{pol}", lambda i: f"c{k}_{i}", nid, device)
    g = v["nudge"] * gu
    lines += [f"b_ny{i} y{i} c{L}_{i} i=v(nb)*{_num(g[i])}*(v(y{i})-v(c{L}_{i}))" for i in range(s[-1])]
    lines += [f"b_no{i} o{L}_{i} c{L}_{i} i=v(nb)*{_num(g[i])}*(v(o{L}_{i})-v(c{L}_{i}))" for i in range(s[-1])]
    return lines


def _opamp(k, i, sense, mid, nid) -> list[str]:
    """The op-amp of column i of layer k, from its inverting input ``sense`` to its internal output ``mid``:
    ``e = clip(-A V(sense), -rail, rail)``; with a gain-bandwidth product, a single-pole macromodel: a
    transconductance ``A`` (S) into the pole node ``p{k}_i`` loaded by 1 ohm and ``A / (2 pi GBW)`` farad
    (DC gain A, pole at GBW / A), then the unity output stage with the rails (the DC operating point is that
    of the stage without the pole).  With rails, ``A`` carries the gain-stepping factor ``10^(v(gs) / 5)``."""
    gain = nid.opamp_gain if np.isfinite(nid.opamp_gain) else IDEAL_GAIN
    rails = np.isfinite(nid.opamp_rail)
    clip = lambda u: f"v=min(max({u},{_num(-nid.opamp_rail)}),{_num(nid.opamp_rail)})"
    stepped = f"{_num(gain)}*pow(10,v(gs)/5)"
    if np.isfinite(nid.opamp_gbw):
        pole = f"p{k}_{i}"
        drive = (f"b_p{k}_{i} 0 {pole} i=-{stepped}*v({sense})" if rails else
                 f"g_p{k}_{i} 0 {pole} 0 {sense} {_num(gain)}")
        lines = [drive, f"r_p{k}_{i} {pole} 0 1.0", f"c_p{k}_{i} {pole} 0 {_num(gain / (2 * np.pi * nid.opamp_gbw))}"]
        return lines + [f"b_a{k}_{i} {mid} 0 {clip(f'v({pole})')}" if rails else f"e_a{k}_{i} {mid} 0 {pole} 0 1.0"]
    if rails:
        return [f"b_a{k}_{i} {mid} 0 {clip(f'-{stepped}*v({sense})')}"]
    return [f"e_a{k}_{i} {mid} 0 0 {sense} {_num(gain)}"]


def _wired_array(G, tag, drive, col, nid, device):
    """Array G (columns i, rows jj) as tiles with resistive wires (:mod:`analogprop.circuit.wires`): device
    ``tag(i, jj)`` joins the row node ``wr{tag}`` and the column node ``wc{tag}`` of its crosspoint (the driver or the
    column node itself where that wire has no resistance); ``rwr{tag}`` is the row segment into the crosspoint
    (from the previous column's crosspoint, or the driver), ``rwc{tag}`` the column segment out of it (to the next
    row's crosspoint, or the column node)."""
    t, (n, m) = int(nid.tile), G.shape
    rr, rc = nid.wire_r_row, nid.wire_r_col
    a = lambda i, jj: f"wr{tag(i, jj)}" if rr else drive(jj)
    b = lambda i, jj: f"wc{tag(i, jj)}" if rc else col(i)
    lines = []
    for i in range(n):
        for jj in range(m):
            lines += device(tag(i, jj), a(i, jj), b(i, jj), G[i, jj])
            if rr:
                prev = drive(jj) if i % t == 0 else a(i - 1, jj)
                lines.append(f"rwr{tag(i, jj)} {prev} {a(i, jj)} {_num(rr)}")
            if rc:
                nxt = col(i) if (jj + 1) % t == 0 or jj + 1 == m else b(i, jj + 1)
                lines.append(f"rwc{tag(i, jj)} {b(i, jj)} {nxt} {_num(rc)}")
    return lines


def header(circuit, title: str, n_samples: int) -> list[str]:
    s, L = circuit.sizes, circuit.n_layers
    tau = circuit.c_unit / circuit.g_unit
    lines = [f"* {sanitise(title)}: analogprop {circuit.level} circuit {'-'.join(map(str, s))}, die seed {circuit.die}",
             f"* mismatch: {', '.join(f'{k}={v:g}' for k, v in circuit.mismatch.to_dict().items())}",
             f"* units: conductance unit {circuit.g_unit:g} S, capacitance unit {circuit.c_unit:g} F, "
             f"time unit {tau:g} s; devices hold their as-built (sampled) values",
             "* nodes:",
             f"*   r0_0 .. r0_{s[0] - 1}: input sources rho(x) of the {s[0]} inputs (layer 0)"]
    for k in range(1 if not circuit.vground else L + 1, L + 1):
        role = "output" if k == L else "hidden"
        lines.append(f"*   h{k}_0 .. h{k}_{s[k] - 1}: state nodes of the {s[k]} {role} neurons of layer {k} "
                     f"(h{k}_i = neuron i); r{k}_i: buffer output rho(h{k}_i)")
    if circuit.clamped:
        lines.append("*   every state node has a clamp (ap_clamp) to its buffer's input range")
    if circuit.vground:
        lines += _vground_header(circuit)
    elif circuit.crossbar:
        lines += [f"*   rb{{k}}_i: inverted copy of r{{k}}_i (layers 0..{L}); vp / vn: bias rails",
                  f"*   neuron pre-activation u = unit_gain * V(h): unit_gain per layer "
                  f"{', '.join(f'{g:g}' for g in circuit.unit_gain)}"]
    lines += [f"*   y0 .. y{s[-1] - 1}: target sources of the output neurons (target_scale {circuit.target_scale:g})",
              f"*   sel: sample index 0..{n_samples - 1}, set by source vsel (inputs/targets are tables of v(sel))",
              "*   nb: nudge strength beta, set by source vnb: its dc value in dc/op analyses (0: nudge switches",
              "*       open, the free phase), its pwl waveform in transients (switching the nudge on at a time)",
              "* free phase of every sample:   dc vsel 0 N-1 1",
              "* free then nudged per sample:  dc vnb 0 <beta> <beta> vsel 0 N-1 1",
              "* ngspice lower-cases names: use lower case in interactive commands"]
    if gain_stepped(circuit):
        lines += ["*   gs: gain stepping, set by source vgs: the op-amps' gain is A 10^(v(gs) / 5), A at v(gs) = 0;",
                  f"*       step it from -{GAIN_STEPS} to 0 inside the sample sweep, e.g. free phase: "
                  f"dc vgs -{GAIN_STEPS} 0 1 vsel 0 N-1 1",
                  "*       (a sample's operating point is its row at vgs = 0); nudged: alter vnb dc = <beta> first"]
    return lines


def devices(circuit, x, y=None) -> list[str]:
    """Element lines of the circuit with inputs x (N, n0) and targets y (N, nL) tabulated against v(sel)."""
    c, v, L, s = circuit, circuit.values, circuit.n_layers, circuit.sizes
    gu, cu = c.g_unit, c.c_unit
    x = np.atleast_2d(np.asarray(x, float))
    n = x.shape[0]
    y = np.zeros((n, s[-1])) if y is None else np.atleast_2d(np.asarray(y, float))
    if x.shape != (n, s[0]) or y.shape != (n, s[-1]):
        raise ConfigError(f"netlist samples: inputs {x.shape} and targets {y.shape} do not fit "
                          f"({n}, {s[0]}) and ({n}, {s[-1]})")
    lines = ["vsel sel 0 dc 0", "vnb nb 0 dc 0 pwl(0 0 1 0)"] + (["vgs gs 0 dc 0"] if gain_stepped(c) else [])
    rx, ty = c.inputs(x), c.target(y)
    lines += [f"b_in{j} r0_{j} 0 v={_table(rx[:, j])}" for j in range(s[0])]
    lines += [f"b_y{i} y{i} 0 v={_table(ty[:, i])}" for i in range(s[-1])]
    if c.vground:
        return lines + _vground_devices(c)
    for k in range(1, L + 1):
        for i in range(s[k]):
            lines.append(f"xn{k}_{i} h{k}_{i} r{k}_{i} ap_neuron leak={_num(v[f'leak{k}'][i] * gu)} "
                         f"cap={_num(v[f'cap{k}'][i] * cu)} gain={_num(v[f'gain{k}'][i])} "
                         f"offset={_num(v[f'offset{k}'][i])}")
    if c.clamped:
        for k in range(1, L + 1):
            lines += [f"xc{k}_{i} h{k}_{i} ap_clamp g={_num(v[f'clamp{k}'][i] * gu)} lo={_num(v[f'clamp_lo{k}'][i])} "
                      f"hi={_num(v[f'clamp_hi{k}'][i])}" for i in range(s[k])]
    lines += [f"b_nudge{i} y{i} h{L}_{i} i=v(nb)*{_num(v['nudge'][i] * gu)}*(v(y{i})-v(h{L}_{i}))"
              for i in range(s[-1])]
    if c.crossbar:
        for k in range(L + 1):
            lines += [f"xi{k}_{i} r{k}_{i} rb{k}_{i} ap_inverter gain={_num(v[f'inv_gain{k}'][i])} "
                      f"offset={_num(v[f'inv_offset{k}'][i])}" for i in range(s[k])]
        if c.has_bias:
            lines += [f"vp vp 0 dc {_num(c.design.v_rail)}", f"vn vn 0 dc {_num(-c.design.v_rail)}"]
        for k in range(L):
            lines += _matrix(f"fp{k}", v[f"fwd{k}_p"], f"h{k + 1}_", f"r{k}_", gu, "r")
            lines += _matrix(f"fn{k}", v[f"fwd{k}_n"], f"h{k + 1}_", f"rb{k}_", gu, "r")
            if k >= 1:
                lines += _matrix(f"bp{k}", v[f"bwd{k}_p"], f"h{k}_", f"r{k + 1}_", gu, "r")
                lines += _matrix(f"bn{k}", v[f"bwd{k}_n"], f"h{k}_", f"rb{k + 1}_", gu, "r")
            if c.has_bias:
                for rail in "pn":
                    lines += [f"r_bias{rail}{k + 1}_{i} v{rail} h{k + 1}_{i} {1.0 / g!r}"
                              for i, g in enumerate((v[f"bias{k + 1}_{rail}"] * gu).tolist()) if g > 0]
    else:
        for k in range(L):
            lines += _matrix(f"f{k}", v[f"fwd{k}"], f"h{k + 1}_", f"r{k}_", gu, "g")
            if k >= 1:
                lines += _matrix(f"b{k}", v[f"bwd{k}"], f"h{k}_", f"r{k + 1}_", gu, "g")
            if c.has_bias:
                lines += [f"i_bias{k + 1}_{i} 0 h{k + 1}_{i} dc {b!r}"
                          for i, b in enumerate((v[f"bias{k + 1}"] * gu).tolist()) if b]
    return lines


def printed_sweep(analysis: str, nodes) -> list[str]:
    """The ``analysis`` card and a ``.print`` of ``nodes`` wide enough for one row per point, to
    :data:`PRINT_DIGITS` significant digits."""
    return [".control", f"set numdgt={PRINT_DIGITS}", ".endc", f".width out={(PRINT_DIGITS + 10) * (len(nodes) + 2) + 8}",
            analysis, ".print dc " + " ".join(f"v({node})" for node in nodes)]


def netlist(circuit, x, y=None, title: str = "analogprop", includes=(), analysis: bool = True) -> str:
    """The self-contained netlist text.  ``analysis`` adds a free-phase ``.dc`` sweep and a
    ``.print`` of the output neurons so that ``ngspice -b`` prints their operating points (to
    :data:`PRINT_DIGITS` significant digits)."""
    n = np.atleast_2d(np.asarray(x)).shape[0]
    user = [(Path(p), read_include(p)) for p in includes]
    lines = header(circuit, title, n)
    lines += ["", "* ==== subcircuit libraries (analogprop netlists/) ====", library_text()]
    for path, text in user:
        lines += [f"* ==== user include: {sanitise(path.name)} ====", text.strip()]
    lines += ["", "* ==== circuit ====", VGROUND_OPTIONS if circuit.vground else OPTIONS]
    lines += devices(circuit, x, y)
    if analysis:
        L = circuit.n_layers
        node = "o" if circuit.vground else "h"
        lines += printed_sweep("." + sweep(circuit, 0, n - 1)[0], [f"{node}{L}_{i}" for i in range(circuit.sizes[-1])])
    lines.append(".end")
    return "\n".join(lines) + "\n"
