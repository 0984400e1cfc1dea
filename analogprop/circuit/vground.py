"""The virtual-ground crossbar (level ``vground``): device equations and the fast Newton solver.

State of dynamic layer k per sample: ``(n, 2 n_k)`` = ``[V_col | V_out]``,
the column (op-amp inverting input) and stage-output voltages; the neuron's
state is ``h = -V_out`` (V_r = 1 V).  For column i of layer k
(:mod:`.description`, :mod:`.nonideal`):

* devices into the column: ``I_dev = sum G f(V_drive - V_col)`` over the
  pairs from the rows (drives ``r`` and ``rb`` of layers k-1 and k+1) and
  the bias pair from ``+-v_rail``; ``f(v) = V0 sinh(v / V0)`` or ``v``;
* feedback ``g_f`` (and, nudged, a second switched resistor ``beta nu``)
  from the output to the column, a switched resistor ``beta nu`` from the
  target source ``y`` to the column, and the optional limiter
  ``clamp(x) = g_cl (max(x - hi, 0) + min(x - lo, 0))`` from column to
  output, ``x = V_col - V_out``, or its diodes ``clamp(x) = I_D(x - hi) - I_D(lo - x)``
  (:func:`.nonideal.diode_branch`: Shockley's law with series resistance);
* KCL at the column: ``I_dev + bn (V_y - V_col) - g_l x - clamp(x) = 0``,
  ``g_l = g_f + bn``, ``bn = beta nu``;
* the op-amp: ``e = clip(A (V_os - V_col), -rail, rail)`` behind ``R_out``:
  ``e - V_out + R_out (g_l x + clamp(x)) = 0`` (ideal: ``V_col = V_os``).

Given the rows' drives each column is one monotone scalar equation
(:func:`column_solve`); inside it, ``x`` given the feedback current solves
``g_l x + clamp(x) = g_l t`` (closed form for the limiter, safeguarded
Newton for the diodes).  :class:`VgroundSolver` sweeps the layers (block
Gauss-Seidel) and finishes unconverged samples with a damped Newton method
on the stage outputs, then, as fallbacks, the continuation of the Newton
homotopy (:mod:`.homotopy`; walked piece by piece when every device is
piecewise linear), gmin stepping (an extra conductance across every feedback
path, stepped down to 0) and source stepping (inputs, rails and targets scaled
up from 0.1); a sample is converged only when :func:`residual` at the answer is
within ``tol`` volts.

Wire resistance (:mod:`.wires`): with linear devices each tile is reduced once per programming to the
conductances seen from its column nodes, ``I = Gd V_drive - Gc V_col``.  The columns keep the form above with
effective ``W`` (from ``Gd``), ``S = diag(Gc)`` and the coupling ``-(Gc - diag(Gc)) V_col`` through the wires:
a constant with ideal op-amps (``V_col = V_os``), and with a finite gain taken at the state's column voltages
(lagged by one sweep or Newton step, exact in :func:`residual`; the columns move by ``V_out / A``, so it settles
at once).  With sinh devices each tile's network is solved per sample (:class:`.wires.SinhTile`) and each column
sees its current linearised in its own voltage, the other columns' moves lagged likewise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lu_factor, lu_solve
from scipy.sparse.linalg import LinearOperator, gmres

from ..errors import ConfigError
from ..model.relax import Relaxation
from .homotopy import follow_path
from .nonideal import diode_branch
from .solver import check_settings
from .wires import effective, layer_tiles, wired


def split(circuit, k, s):
    """(V_col, V_out) of layer k's state array."""
    n = circuit.sizes[k]
    return s[..., :n], s[..., n:]


