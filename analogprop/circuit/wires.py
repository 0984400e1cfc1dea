"""Wire resistance of the virtual-ground crossbar's tiles: each tile's boundary conductances, and the voltages at
its crosspoints.

A tile of array ``key`` (``G`` of shape (n_k, m): column i = neuron, row j = driver; a bias pair is one row) covers
columns ``[ti, ti + w)`` and rows ``[tj, tj + h)`` (the tiles of :meth:`.nonideal.Nonidealities.spatial`).  Row j's
wire runs from its driver through one segment (conductance ``gr``) to the crosspoint of the tile's first column,
then from crosspoint to crosspoint along the columns; column i's wire runs from the crosspoint of the tile's first
row to the next, and from its last row through one segment (``gc``) into the column's virtual-ground node, where the
tiles of a column meet.  Device ``G[i, j]`` joins row j's node and column i's node at its crosspoint.  A zero wire
resistance merges those nodes into the driver or the column node.

With linear devices the tile is a linear resistive network: eliminating its inner nodes leaves the current into
the column nodes, ``I = Gd V_drive - Gc V_col`` (``Gd`` (w, h), ``Gc`` (w, w); without wires ``Gd = G``,
``Gc = diag(G 1)``).  The inner nodes' conductance matrix is symmetric positive definite; numbered crosspoint
by crosspoint along the rows (a crosspoint's row-side node, then its column-side node) it is banded, its
half-bandwidth twice the tile's width, so it is factored by LAPACK's banded Cholesky
(:func:`scipy.linalg.cholesky_banded`), which fills only the band.  Every tile of one shape shares its wires:
their part of the matrices and where each device's conductance adds in are built once (:func:`_template`), so
a tile costs one banded factorization and its solves.

With sinh devices the network is not linear: :class:`SinhTile` solves its inner nodes per sample by Newton's
method and linearises it at the solution.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve_banded, cholesky_banded

#: right-hand sides per banded solve (bounds the dense block in memory)
_CHUNK = 64
#: largest crosspoint map a tile keeps (bytes): up to it, the inner nodes are solved for every boundary node
#: once per programming, and the voltages across the devices of any number of samples are one product
MAP_BYTES = 8 << 20
#: largest store of solved inner voltages a sinh tile keeps for warm starts (bytes)
WARM_BYTES = 32 << 20


def wired(circuit) -> bool:
    nid = circuit.nonideal
    return circuit.vground and (nid.wire_r_row > 0 or nid.wire_r_col > 0)


def wire_conductances(circuit) -> tuple[float, float]:
    """(gr, gc): the row and column segments' conductances in ``g_unit`` (0: no wire resistance)."""
    nid = circuit.nonideal
    g = lambda r: 1.0 / (r * circuit.g_unit) if r > 0 else 0.0
    return g(nid.wire_r_row), g(nid.wire_r_col)


@dataclass
class Tile:
    """One tile's network: ``Gd``, ``Gc`` its boundary conductances; the voltage across each device is linear
    in the boundary voltages, through ``X`` (kept for tiles small enough, :data:`MAP_BYTES`) or by solving the
    factored inner nodes."""

    rows: slice     # neurons (the tile's columns)
    cols: slice     # drivers (the tile's rows)
    Gd: np.ndarray
    Gc: np.ndarray
    factor: np.ndarray | None   # banded Cholesky factor of the inner nodes (None: no inner node, or X kept)
    Lib: sp.csr_matrix   # inner x boundary (drivers then column nodes)
    a: np.ndarray   # (h, w) index of each crosspoint's row-side node (inner index, or -1 - boundary index)
    b: np.ndarray   # (h, w) likewise of its column-side node
    X: np.ndarray | None = None   # (w h, h + w): boundary voltages -> voltage across each device (i, j)

    def crosspoints(self, vd, vc):
        """Row-side minus column-side voltage at every crosspoint, (n, w, h), of boundary voltages ``vd`` (n, h)
        and ``vc`` (n, w)."""
        vb = np.concatenate([vd, vc], axis=1)
        if self.X is not None:
            return (vb @ self.X.T).reshape(len(vb), *self.a.T.shape)
        inner = (-_solve(self.factor, self.Lib @ vb.T)).T if self.factor is not None else None

        def at(idx):
            return np.where(idx >= 0, inner[:, np.maximum(idx, 0)] if inner is not None else 0.0,
                            vb[:, np.maximum(-1 - idx, 0)])

        return np.transpose(at(self.a) - at(self.b), (0, 2, 1))


