"""Pseudo-arclength continuation of the Newton homotopy, for operating points that sweeps, damped Newton and
gmin / source stepping do not reach.

From a start ``v0`` the path ``H(v, lam) = F(v) - (1 - lam) F(v0) = 0`` runs from ``(v0, 0)`` to a solution of
``F(v) = 0`` at ``lam = 1`` (Allgower and Georg, *Introduction to Numerical Continuation Methods*, ch. 2 and 8).
``F`` is proper here (the stage outputs ``T(v)`` are bounded), so the path is bounded and, generically, reaches
``lam = 1``; where it folds, ``lam`` runs backwards for a while, which a parameter stepping (gmin, source) cannot
follow and an arclength parameter can.  The tangent is oriented by ``d lam / ds ~ sign(det J)``.  On a smooth
``F`` each step predicts along the unit tangent and corrects by Newton on ``H`` bordered with the orthogonality to
the tangent.  On a piecewise-linear ``F`` (the default devices) ``H`` is affine inside each piece, so the path is a
chain of straight segments, walked one piece at a time (Katzenelson's method).

``lam`` is scaled by ``|F(v0)|`` so that both coordinates are volts.  ``F`` need not be one-to-one, so the path
from ``v0`` may close on itself (back through ``lam = 0``); a path that closes, stalls or runs too long is given
up, and the continuation starts again, along another ray, from the full Newton step of the point of smallest
``|F|`` it met.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class PathResult:
    """``v`` the solution when ``reached``, else the point of smallest ``|F|`` met; ``steps`` the path's steps."""

    v: np.ndarray
    reached: bool
    steps: int


def follow_path(F: Callable[[np.ndarray], np.ndarray],
                solve: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, float]],
                v0: np.ndarray, tol: float, region: Callable[[np.ndarray], np.ndarray] | None = None,
                crossing: Callable[[np.ndarray, np.ndarray], float] | None = None, max_steps: int = 2000,
                restarts: int = 4, newton_iters: int = 30) -> PathResult:
    """Continue the Newton homotopy of ``F`` from ``v0`` to ``lam = 1``, then polish by Newton to ``|F| <= tol``.

    ``F(v)`` is the residual (1-D); ``solve(v, R)`` returns ``J(v)^-1 R`` for the columns of ``R`` (N, m),
    ``J = dF/dv``, and the sign of ``det J`` (it may raise :class:`numpy.linalg.LinAlgError` at a singular point).
    The path's orientation is ``d lam / ds ~ sign(det J)`` (relative to the start): it stays right through folds
    and, on a piecewise-linear ``F``, through the corners where the path turns by more than a right angle.

    ``region(v)``, for a piecewise-linear ``F``: an array that identifies the linear piece at v (equal arrays, the
    same Jacobian).  The path is then walked exactly, piece by piece (Katzenelson's method): along the straight
    segment of the current piece to its boundary, located by bisection, then along the next piece's segment.
    ``crossing(v, d)``, optional: the step along ``d`` at which one of the pieces' boundaries is met (a
    prediction the walk checks; the rest are found by bisection).  Without ``region``, predictor-corrector steps
    along the tangent.  ``max_steps`` per path, ``restarts`` new paths.
    """
    steps, best = 0, None
    for _ in range(restarts + 1):
        out = _Path(F, solve, v0, newton_iters).walk(tol, region, crossing, max_steps)
        steps += out.steps
        if out.reached:
            return PathResult(out.v, True, steps)
        best = out.v
        try:   # a new ray: from where the full Newton step of the path's best point lands
            v0 = best - solve(best, F(best)[:, None])[0][:, 0]
        except np.linalg.LinAlgError:
            break
    return PathResult(best, False, steps)