class Layer:
    """Layer k's devices folded for fast evaluation (recomputed when the circuit is reprogrammed)."""

    def __init__(self, circuit, k):
        v, L, nid = circuit.values, circuit.n_layers, circuit.nonideal
        self.k, self.v0 = k, nid.device_v0
        self.linear = not np.isfinite(self.v0)
        self.sinh_tiles = None   # sinh devices with wires: each tile's network solved per sample
        if wired(circuit) and not self.linear:
            rail = circuit.design.v_rail
            sources = {f"fwd{k - 1}_p": (k - 1, "r"), f"fwd{k - 1}_n": (k - 1, "rb")}
            if k < L:
                sources |= {f"bwd{k}_p": (k + 1, "r"), f"bwd{k}_n": (k + 1, "rb")}
            if circuit.has_bias:
                sources |= {f"bias{k}_p": (rail, "rail"), f"bias{k}_n": (-rail, "rail")}
            self.sinh_tiles = [(layer_tiles(circuit, k)[key], src) for key, src in sources.items()]
        # with wire resistance, the tiles as seen from the column nodes (ideal op-amps: V_col = V_os, fixed)
        arrays, Gc = effective(circuit, k) if wired(circuit) and self.linear else (v, None)
        self.groups = [(arrays[f"fwd{k - 1}_p"], k - 1, "r"), (arrays[f"fwd{k - 1}_n"], k - 1, "rb")]
        if k < L:
            self.groups += [(arrays[f"bwd{k}_p"], k + 1, "r"), (arrays[f"bwd{k}_n"], k + 1, "rb")]
        rail = circuit.design.v_rail
        self.rails = [(arrays[f"bias{k}_p"], rail), (arrays[f"bias{k}_n"], -rail)] if circuit.has_bias else []
        ig = lambda j: v[f"inv_gain{j}"]
        io = lambda j: v[f"inv_offset{j}"]
        self.W = {j: sum(G * (1.0 if kind == "r" else -ig(j)) for G, jj, kind in self.groups if jj == j)
                  for j in {g[1] for g in self.groups}}
        self.const = sum(G @ io(j) for G, j, kind in self.groups if kind == "rb") + sum(G * u for G, u in self.rails)
        self.gf, self.vos = v[f"gf{k}"], v[f"vos{k}"]
        self.coupling = None   # the wires' coupling of the column nodes, with a finite gain (Gc off its diagonal)
        if Gc is None:
            self.S = sum(G.sum(1) for G, _, _ in self.groups) + sum(G for G, _ in self.rails)
            self.col_const = 0.0
        else:
            self.S = np.diag(Gc).copy()
            off = Gc - np.diag(self.S)
            self.col_const = -off @ self.vos
            if np.isfinite(nid.opamp_gain):
                self.coupling = off
        self.clamp = self.diode = None
        if circuit.diode_clamped:   # (lo, hi, Is, n V_T, Rs) in the normalised units
            self.diode = (v[f"clamp_lo{k}"], v[f"clamp_hi{k}"], nid.diode_is_t / circuit.g_unit, nid.diode_nvt,
                          nid.diode_rs * circuit.g_unit)
        elif circuit.clamped:
            self.clamp = (v[f"clamp{k}"], v[f"clamp_lo{k}"], v[f"clamp_hi{k}"])
        self.A, self.R, self.rail = nid.opamp_gain, nid.opamp_rout * circuit.g_unit, nid.opamp_rail

    def _tile_solves(self, r, rb, vc, scale, layer=None):
        """Each sinh tile solved at the drives and column voltages (only those driven by ``layer``, if
        given): yields (tile, source, its solve)."""
        n = vc.shape[0]
        for ts, (j, kind) in self.sinh_tiles:
            if layer is not None and (kind == "rail" or j != layer):
                continue
            vd = np.full((n, 1), scale * j) if kind == "rail" else (r if kind == "r" else rb)[j]
            for t in ts:
                yield t, (j, kind), t.solve(vd[:, t.cols], vc[:, t.rows])

    def aggregate(self, r, rb, vc, scale=1.0):
        """Drive aggregates (a1, a2) with I_dev(V_col) = a1 - a2 V_col (linear) or V0 (cosh(b) a1 - sinh(b) a2);
        ``vc`` the column voltages the wires' coupling is taken at.  Sinh devices with wires: the current and
        its slope in the column's own voltage at ``vc`` (the other columns' moves lagged, as the wires'
        coupling of linear devices), ``(I, dI/dV_col, vc)``."""
        if self.sinh_tiles is not None:
            current, slope = np.zeros(vc.shape), np.zeros(vc.shape)
            for t, _, (i, d, _) in self._tile_solves(r, rb, vc, scale):
                current[:, t.rows] += i
                slope[:, t.rows] += np.diagonal(d[:, :, t.h:], axis1=1, axis2=2)
            return current, slope, vc.copy()
        if self.linear:
            couple = self.col_const if self.coupling is None else -(vc @ self.coupling.T)
            a1 = scale * self.const + couple + sum(r[j] @ W.T for j, W in self.W.items())
            return a1, self.S
        a1 = a2 = 0.0
        for G, j, kind in self.groups:
            d = (r if kind == "r" else rb)[j] / self.v0
            a1, a2 = a1 + np.sinh(d) @ G.T, a2 + np.cosh(d) @ G.T
        for G, u in self.rails:
            a1, a2 = a1 + G * np.sinh(scale * u / self.v0), a2 + G * np.cosh(scale * u / self.v0)
        return a1, a2

    def device_current(self, agg, vc):
        """I_dev and dI_dev / dV_col."""
        if self.sinh_tiles is not None:
            current, slope, at = agg
            return current + slope * (vc - at), slope
        a1, a2 = agg
        if self.linear:
            return a1 - a2 * vc, -a2 + 0 * vc
        b = vc / self.v0
        ch, sh = np.cosh(b), np.sinh(b)
        return self.v0 * (ch * a1 - sh * a2), sh * a1 - ch * a2

    def drive_jacobian(self, r, rb, vc, j, inv_gain):
        """dI_dev / dr_j, (batch, n_k, n_j) (linear: one shared matrix (n_k, n_j))."""
        if self.sinh_tiles is not None:
            out = np.zeros((vc.shape[0], vc.shape[1], r[j].shape[1]))
            for t, (_, kind), (_, d, _) in self._tile_solves(r, rb, vc, 1.0, layer=j):
                sign = 1.0 if kind == "r" else -inv_gain[t.cols][None, None, :]
                out[:, t.rows, t.cols] += sign * d[:, :, :t.h]
            return out
        if self.linear:
            return self.W[j]
        out = 0.0
        for G, jj, kind in self.groups:
            if jj != j:
                continue
            d = (r if kind == "r" else rb)[j]
            c = np.cosh((d[:, None, :] - vc[:, :, None]) / self.v0) * G[None]
            out = out + (c if kind == "r" else -c * inv_gain[None, None, :])
        return out