def _network(G, gr, gc):
    """Tile ``G`` (w, h) as a graph, boundary nodes first (the h drivers, then the w column nodes), then the
    inner ones: each crosspoint's node indices ``a`` (row side) and ``b`` (column side), (h, w), in the
    inner-or-boundary code of :class:`Tile`; the devices' edges (p, q, G) and the wires' edges, global indices."""
    w, h = G.shape
    J, I = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    nb = h + w
    per = (1 if gr else 0) + (1 if gc else 0)   # inner nodes per crosspoint
    a = per * (J * w + I) if gr else -1 - J
    b = per * (J * w + I) + (1 if gr else 0) if gc else -1 - (h + I)
    glob = lambda idx: np.where(idx >= 0, idx + nb, -1 - idx)   # boundary first, then inner
    devices = (glob(a).ravel(), glob(b).ravel(), G[I, J].ravel())
    wires = []
    if gr:
        wires += [(J[:, 0], glob(a[:, 0]), np.full(h, gr)), (glob(a[:, :-1]).ravel(), glob(a[:, 1:]).ravel(),
                                                             np.full(h * (w - 1), gr))]
    if gc:
        wires += [(glob(b[:-1]).ravel(), glob(b[1:]).ravel(), np.full((h - 1) * w, gc)),
                  (glob(b[-1]), h + np.arange(w), np.full(w, gc))]
    return a, b, devices, [np.concatenate(e) for e in zip(*wires)], nb + per * h * w


def _laplacian(p, q, g, n):
    """Conductance matrix of edges (p, q, g) on n nodes."""
    return sp.coo_matrix((np.concatenate([g, g, -g, -g]), (np.concatenate([p, q, p, q]),
                                                          np.concatenate([p, q, q, p]))), shape=(n, n)).tocsc()


@dataclass(frozen=True)
class _Stamps:
    """Where the devices' conductances add into one block: flat index, sign and device of each entry."""

    at: np.ndarray
    sign: np.ndarray
    edge: np.ndarray

    def values(self, g):
        return self.sign * g[self.edge]


@dataclass(frozen=True)
class _Template:
    """What the tiles of one shape and wiring share: the wires' part of the inner nodes' band (upper form,
    ``(kd + 1, n_in)``), of the inner x boundary (sparse) and boundary x boundary blocks, and the devices'
    stamps into each (their conductances in the order ``G.T.ravel()``); the devices' end nodes ``p``, ``q`` and the
    wires' conductance matrix ``wire`` over all nodes (global indices, boundary first)."""

    a: np.ndarray
    b: np.ndarray
    p: np.ndarray
    q: np.ndarray
    wire: sp.csr_matrix
    band: np.ndarray
    ib: sp.csr_matrix
    bb: np.ndarray
    stamps: dict


