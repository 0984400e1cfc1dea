"""Solvers for the fixed points of mu^beta (Eq. 13, 25), batched over samples.

* :class:`EulerSolver` is the reference: the physical dynamics discretised
  with the clipped Euler step of Eq. 59, ``h <- 0 v (h + eps mu^beta) ^ 1``
  (a ``linear_output`` network leaves the output layer unclipped, Eq. 6).
* :class:`FastSolver` finds the same fixed points with projected block
  Gauss-Seidel sweeps over layers (each layer solved exactly given its
  neighbours), input side first, stopping on the residual tolerance; float32
  solves of a float64 network use a float32 copy of its parameters.

Both stop per sample once ``max |h - clip(h + mu^beta)| <= tol`` (the
projected residual, zero exactly at a fixed point of Eq. 59) and report, per
sample, the final residual, the steps taken and whether it converged.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .dynamics import projected_residual, rho
from ..errors import ConfigError
from .network import Network


@dataclass
class Relaxation:
    """States reached by a relaxation and per-sample convergence."""

    states: list[np.ndarray]
    residual: np.ndarray
    steps: np.ndarray
    converged: np.ndarray

    @property
    def output(self) -> np.ndarray:
        return self.states[-1]

    @property
    def n_unconverged(self) -> int:
        return int(np.count_nonzero(~self.converged))


def _cast(net: Network, dtype) -> Network:
    """`net` itself, or a shallow copy whose parameters are in `dtype` (float32 solves: ~1.5x faster)."""
    if all(v.dtype == dtype for v in net.params.values()):
        return net
    out = copy.copy(net)  # keeps the subclass and its connection methods
    out.params = {k: v.astype(dtype) for k, v in net.params.items()}
    return out


class _Batch:
    """Active rows of a batched relaxation; converged rows are written out and dropped."""

    def __init__(self, net: Network, x, y, beta, start, dtype):
        if not (np.isfinite(beta) and beta > -1):
            raise ConfigError(f"nudging strength beta={beta} leaves the output without a stable fixed point "
                              "(mu^beta_0 = drive - (1 + beta) h_0 needs beta > -1)")
        net = _cast(net, np.dtype(dtype))
        self.net, self.beta = net, float(beta)
        self.bounds = net.bounds()
        n = x.shape[0]
        sizes = net.sizes[1:]
        if start is None:
            self.out = [np.zeros((n, s), dtype) for s in sizes]
        else:
            self.out = [np.array(s, dtype=dtype, copy=True) for s in start]
        self.h = [s.copy() for s in self.out]
        self.base = np.asarray(net.input_drive(rho(np.asarray(x, dtype))), dtype)
        self.y = None if y is None else np.asarray(y, dtype)
        self.idx = np.arange(n)
        self.residual = np.full(n, np.inf)
        self.steps = np.zeros(n, dtype=np.int64)

    def drive(self, k: int, h=None, rows=None):
        """Synaptic input to layer k (1-based) from the current active states."""
        h = self.h if h is None else h
        r_next = rho(h[k]) if k < self.net.n_layers else None
        if k == 1:
            return (self.base if rows is None else self.base[rows]) + self.net.drive(1, None, r_next)
        return self.net.drive(k, rho(h[k - 2]), r_next)

    def field(self, h=None, rows=None):
        """mu^beta (Eq. 12-15) on the active rows (or a subset `rows` of them)."""
        h = self.h if h is None else h
        f = [self.drive(k, h, rows) - h[k - 1] for k in range(1, self.net.n_layers + 1)]
        if self.beta:
            y = self.y if rows is None else self.y[rows]
            f[-1] += self.beta * (y - h[-1])
        return f

    def retire(self, mask, residual):
        """Write rows `mask` of the active set to the output and drop them."""
        rows = self.idx[mask]
        for o, hk in zip(self.out, self.h):
            o[rows] = hk[mask]
        self.residual[rows] = residual
        keep = ~mask
        self.idx = self.idx[keep]
        self.h = [hk[keep] for hk in self.h]
        self.base = self.base[keep]
        if self.y is not None:
            self.y = self.y[keep]

    def result(self, tol) -> Relaxation:
        return Relaxation(self.out, self.residual, self.steps, self.residual <= tol)


def _check(tol, max_steps, name):
    if not (tol >= 0) or not np.isfinite(tol):
        raise ConfigError(f"{name} tolerance must be a finite number >= 0, got {tol}")
    if int(max_steps) < 1:
        raise ConfigError(f"{name} step count must be >= 1, got {max_steps}")


@dataclass
class EulerSolver:
    """Reference integrator, Eq. 59.  ``stop_early=False`` runs exactly ``max_steps``."""

    step: float = 0.5
    max_steps: int = 2000
    tol: float = 1e-6
    stop_early: bool = True
    dtype: type = np.float64

    def __post_init__(self):
        if not (0 < self.step <= 1):
            raise ConfigError(f"Euler step size must be in (0, 1], got {self.step}")
        _check(self.tol, self.max_steps, "Euler")

    def solve(self, net: Network, x, y=None, beta: float = 0.0, start=None) -> Relaxation:
        b = _Batch(net, x, y, beta, start, self.dtype)
        for step in range(self.max_steps + 1):
            if b.idx.size == 0:
                break
            f = b.field()
            r = projected_residual(b.h, f, b.bounds)
            done = r <= self.tol if self.stop_early else np.zeros(r.shape, bool)
            if step == self.max_steps:
                done[:] = True
            if done.any():
                b.retire(done, r[done])
                f = [fk[~done] for fk in f]
            if b.idx.size == 0:
                break
            b.h = [np.clip(hk + self.step * fk, *bk) for hk, fk, bk in zip(b.h, f, b.bounds)]
            b.steps[b.idx] = step + 1
        return b.result(self.tol)


@dataclass
class FastSolver:
    """Projected block Gauss-Seidel over layers, input side first.

    One sweep solves each layer exactly given its neighbours (Eq. 6-8, 14
    with rho clipped to [0, 1]), layers 1..L in order.  The layer graph is a
    chain, so a sweep contracts like two Jacobi (Euler step 1) iterations;
    sweeping always forward is about twice as fast as alternating the
    direction, which can also cycle.
    """

    tol: float = 1e-6
    max_sweeps: int = 500
    dtype: type = np.float64

    def __post_init__(self):
        _check(self.tol, self.max_sweeps, "fast solver")

    def solve(self, net: Network, x, y=None, beta: float = 0.0, start=None) -> Relaxation:
        b = _Batch(net, x, y, beta, start, self.dtype)
        L = net.n_layers
        for sweep in range(1, self.max_sweeps + 1):
            change = np.zeros(b.idx.size)
            for k in range(1, L + 1):
                d = b.drive(k)
                if k == L and b.beta:
                    d = (d + b.beta * b.y) / (1.0 + b.beta)
                new = np.clip(d, *b.bounds[k - 1])
                np.maximum(change, np.max(np.abs(new - b.h[k - 1]), axis=1), out=change)
                b.h[k - 1] = new
            b.steps[b.idx] = sweep
            cand = np.flatnonzero(change <= self.tol)
            if sweep == self.max_sweeps:
                cand = np.arange(b.idx.size)
            if cand.size:
                sub = [hk[cand] for hk in b.h]
                r = projected_residual(sub, b.field(sub, cand), b.bounds)
                done = np.zeros(b.idx.size, bool)
                ok = r <= self.tol if sweep < self.max_sweeps else np.ones(cand.size, bool)
                done[cand[ok]] = True
                b.retire(done, r[ok])
            if b.idx.size == 0:
                break
        return b.result(self.tol)
