"""Static characterization of a user's neuron and synapse subcircuits by ngspice, cached on disk.

Every distinct instance (its own mismatch draw) is swept once, many
instances per netlist and one DC sweep per netlist (sweep axes are index
sources read through ``pwl`` tables, so every point is exact):

* neuron: the input voltage over ``neuron.sweep``; per instance the current
  it draws from its input pin (a 0 V ammeter in series) and its output
  voltage (unloaded: the network drives synapses through a unity buffer);
* synapse: terminal voltages ``a`` (inner) and ``b`` (outer) in one nested
  sweep, one copy per instance and programming value; per copy the current
  it delivers into ``b``.

Results are cached by the SHA-256 of the library text, subcircuit, pins,
supplies, temperature, grids, instance parameters and ngspice's version, in
``$ANALOGPROP_CACHE`` or ``~/.cache/analogprop/characterization``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from ..circuit.tabulated import NeuronTable, SynapseTable
from ..circuit.user_spec import CircuitSpec, Role, SpecError
from .engine import SpiceError, engine
from .include import read_library

#: Copies per characterization netlist (keeps each matrix small).
CHUNK = 2000
FORMAT = 1
OPTIONS = ".options reltol=1e-7 abstol=1e-16 vntol=1e-10 itl1=500 itl2=200"


def cache_dir() -> Path:
    return Path(os.environ.get("ANALOGPROP_CACHE") or Path.home() / ".cache" / "analogprop" / "characterization")


def library_text(spec: CircuitSpec, role: Role) -> str:
    """The checked text of a role's library (``.lib`` sections expanded), its ``.subckt`` pins checked."""
    path = role.library if role.library.is_absolute() else spec.root / role.library
    if not spec.allow_outside and not path.resolve().is_relative_to(spec.root.resolve()):
        raise SpecError(f"{spec.path}: {role.role}.library {role.library} is outside the specification's "
                        "directory (allow_outside = true permits it)")
    text = read_library(path, spec.root, spec.allow_outside)
    joined = re.sub(r"\n[ \t]*\+", " ", text.lower())
    m = re.search(rf"^[ \t]*\.subckt[ \t]+{re.escape(role.subckt)}[ \t]+([^\n]*)$", joined, re.M)
    if not m:
        raise SpecError(f"{spec.path}: {role.role}.subckt {role.subckt!r} is not defined in {path}")
    words = m.group(1).replace("params:", " params: ").split()
    pins = tuple(words[:words.index("params:")] if "params:" in words else [w for w in words if "=" not in w])
    if pins != role.pins:
        raise SpecError(f"{spec.path}: {role.role}.pins {list(role.pins)} do not match .subckt {role.subckt} "
                        f"{' '.join(pins)} in {path}")
    return text


def ngspice_version() -> str:
    out = engine().exec_command("version -s")
    m = re.search(r"ngspice-\S+", out)
    return m.group() if m else out.strip()


def _pwl(node, values) -> str:
    v = [repr(float(a)) for a in values]
    pts = [f"-1,{v[0]}"] + [f"{i},{a}" for i, a in enumerate(v)] + [f"{len(v)},{v[-1]}"]
    return f"b{node} {node} 0 v=pwl(v(i{node}),\n+ " + ",\n+ ".join(
        ",".join(pts[i:i + 8]) for i in range(0, len(pts), 8)) + ")"


def _params(d: dict) -> str:
    return " ".join(f"{k}={float(v)!r}" for k, v in d.items())