@lru_cache(maxsize=32)
def _template(w: int, h: int, gr: float, gc: float) -> _Template:
    a, b, (p, q, _), wires, n = _network(np.zeros((w, h)), gr, gc)
    nb = h + w
    n_in = n - nb
    # the stamps of the devices (edge e: +g at (p, p) and (q, q), -g at (p, q) and (q, p)) and of the wires
    rows, cols = np.concatenate([p, q, p, q]), np.concatenate([p, q, q, p])
    sign, edge = np.repeat([1.0, 1.0, -1.0, -1.0], p.size), np.tile(np.arange(p.size), 4)
    wire = _laplacian(*wires, n).tocoo()
    inner = lambda r: r >= nb
    kd = max(1, int(np.abs(wire.row - wire.col)[inner(wire.row) & inner(wire.col)].max(initial=0)),
             int(np.abs(p - q)[inner(p) & inner(q)].max(initial=0)))

    def place(r, c, which):
        """Which entries (r, c) fall in block ``which``, their index in its flattened layout, and its size."""
        if which == "band":
            keep = inner(r) & inner(c) & (r <= c)
            return keep, (kd + r - c) * n_in + (c - nb), (kd + 1) * n_in
        if which == "ib":
            keep = inner(r) & ~inner(c)
            return keep, (r - nb) * nb + c, n_in * nb
        keep = ~inner(r) & ~inner(c)
        return keep, r * nb + c, nb * nb

    base, stamps = {}, {}
    for which in ("band", "ib", "bb"):
        keep, at, size = place(wire.row, wire.col, which)
        if which == "ib":   # (n_in x nb: large for large tiles, and sparse)
            base[which] = sp.csr_matrix((wire.data[keep], divmod(at[keep], nb)), shape=(n_in, nb))
        else:
            base[which] = np.bincount(at[keep], wire.data[keep], size)
        keep, at, _ = place(rows, cols, which)
        stamps[which] = _Stamps(at[keep], sign[keep], edge[keep])
    return _Template(a, b, p, q, wire.tocsr(), base["band"].reshape(kd + 1, n_in), base["ib"], base["bb"].reshape(nb, nb),
                     stamps)


def _solve(factor, rhs):
    """``L_ii^-1 rhs`` from the banded Cholesky factor (upper form)."""
    return cho_solve_banded((factor, False), np.asarray(rhs), check_finite=False)


def _stamped(base, st: _Stamps, g):
    return base + np.bincount(st.at, st.values(g), base.size).reshape(base.shape)


def _blocks(t: _Template, g):
    """The inner nodes' band, the inner x boundary block (sparse) and the boundary x boundary block of a tile of
    template ``t`` with device conductances ``g`` (``G.T.ravel()`` order)."""
    nb = t.bb.shape[0]
    st = t.stamps["ib"]
    Lib = (t.ib + sp.csr_matrix((st.values(g), divmod(st.at, nb)), shape=t.ib.shape)).tocsr()
    return _stamped(t.band, t.stamps["band"], g), Lib, _stamped(t.bb, t.stamps["bb"], g)


def _eliminate_inner(factor, Lib, Y, h):
    """``Y`` (the column nodes' rows of the boundary block) minus what flows through the inner nodes, in place:
    ``Y -= (L_ii^-1 L_ic)^T L_ib``, a chunk of column nodes at a time."""
    Lic = Lib[:, h:]
    for s in range(0, Y.shape[0], _CHUNK):
        Z = _solve(factor, Lic[:, s:s + _CHUNK].toarray())
        Y[s:s + _CHUNK] -= (Lib.T @ Z).T
    return Y


def build_tile(G, gr, gc, rows, cols) -> Tile:
    """Eliminate the inner nodes of tile ``G`` (w, h) with wire segment conductances ``gr``, ``gc``."""
    w, h = G.shape
    t = _template(w, h, float(gr), float(gc))
    nb = h + w
    band, Lib, Y = _blocks(t, G.T.ravel())
    Y = Y[h:]
    if not band.shape[1]:
        return Tile(rows, cols, -Y[:, :h], Y[:, h:], None, Lib, t.a, t.b)
    factor = cholesky_banded(band, check_finite=False)
    if w * h * nb * 8 <= MAP_BYTES:   # every boundary node at once: Y_cb -= Z_c^T L_ib, and the map
        Z = _solve(factor, Lib.toarray())
        Y -= (Lib.T @ Z[:, h:]).T
        at = lambda idx: np.where((idx >= 0)[..., None], -Z[np.maximum(idx, 0)], np.eye(nb)[np.maximum(-1 - idx, 0)])
        X = (at(t.a) - at(t.b)).transpose(1, 0, 2).reshape(w * h, nb)
        return Tile(rows, cols, -Y[:, :h], Y[:, h:], None, Lib, t.a, t.b, X)
    _eliminate_inner(factor, Lib, Y, h)
    return Tile(rows, cols, -Y[:, :h], Y[:, h:], factor, Lib, t.a, t.b)


