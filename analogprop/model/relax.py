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
approached by the Euler steps).  The fast solver solves that nudged top layer
exactly given its drive ``d``, as it does every other layer:
``h = clip(d + beta W^T e(W h + b))`` is a system in the readout's few inputs
``z = W h + b``, solved by damped Newton steps batched over samples (for the
softmax and beta > 0 it is the proximal step of the layer's strongly convex
problem; otherwise the steps stay near the current solution).  A sample
Newton leaves unsolved takes the damped step instead: the full field (the nudge
taken at its current state), its step halved whenever the layer's change grows,
down to ``1 / (1 + |beta| c ||W||^2)`` (``c``: the curvature bound of the loss,
1/2 for the softmax, 1 for the linear readout).

``beta`` is a number or one per sample, so the ``+beta`` and ``-beta`` phases of
symmetric nudging can settle as one batch.

Both stop per sample once ``max |h - clip(h + mu^beta)| <= tol`` (the
projected residual, zero exactly at a fixed point of Eq. 59) and report, per
sample, the final residual, the steps taken and whether it converged.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .dynamics import (projected_residual, readout_error, readout_force, readout_input, readout_output, rho,
                       softmax)
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


_TRUST = 1.0  # largest Newton step of the readout input where the top layer's problem is not convex


class _Batch:
    """Active rows of a batched relaxation; converged rows are written out and dropped."""

    def __init__(self, net: Network, x, y, beta, start, dtype):
        n = x.shape[0]
        beta = _per_sample_beta(beta, n)
        if net.readout != "dynamic" and not np.isfinite(beta).all():
            raise ConfigError(f"nudging strength beta={_first_bad(beta, ~np.isfinite(beta))} is not a finite number")
        if net.readout == "dynamic" and not (np.isfinite(beta) & (beta > -1)).all():
            raise ConfigError(f"nudging strength beta={_first_bad(beta, ~(np.isfinite(beta) & (beta > -1)))} leaves "
                              "the output without a stable fixed point (mu^beta_0 = drive - (1 + beta) h_0 needs "
                              "beta > -1)")
        net = _cast(net, np.dtype(dtype))
        self.net, self.beta, self.nudged = net, beta, bool(beta.any())
        self.bcol = beta[:, None].astype(dtype)  # beta as a column, to scale per-sample rows
        self.bounds = net.bounds()
        sizes = net.sizes[1:]
        if start is None:
            self.out = [np.zeros((n, s), dtype) for s in sizes]
        else:
            self.out = [np.array(s, dtype=dtype, copy=True) for s in start]
        self.h = [s.copy() for s in self.out]
        self.base = np.asarray(net.input_drive(rho(np.asarray(x, dtype))), dtype)
        self.y = None if y is None else np.asarray(y, dtype)
        self.top_step, self.top_change, self.min_step = np.ones(n), np.full(n, np.inf), np.ones(n)
        if net.readout != "dynamic" and self.nudged:
            w = np.asarray(net.params[f"fwd{net.n_layers - 1}"], float)  # a dense readout, (outputs, inputs)
            norm2 = np.linalg.eigvalsh(w @ w.T)[-1]  # ||W||_2^2 from the small Gram matrix, not an SVD of W
            self.min_step = 1.0 / (1.0 + np.abs(beta) * (0.5 if net.readout == "softmax" else 1.0) * norm2)
            self.force_bound = np.abs(w).sum(axis=0).max()  # ||W^T||_inf: |dh| <= |beta| that |dz| (|de/dz| <= 1)
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
            if self.nudged:
                y, b = (self.y, self.bcol) if rows is None else (self.y[rows], self.bcol[rows])
                f[-1] += b * (y - h[-1])
            return f
        f[top - 1] += self.nudge(h[top - 1], rows)
        f.append(self.output(h[top - 1]) - h[-1])
        return f

    def solve_top(self, d, tol, iterations: int = 8):
        """The nudged top hidden layer solved exactly given its drive ``d``: ``h = clip(d + beta W^T e(z))``
        with ``z = W h + b`` (Eq. 14 with the readout's error), by damped Newton steps on ``z``, one
        outputs x outputs system per sample.  Rows left with a layer residual above ``tol`` (or, under a
        negative nudge, at an unstable solution) take :meth:`step_top` instead."""
        net, (lo, hi) = self.net, self.bounds[-2]

        def layer(z, rows):  # the layer's state given the readout input, and the residual z(h) - z
            e = readout_error(net, z, self.y[rows])
            h = np.clip(d[rows] + self.bcol[rows] * readout_force(net, e), lo, hi)
            return h, readout_input(net, rho(h)) - z

        z = readout_input(net, rho(self.h[-2]))
        h, f = layer(z, slice(None))
        size = np.max(np.abs(f), axis=1)
        tol_z = tol / np.maximum(np.abs(self.beta) * self.force_bound, 1e-30)  # the h tolerance carried to z
        live = np.flatnonzero(size > tol_z)
        trusted = (self.beta < 0) | (net.readout != "softmax")  # not a convex problem: stay near the solution
        moved = np.zeros(z.shape[0], bool)
        eye = np.eye(z.shape[1])
        for _ in range(iterations):
            if not live.size:
                break
            jac = self.loop_gain(h[live], z[live], live) - eye  # d(z(h(z)) - z)/dz
            step = np.linalg.solve(jac, -f[live][:, :, None].astype(float))[:, :, 0]
            bound = np.where(trusted[live, None], _TRUST, np.inf)
            step *= np.minimum(1.0, bound / np.maximum(np.max(np.abs(step), axis=1, keepdims=True), 1e-30))
            step, t = step.astype(z.dtype), np.ones((live.size, 1), z.dtype)
            for _ in range(4):  # halve the step of rows whose residual did not shrink
                zn = z[live] + t * step
                hn, fn = layer(zn, live)
                sn = np.max(np.abs(fn), axis=1)
                worse = sn >= size[live]
                if not worse.any():
                    break
                t[worse] /= 2
            rows = live[~worse]
            z[rows], h[rows], f[rows], size[rows] = zn[~worse], hn[~worse], fn[~worse], sn[~worse]
            moved[rows] = True
            live = rows[size[rows] > tol_z[rows]]
        unsolved = size > tol_z
        if (moved & (self.beta < 0)).any():  # under -beta only stable solutions: the layer's loop gain below 1
            rows = np.flatnonzero(moved & (self.beta < 0))
            gain = self.loop_gain(h[rows], z[rows], rows)
            # its eigenvalues are those of a product of two PSD matrices, real and >= 0: below the trace
            check = np.trace(gain, axis1=1, axis2=2) >= 1
            unsolved[rows[check]] |= np.linalg.eigvals(gain[check]).real.max(axis=1) >= 1
        if unsolved.any():
            h[unsolved] = np.clip(self.step_top(d)[unsolved], lo, hi)
        return h

    @cached_property
    def w_pairs(self):
        """``W_oi W_pi`` per top hidden unit i, (inputs, outputs^2): the readout's pair table of :meth:`loop_gain`."""
        w = np.asarray(self.net.params[f"fwd{self.net.n_layers - 1}"])
        return (w.T[:, :, None] * w.T[:, None, :]).reshape(w.shape[1], -1)

    def loop_gain(self, h, z, rows):
        """beta W D W^T de/dz per sample (active ``rows``): the derivative of the readout input around the
        nudged top layer, D the units of ``h`` inside (0, 1)."""
        n, o = z.shape
        wdw = (((h > 0) & (h < 1)).astype(self.w_pairs.dtype) @ self.w_pairs).reshape(n, o, o)
        return self.beta[rows, None, None] * wdw.astype(float) @ self.error_slope(z)

    def error_slope(self, z):
        """de/dz of the readout's error, per sample: -(diag(p) - p p^T) for the softmax, -diag(unclipped)
        for the linear readout."""
        if self.net.readout == "softmax":
            p = softmax(z.astype(float))
            return p[:, :, None] * p[:, None, :] - p[:, :, None] * np.eye(z.shape[1])
        zlo, zhi = self.bounds[-1]
        return -(((z > zlo) & (z < zhi))[:, :, None] * np.eye(z.shape[1]))

    def step_top(self, d):
        """The nudged top hidden layer's next value (before the clip) given its drive ``d``: a step of
        ``top_step`` along its field, halved (down to ``min_step``) for samples whose change grew."""
        h = self.h[-2]
        move = d + self.nudge(h) - h
        change = np.max(np.abs(np.clip(h + move, 0.0, 1.0) - h), axis=1)
        grew = change > self.top_change
        self.top_step[grew] = np.maximum(self.top_step[grew] / 2, self.min_step[grew])
        self.top_change = change
        return h + self.top_step[:, None].astype(h.dtype) * move

    def output(self, h_top):
        """The output state of a readout outside the dynamics, given the top hidden layer."""
        return readout_output(self.net, readout_input(self.net, rho(h_top)))

    def nudge(self, h_top, rows=None):
        """beta W^T e on the top hidden layer of a readout network (0 in the free phase)."""
        if not self.nudged:
            return 0.0
        y, b = (self.y, self.bcol) if rows is None else (self.y[rows], self.bcol[rows])
        return b * readout_force(self.net, readout_error(self.net, readout_input(self.net, rho(h_top)), y))

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
        self.top_step, self.top_change, self.min_step = self.top_step[keep], self.top_change[keep], self.min_step[keep]
        self.beta, self.bcol = self.beta[keep], self.bcol[keep]
        if self.y is not None:
            self.y = self.y[keep]

    def result(self, tol) -> Relaxation:
        return Relaxation(self.out, self.residual, self.steps, self.residual <= tol)