def _key(spec, role, text, params, grids) -> str:
    blob = json.dumps({"format": FORMAT, "role": role.role, "library": text, "subckt": role.subckt,
                       "pins": role.pins, "supplies": role.supplies, "temperature": spec.temperature,
                       "grids": [np.asarray(g).tolist() for g in grids], "params": params,
                       "program": None if role.program is None else [role.program.name, role.program.kind],
                       "ngspice": ngspice_version()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _header(spec, role, text) -> list[str]:
    return [f"* analogprop characterization of {role.role} {role.subckt}", OPTIONS,
            f".options temp={spec.temperature!r} tnom=27", text.strip()] + \
        [f"vsup_{p} sup_{p} 0 dc {v!r}" for p, v in role.supplies.items()]


def _run(text, sweep, names) -> np.ndarray:
    eng = engine()
    eng.load(text, "<characterization>")
    eng.exec_command(sweep)
    rows = eng.vectors(names)
    eng.release(circuits=True)
    return rows


def _cached(spec, role, text, params, grids, compute):
    key = _key(spec, role, text, params, grids)
    path = cache_dir() / f"{role.role}-{key[:32]}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return z["table"], True
        except (OSError, ValueError, KeyError):
            pass
    table = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, table=table)
    os.replace(tmp, path)
    return table, False


def characterize_neurons(spec: CircuitSpec, params: list[dict], stats: dict | None = None) -> NeuronTable:
    """Tables of the neuron instances with ``.subckt`` parameters ``params`` (one dict per distinct instance)."""
    role = spec.neuron
    text, v = library_text(spec, role), role.grid("v")

    def compute():
        out = np.empty((len(params), 2, len(v)))
        for first in range(0, len(params), CHUNK):
            part = params[first:first + CHUNK]
            lines = _header(spec, role, text) + ["vin iin 0 dc 0", _pwl("in", v)]
            for m, p in enumerate(part):
                pins = {role.input: f"i{m}", role.output: f"o{m}", **{s: f"sup_{s}" for s in role.supplies}}
                lines += [f"vm{m} in i{m} 0", f"xn{m} {' '.join(pins[q] for q in role.pins)} {role.subckt} {_params(p)}"]
            names = [f"vm{m}#branch" for m in range(len(part))] + [f"o{m}" for m in range(len(part))]
            rows = _run("\n".join(lines + [".end"]) + "\n", f"dc vin 0 {len(v) - 1} 1", names)
            _check(rows, len(v), role)
            out[first:first + len(part), 0] = rows[:, :len(part)].T
            out[first:first + len(part), 1] = rows[:, len(part):].T
        return out

    table = _timed(spec, role, text, params, [v], compute, stats)
    return NeuronTable(v, out=table[:, 1], iin=table[:, 0])


def characterize_synapses(spec: CircuitSpec, params: list[dict], stats: dict | None = None) -> SynapseTable:
    """Tables (current into ``b`` versus ``a``, ``b`` and the programming value) of the distinct synapse
    instances with ``.subckt`` parameters ``params``."""
    role, prog = spec.synapse, spec.synapse.program
    text, a, b, p = library_text(spec, role), role.grid("a"), role.grid("b"), prog.grid
    copies = [(u, q) for u in range(len(params)) for q in range(len(p))]
    ta, tb = role.terminals

    def compute():
        out = np.empty((len(params), len(a), len(b), len(p)))
        for first in range(0, len(copies), CHUNK):
            part = copies[first:first + CHUNK]
            lines = _header(spec, role, text) + ["via ia 0 dc 0", "vib ib 0 dc 0", _pwl("a", a), _pwl("b", b)]
            for m, (u, q) in enumerate(part):
                pins = {ta: "a", tb: f"t{m}", **{s: f"sup_{s}" for s in role.supplies}}
                extra = dict(params[u])
                if prog.kind == "pin":
                    pins[prog.name] = f"g{m}"
                    lines.append(f"vp{m} g{m} 0 dc {float(p[q])!r}")
                else:
                    extra[prog.name] = float(p[q])
                lines += [f"vm{m} b t{m} 0", f"xs{m} {' '.join(pins[r] for r in role.pins)} {role.subckt} {_params(extra)}"]
            rows = _run("\n".join(lines + [".end"]) + "\n", f"dc via 0 {len(a) - 1} 1 vib 0 {len(b) - 1} 1",
                        [f"vm{m}#branch" for m in range(len(part))])
            _check(rows, len(a) * len(b), role)
            for m, (u, q) in enumerate(part):   # rows: a fastest, then b; current into b is -I(ammeter)
                out[u, :, :, q] = -rows[:, m].reshape(len(b), len(a)).T
        return out

    table = _timed(spec, role, text, params, [a, b, p], compute, stats)
    return SynapseTable(a, b, p, table)


def _check(rows, points, role) -> None:
    if rows.shape[0] != points or not np.all(np.isfinite(rows)):
        raise SpiceError(f"ngspice did not finish the DC sweep of {role.role} {role.subckt} "
                         f"({rows.shape[0]} of {points} points)")


def _timed(spec, role, text, params, grids, compute, stats):
    start = time.perf_counter()
    table, hit = _cached(spec, role, text, params, grids, compute)
    if stats is not None:
        stats[role.role] = {"instances": len(params), "cached": hit, "seconds": time.perf_counter() - start}
    return table