class SinhTile:
    """A tile of sinh devices, ``I = G V0 sinh(V / V0)``: its inner nodes solved by Newton's method per sample
    (the network is no longer linear, so it is not reduced once), and the currents into its column nodes
    with their derivatives, the Schur complement of the network linearised at the solution.  Each Newton step
    factors the tile's band (its template's wires plus the devices' slopes ``G cosh(V / V0)``).

    The solver calls a tile again and again with boundary voltages that move a little between calls (sweeps,
    Newton steps), so each solve keeps its solutions (up to :data:`WARM_BYTES`): a sample starts from the inner
    voltages of the nearest boundary voltages solved before, where they fit its network better than the linear
    devices' solution does."""

    def __init__(self, G, gr, gc, rows, cols, v0):
        w, h = G.shape
        self.rows, self.cols, self.v0, self.h, self.w = rows, cols, v0, h, w
        self.t = _template(w, h, float(gr), float(gc))
        self.p, self.q, self.Lw = self.t.p, self.t.q, self.t.wire
        self.G, self.n = G.T.ravel(), self.Lw.shape[0]
        band, self.lin_ib, _ = _blocks(self.t, self.G)   # the linear devices' network: the first Newton iterate
        self.start = cholesky_banded(band, check_finite=False)
        self.seen = None   # (boundary voltages (m, nb), inner voltages (m, n_in)) of converged samples

    def _currents(self, v):
        """Currents leaving every node (wires and devices) at node voltages v, and the devices' slopes."""
        u = (v[self.p] - v[self.q]) / self.v0
        i = self.G * self.v0 * np.sinh(u)
        return self.Lw @ v + np.bincount(self.p, i, self.n) - np.bincount(self.q, i, self.n), self.G * np.cosh(u)

    def _starts(self, vb):
        """Each sample's first Newton iterate: the linear network's inner voltages, or the stored solution of
        the nearest boundary voltages where its inner nodes' currents are smaller."""
        nb = vb.shape[1]
        linear = -_solve(self.start, self.lin_ib @ vb.T).T
        if self.seen is None:
            return linear
        pb, pin = self.seen
        nearest = ((vb ** 2).sum(1)[:, None] - 2 * vb @ pb.T + (pb ** 2).sum(1)[None]).argmin(1)
        out = linear.copy()
        for s, m in enumerate(nearest):
            mismatch = lambda inner: np.abs(self._currents(np.concatenate([vb[s], inner]))[0][nb:]).max()
            if mismatch(pin[m]) < mismatch(linear[s]):
                out[s] = pin[m]
        return out

    def solve(self, vd, vc, iters: int = 100):
        """Per sample: currents into the column nodes (n, w), their derivatives in the boundary voltages
        (n, w, h + w) (drivers, then columns) and the voltage across each device (n, w, h).  Newton's steps
        are limited to V0 per node (as SPICE limits a junction's); a sample whose network does not settle
        within ``iters`` steps gets NaN currents, so its operating point is reported unconverged.  The
        derivatives reuse the last step's factorization (the step is then below rounding)."""
        h, nb, n = self.h, self.h + self.w, vd.shape[0]
        vb = np.concatenate([vd, vc], axis=1)
        current, slope, across = np.zeros((n, self.w)), np.zeros((n, self.w, nb)), np.zeros((n, self.w, self.h))
        starts = self._starts(vb)
        ok = np.zeros(n, bool)
        for s in range(n):
            v = np.concatenate([vb[s], starts[s]])
            for _ in range(iters):
                f, g = self._currents(v)
                factor = cholesky_banded(_stamped(self.t.band, self.t.stamps["band"], g), check_finite=False)
                step = _solve(factor, f[nb:])
                v[nb:] -= step * min(1.0, self.v0 / max(np.abs(step).max(), 1e-300))
                if np.abs(step).max() <= 1e-14 * (1 + np.abs(v[nb:]).max()):
                    break
            else:
                current[s], slope[s], across[s] = np.nan, np.nan, np.nan
                continue
            ok[s] = True
            starts[s] = v[nb:]
            f, g = self._currents(v)
            _, Lib, Y = _blocks(self.t, g)
            current[s] = -f[h:nb]
            slope[s] = -_eliminate_inner(factor, Lib, Y[h:], h)
            across[s] = (v[self.p] - v[self.q]).reshape(self.h, self.w).T
        if ok.any() and starts[ok].nbytes <= WARM_BYTES:
            self.seen = (vb[ok], starts[ok])
        return current, slope, across

    def crosspoints(self, vd, vc):
        """The voltage across every device, (n, w, h), as :meth:`Tile.crosspoints`."""
        return self.solve(vd, vc)[2]