def _clamp(lay, x):
    """Clamp current (column -> output) and its slope."""
    if lay.diode is not None:
        lo, hi, i_s, nvt, rs = lay.diode
        a, da = diode_branch(x - hi, i_s, nvt, rs)
        b, db = diode_branch(lo - x, i_s, nvt, rs)
        return a - b, da + db
    if lay.clamp is None:
        return 0.0, 0.0
    g, lo, hi = lay.clamp
    return g * (np.maximum(x - hi, 0.0) + np.minimum(x - lo, 0.0)), g * ((x > hi) * 1.0 + (x < lo))


def _solve_x(lay, t, gl):
    """x with g_l x + clamp(x) = g_l t (monotone) and dx/dt."""
    if lay.diode is not None:
        return _solve_diode_x(lay, t, gl)
    if lay.clamp is None:
        return t, np.ones_like(t)
    g, lo, hi = lay.clamp
    q = g / gl
    # candidate roots of each linear piece; pick the consistent one (pieces ordered: below lo, window, above hi)
    below = (t + q * lo) / (1 + q)
    above = (t + q * hi) / (1 + q)
    inv = hi < lo
    both = (t + q * (lo + hi)) / (1 + 2 * q)
    a, b = np.minimum(lo, hi), np.maximum(lo, hi)
    mid = np.where(inv, both, t)
    x = np.where(below < a, below, np.where(above > b, above, mid))
    s = np.where((below < a) | (above > b), 1 / (1 + q), np.where(inv, 1 / (1 + 2 * q), 1.0))
    return x, s


def _solve_diode_x(lay, t, gl, iters=100):
    """:func:`_solve_x` with diode clamps: Newton from ``t``, kept by bisection within the bracket between
    ``t`` and the clamps' zero-current point ``(lo + hi) / 2``."""
    mid = 0.5 * (lay.diode[0] + lay.diode[1])
    x = t + 0.0 * mid
    a, b = np.minimum(x, mid), np.maximum(x, mid)
    for _ in range(iters):
        cl, dcl = _clamp(lay, x)
        f = gl * (x - t) + cl
        a, b = np.where(f < 0, x, a), np.where(f > 0, x, b)
        step = f / (gl + dcl)
        done = np.abs(step) <= 1e-15 * (1 + np.abs(x))   # Newton's step is below rounding: x is the root
        new = x - step
        x = np.where(done, x, np.where((new > a) & (new < b), new, 0.5 * (a + b)))
        if done.all():
            break
    return x, gl / (gl + _clamp(lay, x)[1])


