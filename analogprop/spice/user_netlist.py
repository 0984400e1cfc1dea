"""The ngspice netlist of a :class:`~analogprop.circuit.tabulated.UserNetwork`: the user's own subcircuits.

Self-contained (the checked library text is copied in, every instance gets
its sampled mismatch parameters and programming value as plain numbers), so
``ngspice -b`` runs it.  Nodes: ``h{k}_{i}`` neuron inputs (the state),
``r{k}_{i}`` neuron outputs, ``d{k}_{i}`` / ``db{k}_{i}`` their unity-buffered
and inverted drives (layer 0: the input sources), ``y{i}`` targets.  As in
:mod:`.netlist`, inputs and targets are ``pwl`` tables of the sample index
``v(sel)`` and the nudge current is scaled by ``v(nb)``:
``dc vsel 0 N-1 1`` is the free phase of every sample,
``dc vnb 0 b b vsel 0 N-1 1`` the free then nudged point of each.
"""
from __future__ import annotations

import numpy as np

from .characterize import OPTIONS, library_text
from .netlist import printed_sweep


def _pwl(values) -> str:
    v = [repr(float(a)) for a in values]
    pts = [f"-1,{v[0]}"] + [f"{i},{a}" for i, a in enumerate(v)] + [f"{len(v)},{v[-1]}"]
    return "pwl(v(sel),\n+ " + ",\n+ ".join(",".join(pts[i:i + 8]) for i in range(0, len(pts), 8)) + ")"


def _params(d: dict) -> str:
    return " ".join(f"{k}={float(v)!r}" for k, v in d.items())


def user_netlist(net, x, y=None, title: str = "analogprop user circuit", analysis: bool = True) -> str:
    """Netlist text of ``net`` with inputs ``x`` (N, n0) and targets ``y`` (N, nL) tabulated against v(sel)."""
    spec, s, L = net.spec, net.sizes, net.n_layers
    x = np.atleast_2d(np.asarray(x, float))
    y = np.zeros((x.shape[0], s[-1])) if y is None else np.atleast_2d(np.asarray(y, float))
    nr, sy = spec.neuron, spec.synapse
    libs = {nr.library: library_text(spec, nr)}
    if sy.library not in libs:
        libs[sy.library] = library_text(spec, sy)
    lines = [f"* {title}: {'-'.join(map(str, s))} network of neuron {nr.subckt} and synapse {sy.subckt}, "
             f"die {net.die}, {spec.temperature:g} C",
             f"* states h{{k}}_{{i}} in volts; network units u = (V - {spec.v_low:g}) / {spec.span:g}; "
             f"targets y = 0 / 1 at {spec.targets[0]:g} / {spec.targets[1]:g} V",
             "* free phase: dc vsel 0 N-1 1; free then nudged: dc vnb 0 <beta> <beta> vsel 0 N-1 1"]
    for path, text in libs.items():
        lines += [f"* ==== user library {path.name} ====", text.strip()]
    lines += ["* ==== network ====", OPTIONS, f".options temp={spec.temperature!r} tnom=27",
              "vsel sel 0 dc 0", "vnb nb 0 dc 0"]
    supplies = {**nr.supplies, **sy.supplies}
    lines += [f"vsup_{p} sup_{p} 0 dc {v!r}" for p, v in supplies.items()]
    drive = net.drive_of_inputs(x)
    lines += [f"b_in{j} d0_{j} 0 v={_pwl(drive[:, j])}" for j in range(s[0])]
    total = spec.v_low + spec.v_high
    for k in range(L + 1):
        if any(a.inverted and a.src == k for a in net.arrays):
            lines += [f"b_inv{k}_{j} db{k}_{j} 0 v={total!r}-v(d{k}_{j})" for j in range(s[k])]
    for k in range(1, L + 1):
        for i in range(s[k]):
            pins = {nr.input: f"h{k}_{i}", nr.output: f"r{k}_{i}", **{p: f"sup_{p}" for p in nr.supplies}}
            params = net.neuron_params[net.neuron_rows[k - 1][i]]
            lines += [f"xn{k}_{i} {' '.join(pins[p] for p in nr.pins)} {nr.subckt} {_params(params)}".rstrip(),
                      f"e_buf{k}_{i} d{k}_{i} 0 r{k}_{i} 0 1"]
    prog, (ta, tb) = sy.program, sy.terminals
    for arr in net.arrays:
        src = "db" if arr.inverted else "d"
        for i in range(s[arr.dst]):
            for j in range(s[arr.src]):
                tag = f"{arr.name}_{i}_{j}"
                pins = {ta: f"{src}{arr.src}_{j}", tb: f"h{arr.dst}_{i}", **{p: f"sup_{p}" for p in sy.supplies}}
                params = dict(net.synapse_params[arr.instance[i, j]])
                if prog.kind == "pin":
                    pins[prog.name] = f"p_{tag}"
                    lines.append(f"vp_{tag} p_{tag} 0 dc {float(arr.program[i, j])!r}")
                else:
                    params[prog.name] = float(arr.program[i, j])
                lines.append(f"xs_{tag} {' '.join(pins[p] for p in sy.pins)} {sy.subckt} {_params(params)}".rstrip())
    ty = net.target_voltage(y)
    lines += [f"b_y{i} y{i} 0 v={_pwl(ty[:, i])}" for i in range(s[-1])]
    lines += [f"b_nudge{i} y{i} h{L}_{i} i=v(nb)*{spec.g_unit!r}*(v(y{i})-v(h{L}_{i}))" for i in range(s[-1])]
    if analysis:
        lines += printed_sweep(f".dc vsel 0 {x.shape[0] - 1} 1", [f"h{L}_{i}" for i in range(s[-1])])
    return "\n".join(lines + [".end"]) + "\n"


def solve_in_ngspice(net, x, y=None, beta: float = 0.0):
    """Node voltages per dynamic layer (list of (N, n_k)) of every sample, free (beta 0) or nudged (the
    nudged point continuing from the sample's free point), by one DC sweep of :func:`user_netlist`."""
    from .engine import SpiceError, engine

    x = np.atleast_2d(np.asarray(x, float))
    n, s = x.shape[0], net.sizes
    names = [f"h{k}_{i}" for k in range(1, net.n_layers + 1) for i in range(s[k])]
    text = user_netlist(net, x, y, analysis=False).replace("\n.end\n", f"\n.save {' '.join(names)}\n.end\n")
    eng = engine()
    eng.load(text, "<user network>")
    eng.exec_command(f"dc vnb 0 {beta!r} {beta!r} vsel 0 {n - 1} 1" if beta else f"dc vsel 0 {n - 1} 1")
    rows = eng.vectors(names)
    eng.release(circuits=True)
    per = 2 if beta else 1
    if rows.shape[0] != n * per:
        raise SpiceError(f"ngspice solved {rows.shape[0] // per} of {n} samples of the user network")
    return np.split(rows[per - 1::per], np.cumsum(s[1:-1]), axis=1)
