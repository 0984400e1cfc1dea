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
half-bandwidth twice the tile's width, so a sparse LU in that order without pivoting
(:func:`scipy.sparse.linalg.splu`, natural order) fills only the band, and the column-node solves, which
dominate the reduction, run faster on it than on a fill-reducing order's factor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

#: right-hand sides per banded solve (bounds the dense block in memory)
_CHUNK = 64


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
    """One tile's network: inner nodes factored once; ``Gd``, ``Gc`` its boundary conductances."""

    rows: slice     # neurons (the tile's columns)
    cols: slice     # drivers (the tile's rows)
    Gd: np.ndarray
    Gc: np.ndarray
    lu: object      # factor of the inner nodes' conductance matrix (None: no inner node)
    Lib: sp.csr_matrix   # inner x boundary (drivers then column nodes)
    a: np.ndarray   # (h, w) index of each crosspoint's row-side node (inner index, or -1 - boundary index)
    b: np.ndarray   # (h, w) likewise of its column-side node

    def crosspoints(self, vd, vc):
        """Row-side minus column-side voltage at every crosspoint, (n, w, h), of boundary voltages ``vd`` (n, h)
        and ``vc`` (n, w)."""
        vb = np.concatenate([vd, vc], axis=1)
        inner = (-self.lu.solve(np.ascontiguousarray(self.Lib @ vb.T))).T if self.lu is not None else None

        def at(idx):
            return np.where(idx >= 0, inner[:, np.maximum(idx, 0)] if inner is not None else 0.0,
                            vb[:, np.maximum(-1 - idx, 0)])

        return np.transpose(at(self.a) - at(self.b), (0, 2, 1))


def build_tile(G, gr, gc, rows, cols) -> Tile:
    """Eliminate the inner nodes of tile ``G`` (w, h) with wire segment conductances ``gr``, ``gc``."""
    w, h = G.shape
    J, I = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    nb = h + w
    per = (1 if gr else 0) + (1 if gc else 0)   # inner nodes per crosspoint
    n_in = per * h * w
    a = per * (J * w + I) if gr else -1 - J
    b = per * (J * w + I) + (1 if gr else 0) if gc else -1 - (h + I)
    glob = lambda idx: np.where(idx >= 0, idx + nb, -1 - idx)   # boundary first, then inner
    edges = [(glob(a).ravel(), glob(b).ravel(), G[I, J].ravel())]
    if gr:
        edges += [(J[:, 0], glob(a[:, 0]), np.full(h, gr)), (glob(a[:, :-1]).ravel(), glob(a[:, 1:]).ravel(),
                                                             np.full(h * (w - 1), gr))]
    if gc:
        edges += [(glob(b[:-1]).ravel(), glob(b[1:]).ravel(), np.full((h - 1) * w, gc)),
                  (glob(b[-1]), h + np.arange(w), np.full(w, gc))]
    p, q, g = (np.concatenate(e) for e in zip(*edges))
    n = nb + n_in
    L = sp.coo_matrix((np.concatenate([g, g, -g, -g]), (np.concatenate([p, q, p, q]), np.concatenate([p, q, q, p]))),
                      shape=(n, n)).tocsc()
    Lbb, Lib = L[:nb, :nb].toarray(), L[nb:, :nb].tocsr()
    Y = Lbb[h:]
    lu = None
    if n_in:
        lu = splu(L[nb:, nb:].tocsc(), permc_spec="NATURAL", diag_pivot_thresh=0.0,
                  options={"SymmetricMode": True})
        Lic = Lib[:, h:]
        for s in range(0, w, _CHUNK):   # Y_cb -= (L_ii^-1 L_ic)^T L_ib, a chunk of column nodes at a time
            Z = lu.solve(np.ascontiguousarray(Lic[:, s:s + _CHUNK].toarray()))
            Y[s:s + _CHUNK] -= (Lib.T @ Z).T
    return Tile(rows, cols, -Y[:, :h], Y[:, h:], lu, Lib, a, b)


def tiles(circuit, key):
    """The tiles of programmable array ``key`` (bias pairs as one row)."""
    G = circuit.values[key]
    G = G[:, None] if G.ndim == 1 else G
    t = int(circuit.nonideal.tile)
    gr, gc = wire_conductances(circuit)
    return [build_tile(G[i:i + t, j:j + t], gr, gc, slice(i, min(i + t, G.shape[0])), slice(j, min(j + t, G.shape[1])))
            for i in range(0, G.shape[0], t) for j in range(0, G.shape[1], t)]


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