def column_solve(lay, agg, bn, inj, gmin=0.0, vc0=None, iters=60):
    """Operating point of every column of a layer given its drives.

    ``bn`` the nudge conductance, ``inj`` = ``bn V_y`` (the target's current at V_col = 0), ``gmin`` an
    extra conductance across the feedback path (gmin stepping).  Returns V_col, V_out and dV_out / dI
    (the sensitivity to a drive current).
    """
    gl = lay.gf + bn + gmin

    def inner(vc):
        i, di = lay.device_current(agg, vc)
        t = (i + inj - bn * vc) / gl
        x, s = _solve_x(lay, t, gl)
        return x, s, (di - bn) / gl

    if not np.isfinite(lay.A):
        vc = np.broadcast_to(lay.vos, agg[0].shape if np.ndim(agg[0]) == 2 else np.shape(agg[0])) + 0.0
        x, s, _ = inner(vc)
        return vc, vc - x, -s / gl
    A, R, rail = lay.A, lay.R, lay.rail

    def fo(vc):
        x, s, dt = inner(vc)
        u = A * (lay.vos - vc)
        e = np.clip(u, -rail, rail)
        cl, dcl = _clamp(lay, x)
        f = e - vc + x + R * (gl * x + cl)
        dx = s * dt
        kx = 1 + R * (gl + dcl)
        df = np.where(np.abs(u) < rail, -A, 0.0) - 1 + kx * dx
        return f, df, x, s, kx

    def settled(f, df, vc):
        return np.abs(f) <= 1e-15 * (1 + np.abs(df) * np.maximum(np.abs(vc), 1e-3))

    def finish(vc, out):
        f, df, x, s, kx = out
        dvc = -(kx * s / gl) / df
        i, di = lay.device_current(agg, vc)
        dx = s / gl + s * (di - bn) / gl * dvc
        return vc, vc - x, dvc - dx

    shape = np.shape(agg[0])
    vc = np.broadcast_to(lay.vos, shape) + 0.0 if vc0 is None else np.array(vc0, float)
    # from a start near the answer (the previous sweep's), plain Newton steps usually settle every column
    trial = vc
    for _ in range(4):
        out = fo(trial)
        if settled(out[0], out[1], trial).all():
            return finish(trial, out)
        trial = trial - out[0] / out[1]
        if not np.isfinite(trial).all():
            break
    # otherwise: bracket around the start (V_col - V_os = -e / A is small), widened until f(lo) > 0 > f(hi)
    bound = 20.0 if lay.linear else min(20.0, 250 * lay.v0)   # |V_col| limit (sinh stays finite)
    width = np.full(shape, max(1e-12, 1.0 / A))
    lo, hi = np.maximum(vc - width, -bound), np.minimum(vc + width, bound)
    flo, fhi = fo(lo)[0], fo(hi)[0]
    for _ in range(40):
        out = (flo <= 0) | (fhi >= 0)
        if not out.any():
            break
        width = np.where(out, 8 * width, width)
        lo = np.where(flo <= 0, np.maximum(vc - width, -bound), lo)
        hi = np.where(fhi >= 0, np.minimum(vc + width, bound), hi)
        flo, fhi = np.where(flo <= 0, fo(lo)[0], flo), np.where(fhi >= 0, fo(hi)[0], fhi)
    vc = np.clip(vc, lo, hi)
    side = np.zeros(shape)
    for _ in range(iters):   # Newton, safeguarded by false position (Illinois) inside the bracket
        f, df, x, s, kx = fo(vc)
        done = settled(f, df, vc)
        up = f > 0
        lo, flo = np.where(up, vc, lo), np.where(up, f, flo)
        hi, fhi = np.where(up, hi, vc), np.where(up, fhi, f)
        # Illinois: halve the stale end's value when the same end moves twice
        fhi = np.where(up & (side > 0), 0.5 * fhi, fhi)
        flo = np.where(~up & (side < 0), 0.5 * flo, flo)
        side = np.where(up, 1.0, -1.0)
        new = vc - f / df
        bad = ~((new > lo) & (new < hi))
        secant = (lo * fhi - hi * flo) / (fhi - flo)
        new = np.where(bad, secant, new)
        done |= hi - lo <= 1e-15 + 1e-14 * np.abs(vc)
        vc = np.where(done, vc, new)
        if done.all():
            break
    return finish(vc, fo(vc))


def residual(circuit, V, x, y=None, beta: float = 0.0) -> np.ndarray:
    """Per sample max over nodes of each equation in volts: KCL at the column over its conductance, and the
    op-amp equation over its slope in V_col (ideal op-amp: V_col - V_os)."""
    L, nid = circuit.n_layers, circuit.nonideal
    r, rb = drives(circuit, V, x)
    out = []
    for k in range(1, L + 1):
        lay = Layer(circuit, k)
        vc, vo = split(circuit, k, V[k - 1])
        bn, inj = nudge_terms(circuit, k, y, beta)
        gl = lay.gf + bn
        i, di = lay.device_current(lay.aggregate(r, rb, vc), vc)
        xx = vc - vo
        cl, dcl = _clamp(lay, xx)
        kcl = (i + inj - bn * vc - gl * xx - cl) / (gl + dcl - di)
        if np.isfinite(lay.A):
            u = lay.A * (lay.vos - vc)
            e = np.clip(u, -lay.rail, lay.rail)   # input-referred: over the equation's slope in V_col
            amp = (e - vo + lay.R * (gl * xx + cl)) / (1 + lay.R * (gl + dcl) + lay.A * (np.abs(u) < lay.rail))
        else:
            amp = vc - lay.vos
        out.append(np.maximum(np.abs(kcl).max(axis=1), np.abs(amp).max(axis=1)))
    return np.max(out, axis=0)


