"""Solvers for the fixed points of mu^beta (Eq. 13, 25), batched over samples.

* :class:`EulerSolver` is the reference: the physical dynamics discretised
  with the clipped Euler step of Eq. 59, ``h <- 0 v (h + eps mu^beta) ^ 1``
  (a ``linear_output`` network leaves the output layer unclipped, Eq. 6).
* :class:`FastSolver` finds the same fixed points with projected block
  Gauss-Seidel sweeps over layers (each layer solved exactly given its
  neighbours), input side first, stopping on the residual tolerance; float32
  solves of a float64 network use a float32 copy of its parameters.

A network with its readout outside the dynamics (``net.readout``) relaxes layers
1..L-1, the top one nudged by ``beta W^T e`` (:mod:`analogprop.model.dynamics`);
the output state follows the top hidden layer (set exactly by the fast solver,
approached by the Euler steps).  The fast solver updates that nudged top layer
by the full field (the nudge taken at its current state), and halves the step of
a sample whenever the layer's change grows, down to ``1 / (1 + |beta| c ||W||^2)``
(``c``: the curvature bound of the loss, 1/2 for the softmax, 1 for the linear
readout): a projected gradient step on the layer's strongly convex problem for
beta > 0, where the full update can oscillate once ``beta c ||W||^2 > 1``.

Both stop per sample once ``max |h - clip(h + mu^beta)| <= tol`` (the
projected residual, zero exactly at a fixed point of Eq. 59) and report, per
sample, the final residual, the steps taken and whether it converged.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .dynamics import projected_residual, readout_error, readout_force, readout_input, readout_output, rho
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
    """`net`, or a shallow copy whose parameters are in `dtype` (float32 solves: ~1.5x faster), prepared
    for a solve with fixed parameters when the network offers it (``prepared()``: a convolutional
    network lays out its kernels once per solve instead of once per sweep)."""
    if not all(v.dtype == dtype for v in net.params.values()):
        out = copy.copy(net)  # keeps the subclass and its connection methods
        out.params = {k: v.astype(dtype) for k, v in net.params.items()}
        net = out
    prepared = getattr(net, "prepared", None)
    return net if prepared is None else prepared()


class _Batch:
    """Active rows of a batched relaxation; converged rows are written out and dropped."""

    def __init__(self, net: Network, x, y, beta, start, dtype):
        if net.readout != "dynamic" and not np.isfinite(beta):
            raise ConfigError(f"nudging strength beta={beta} is not a finite number")
        if net.readout == "dynamic" and not (np.isfinite(beta) and beta > -1):
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
        self.top_step, self.top_change, self.min_step = np.ones(n), np.full(n, np.inf), 1.0
        if net.readout != "dynamic" and self.beta:
            w = np.asarray(net.params[f"fwd{net.n_layers - 1}"], float)  # a dense readout, (outputs, inputs)
            norm2 = np.linalg.eigvalsh(w @ w.T)[-1]  # ||W||_2^2 from the small Gram matrix, not an SVD of W
            self.min_step = 1.0 / (1.0 + abs(self.beta) * (0.5 if net.readout == "softmax" else 1.0) * norm2)
        self.idx = np.arange(n)
        self.residual = np.full(n, np.inf)
        self.steps = np.zeros(n, dtype=np.int64)

    def drive(self, k: int, h=None, rows=None):
        """Synaptic input to layer k (1-based) from the current active states."""
        h = self.h if h is None else h
        r_next = rho(h[k]) if k < self.net.n_dynamic else None
        if k == 1:
            return (self.base if rows is None else self.base[rows]) + self.net.drive(1, None, r_next)
        return self.net.drive(k, rho(h[k - 2]), r_next)

    def field(self, h=None, rows=None, top_drive=None):
        """mu^beta (Eq. 12-15) on the active rows (or a subset `rows` of them); ``top_drive``: the top
        dynamic layer's drive at ``h``, when already known."""
        h = self.h if h is None else h
        top = self.net.n_dynamic
        f = [(self.drive(k, h, rows) if k < top or top_drive is None else top_drive) - h[k - 1]
             for k in range(1, top + 1)]
        if self.net.readout == "dynamic":
            if self.beta:
                y = self.y if rows is None else self.y[rows]
                f[-1] += self.beta * (y - h[-1])
            return f
        f[top - 1] += self.nudge(h[top - 1], rows)
        f.append(self.output(h[top - 1]) - h[-1])
        return f

    def step_top(self, d):
        """The nudged top hidden layer's next value (before the clip) given its drive ``d``: a step of
        ``top_step`` along its field, halved (down to ``min_step``) for samples whose change grew."""
        h = self.h[-2]
        move = d + self.nudge(h) - h
        change = np.max(np.abs(np.clip(h + move, 0.0, 1.0) - h), axis=1)
        grew = change > self.top_change
        self.top_step[grew] = np.maximum(self.top_step[grew] / 2, self.min_step)
        self.top_change = change
        return h + self.top_step[:, None].astype(h.dtype) * move

    def output(self, h_top):
        """The output state of a readout outside the dynamics, given the top hidden layer."""
        return readout_output(self.net, readout_input(self.net, rho(h_top)))

    def nudge(self, h_top, rows=None):
        """beta W^T e on the top hidden layer of a readout network (0 in the free phase)."""
        if not self.beta:
            return 0.0
        y = self.y if rows is None else self.y[rows]
        return self.beta * readout_force(self.net, readout_error(self.net, readout_input(self.net, rho(h_top)), y))

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
        self.top_step, self.top_change = self.top_step[keep], self.top_change[keep]
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
        top, readout = net.n_dynamic, net.readout != "dynamic"
        for sweep in range(1, self.max_sweeps + 1):
            change = np.zeros(b.idx.size)
            for k in range(1, top + 1):
                d = top_drive = b.drive(k)  # the top layer's stays valid: nothing below it moves after it
                if k == top and b.beta and readout:
                    d = b.step_top(d)
                elif k == top and b.beta:
                    d = (d + b.beta * b.y) / (1.0 + b.beta)
                new = np.clip(d, *b.bounds[k - 1])
                np.maximum(change, np.max(np.abs(new - b.h[k - 1]), axis=1), out=change)
                b.h[k - 1] = new
            if readout:
                new = b.output(b.h[top - 1])
                np.maximum(change, np.max(np.abs(new - b.h[-1]), axis=1), out=change)
                b.h[-1] = new
            b.steps[b.idx] = sweep
            cand = np.flatnonzero(change <= self.tol)
            if sweep == self.max_sweeps:
                cand = np.arange(b.idx.size)
            if cand.size:
                sub = [hk[cand] for hk in b.h]
                r = projected_residual(sub, b.field(sub, cand, top_drive[cand]), b.bounds)
                done = np.zeros(b.idx.size, bool)
                ok = r <= self.tol if sweep < self.max_sweeps else np.ones(cand.size, bool)
                done[cand[ok]] = True
                b.retire(done, r[ok])
            if b.idx.size == 0:
                break
        return b.result(self.tol)
