"""Operating points of a compiled circuit in ngspice, a whole minibatch per call.

:class:`SpiceSolver` has the interface of
:class:`analogprop.circuit.solver.CircuitSolver` (``solve(circuit, x, y,
beta, start) -> Relaxation``, node voltages per layer), so the circuit
driver can use either.  One call writes the netlist of the minibatch
(:mod:`.netlist`, inputs and targets tabulated against the sample index),
loads it once and runs one DC sweep:

* free phase: ``dc vsel 0 N-1 1``;
* nudged phase: ``dc vnb 0 b b vsel 0 N-1 1``, i.e. for each sample its
  free point and then, continuing from it, its nudged point (Eq. 13, 25).

Where the netlist steps its op-amps' gain (:func:`.netlist.gain_stepped`),
each phase is one gain-stepped sweep (:func:`.netlist.sweep`), the nudged
one with ``vnb`` set to beta.

Only the state nodes are saved and read.  Convergence is judged here, not
from ngspice's messages: a sample is converged when its KCL residual
``max |I| / gtot`` (volts, as the fast solver) is within ``tol``.  Samples
the sweep did not reach or left above tolerance go down a ladder: a
single-sample sweep with more gmin and source steps, then a transient run
of the same netlist (capacitors included) to its end; a sample that still
fails is reported as unconverged with its best voltages.

:meth:`SpiceSolver.from_start` instead starts ngspice's Newton method at given
node voltages (``.nodeset``, one single-sample netlist and ``op`` per sample):
it checks another solver's operating points in ngspice where ngspice, started
from 0 V, does not converge.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, check_finite
from ..model.relax import Relaxation
from .engine import engine
from .netlist import gain_stepped, netlist, state_nodes, sweep

#: Options of the second rung of the ladder (ngspice's own op ladder, longer).
STEPPING = "option gminsteps=100 srcsteps=100 itl1=1000 itl2=1000"


def kcl_residual(circuit, V, x, y=None, beta: float = 0.0) -> np.ndarray:
    """Per sample max |I| / g over the free nodes (volts): 0 at an operating point.

    ``g`` is the conductance the node sees, its clamp's included where the
    clamp conducts, so the residual is how far (in volts) each node is from
    the voltage its currents balance at, as for the fast solver.
    """
    if circuit.vground:
        from ..circuit.vground import residual

        return residual(circuit, V, x, y, beta)
    out = []
    for k, i in enumerate(circuit.currents(V, x, y, beta), start=1):
        g = circuit.conductance(k, beta)
        if circuit.clamped:
            v = circuit.values
            g = g + v[f"clamp{k}"] * ((V[k - 1] > v[f"clamp_hi{k}"]) | (V[k - 1] < v[f"clamp_lo{k}"]))
        out.append(np.abs(i / g).max(axis=1))
    return np.max(out, axis=0)


@dataclass
class SpiceSolver:
    """Batched ngspice operating points; ``tol`` in volts on the KCL residual."""

    tol: float = 1e-6
    workdir: Path | None = None
    transient_fallback: bool = True
    transient_taus: float = 300.0
    stats: dict = field(default_factory=lambda: {"calls": 0, "points": 0, "solved": 0, "ladder": 0,
                                                         "transient": 0, "failed": 0})

    def __post_init__(self):
        if not (np.isfinite(self.tol) and self.tol > 0):
            raise ConfigError(f"ngspice solver tolerance must be a finite number > 0 (volts), got {self.tol}")
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="analogprop-spice-")
            self.workdir = Path(self._tmp.name)
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.netlist_path = self.workdir / "minibatch.cir"

    # -- one call -------------------------------------------------------------
    def load(self, circuit, x, y=None, title="minibatch", lines=()):
        """Write the minibatch netlist (with extra control ``lines``) and load it into ngspice; returns the
        engine."""
        eng = engine()
        text = netlist(circuit, x, y, title=title, analysis=False)
        saves = " ".join(state_nodes(circuit))
        text = text.replace("\n.end\n", "\n" + "".join(f"{ln}\n" for ln in lines) + f".save {saves}\n.end\n")
        self.netlist_path.write_text(text)
        eng.load(text, self.netlist_path)
        return eng

    def _inputs(self, circuit, x, y, beta):
        """Checked inputs and (nudged) targets."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != circuit.sizes[0]:
            raise ConfigError(f"inputs have shape {x.shape}; the circuit expects (batch, {circuit.sizes[0]})")
        check_finite("inputs", x)
        if not beta:
            return x, None
        y = np.asarray(y, dtype=float)
        if y.shape != (x.shape[0], circuit.sizes[-1]):
            raise ConfigError(f"targets have shape {y.shape}; expected ({x.shape[0]}, {circuit.sizes[-1]})")
        check_finite("targets", y)
        return x, y

    def from_start(self, circuit, x, start, y=None, beta: float = 0.0) -> Relaxation:
        """Each sample's operating point from ngspice's Newton method started at ``start`` (node voltages per
        layer, as a solver returns them), written as ``.nodeset``; ``op`` on a single-sample netlist."""
        beta = float(beta)
        x, y = self._inputs(circuit, x, y, beta)
        names = state_nodes(circuit)
        flat = np.concatenate([np.asarray(s, float) for s in start], axis=1)
        if flat.shape != (x.shape[0], len(names)):
            raise ConfigError(f"start voltages have shape {flat.shape}; expected ({x.shape[0]}, {len(names)})")
        check_finite("start voltages", flat)
        out = np.full(flat.shape, np.nan)
        for i in range(x.shape[0]):
            nodeset = [".nodeset " + " ".join(f"v({n})={float(v)!r}" for n, v in zip(names[j:j + 8], flat[i, j:j + 8]))
                       for j in range(0, len(names), 8)]
            eng = self.load(circuit, x[i:i + 1], None if y is None else y[i:i + 1], "from start", nodeset)
            if beta:
                eng.exec_command(f"alter vnb dc = {beta!r}")
            eng.exec_command("op")
            rows = eng.vectors(names)
            eng.release()
            if rows.shape[0]:
                out[i] = rows[-1]
        V = np.split(np.nan_to_num(out), _edges(circuit), axis=1)
        residual = kcl_residual(circuit, V, x, y, beta)
        residual[~np.isfinite(out).all(axis=1)] = np.inf
        return Relaxation(V, residual, np.ones(len(x), np.int64), residual <= self.tol)

    def solve(self, circuit, x, y=None, beta: float = 0.0, start=None) -> Relaxation:
        """Operating points of all samples; the nudged phase continues from each sample's free point.

        ngspice recomputes each sample's free point right before its nudged
        one; ``start`` only fills the voltages of samples that no rung of the
        ladder could solve (reported unconverged).
        """
        beta = float(beta)
        x, y = self._inputs(circuit, x, y, beta)
        eng = self.load(circuit, x, y)
        names = state_nodes(circuit)
        n = x.shape[0]
        flat = np.full((n, len(names)), np.nan)
        steps = np.ones(n, dtype=np.int64)
        missing = self._sweeps(eng, circuit, n, beta, names, flat)
        split = _edges(circuit)
        V = np.split(np.nan_to_num(flat), split, axis=1)
        residual = kcl_residual(circuit, V, x, y, beta)
        residual[missing] = np.inf
        bad = np.flatnonzero(~(residual <= self.tol))
        for i in bad:
            steps[i] = self._ladder(eng, circuit, i, x, y, beta, names, flat, residual)
        eng.release()
        lost = ~np.isfinite(flat).all(axis=1)   # nothing usable even from the ladder: keep the start
        if lost.any():
            flat[lost] = 0.0 if start is None else np.concatenate([np.asarray(s, float) for s in start], axis=1)[lost]
        self.stats["calls"] += 1
        self.stats["points"] += n                          # operating points delivered
        self.stats["solved"] += n * (2 if beta else 1)     # sweep points ngspice solved
        ok = residual <= self.tol
        self.stats["failed"] += int(np.count_nonzero(~ok))
        return Relaxation(np.split(flat, split, axis=1), residual, steps, ok)

    # -- the sweep --------------------------------------------------------------
    @staticmethod
    def _commands(circuit, beta, first, last) -> tuple[list[str], int]:
        """ngspice commands of one phase over samples first..last, and the rows per sample (the last is the
        phase's operating point)."""
        dc, rows = sweep(circuit, first, last)
        if not beta:
            return [dc], rows
        if gain_stepped(circuit):
            return [f"alter vnb dc = {beta!r}", dc], rows
        return [f"dc vnb 0 {beta!r} {beta!r} vsel {first} {last} 1"], 2

    def _run(self, eng, circuit, beta, first, last, names) -> tuple[np.ndarray, int]:
        commands, per = self._commands(circuit, beta, first, last)
        for command in commands:
            eng.exec_command(command)
        rows = eng.vectors(names)
        eng.release()
        return rows, per

    def _sweeps(self, eng, circuit, n, beta, names, flat) -> np.ndarray:
        """Run the sweep, restarting after any sample at which ngspice aborts; returns the samples it skipped."""
        first, skipped = 0, []
        while first < n:
            rows, per = self._run(eng, circuit, beta, first, n - 1, names)
            done = min(rows.shape[0] // per, n - first)
            flat[first:first + done] = rows[per - 1::per][:done]
            first += done
            if first < n:          # ngspice gave up at this sample: leave it to the ladder
                skipped.append(first)
                first += 1
        return np.array(skipped, dtype=np.int64)

    def free_and_nudged(self, circuit, x, y, beta: float):
        """ngspice's own sweeps from 0 V, no ladder: every sample's free and nudged node voltages (as the
        phases of :meth:`solve` run them), each split per layer; samples ngspice did not reach are NaN."""
        beta = float(beta)
        x, y = self._inputs(circuit, x, y, beta)
        eng, names, n = self.load(circuit, x, y), state_nodes(circuit), x.shape[0]
        if gain_stepped(circuit) or not beta:   # one sweep per phase
            runs = [self._run(eng, circuit, b, 0, n - 1, names) for b in (0.0, beta)]
            phases = [rows[per - 1::per] for rows, per in runs]
        else:                       # one sweep: each sample's free point, then its nudged point
            rows, _ = self._run(eng, circuit, beta, 0, n - 1, names)
            phases = [rows[0::2], rows[1::2]]
        out = []
        for rows in phases:
            flat = np.full((n, len(names)), np.nan)
            flat[:len(rows)] = rows[:n]
            out.append(np.split(flat, _edges(circuit), axis=1))
        return out

    # -- the convergence ladder ---------------------------------------------------
    def _ladder(self, eng, circuit, i, x, y, beta, names, flat, residual) -> int:
        """Retry sample i: stepping options, then a transient run; keeps the best voltages. Returns the rung."""
        self.stats["ladder"] += 1
        split = _edges(circuit)

        def judge(row):
            if row is None or not np.all(np.isfinite(row)):
                return False
            V = np.split(row[None], split, axis=1)
            r = kcl_residual(circuit, V, x[i:i + 1], None if y is None else y[i:i + 1], beta)[0]
            if r < residual[i]:
                residual[i], flat[i] = r, row
            return r <= self.tol

        eng.exec_command(STEPPING)
        rows, per = self._run(eng, circuit, beta, i, i, names)
        if judge(rows[-1] if rows.shape[0] == per else None):
            return 2
        if not self.transient_fallback:
            return 2
        self.stats["transient"] += 1
        judge(self._transient_point(eng, circuit, i, beta, names))
        return 3

    def _transient_point(self, eng, circuit, i, beta, names):
        """Last point of a transient run of sample i from 0 V (inputs and nudge on from t = 0)."""
        keys = ("cf", "gf") if circuit.vground else ("cap", None)
        tau = max(float(np.max(circuit.values[f"{keys[0]}{k}"] / (circuit.values[f"gf{k}"] if keys[1] else
                                                                  circuit.conductance(k, beta))))
                  for k in range(1, circuit.n_layers + 1)) * circuit.c_unit / circuit.g_unit
        stop = self.transient_taus * tau
        eng.exec_command(f"alter vsel dc = {i}")
        eng.exec_command(f"alter @vnb[pwl] = [ 0 {beta!r} {stop!r} {beta!r} ]")
        eng.exec_command(f"tran {stop / 1000!r} {stop!r} uic")
        rows = eng.vectors(names)
        eng.release()
        return rows[-1] if rows.shape[0] else None


def _edges(circuit):
    """Split points of the flat state vector into layers (vground: two nodes per neuron)."""
    per = 2 if circuit.vground else 1
    return np.cumsum([per * n for n in circuit.sizes[1:-1]])
