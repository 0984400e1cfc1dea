"""Fast batched operating points of a compiled circuit (both levels).

Every node's KCL equation (see :mod:`.description`) is linear in its own
voltage given the driven outputs of its neighbours, piecewise linear with
clamps: ``V_k = clamp(inj_k(r_{k-1}, r_{k+1}) / gtot_k)`` (both clamps of a
node conduct between its levels when offsets invert its window, see
:class:`_ClampWindow`).  The solver sweeps the layers
(block Gauss-Seidel, input side first) solving each one in closed
form, which is the circuit analogue of :class:`analogprop.model.relax.FastSolver`,
and stops per sample once the KCL residual, expressed in volts as
``max |I| / g`` (g: gtot plus the clamps conducting at V; how far each node
is from the voltage its currents balance at), is below ``tol``.  A sample
is reported converged only if :meth:`Circuit.currents` at the answer
meets ``tol`` (:func:`kcl_residual`).  The nudged phase starts from the free
solution.  Device values are folded once per programming into per-layer
affine maps (crossbar inverters and conductance pairs included).  Samples
the sweeps do not settle (strong feedback loops) are finished by a batched
pseudo-transient Newton method (:meth:`CircuitSolver.newton`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, check_finite
from ..model.relax import Relaxation
from .description import Circuit


@dataclass
class _Layer:
    """t_k = (r_prev @ fwd.T + r_next @ bwd.T + const) / g  (matrices pre-divided by g): V_k without clamps."""

    fwd: np.ndarray
    bwd: np.ndarray | None
    const: np.ndarray
    g: np.ndarray
    clamp: tuple | None  # (conductance, lo, hi) or None


def fold(circuit: Circuit) -> list[_Layer]:
    """Per-layer affine maps of the circuit as currently programmed."""
    v, L = circuit.values, circuit.n_layers
    out = []
    for k in range(1, L + 1):
        g = circuit.conductance(k)
        if circuit.crossbar:
            fp, fn = v[f"fwd{k - 1}_p"], v[f"fwd{k - 1}_n"]
            fwd = fp - fn * v[f"inv_gain{k - 1}"]
            const = fn @ v[f"inv_offset{k - 1}"]
            bwd = None
            if k < L:
                bp, bn = v[f"bwd{k}_p"], v[f"bwd{k}_n"]
                bwd = bp - bn * v[f"inv_gain{k + 1}"]
                const = const + bn @ v[f"inv_offset{k + 1}"]
            if circuit.has_bias:
                const = const + circuit.design.v_rail * (v[f"bias{k}_p"] - v[f"bias{k}_n"])
        else:
            fwd = v[f"fwd{k - 1}"]
            bwd = v[f"bwd{k}"] if k < L else None
            const = v[f"bias{k}"] if circuit.has_bias else np.zeros(circuit.sizes[k])
        clamp = ((v[f"clamp{k}"], v[f"clamp_lo{k}"], v[f"clamp_hi{k}"]) if circuit.clamped else None)
        out.append(_Layer(fwd / g[:, None], None if bwd is None else bwd / g[:, None], const / g, g, clamp))
    return out


def check_settings(solver):
    """A circuit solver's settings: ``tol`` a finite number of volts >= 0, ``max_sweeps`` >= 1,
    ``newton_iters`` >= 0."""
    if not (np.isfinite(solver.tol) and solver.tol >= 0):
        raise ConfigError(f"circuit solver tolerance must be a finite number >= 0 (volts), got {solver.tol}")
    if int(solver.max_sweeps) < 1:
        raise ConfigError(f"circuit solver sweep count must be >= 1, got {solver.max_sweeps}")
    if int(solver.newton_iters) < 0:
        raise ConfigError(f"circuit solver Newton iteration count must be >= 0, got {solver.newton_iters}")


_STALL = 20               # sweeps between progress checks
_DT_START, _DT_MIN, _DT_MAX = 1.0, 1e-3, 1e2   # pseudo-time steps (Newton: dt = inf)
_NEWTON_BYTES = 2 ** 28   # Jacobian memory per Newton chunk


@dataclass
class CircuitSolver:
    """Block Gauss-Seidel over layers, then Newton for what is left; ``tol`` in volts on max |I| / g (see :func:`kcl_residual`)."""

    tol: float = 1e-10
    max_sweeps: int = 200
    newton_iters: int = 100

    def __post_init__(self):
        check_settings(self)
        self._cache = (None, None, None)

    def layers(self, circuit: Circuit) -> list[_Layer]:
        """Folded layers, recomputed when the circuit is reprogrammed."""
        key = (id(circuit), circuit.revision)
        if self._cache[0] != key or self._cache[1] is not circuit:
            self._cache = (key, circuit, fold(circuit))
        return self._cache[2]

    def solve(self, circuit: Circuit, x, y=None, beta: float = 0.0, start=None) -> Relaxation:
        """Operating point of every sample; ``start`` (node voltages per layer) seeds the sweeps.

        Samples the sweeps leave unconverged after ``max_sweeps`` (strong
        feedback loops) are finished by :meth:`newton`.
        """
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != circuit.sizes[0]:
            raise ConfigError(f"inputs have shape {x.shape}; the circuit expects (batch, {circuit.sizes[0]})")
        check_finite("inputs", x)
        n, beta = x.shape[0], float(beta)
        if beta:
            y = np.asarray(y, dtype=float)
            if y.shape != (n, circuit.sizes[-1]):
                raise ConfigError(f"targets have shape {y.shape}; expected ({n}, {circuit.sizes[-1]})")
            check_finite("targets", y)
        if start is not None:
            start = [np.asarray(s, dtype=float) for s in start]
            if [s.shape for s in start] != [(n, m) for m in circuit.sizes[1:]]:
                raise ConfigError(f"start voltages have shapes {[s.shape for s in start]}; "
                                  f"expected {[(n, m) for m in circuit.sizes[1:]]}")
        p = _Problem(circuit, self.layers(circuit), x, y, beta)
        V = [np.zeros((n, s)) for s in circuit.sizes[1:]] if start is None else [s.copy() for s in start]
        out, residual, steps = self._sweeps(p, V)
        bad = np.flatnonzero(~(residual <= self.tol))
        if self.newton_iters:
            chunk = max(1, int(_NEWTON_BYTES // (8 * sum(circuit.sizes[1:]) ** 2)))
            for i in range(0, bad.size, chunk):
                rows = bad[i:i + chunk]
                V, res, its = self.newton(p.subset(rows), [o[rows] for o in out], self.newton_iters)
                for o, vk in zip(out, V):
                    o[rows] = vk
                residual[rows], steps[rows] = res, steps[rows] + its
        residual = kcl_residual(circuit, out, x, y, beta)  # the verdict: the definitive KCL equations
        return Relaxation(out, residual, steps, residual <= self.tol)

    def _sweeps(self, p: "_Problem", V):
        """Block Gauss-Seidel sweeps; converged samples are retired as they finish.

        A sample whose change per sweep has not halved over the last
        ``_STALL`` sweeps (a slow or cycling loop) leaves for Newton.
        """
        n, L = V[0].shape[0], p.L
        out = [v.copy() for v in V]
        residual = np.full(n, np.inf)
        steps = np.zeros(n, dtype=np.int64)
        rows = np.arange(n)  # batch positions of the active samples
        r = [None] + [p.circuit.buffer(k, V[k - 1]) for k in range(1, L + 1)]
        checked = np.full(n, np.inf)
        for sweep in range(1, int(self.max_sweeps) + 1):
            change = np.zeros(rows.size)
            for k in range(1, L + 1):
                new = p.target(k, r, rows)
                np.maximum(change, np.abs(new - V[k - 1]).max(axis=1), out=change)
                V[k - 1] = new
                r[k] = p.circuit.buffer(k, new)
            steps[rows] = sweep
            last = sweep == self.max_sweeps
            stalled = np.zeros(rows.size, bool)
            if sweep % _STALL == 0 and self.newton_iters:
                stalled = change > 0.5 * checked[rows]
                checked[rows] = change
            cand = np.arange(rows.size) if last else np.flatnonzero((change <= self.tol) | stalled)
            if cand.size == 0:
                continue
            res = p.residual([vk[cand] for vk in V], rows[cand])
            ok = np.ones(cand.size, bool) if last else (res <= self.tol) | stalled[cand]
            done = cand[ok]
            for o, vk in zip(out, V):
                o[rows[done]] = vk[done]
            residual[rows[done]] = res[ok]
            keep = np.ones(rows.size, bool)
            keep[done] = False
            rows, V = rows[keep], [vk[keep] for vk in V]
            r = [None] + [rk[keep] for rk in r[1:]]
            if rows.size == 0:
                break
        return out, residual, steps

    def newton(self, p: "_Problem", V, max_iter: int = 100):
        """Pseudo-transient Newton on F(V) = V - T(V) (T: every layer's closed-form target), batched.

        Each step solves ``(J + 1 / dt) d = -F`` (an implicit Euler step of
        dV/dt = -F, J exact away from the corners of the piecewise-linear
        buffers and clamps); ``dt`` grows as |F| falls (switched evolution
        relaxation) up to ``_DT_MAX``, where the steps are nearly Newton's,
        and shrinks when |F| grows, which carries samples over the corners
        where plain damped Newton stalls or cycles.  A sample stops when it converges
        or after ``max_iter`` iterations.  Returns voltages, residuals and
        iterations.
        """
        sizes, L = p.circuit.sizes[1:], p.L
        edges = np.concatenate([[0], np.cumsum(sizes)])
        flat = np.concatenate(V, axis=1)
        n, N = flat.shape
        split = lambda f: [f[:, edges[k]:edges[k + 1]] for k in range(L)]
        rows = np.arange(n)
        F = flat - np.concatenate(p.targets(split(flat), rows), axis=1)
        norm = np.linalg.norm(F, axis=1)
        residual = p.residual(split(flat), rows)
        dt = np.full(n, _DT_START)
        its = np.zeros(n, dtype=np.int64)
        active = np.flatnonzero(residual > self.tol)
        diag = np.arange(N)
        for it in range(1, max_iter + 1):
            if active.size == 0:
                break
            J = self._jacobian(p, split(flat[active]), rows[active], edges)
            J[:, diag, diag] += 1.0 / dt[active, None]
            try:
                step = np.linalg.solve(J, -F[active][..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = -F[active] * (dt[active] / (1 + dt[active]))[:, None]
            trial = flat[active] + step
            Ft = trial - np.concatenate(p.targets(split(trial), rows[active]), axis=1)
            nt = np.linalg.norm(Ft, axis=1)
            dt[active] = np.clip(dt[active] * norm[active] / np.maximum(nt, 1e-300), _DT_MIN, _DT_MAX)
            flat[active], F[active], norm[active] = trial, Ft, nt
            residual[active] = p.residual(split(trial), rows[active])
            its[active] = it
            active = active[residual[active] > self.tol]
        return split(flat), residual, its

    @staticmethod
    def _jacobian(p: "_Problem", Vs, rows, edges) -> np.ndarray:
        """dF/dV = 1 - dT/dr dr/dV per sample (batch, N, N)."""
        L, N = p.L, edges[-1]
        rs = [None] + [p.circuit.buffer(k, Vs[k - 1]) for k in range(1, L + 1)]
        J = np.broadcast_to(np.eye(N), (Vs[0].shape[0], N, N)).copy()
        for k in range(1, L + 1):
            lk, blk = p.layers[k - 1], slice(edges[k - 1], edges[k])
            dclamp = np.broadcast_to(p.clamp(k, p.unclamped(k, rs, rows), slope=True)[1], Vs[k - 1].shape)
            scale = dclamp[:, :, None] * (p.top_lin[None, :, None] if (k == L and p.beta) else 1.0)
            if k > 1:
                J[:, blk, edges[k - 2]:edges[k - 1]] -= scale * lk.fwd[None] * p.slope(k - 1, Vs[k - 2])[:, None, :]
            if k < L:
                J[:, blk, edges[k]:edges[k + 1]] -= scale * lk.bwd[None] * p.slope(k + 1, Vs[k])[:, None, :]
        return J


def kcl_residual(circuit: Circuit, V, x, y=None, beta: float = 0.0) -> np.ndarray:
    """Per sample max |I| / g over the free nodes (volts) from :meth:`Circuit.currents`: 0 at an operating point.

    ``g`` is the conductance the node sees with every clamp that conducts at
    V (both of them inside an inverted window), so the residual is how far
    the node is from the voltage its currents balance at.
    """
    out = []
    for k, i in enumerate(circuit.currents(V, x, y, beta), start=1):
        g = circuit.conductance(k, beta)
        if circuit.clamped:
            c, v = circuit.values, V[k - 1]
            g = g + c[f"clamp{k}"] * ((v > c[f"clamp_hi{k}"]) * 1.0 + (v < c[f"clamp_lo{k}"]))
        out.append(np.abs(i / g).max(axis=1))
    return np.max(out, axis=0)


class _ClampWindow:
    """A layer's clamps in units of the node's conductance gtot: f(V) = V - t + q (max(V - hi, 0) + min(V - lo, 0)).

    ``f`` (I / gtot with the sign flipped) is increasing and piecewise linear
    in V; its root is the node's voltage.  Below min(lo, hi) only the lower
    clamp conducts and above max(lo, hi) only the upper one; in between
    neither does (lo <= hi) or, when offsets invert the window (hi < lo),
    both do: V = (t + q (lo + hi)) / (1 + 2 q).
    """

    def __init__(self, q, lo, hi):
        self.q, self.lo, self.hi = q, lo, hi
        self.shrink = 1.0 / (1.0 + q)                 # dV/dt with one clamp conducting
        both = hi < lo
        self.inverted = bool(both.any())
        self.mid_sum = np.where(both, q * (lo + hi), 0.0)
        self.mid_shrink = np.where(both, 1.0 / (1.0 + 2 * q), 1.0)
        a, b = np.minimum(lo, hi), np.maximum(lo, hi)
        self.t_lo = a + q * (a - lo)                  # f(a) > 0 <=> t < t_lo: root below a
        self.t_hi = b + q * (b - hi)                  # f(b) < 0 <=> t > t_hi: root above b

    def solve(self, t, slope: bool = False):
        """Root of f given the unclamped balance voltage t (and dV/dt when ``slope``).

        V is continuous and piecewise linear in t with corners at t_lo <= t_hi:
        V = V_mid(c) + (t - c) / (1 + q), c = t clipped to [t_lo, t_hi].
        """
        c = np.minimum(np.maximum(t, self.t_lo), self.t_hi)
        mid = (c + self.mid_sum) * self.mid_shrink if self.inverted else c
        v = mid + (t - c) * self.shrink
        if not slope:
            return v
        return v, np.where(t == c, self.mid_shrink, self.shrink)

    def current(self, v):
        """Clamp current drawn from the nodes at V, over gtot."""
        return self.q * (np.maximum(v - self.hi, 0.0) + np.minimum(v - self.lo, 0.0))

    def conductance(self, v):
        """Node conductance at V over gtot: 1 plus every conducting clamp's q."""
        return 1.0 + self.q * ((v > self.hi) * 1.0 + (v < self.lo))


class _Problem:
    """One relaxation's data: circuit, folded layers, inputs' drive, nudge."""

    def __init__(self, circuit: Circuit, layers, x, y, beta):
        self.circuit, self.layers, self.L, self.beta = circuit, layers, circuit.n_layers, beta
        self.base = circuit.inputs(x) @ layers[0].fwd.T + layers[0].const
        self.top_lin = self.top_shift = None
        gt = [lk.g for lk in layers]
        if beta:
            g, nu = layers[-1].g, circuit.values["nudge"]
            self.top_lin = g / (g + beta * nu)            # t_L = top_lin * a_L + top_shift
            self.top_shift = beta * nu * circuit.target(y) / (g + beta * nu)
            gt[-1] = g + beta * nu
        self.windows = [None if lk.clamp is None else _ClampWindow(lk.clamp[0] / g, *lk.clamp[1:])
                        for lk, g in zip(layers, gt)]

    def subset(self, rows) -> "_Problem":
        q = object.__new__(_Problem)
        q.__dict__.update(self.__dict__)
        q.base = self.base[rows]
        q.top_shift = None if self.top_shift is None else self.top_shift[rows]
        return q

    def unclamped(self, k, r, rows):
        """Voltage t at which layer k's currents balance without its clamps, given its neighbours' outputs r."""
        lk = self.layers[k - 1]
        a = self.base[rows] if k == 1 else r[k - 1] @ lk.fwd.T + lk.const
        if k < self.L:
            a = a + r[k + 1] @ lk.bwd.T
        if k == self.L and self.beta:
            a = self.top_lin * a + self.top_shift[rows]
        return a

    def clamp(self, k, t, slope: bool = False):
        """Node voltage given its unclamped balance voltage t (and dV/dt when ``slope``); see :class:`_ClampWindow`."""
        w = self.windows[k - 1]
        if w is None:
            return (t, 1.0) if slope else t
        return w.solve(t, slope)

    def target(self, k, r, rows):
        """Voltage at which node layer k's currents balance, given its neighbours' outputs r."""
        return self.clamp(k, self.unclamped(k, r, rows))

    def targets(self, V, rows):
        r = [None] + [self.circuit.buffer(k, V[k - 1]) for k in range(1, self.L + 1)]
        return [self.target(k, r, rows) for k in range(1, self.L + 1)]

    def residual(self, V, rows):
        """Per sample max |I| / g (volts), g the node's conductance with its conducting clamps (see :func:`kcl_residual`)."""
        r = [None] + [self.circuit.buffer(k, V[k - 1]) for k in range(1, self.L + 1)]
        out = []
        for k in range(1, self.L + 1):
            w, v = self.windows[k - 1], V[k - 1]
            i = self.unclamped(k, r, rows) - v           # I / gtot without the clamps
            if w is not None:
                i = (i - w.current(v)) / w.conductance(v)
            out.append(np.abs(i).max(axis=1))
        return np.max(out, axis=0)

    def slope(self, k, v):
        """dr/dV of layer k's buffers: gain inside the rails, 0 when saturated."""
        c = self.circuit.values
        u = c[f"gain{k}"] * (v - c[f"offset{k}"])
        return np.where((u > 0) & (u < 1), c[f"gain{k}"], 0.0)