def _per_sample_beta(beta, n: int) -> np.ndarray:
    """The nudging strength of each of ``n`` samples: a number for all of them, or one per sample."""
    b = np.asarray(beta, float)
    if b.ndim > 1 or (b.ndim == 1 and b.shape[0] != n):
        raise ConfigError(f"nudging strength beta has shape {b.shape}; expected a number or one per sample ({n},)")
    return np.array(np.broadcast_to(b, (n,)))


def _first_bad(beta, bad):
    return beta[np.flatnonzero(bad)[0]]


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


class _OverRelaxation:
    """Per-sample over-relaxation factors of the fast solver's sweeps (Young's SOR), set from the sweeps.

    A sample starts with plain sweeps (omega = 1).  From ``WARMUP`` sweeps on, once its successive moves
    point the same way (cosine above ``ALIGNED``: one slow real mode left, as in the nearly marginal loops
    of trained networks) and shrink by a ratio r per sweep, it takes Young's factor for that mode,
    ``omega = 2 / (1 + sqrt(1 - r))`` (r at most ``SLOWEST``), and at most ``limit``.  A sample whose
    change grows past ``GROWTH`` times its smallest so far goes back to plain sweeps for good, so a network
    it does not suit still converges as before.
    """

    WARMUP, ALIGNED, GROWTH, SLOWEST = 3, 0.8, 4.0, 0.95

    def __init__(self, n: int, limit: float, dtype):
        self.limit = limit
        self.omega = np.ones(n, dtype)
        self.open = np.full(n, limit > 1.0)  # not yet set and not given up
        self.best = np.full(n, np.inf)
        self.moves, self.dot, self.norm, self.prev_norm = [], np.zeros(n), np.zeros(n), np.zeros(n)

    def step(self, k: int, h, target, bounds):
        """Layer ``k``'s (0-based) next state from its state ``h``, its Gauss-Seidel value ``target`` and its
        range ``bounds``."""
        if self.limit == 1.0:
            return target
        new = np.clip(h + self.omega[:, None] * (target - h), *bounds) if (self.omega != 1).any() else target
        if self.open.any():  # the moves of samples still to be set
            move = new - h
            if len(self.moves) > k:
                self.dot += np.einsum("ij,ij->i", move, self.moves[k])
                self.moves[k] = move
            else:
                self.moves.append(move)
            self.norm += np.einsum("ij,ij->i", move, move)
        return new

    def end_sweep(self, sweep: int, change):
        """Set or withdraw the factors after a sweep whose largest move per sample was ``change``."""
        if self.limit == 1.0:
            return
        grew = change > self.GROWTH * self.best
        self.omega[grew], self.open[grew] = 1.0, False
        np.minimum(self.best, change, out=self.best)
        if sweep >= self.WARMUP:
            cos = self.dot / np.sqrt(np.maximum(self.norm * self.prev_norm, 1e-300))
            ratio = np.sqrt(self.norm / np.maximum(self.prev_norm, 1e-300))
            ready = self.open & (cos > self.ALIGNED)
            r = np.minimum(ratio[ready], self.SLOWEST)
            self.omega[ready] = np.minimum(2.0 / (1.0 + np.sqrt(1.0 - r)), self.limit)
            self.open &= ~ready
        self.prev_norm, self.norm, self.dot = self.norm, np.zeros_like(self.norm), np.zeros_like(self.dot)

    def keep(self, rows):
        """Drop the retired samples (``rows``: the ones still active)."""
        self.omega, self.open, self.best = self.omega[rows], self.open[rows], self.best[rows]
        self.norm, self.dot, self.prev_norm = self.norm[rows], self.dot[rows], self.prev_norm[rows]
        self.moves = [m[rows] for m in self.moves]