def tiles(circuit, key):
    """The tiles of programmable array ``key`` (bias pairs as one row): reduced once (linear devices), or
    solved per sample (:class:`SinhTile`)."""
    G = circuit.values[key]
    G = G[:, None] if G.ndim == 1 else G
    t = int(circuit.nonideal.tile)
    gr, gc = wire_conductances(circuit)
    v0 = circuit.nonideal.device_v0

    def one(i, j):
        args = G[i:i + t, j:j + t], gr, gc, slice(i, min(i + t, G.shape[0])), slice(j, min(j + t, G.shape[1]))
        return SinhTile(*args, v0) if np.isfinite(v0) else build_tile(*args)

    return [one(i, j) for i in range(0, G.shape[0], t) for j in range(0, G.shape[1], t)]


def layer_tiles(circuit, k) -> dict:
    """Tiles of every array of layer k's columns, cached on the circuit until it is reprogrammed."""
    cache = getattr(circuit, "_wire_tiles", None)
    if cache is None or cache[0] != circuit.revision:
        cache = (circuit.revision, {})
        circuit._wire_tiles = cache
    if k not in cache[1]:
        keys = [f"fwd{k - 1}_p", f"fwd{k - 1}_n"] + ([f"bwd{k}_p", f"bwd{k}_n"] if k < circuit.n_layers else [])
        keys += [f"bias{k}_p", f"bias{k}_n"] if circuit.has_bias else []
        cache[1][k] = {key: tiles(circuit, key) for key in keys}
    return cache[1][k]


def effective(circuit, k):
    """Layer k's arrays as seen from the column nodes: {key: Gd (n_k, m)} and ``Gc`` (n_k, n_k)."""
    n = circuit.sizes[k]
    Gc, out = np.zeros((n, n)), {}
    for key, ts in layer_tiles(circuit, k).items():
        m = circuit.values[key].shape[1] if circuit.values[key].ndim == 2 else 1
        Gd = np.zeros((n, m))
        for t in ts:
            Gd[t.rows, t.cols] = t.Gd
            Gc[t.rows, t.rows] += t.Gc
        out[key] = Gd if circuit.values[key].ndim == 2 else Gd[:, 0]
    return out, Gc


def device_voltages(circuit, k, key, vd, vc):
    """Voltage across every device of array ``key`` (n, n_k, m) at drives ``vd`` (n, m) and column voltages
    ``vc`` (n, n_k)."""
    ts = layer_tiles(circuit, k)[key]
    shape = circuit.values[key].shape
    m = shape[1] if len(shape) == 2 else 1
    out = np.zeros((vd.shape[0], shape[0], m))
    for t in ts:
        out[:, t.rows, t.cols] = t.crosspoints(vd[:, t.cols], vc[:, t.rows])
    return out if len(shape) == 2 else out[..., 0]
