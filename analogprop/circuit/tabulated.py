"""A layered network of a user's characterized neurons and synapses, solved from their tables.

Node ``h_{k,i}`` of every dynamic layer holds one neuron (input pin on
``h``); its output ``rho`` drives, through an ideal unity buffer, the ``a``
terminals of its outgoing synapses (and, for differential synapses, an
inverted drive ``v_low + v_high - rho`` the second device of each pair).
Layer 0 is a set of sources at ``v_low + x (v_high - v_low)``.  The field
(Appendix A: the net current into each free node) is

    mu_{k,i} = -I_in(V_{k,i}) + sum_syn I_syn(V_a, V_{k,i}, p) [+ beta g_unit (V_target - V_{L,i})]

(``V_target = target_low + y (target_high - target_low)``)

with ``I_in`` and ``rho`` from the neuron's monotone cubic (pchip) tables and
``I_syn`` from the synapse's tensor-product pchip table over (``a``, ``b``, ``p``), both
per instance (each instance its own mismatch).  :class:`TabulatedSolver`
finds the fixed points by damped Newton iterations (pseudo-transient continuation) batched over samples
(the tables give values and slopes); the nudged phase starts from the free
one (Eq. 13, 25).  :func:`local_rule` is Eq. 26 with ``dmu/dp`` the synapse
table's slope in its programming value.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

from ..errors import ConfigError
from ..model.relax import Relaxation
from .user_spec import CircuitSpec


class NeuronTable:
    """Per distinct neuron instance: output voltage and input current versus input voltage (pchip)."""

    def __init__(self, v, out, iin):
        self.v, self.out, self.iin = np.asarray(v, float), np.asarray(out, float), np.asarray(iin, float)
        self._c = {name: PchipInterpolator(self.v, getattr(self, name).T, extrapolate=True).c
                   for name in ("out", "iin")}

    def __call__(self, name: str, rows, V):
        """Values and slopes of table ``name`` (``out`` or ``iin``) of instances ``rows`` at ``V``."""
        i = np.clip(np.searchsorted(self.v, V) - 1, 0, len(self.v) - 2)
        t = V - self.v[i]
        c = self._c[name][:, i, np.broadcast_to(rows, V.shape)]
        return ((c[0] * t + c[1]) * t + c[2]) * t + c[3], (3 * c[0] * t + 2 * c[1]) * t + c[2]


class SynapseTable:
    """Per distinct synapse instance: current into ``b`` on the grid (a, b, p), interpolated by tensor-product
    cubic Hermite polynomials whose slopes (and cross slopes) are pchip's along each axis: monotone along every
    grid line, C1, with values and slopes; linear beyond the grid."""

    def __init__(self, a, b, p, current):
        self.axes = tuple(np.asarray(g, float) for g in (a, b, p))
        self.current = np.asarray(current, float)
        d = np.empty(self.current.shape + (8,))
        for combo in range(8):   # combo bit k: derivative along axis k
            arr = self.current
            for ax in range(3):
                if (combo >> ax) & 1:
                    arr = PchipInterpolator(self.axes[ax], arr, axis=ax + 1).derivative()(self.axes[ax])
            d[..., combo] = arr
        self._flat = d.ravel()
        strides = np.array(d.shape[1:]).astype(np.int64)
        self._strides = [int(np.prod(strides[k + 1:])) for k in range(4)]   # of (a, b, p, combo)
        # the 4 x 4 x 4 terms (axis a, b, p; each: node 0/1, order 0/1 as column 2 node + order of the basis)
        cols = np.array([(ta, tb, tp) for ta in range(4) for tb in range(4) for tp in range(4)])
        self._offsets = (cols // 2) @ np.array(self._strides[:3]) + (cols % 2) @ np.array([1, 2, 4])

    def __call__(self, rows, a, b, p):
        """(I, dI/da, dI/db, dI/dp) of instances ``rows`` at broadcastable ``a``, ``b``, ``p``."""
        rows, a, b, p = np.broadcast_arrays(rows, a, b, p)
        shape = rows.shape
        base = rows.ravel() * (self._strides[0] * self.current.shape[1])
        basis, dbasis, over = [], [], []
        for k, (g, x) in enumerate(zip(self.axes, (a, b, p))):
            x = x.ravel()
            xc = np.clip(x, g[0], g[-1])
            over.append(x - xc)
            i = np.clip(np.searchsorted(g, xc) - 1, 0, len(g) - 2)
            h = g[i + 1] - g[i]
            t = (xc - g[i]) / h
            t2, t3 = t * t, t * t * t
            base = base + i * self._strides[k]
            # columns (node 0, order 0), (0, 1), (1, 0), (1, 1): Hermite basis, slopes scaled by h, and d/dx
            basis.append(np.stack([2 * t3 - 3 * t2 + 1, (t3 - 2 * t2 + t) * h, 3 * t2 - 2 * t3, (t3 - t2) * h], 1))
            dbasis.append(np.stack([(6 * t2 - 6 * t) / h, 3 * t2 - 4 * t + 1, (6 * t - 6 * t2) / h, 3 * t2 - 2 * t], 1))
        c = self._flat[base[:, None] + self._offsets[None, :]].reshape(-1, 16, 4)     # (Q, a b, p)
        (wa, wb, wp), (da, db, dp) = basis, dbasis
        cp, cdp = (c @ wp[:, :, None]).reshape(-1, 4, 4), (c @ dp[:, :, None]).reshape(-1, 4, 4)
        cpb, cpdb, cdpb = (cp @ wb[:, :, None])[..., 0], (cp @ db[:, :, None])[..., 0], (cdp @ wb[:, :, None])[..., 0]
        value = np.einsum("qa,qa->q", cpb, wa)
        grads = [np.einsum("qa,qa->q", cpb, da), np.einsum("qa,qa->q", cpdb, wa), np.einsum("qa,qa->q", cdpb, wa)]
        value = value + sum(g * o for g, o in zip(grads, over))
        return value.reshape(shape), grads[0].reshape(shape), grads[1].reshape(shape), grads[2].reshape(shape)


@dataclass
class SynapseArray:
    """Devices from layer ``src`` (drive, or its inverse) into layer ``dst``: one per (dst i, src j)."""

    name: str
    src: int
    dst: int
    inverted: bool
    instance: np.ndarray       # (n_dst, n_src) rows of the synapse table
    program: np.ndarray        # (n_dst, n_src) programming values


def _unique(params: list[dict]):
    """(distinct dicts, index of each input dict)."""
    seen, rows = {}, []
    for p in params:
        rows.append(seen.setdefault(tuple(sorted(p.items())), len(seen)))
    return [dict(k) for k in seen], np.array(rows, dtype=np.int64)


@dataclass
class UserNetwork:
    """The instances of a layered network of a specification's subcircuits on die ``die``.

    ``neuron_rows[k-1]`` / ``arrays[*].instance`` index the distinct instance parameter sets
    ``neuron_params`` / ``synapse_params`` (row 0 of the synapses is the nominal device).
    """

    spec: CircuitSpec
    sizes: tuple
    die: int
    neuron_params: list
    neuron_rows: list
    synapse_params: list
    arrays: list = field(default_factory=list)

    @classmethod
    def build(cls, spec: CircuitSpec, sizes, die: int = 0, feedback: bool = True, seed: int = 0) -> "UserNetwork":
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ConfigError(f"layer sizes must be two or more whole numbers >= 1, got {sizes}")
        n_neurons = sum(sizes[1:])
        nparams, nrows = _unique(spec.neuron.instance_params(die, n_neurons))
        split = np.cumsum(sizes[1:-1])
        shapes = []
        for k in range(len(sizes) - 1):
            shapes.append((f"fwd{k}", k, k + 1))
            if feedback and k >= 1:
                shapes.append((f"bwd{k}", k + 1, k))
        signs = (("_p", False), ("_n", True)) if spec.synapse.differential else (("", False),)
        layout = [(name + suffix, src, dst, inv) for name, src, dst in shapes for suffix, inv in signs]
        count = sum(sizes[dst] * sizes[src] for _, src, dst, _ in layout)
        nominal = {**spec.synapse.params, **{m.param: m.nominal for m in spec.synapse.mismatch}}
        sparams, srows = _unique([nominal] + spec.synapse.instance_params(die, count))
        rng = np.random.default_rng([seed, 7])
        prog, arrays, at = spec.synapse.program, [], 1
        for name, src, dst, inv in layout:
            n = sizes[dst] * sizes[src]
            mid, half = (prog.low + prog.high) / 2, (prog.high - prog.low) / 2
            arrays.append(SynapseArray(name, src, dst, inv, srows[at:at + n].reshape(sizes[dst], sizes[src]),
                                       mid + 0.5 * half * rng.uniform(-1, 1, (sizes[dst], sizes[src]))))
            at += n
        return cls(spec, sizes, die, nparams, np.split(nrows, split), sparams, arrays)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def program(self, params: dict) -> None:
        """Set programming values per array name (clipped to the specification's range)."""
        prog, arrays = self.spec.synapse.program, {a.name: a for a in self.arrays}
        for name, value in params.items():
            if name not in arrays:
                raise ConfigError(f"unknown parameter {name!r} of the user circuit (it has {', '.join(arrays)})")
            value = np.asarray(value, float)
            if value.shape != arrays[name].program.shape:
                raise ConfigError(f"parameter {name} has shape {value.shape}; the circuit's is "
                                  f"{arrays[name].program.shape}")
            arrays[name].program = np.clip(value, prog.low, prog.high)

    def programs_from_weights(self, weights: dict) -> dict:
        """Programming values of network weights ``fwd{k}``/``bwd{k}`` (any scale): each matrix's entries,
        divided by its largest magnitude, place the pair's values symmetrically about the range's middle."""
        prog = self.spec.synapse.program
        mid, half = (prog.low + prog.high) / 2, (prog.high - prog.low) / 2
        names, out = {a.name for a in self.arrays}, {}
        for name, W in weights.items():
            if not name.startswith(("fwd", "bwd")):
                continue
            u = np.asarray(W, float) / max(float(np.abs(W).max()), 1e-12)
            if self.spec.synapse.differential:
                out[f"{name}_p"], out[f"{name}_n"] = mid + 0.5 * half * u, mid - 0.5 * half * u
            else:
                out[name] = mid + half * u
        return {k: v for k, v in out.items() if k in names}

    def drive_of_inputs(self, x) -> np.ndarray:
        return self.spec.v_low + np.asarray(x, float) * self.spec.span

    def target_voltage(self, y) -> np.ndarray:
        """Volts the nudge pulls the output nodes toward: ``target_low + y (target_high - target_low)``."""
        low, high = self.spec.targets
        return low + np.asarray(y, float) * (high - low)


class TabulatedSolver:
    """Newton on the tabulated network's KCL with pseudo-transient continuation (backward-Euler steps of the
    node dynamics whose time step grows as the residual falls, so it follows the circuit to a stable fixed
    point and ends in Newton's quadratic convergence), batched over samples; ``tol`` in volts (max over
    nodes of |current| / node conductance)."""

    def __init__(self, net: UserNetwork, neurons: NeuronTable, synapses: SynapseTable, tol: float = 1e-9,
                 max_iters: int = 100, max_step: float = 0.2):
        self.net, self.neurons, self.synapses = net, neurons, synapses
        self.tol, self.max_iters, self.max_step = tol, max_iters, max_step
        self._offsets = np.concatenate([[0], np.cumsum(net.sizes[1:])])

    def drives(self, V, x):
        """Per layer 0..L: (rho, d rho / dV) (layer 0: the input sources, slope 0)."""
        out = [(self.net.drive_of_inputs(x), np.zeros_like(x, dtype=float))]
        for k in range(1, self.net.n_layers + 1):
            out.append(self.neurons("out", self.net.neuron_rows[k - 1], V[k - 1]))
        return out

    def field(self, V, x, y=None, beta=0.0, jacobian=False):
        """Net current into every state node (batch, N) and, with ``jacobian``, dI/dV (batch, N, N)."""
        net, spec, off = self.net, self.net.spec, self._offsets
        n = V[0].shape[0]
        F = np.zeros((n, off[-1]))
        J = np.zeros((n, off[-1], off[-1])) if jacobian else None
        drv = self.drives(V, x)
        for k in range(1, net.n_layers + 1):
            iin, diin = self.neurons("iin", net.neuron_rows[k - 1], V[k - 1])
            F[:, off[k - 1]:off[k]] -= iin
            if jacobian:
                J[:, np.arange(off[k - 1], off[k]), np.arange(off[k - 1], off[k])] -= diin
        for arr in net.arrays:
            r, dr = drv[arr.src]
            a = spec.v_low + spec.v_high - r if arr.inverted else r
            i, di_a, di_b, _ = self.synapses(arr.instance[None], a[:, None, :], V[arr.dst - 1][:, :, None],
                                             arr.program[None])
            d0, d1 = off[arr.dst - 1], off[arr.dst]
            F[:, d0:d1] += i.sum(axis=2)
            if jacobian:
                J[:, np.arange(d0, d1), np.arange(d0, d1)] += di_b.sum(axis=2)
                if arr.src >= 1:
                    s0, s1 = off[arr.src - 1], off[arr.src]
                    J[:, d0:d1, s0:s1] += di_a * ((-dr) if arr.inverted else dr)[:, None, :]
        if beta:
            L = net.n_layers
            F[:, off[L - 1]:] += beta * spec.g_unit * (net.target_voltage(y) - V[L - 1])
            if jacobian:
                J[:, np.arange(off[L - 1], off[L]), np.arange(off[L - 1], off[L])] -= beta * spec.g_unit
        return F, J

    def _split(self, flat):
        return np.split(flat, self._offsets[1:-1], axis=1)

    def solve(self, x, y=None, beta: float = 0.0, start=None) -> Relaxation:
        x = np.atleast_2d(np.asarray(x, float))
        if x.shape[1] != self.net.sizes[0]:
            raise ConfigError(f"inputs have shape {x.shape}; the network expects (batch, {self.net.sizes[0]})")
        n = x.shape[0]
        flat = np.full((n, self._offsets[-1]), (self.net.spec.v_low + self.net.spec.v_high) / 2) if start is None \
            else np.concatenate([np.asarray(s, float) for s in start], axis=1).copy()
        steps = np.zeros(n, dtype=np.int64)
        res = np.full(n, np.inf)
        yy = None if y is None else np.asarray(y, float)
        dt = np.ones(n)   # pseudo-time step per sample, in units of each node's own time constant
        F, J = self.field(self._split(flat), x, yy, beta, jacobian=True)
        g = np.abs(np.diagonal(J, axis1=1, axis2=2))
        res = np.max(np.abs(F) / np.maximum(g, 1e-300), axis=1)
        for it in range(self.max_iters):
            todo = np.flatnonzero(res > self.tol)
            if not todo.size:
                break
            # (g/dt - J) step = F: a backward-Euler step of the node dynamics C dV/dt = F, Newton as dt grows
            A = -J[todo]
            A[:, np.arange(A.shape[1]), np.arange(A.shape[1])] += g[todo] / dt[todo, None]
            step = np.linalg.solve(A, F[todo][..., None])[..., 0]
            big = np.max(np.abs(step), axis=1, keepdims=True)
            step *= np.minimum(1.0, self.max_step / np.maximum(big, 1e-300))
            flat[todo] += step
            Fn, Jn = self.field(self._split(flat[todo]), x[todo], None if yy is None else yy[todo], beta, jacobian=True)
            gn = np.abs(np.diagonal(Jn, axis1=1, axis2=2))
            rn = np.max(np.abs(Fn) / np.maximum(gn, 1e-300), axis=1)
            dt[todo] = np.clip(dt[todo] * np.clip(res[todo] / np.maximum(rn, 1e-300), 0.5, 10.0), 1e-2, 1e12)
            F[todo], J[todo], g[todo], res[todo] = Fn, Jn, gn, rn
            steps[todo] += 1
        return Relaxation(self._split(flat), res, steps, res <= self.tol)

    def program_slopes(self, arr: SynapseArray, V, x):
        """dI/dp of every device of ``arr`` at state ``V`` (batch, n_dst, n_src)."""
        spec = self.net.spec
        r, _ = self.drives(V, x)[arr.src]
        a = spec.v_low + spec.v_high - r if arr.inverted else r
        return self.synapses(arr.instance[None], a[:, None, :], V[arr.dst - 1][:, :, None], arr.program[None])[3]


def local_rule(solver: TabulatedSolver, x, free_V, nudged_V) -> dict:
    """Per synapse array, sum over the batch of dmu/dp(s0) . (s_beta - s0) (Eq. 26 without 1/beta), in network
    units: the field divided by ``g_unit`` and states by the span, so ``dmu/dp = dI/dp / (g_unit span)`` and
    ``ds = dV / span``."""
    spec = solver.net.spec
    scale = 1.0 / (spec.g_unit * spec.span ** 2)
    out = {}
    for arr in solver.net.arrays:
        dV = nudged_V[arr.dst - 1] - free_V[arr.dst - 1]
        out[arr.name] = scale * np.einsum("bij,bi->ij", solver.program_slopes(arr, free_V, x), dV)
    return out