@dataclass
class FastSolver:
    """Projected block Gauss-Seidel over layers, input side first.

    One sweep solves each layer exactly given its neighbours (Eq. 6-8, 14
    with rho clipped to [0, 1]), layers 1..L in order.  The layer graph is a
    chain, so a sweep contracts like two Jacobi (Euler step 1) iterations;
    sweeping always forward is about twice as fast as alternating the
    direction, which can also cycle.

    ``over_relax`` > 1 lets a sample whose sweeps have slowed to one slow mode
    move each layer omega times its Gauss-Seidel step, omega set from the
    sweeps up to that limit (:class:`_OverRelaxation`; the nudged top layer
    keeps its exact solve).
    """

    tol: float = 1e-6
    max_sweeps: int = 500
    dtype: type = np.float64
    over_relax: float = 1.0

    def __post_init__(self):
        _check(self.tol, self.max_sweeps, "fast solver")
        if not 1.0 <= self.over_relax < 2.0:
            raise ConfigError(f"over-relaxation factor must be in [1, 2), got {self.over_relax}")

    def solve(self, net: Network, x, y=None, beta: float = 0.0, start=None) -> Relaxation:
        b = _Batch(net, x, y, beta, start, self.dtype)
        sor = _OverRelaxation(b.idx.size, self.over_relax, b.h[0].dtype)
        top, readout = net.n_dynamic, net.readout != "dynamic"
        for sweep in range(1, self.max_sweeps + 1):
            change = np.zeros(b.idx.size)
            for k in range(1, top + 1):
                d = top_drive = b.drive(k)  # the top layer's stays valid: nothing below it moves after it
                if k == top and b.nudged and readout:
                    d = b.solve_top(d, 0.1 * self.tol)
                elif k == top and b.nudged:
                    d = (d + b.bcol * b.y) / (1.0 + b.bcol)
                new = np.clip(d, *b.bounds[k - 1])
                if not (k == top and b.nudged):
                    new = sor.step(k - 1, b.h[k - 1], new, b.bounds[k - 1])
                np.maximum(change, np.max(np.abs(new - b.h[k - 1]), axis=1), out=change)
                b.h[k - 1] = new
            if readout:
                new = b.output(b.h[top - 1])
                np.maximum(change, np.max(np.abs(new - b.h[-1]), axis=1), out=change)
                b.h[-1] = new
            b.steps[b.idx] = sweep
            sor.end_sweep(sweep, change)
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
                sor.keep(~done)
            if b.idx.size == 0:
                break
        return b.result(self.tol)