def nudge_terms(circuit, k, y, beta, scale=1.0):
    """(bn, bn V_y) of layer k: the switched nudge resistors' conductance and the target's current at V_col = 0."""
    if k != circuit.n_layers or not beta:
        return 0.0, 0.0
    bn = beta * circuit.values["nudge"]
    return bn, bn * scale * circuit.target(y)


def drives(circuit, V, x, scale=1.0):
    """Row drives r{k} (k = 0..L) and their inverted copies rb{k} of states V."""
    r = [scale * circuit.inputs(x)] + [circuit.buffer(k, split(circuit, k, V[k - 1])[1])
                                       for k in range(1, circuit.n_layers + 1)]
    return r, [circuit.inverter(k, rk) for k, rk in enumerate(r)]


#: sweeps before a sample whose sweeps stop contracting is handed to Newton
_STALL_AFTER = 10
#: where a sweep costs about what a Newton step does (sinh tiles, solved per sample): a sample whose sweeps,
#: at their last contraction, would need more than this many more to settle is handed to Newton
_PATIENCE = 20
#: most unsaturated neurons a Newton step solves by LU (more: GMRES); 2,048 is a 32 MB matrix
_DENSE_MAX = 2048


def _dense_drive_jacobian(blocks, edges, b):
    """The drive Jacobian of every stage output on every other as one (N, N) matrix (sample b's for
    per-sample blocks)."""
    out = np.zeros((edges[-1], edges[-1]))
    for (k, j), D in blocks.items():
        out[edges[k - 1]:edges[k], edges[j - 1]:edges[j]] = D if D.ndim == 2 else D[b]
    return out


def _buffer_slopes(circuit, vo, edges):
    """dr/dV_out of every stage output, (n, N) for the stacked outputs ``vo`` (n, N)."""
    return np.concatenate([circuit.buffer_slope(j, vo[:, edges[j - 1]:edges[j]])
                           for j in range(1, circuit.n_layers + 1)], axis=1)


def _drive_blocks(circuit, lays, r, rb, cols):
    """The drive Jacobian's blocks dI_k / dr_j of the neighbouring layers (shared matrices for linear devices,
    per sample for sinh devices)."""
    L = circuit.n_layers
    return {(k, j): lays[k - 1].drive_jacobian(r, rb, cols[k - 1], j, circuit.values[f"inv_gain{j}"])
            for k in range(1, L + 1) for j in (k - 1, k + 1) if 1 <= j <= L}