class _Path:
    """The path of ``H(v, s) = F(v) - (1 - s / scale) F(v0)`` (``s = lam scale``) through ``(v0, 0)``."""

    def __init__(self, F, solve, v0, newton_iters):
        self.F, self.solve, self.v0, self.newton_iters = F, solve, v0, newton_iters
        f0 = F(v0)
        self.scale = float(np.linalg.norm(f0))
        self.e = f0 / self.scale if self.scale > 0 else f0
        self.best = (self.scale, v0)

    def H(self, v, s):
        f = self.F(v)
        norm = float(np.linalg.norm(f))
        if norm < self.best[0]:
            self.best = (norm, v.copy())
        return f - (self.scale - s) * self.e

    def tangent(self, v):
        """The unit tangent at v, oriented by ``sign(det J)`` relative to the start."""
        b, sign = self.solve(v, self.e[:, None])
        if not np.isfinite(b).all():
            raise np.linalg.LinAlgError("the path's tangent is not finite (a nearly singular Jacobian)")
        t = np.append(-b[:, 0], 1.0)
        return t * (self.orient * sign / np.linalg.norm(t))

    def correct(self, point, t):
        """The path's point on the hyperplane through ``point`` normal to ``t`` (None if Newton fails), and the
        Newton steps taken."""
        z = point.copy()
        for its in range(1, 7):   # Newton on (H, t . (z - point)), bordered
            h = self.H(z[:-1], z[-1])
            if its == 1 and np.abs(h).max() <= 1e-10 * (1.0 + self.scale):
                return z, 0
            ab, _ = self.solve(z[:-1], np.stack([h, self.e], axis=1))
            dlam = (t[:-1] @ ab[:, 0] - t @ (z - point)) / (t[-1] - t[:-1] @ ab[:, 1])
            dz = np.append(-ab[:, 0] - dlam * ab[:, 1], dlam)
            z += dz
            if not np.isfinite(z).all():
                return None, its
            if np.abs(dz).max() <= 1e-12 * (1.0 + np.abs(z).max()):
                ok = np.abs(self.H(z[:-1], z[-1])).max() <= 1e-9 * (1.0 + self.scale)
                return (z if ok else None), its
        return None, its

    def finish(self, z, new, tol, steps):
        """The segment from z to new crosses lam = 1: Newton on F itself from the crossing."""
        w = (self.scale - z[-1]) / (new[-1] - z[-1])
        v = _newton(self.F, self.solve, z[:-1] + w * (new[:-1] - z[:-1]), tol, self.newton_iters)
        return PathResult(v, bool(np.abs(self.F(v)).max() <= tol), steps)

    def given_up(self, steps):
        return PathResult(self.best[1], False, steps)

    def walk(self, tol, region, crossing, max_steps):
        if not np.isfinite(self.scale) or self.scale == 0.0:
            return PathResult(self.v0, self.scale == 0.0, 0)
        z = np.append(self.v0, 0.0)
        try:
            self.orient = self.solve(self.v0, self.e[:, None])[1]
            t = self.tangent(self.v0)
        except np.linalg.LinAlgError:
            return PathResult(self.v0, False, 0)
        if region is not None:
            return self._pieces(z, t, region, crossing, tol, max_steps)
        return self._steps(z, t, tol, max_steps)

    def _steps(self, z, t, tol, max_steps):
        """Predictor-corrector steps; a step whose corrector fails is shortened, and once it is short, the
        tangent is taken beyond the corner it meets."""
        ds, ds_hop, ds_max = 0.05 * self.scale, 1e-7 * self.scale, 2.0 * self.scale
        for steps in range(1, max_steps + 1):
            try:
                new, its = self.correct(z + ds * t, t)
                if new is None and ds <= ds_hop:
                    t_beyond = self.tangent(z[:-1] + ds * t[:-1])
                    new, its = self.correct(z + ds * t_beyond, t_beyond)
            except np.linalg.LinAlgError:
                new = None
            if new is None:
                if ds <= ds_hop:
                    return self.given_up(steps)
                ds *= 0.25
                continue
            if new[-1] >= self.scale:
                return self.finish(z, new, tol, steps)
            try:
                t = self.tangent(new[:-1])
            except np.linalg.LinAlgError:
                ds *= 0.5
                continue
            z = new
            ds = min(ds * (2.0 if its <= 2 else 1.0), ds_max)
        return self.given_up(max_steps)

    def _pieces(self, z, t, region, crossing, tol, max_steps):
        """Katzenelson's walk: straight segments, their ends predicted by ``crossing`` or found by bisection on
        ``region``."""
        same = lambda a, b: a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1e-12)
        here = region(z[:-1])
        seen = set()
        ds = 0.05 * self.scale
        for steps in range(1, max_steps + 1):
            reach = ds if crossing is None else min(ds, crossing(z[:-1], t[:-1]))
            predicted = reach < ds
            if not same(region(z[:-1] + reach * t[:-1]), here):   # the piece ends before: bisect for its end
                lo, hi = 0.0, reach
                for _ in range(60):
                    if hi - lo <= 1e-10 * hi:
                        break
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if same(region(z[:-1] + mid * t[:-1]), here) else (lo, mid)
            elif predicted:
                hi = reach
            else:
                hi = None
            if hi is None:
                step, inside = reach, True
            else:
                # beyond the boundary by a margin, widened until the next piece is reached: the pieces' test is
                # exact only up to the device equations' rounding
                for margin in (1e-12, 1e-10, 1e-8, 1e-6):
                    step, inside = hi * (1 + 1e-9) + margin * self.scale, False
                    if not same(region(z[:-1] + step * t[:-1]), here):
                        break
                else:
                    if not predicted:
                        return self.given_up(steps)
                    inside = True   # the predicted boundary was not one
            new = z + step * t
            if new[-1] >= self.scale:
                return self.finish(z, new, tol, steps)
            if new[-1] < -10 * self.scale:   # heading away from lam = 1 without end
                return self.given_up(steps)
            try:
                t = self.tangent(new[:-1])
                fixed, _ = self.correct(new, t)   # the bisection's offset from the path, if it stays in the piece
            except np.linalg.LinAlgError:
                return self.given_up(steps)
            here = region(new[:-1])
            z = fixed if fixed is not None and same(region(fixed[:-1]), here) else new
            key = (np.round(here, 8).tobytes(), round(z[-1] / self.scale, 9))
            if key in seen:   # the path has closed on itself
                return self.given_up(steps)
            seen.add(key)
            if inside and not predicted:
                ds = min(2.0 * ds, 2.0 * self.scale)
        return self.given_up(max_steps)


def _newton(F, solve, v, tol, iters):
    """Newton on F from v, each step halved until |F| falls."""
    f = F(v)
    norm = np.linalg.norm(f)
    for _ in range(iters):
        if np.abs(f).max() <= tol:
            break
        try:
            step = -solve(v, f[:, None])[0][:, 0]
        except np.linalg.LinAlgError:
            break
        lam = 1.0
        for _ in range(20):
            trial = v + lam * step
            ft = F(trial)
            if np.linalg.norm(ft) < norm:
                break
            lam *= 0.5
        else:
            break
        v, f, norm = trial, ft, np.linalg.norm(ft)
    return v