@dataclass
class VgroundSolver:
    """Sweeps, damped Newton, gmin and source stepping; ``tol`` in volts (see :func:`residual`)."""

    tol: float = 1e-10
    max_sweeps: int = 200
    newton_iters: int = 50
    path_pieces: int = 1000   # most linear pieces (or steps) a path follows, per path and restart

    def __post_init__(self):
        check_settings(self)
        if int(self.path_pieces) < 0:
            raise ConfigError(f"vground solver path_pieces must be >= 0, got {self.path_pieces}")
        self._cache = (None, None)

    def layers(self, circuit):
        key = (id(circuit), circuit.revision)
        if self._cache[0] != key:
            self._cache = (key, [Layer(circuit, k) for k in range(1, circuit.n_layers + 1)])
        return self._cache[1]

    def solve(self, circuit, x, y=None, beta: float = 0.0, start=None) -> Relaxation:
        x = np.asarray(x, float)
        n, L = x.shape[0], circuit.n_layers
        y = None if not beta else np.asarray(y, float)
        lays = self.layers(circuit)
        if start is None:
            V = [np.concatenate([np.broadcast_to(lay.vos, (n, s)), np.zeros((n, s))], axis=1)
                 for lay, s in zip(lays, circuit.sizes[1:])]
        else:
            V = [np.array(s, float) for s in start]
        steps = np.zeros(n, np.int64)
        V, steps = self._sweeps(circuit, lays, V, x, y, beta, steps)
        res = residual(circuit, V, x, y, beta)
        bad = np.flatnonzero(~(res <= self.tol))
        if bad.size and self.newton_iters:
            for mode in ("newton", "path", "gmin", "source"):
                sub = [v[bad] for v in V]
                yb = None if y is None else y[bad]
                sub, its = self._continue(circuit, lays, sub, x[bad], yb, beta, mode)
                r2 = residual(circuit, sub, x[bad], yb, beta)
                better = r2 < res[bad]
                for v, s in zip(V, sub):
                    v[bad[better]] = s[better]
                res[bad[better]] = r2[better]
                steps[bad] += its
                bad = np.flatnonzero(~(res <= self.tol))
                if not bad.size:
                    break
        return Relaxation(V, res, steps, res <= self.tol)

    # -- block Gauss-Seidel -----------------------------------------------------
    def _sweep(self, circuit, lays, V, x, y, beta, gmin=0.0, scale=1.0):
        r, rb = drives(circuit, V, x, scale)
        change = np.zeros(x.shape[0])
        for k, lay in enumerate(lays, start=1):
            bn, inj = nudge_terms(circuit, k, y, beta, scale)
            vc0, vo0 = split(circuit, k, V[k - 1])
            vc, vo, _ = column_solve(lay, lay.aggregate(r, rb, vc0, scale), bn, inj, gmin, vc0)
            change = np.maximum(change, np.abs(vo - vo0).max(axis=1))
            V[k - 1] = np.concatenate([vc, vo], axis=1)
            r[k] = circuit.buffer(k, vo)
            rb[k] = circuit.inverter(k, r[k])
        return change

    def _sweeps(self, circuit, lays, V, x, y, beta, steps):
        rows = np.arange(x.shape[0])
        out = [v.copy() for v in V]
        act = [v.copy() for v in V]
        prev = np.full(x.shape[0], np.inf)
        costly = any(lay.sinh_tiles is not None for lay in lays)
        for sweep in range(1, self.max_sweeps + 1):
            xs, ys = x[rows], None if y is None else y[rows]
            change = self._sweep(circuit, lays, act, xs, ys, beta)
            steps[rows] = sweep
            # settled, or (after a few sweeps) no longer contracting, or contracting too slowly: left to Newton
            slow = change > 0.95 * prev
            if costly:
                with np.errstate(divide="ignore", invalid="ignore"):
                    more = np.log(0.1 * self.tol / change) / np.log(change / prev)
                slow |= more > _PATIENCE
            done = (change <= 0.1 * self.tol) | ((sweep >= _STALL_AFTER) & slow)
            if sweep == self.max_sweeps:
                done[:] = True
            prev = change
            if done.any():
                for o, a in zip(out, act):
                    o[rows[done]] = a[done]
                rows, act, prev = rows[~done], [a[~done] for a in act], prev[~done]
            if not rows.size:
                break
        return out, steps

    # -- Newton and its fallbacks -----------------------------------------------------
    def _targets(self, circuit, lays, V, x, y, beta, gmin, scale):
        """T(V): every layer's stage outputs given its neighbours' drives (Jacobi), with dV_out/dI."""
        r, rb = drives(circuit, V, x, scale)
        T, sens, cols = [], [], []
        for k, lay in enumerate(lays, start=1):
            bn, inj = nudge_terms(circuit, k, y, beta, scale)
            vc0, _ = split(circuit, k, V[k - 1])
            vc, vo, d = column_solve(lay, lay.aggregate(r, rb, vc0, scale), bn, inj, gmin, vc0)
            T.append(vo), sens.append(d), cols.append(vc)
        return T, sens, cols, r, rb

    def _newton(self, circuit, lays, V, x, y, beta, gmin, scale, iters):
        """Damped Newton on F(V_out) = V_out - T(V_out), the stacked stage outputs of every layer.

        F's Jacobian is ``I - M`` with ``M = S D B`` (S: each column's dV_out/dI, D: the block-tridiagonal drive
        Jacobian, i.e. the crossbar's W blocks, B: the buffers' slopes).  M's columns vanish wherever a buffer
        sits at a rail, so per sample only the m unsaturated neurons (P) enter a dense solve:
        ``(I - M_PP) u = -F_P``, then ``step = -F + M[:, P] u``.
        """
        sizes, L = circuit.sizes[1:], circuit.n_layers
        edges = np.concatenate([[0], np.cumsum(sizes)])
        n = x.shape[0]
        vo = np.concatenate([split(circuit, k, V[k - 1])[1] for k in range(1, L + 1)], axis=1)
        vc = [split(circuit, k, V[k - 1])[0] for k in range(1, L + 1)]

        def pack(vo, vc):
            return [np.concatenate([c, vo[:, edges[k]:edges[k + 1]]], axis=1) for k, c in enumerate(vc)]

        def F(vo, vc, rows):
            T, sens, cols, r, rb = self._targets(circuit, lays, pack(vo, vc), x[rows],
                                                 None if y is None else y[rows], beta, gmin, scale)
            return vo - np.concatenate(T, axis=1), np.concatenate(sens, axis=1), cols, r, rb

        f, sens, cols, r, rb = F(vo, vc, np.arange(n))
        norm = np.linalg.norm(f, axis=1)
        its = np.zeros(n, np.int64)
        for it in range(1, iters + 1):
            act = np.flatnonzero(norm > 0.01 * self.tol)
            if not act.size:
                break
            step = self._newton_step(circuit, lays, edges, f[act], sens[act], vo[act],
                                     [a[act] for a in r], [a[act] for a in rb], [c[act] for c in cols])
            lam = np.ones(act.size)
            cur_vc = [c[act] for c in cols]
            for _ in range(12):   # damping: halve the step until |F| falls
                trial = vo[act] + lam[:, None] * step
                ft, st, ct, rt, rbt = F(trial, cur_vc, act)
                nt = np.linalg.norm(ft, axis=1)
                ok = nt < norm[act] * (1 - 1e-4 * lam) + 1e-300
                if ok.all():
                    break
                lam = np.where(ok, lam, 0.5 * lam)
            vo[act], f[act], norm[act], sens[act] = trial, ft, nt, st
            for k in range(L):
                cols[k][act] = ct[k]
            for a, b in zip(r, rt):
                a[act] = b
            for a, b in zip(rb, rbt):
                a[act] = b
            its[act] = it
        return pack(vo, cols), its

    @staticmethod
    def _newton_step(circuit, lays, edges, f, sens, vo, r, rb, cols, shift=0.0):
        """Newton steps ``(c I - M) step = -F`` of samples (f, sens, vo: (n, N)), ``c = 1 + shift`` (per sample,
        1/dt, making it a backward-Euler step of the stages' dynamics ``dV_out/dt = -F``; see :meth:`_newton`).

        M's columns vanish at saturated buffers, so only the unsaturated neurons P enter the solve:
        ``(c I - M_PP) u = -F_P``, then ``step = (-F + M[:, P] u) / c``; up to :data:`_DENSE_MAX` of them by
        LU (numpy.linalg.solve), more by GMRES on a :class:`scipy.sparse.linalg.LinearOperator`."""
        N = f.shape[1]
        c = 1.0 + np.broadcast_to(np.asarray(shift, float), f.shape[:1])
        slope = _buffer_slopes(circuit, vo, edges)
        blocks = _drive_blocks(circuit, lays, r, rb, cols)
        shared = all(D.ndim == 2 for D in blocks.values())
        step = -f / c[:, None]
        dense = _dense_drive_jacobian(blocks, edges, None) if shared and N <= _DENSE_MAX else None
        for b in range(f.shape[0]):
            P = np.flatnonzero(slope[b])
            if not P.size:
                continue
            if P.size <= _DENSE_MAX:
                D = dense if dense is not None else _dense_drive_jacobian(blocks, edges, b)
                A = np.eye(P.size) * c[b] - sens[b, P][:, None] * D[np.ix_(P, P)] * slope[b, P][None, :]
                try:
                    u = np.zeros(N)
                    u[P] = slope[b, P] * np.linalg.solve(A, -f[b, P])
                    step[b] = (-f[b] + sens[b] * (D @ u)) / c[b]
                    continue
                except np.linalg.LinAlgError:
                    pass  # a singular Jacobian: GMRES's least-squares progress below

            def matvec(u, b=b):
                su = slope[b] * u.ravel()
                out = c[b] * u.ravel()
                for (k, j), D in blocks.items():
                    Dj = D if D.ndim == 2 else D[b]
                    out[edges[k - 1]:edges[k]] -= sens[b, edges[k - 1]:edges[k]] * (Dj @ su[edges[j - 1]:edges[j]])
                return out

            op = LinearOperator((N, N), matvec=matvec, dtype=float)
            u, info = gmres(op, -f[b], x0=step[b], rtol=1e-10, atol=0.0, restart=60, maxiter=5)
            step[b] = u
        return step

    @staticmethod
    def _piecewise_linear(circuit, lays):
        """Linear devices, limiter clamps (or none) and no wires' coupling: F is piecewise linear."""
        return all(lay.linear and lay.diode is None and lay.coupling is None for lay in lays)

    def _path(self, circuit, lays, V, x, y, beta):
        """Each sample by :func:`.homotopy.follow_path` on ``F(V_out) = V_out - T(V_out)`` from its state, with
        ``J = I - M`` solved on the unsaturated neurons as in :meth:`_newton_step`."""
        sizes, L = circuit.sizes[1:], circuit.n_layers
        edges = np.concatenate([[0], np.cumsum(sizes)])
        V = [v.copy() for v in V]
        its = np.zeros(x.shape[0], np.int64)
        pwl = self._piecewise_linear(circuit, lays)
        for b in range(x.shape[0]):
            xb, yb = x[b:b + 1], None if y is None else y[b:b + 1]
            cols = [split(circuit, k, V[k - 1][b:b + 1])[0].copy() for k in range(1, L + 1)]
            memo = {}   # the last point's evaluation (F, its Jacobian's parts and the region use it)

            def evaluate(vo, cols=cols, xb=xb, yb=yb, memo=memo):
                key = vo.tobytes()
                if key not in memo:
                    state = [np.concatenate([c, vo[None, edges[k]:edges[k + 1]]], axis=1) for k, c in enumerate(cols)]
                    T, sens, vc, r, rb = self._targets(circuit, lays, state, xb, yb, beta, 0.0, 1.0)
                    for c, new in zip(cols, vc):
                        c[...] = new
                    memo.clear()
                    memo[key] = (vo - np.concatenate(T, axis=1)[0], np.concatenate(sens, axis=1)[0], r, rb,
                                 [c.copy() for c in vc])
                return memo[key]

            def solve(vo, R, evaluate=evaluate):
                _, sens, r, rb, vc = evaluate(vo)
                slope = _buffer_slopes(circuit, vo[None], edges)[0]
                D = _dense_drive_jacobian(_drive_blocks(circuit, lays, r, rb, vc), edges, 0)
                P = np.flatnonzero(slope)
                MP = sens[:, None] * D[:, P] * slope[None, P]   # M's nonzero columns
                lu, piv = lu_factor(np.eye(P.size) - MP[P], check_finite=False)
                if not np.all(np.diag(lu)):
                    raise np.linalg.LinAlgError("singular Jacobian")
                # det J = det(I - M_PP) (M vanishes off P's columns): the signs of U's diagonal and of the pivots
                sign = np.prod(np.sign(np.diag(lu))) * (-1) ** np.count_nonzero(piv != np.arange(P.size))
                return R + MP @ lu_solve((lu, piv), R[P], check_finite=False), float(sign)

            def region(vo, evaluate=evaluate):   # the piece of a piecewise-linear F: buffer slopes, column slopes
                return np.concatenate([_buffer_slopes(circuit, vo[None], edges)[0], evaluate(vo)[1]])

            def crossing(vo, d):   # the first buffer to reach a rail along d: r = clip(gain (-V_out - offset), 0, 1)
                steps = []
                for j in range(1, L + 1):
                    g, off = circuit.values[f"gain{j}"], circuit.values[f"offset{j}"]
                    u, du = g * (-vo[edges[j - 1]:edges[j]] - off), -g * d[edges[j - 1]:edges[j]]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        steps += [(0.0 - u) / du, (1.0 - u) / du]
                steps = np.concatenate(steps)
                steps = steps[steps > 0]
                return float(steps.min()) if steps.size else np.inf

            vo0 = np.concatenate([split(circuit, k, V[k - 1][b])[1] for k in range(1, L + 1)])
            out = follow_path(lambda v: evaluate(v)[0], solve, vo0, 0.01 * self.tol,
                              region=region if pwl else None, crossing=crossing if pwl else None,
                              max_steps=self.path_pieces, restarts=2)
            evaluate(out.v)
            for k in range(1, L + 1):
                V[k - 1][b] = np.concatenate([cols[k - 1][0], out.v[edges[k - 1]:edges[k]]])
            its[b] = out.steps
        return V, its

    def _continue(self, circuit, lays, V, x, y, beta, mode):
        if mode == "newton":
            return self._newton(circuit, lays, V, x, y, beta, 0.0, 1.0, self.newton_iters)
        if mode == "path":
            return self._path(circuit, lays, V, x, y, beta) if self.path_pieces else ([v.copy() for v in V],
                                                                                       np.zeros(x.shape[0], np.int64))
        total = np.zeros(x.shape[0], np.int64)
        ladder = ([(g, 1.0) for g in 10.0 ** np.arange(1, -7, -1)] + [(0.0, 1.0)] if mode == "gmin"
                  else [(0.0, s) for s in np.linspace(0.1, 1.0, 10)])
        gf = np.mean([np.mean(lay.gf) for lay in lays])
        for g, s in ladder:
            V, its = self._newton(circuit, lays, V, x, y, beta, g * gf, s, self.newton_iters)
            total += its
        return V, total

